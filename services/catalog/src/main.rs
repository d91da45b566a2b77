//! `kosha-catalog`: the catalog service on its own.

use anyhow::Context as _;
use clap::Parser;
use kosha_catalog::config::Settings;
use kosha_catalog::startup::{self, Peers};
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::db::Db;
use kosha_runtime::server::{Server, shutdown_signal};
use kosha_runtime::telemetry;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

/// Kosha catalog: clients, channels, products and channel listings.
#[derive(Debug, Parser)]
#[command(name = "kosha-catalog", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    settings: Settings,

    #[command(flatten)]
    peers: Peers,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Every bad setting at once, then exit.
    let cli = Cli::parse();
    let common = cli.common.resolve(kosha_catalog::NAME);
    let mut problems = cli.settings.problems();
    let common = match common {
        Ok(common) if problems.is_empty() => common,
        Ok(_) => exit_with_problems(&problems),
        Err(mut common_problems) => {
            common_problems.append(&mut problems);
            exit_with_problems(&common_problems)
        }
    };
    let _telemetry = telemetry::init(kosha_catalog::NAME, common.log_format)?;

    // Database, then the service on a server.
    let db = Db::connect(common.database_url.expose_secret(), &common.db)
        .await
        .context("connect to the catalog database")?;
    let mut server = Server::new(common.server.clone());
    let mounted = startup::mount(&mut server, db, &cli.settings, &cli.peers).await?;

    // Serve until SIGTERM or Ctrl-C, then drain.
    let listener = TcpListener::bind(common.listen)
        .await
        .with_context(|| format!("bind {}", common.listen))?;
    tracing::info!(address = %listener.local_addr()?, "kosha-catalog listening");
    let outcome = server.serve(listener, shutdown_signal()).await;
    mounted.shutdown().await;
    outcome
}
