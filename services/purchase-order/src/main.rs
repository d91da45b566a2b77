//! `kosha-purchase-order`: the purchase-order service on its own.

use clap::Parser;
use kosha_purchase_order::{NAME, config::Settings, startup};
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::db::Db;
use kosha_runtime::server::{self, Server};
use secrecy::ExposeSecret as _;

/// Command line and environment of the service.
#[derive(Debug, Parser)]
#[command(
    name = "kosha-purchase-order",
    about = "Kosha purchase-order service",
    version
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    peers: startup::Peers,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Settings, every problem reported at once.
    let cli = Cli::parse();
    let settings_problems = cli.settings.problems();
    let common = match cli.common.resolve(NAME) {
        Ok(common) if settings_problems.is_empty() => common,
        Ok(_) => exit_with_problems(&settings_problems),
        Err(mut problems) => {
            problems.extend(settings_problems);
            exit_with_problems(&problems)
        }
    };
    let _telemetry = kosha_runtime::telemetry::init(NAME, common.log_format)?;

    // 2. Database and service.
    let db = Db::connect(common.database_url.expose_secret(), &common.db).await?;
    let mut server = Server::new(common.server.clone());
    let mounted = startup::mount(&mut server, db.clone(), &cli.settings, &cli.peers).await?;

    // 3. Serve until SIGTERM, then stop the background work.
    let listener = tokio::net::TcpListener::bind(common.listen).await?;
    let outcome = server.serve(listener, server::shutdown_signal()).await;
    mounted.shutdown().await;
    db.close().await;
    outcome
}
