//! The `kosha` command line.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::telemetry;

use crate::suite::{Suite, SuiteOptions};

/// What each service reads from its environment, shown under the options of `kosha` and
/// `kosha serve`.
const SERVICE_SETTINGS: &str = "\
Each service also reads settings of its own from KOSHA_* environment variables. For
example, KOSHA_ORDER_CONNECTORS names each channel's connector (AMAZON=dir:<PATH> serves
orders from files), KOSHA_ORDER_HOLD_RULES gives per-channel hold rules
(FLIPKART=dispatch-after,PAYTM=return-pickup) and KOSHA_SCHEDULER_HORIZON_DAYS bounds how
far ahead jobs may be due. Each service binary lists its own with --help, e.g.
`cargo run -p kosha-order -- --help`.";

/// Kosha: one stock across many marketplaces and wholesale customers.
#[derive(Debug, Parser)]
#[command(name = "kosha", version, about, after_help = SERVICE_SETTINGS)]
// The runner keeps one SQLite file per service and refuses a database URL, so its help
// leaves those flags out; they are still read, to say so.
#[command(mut_arg("database_url", |arg| arg.hide(true)))]
#[command(mut_arg("database_url_file", |arg| arg.hide(true)))]
pub struct Cli {
    #[command(subcommand)]
    command_opt: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process on one address (the default command).
    #[command(after_help = SERVICE_SETTINGS)]
    #[command(mut_arg("database_url", |arg| arg.hide(true)))]
    #[command(mut_arg("database_url_file", |arg| arg.hide(true)))]
    Serve(Box<ServeArgs>),
    /// Run one of the benchmarks the project ships.
    #[command(subcommand)]
    Bench(crate::bench::Bench),
    /// Replay a seller's data through the suite (started here, or running at --addr) and
    /// print a summary that is the same every run.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Write a small generated dataset in the format `kosha replay` reads.
    SampleData {
        /// Directory to write `products.csv`, `channel-mrp.csv`, `amazon-orders.csv` and
        /// `b2b-orders.csv` into.
        dir: std::path::PathBuf,
        /// Number of designs (each in five sizes); scales every file.
        #[arg(long, default_value_t = 40)]
        designs: usize,
    },
}

/// Settings of `kosha serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
}

impl Cli {
    /// Runs the command; returns the process exit code.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command_opt {
            Some(Command::Serve(args)) => serve(*args).await,
            Some(Command::Bench(bench)) => bench.run().await,
            Some(Command::Replay(args)) => crate::replay::run(*args).await,
            Some(Command::SampleData { dir, designs }) => {
                crate::sample_data::write(&dir, designs)?;
                println!("kosha: sample data written to {}", dir.display());
                Ok(())
            }
            None => serve(self.serve).await,
        }
    }
}

/// What clap said of a value that does not parse, with the flag's variable named too:
/// a setting usually comes from the environment, and clap names only the flag.
pub fn value_error(command: &clap::Command, error: &clap::Error) -> String {
    crate::suite::setting_error(command, error, |long, variable| {
        format!("--{long} ({variable})")
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every bad setting, the runner's and each service's, is reported at once, before any
    // database file is created.
    let common_result = args.common.resolve("kosha");
    let options_result = SuiteOptions::read_env(args.common.data_dir.clone());
    let mut problems = Vec::new();
    if args.common.database_url.is_some() || args.common.database_url_file.is_some() {
        problems.push(
            "the all-in-one runner keeps one SQLite file per service under KOSHA_DATA_DIR; \
             run the service binaries to use PostgreSQL"
                .to_string(),
        );
    }
    let (common, mut options) = match (common_result, options_result) {
        (Ok(common), Ok(options)) if problems.is_empty() => (common, options),
        (common_result, options_result) => {
            problems.extend(common_result.err().unwrap_or_default());
            problems.extend(options_result.err().unwrap_or_default());
            exit_with_problems(&problems)
        }
    };
    let _telemetry = telemetry::init("kosha", common.log_format)?;

    options.db = common.db.clone();
    options.server = common.server.clone();
    let suite = Suite::start(common.listen, options).await?;
    let address: SocketAddr = suite.address();
    tracing::info!(
        %address,
        data_dir = %args.common.data_dir.display(),
        "kosha suite started"
    );
    // One plain line on stdout for people and scripts: where to point grpcurl.
    println!("kosha: serving on {address}");
    suite.serve(kosha_runtime::server::shutdown_signal()).await
}
