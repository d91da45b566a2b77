//! `kosha`: the all-in-one runner and operator tool.

use clap::{CommandFactory as _, Parser as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match kosha::cli::Cli::try_parse() {
        Ok(cli) => cli.run().await,
        Err(error) => match error.kind() {
            // A setting that does not parse is a bad setting like any other: status 64,
            // naming the variable as well as the flag, since either may have set it.
            clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation => {
                let problem = kosha::cli::value_error(&kosha::cli::Cli::command(), &error);
                kosha_runtime::config::exit_with_problems(&[problem])
            }
            _ => error.exit(),
        },
    }
}
