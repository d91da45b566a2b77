//! `kosha-order`: the order service on its own.

use clap::Parser;
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandlerServer;
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::server::{Server, shutdown_signal};
use kosha_runtime::{Db, telemetry};
use secrecy::ExposeSecret as _;

/// Command line and environment of the order service.
#[derive(Debug, Parser)]
#[command(name = "kosha-order", about = "Kosha order service", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    peers: kosha_order::PeerArgs,
    #[command(flatten)]
    settings: kosha_order::Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Configuration: every problem reported at once.
    let cli = Cli::parse();
    let common = cli
        .common
        .resolve(kosha_order::NAME)
        .unwrap_or_else(|problems| exit_with_problems(&problems));
    if let Err(problems) = cli.settings.resolve() {
        exit_with_problems(&problems);
    }
    let _telemetry = telemetry::init(kosha_order::NAME, common.log_format)?;

    // Database and service.
    let db = Db::connect(common.database_url.expose_secret(), &common.db).await?;
    let mut server = Server::new(common.server.clone());
    let mounted =
        kosha_order::mount(&mut server, db.clone(), &cli.settings, &cli.peers.peers()).await?;
    server.add_unlisted_service(JobHandlerServer::from_arc(mounted.order_jobs()));

    // Serve until SIGTERM, then stop background work.
    let listener = tokio::net::TcpListener::bind(common.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "kosha-order listening");
    server.serve(listener, shutdown_signal()).await?;
    mounted.shutdown().await;
    db.close().await;
    Ok(())
}
