//! `kosha-inventory`: the inventory service on its own.

use anyhow::Context as _;
use clap::Parser;
use kosha_inventory::config::{PeerArgs, Settings};
use kosha_inventory::startup::{Peers, mount};
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandlerServer;
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::server::{Server, shutdown_signal};
use kosha_runtime::{Db, telemetry};
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

/// Kosha inventory service: pools, stock, allocations and the ledger.
#[derive(Debug, Parser)]
#[command(name = "kosha-inventory", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    peers: PeerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut problems = Vec::new();
    let common = match cli.common.resolve(kosha_inventory::NAME) {
        Ok(common) => Some(common),
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    problems.extend(cli.settings.problems());
    let Some(common) = common.filter(|_| problems.is_empty()) else {
        exit_with_problems(&problems);
    };
    let _telemetry = telemetry::init(kosha_inventory::NAME, common.log_format)?;

    let db = Db::connect(common.database_url.expose_secret(), &common.db).await?;
    let mut server = Server::new(common.server.clone());
    let peers = Peers {
        scheduler: cli.peers.scheduler_addr.clone(),
    };
    let mounted = mount(&mut server, db.clone(), &cli.settings, &peers).await?;
    server.add_unlisted_service(JobHandlerServer::from_arc(mounted.inventory_jobs()));

    let listener = TcpListener::bind(common.listen)
        .await
        .with_context(|| format!("bind {}", common.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        scheduler = %peers.scheduler,
        "kosha-inventory starting"
    );
    let outcome = server.serve(listener, shutdown_signal()).await;
    mounted.shutdown().await;
    db.close().await;
    outcome
}
