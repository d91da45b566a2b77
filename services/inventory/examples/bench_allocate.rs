//! The allocation benchmark on its own: `cargo run --release -p kosha-inventory --example
//! bench_allocate -- --seconds 10 --clients 8,32`. The runner ships the same code as
//! `kosha bench allocate`.

use clap::Parser;
use kosha_inventory::bench::{BenchArgs, run_and_print};

/// Allocation throughput: pgbench doing the same writes versus the `Allocate` RPC.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_and_print(&cli.args).await
}
