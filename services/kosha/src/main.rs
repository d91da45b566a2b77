//! `kosha`: the all-in-one runner and operator tool.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kosha::cli::Cli::parse().run().await
}
