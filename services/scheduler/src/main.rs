//! `kosha-scheduler`: the scheduler service on its own.

use clap::Parser;
use kosha_runtime::config::{CommonArgs, exit_with_problems};
use kosha_runtime::db::Db;
use kosha_runtime::server::{Server, shutdown_signal};
use kosha_scheduler::{NAME, Peers, Settings};
use secrecy::ExposeSecret as _;

/// The Kosha scheduler: runs one-shot and recurring jobs by calling back their owners.
#[derive(Debug, Parser)]
#[command(name = "kosha-scheduler", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();

    // Check every setting before doing anything, and report all problems at once.
    let mut problems = Vec::new();
    let common_opt = cli
        .common
        .resolve(NAME)
        .map_err(|found| problems.extend(found))
        .ok();
    let _ = cli
        .settings
        .options()
        .map_err(|found| problems.extend(found));
    let peers_opt = Peers::from_settings(&cli.settings)
        .map_err(|found| problems.extend(found))
        .ok();
    let (Some(common), Some(peers)) = (common_opt, peers_opt) else {
        exit_with_problems(&problems);
    };
    if !problems.is_empty() {
        exit_with_problems(&problems);
    }

    let _telemetry = kosha_runtime::telemetry::init(NAME, common.log_format)?;
    tracing::info!(listen = %common.listen, settings = ?cli.settings, "starting scheduler");

    // Storage, the service and its loop, then serve until SIGTERM.
    let db = Db::connect(common.database_url.expose_secret(), &common.db).await?;
    let mut server = Server::new(common.server.clone());
    let mounted = kosha_scheduler::mount(&mut server, db.clone(), &cli.settings, &peers).await?;
    let listener = tokio::net::TcpListener::bind(common.listen).await?;
    server.serve(listener, shutdown_signal()).await?;

    // Let running attempts finish, then close the database.
    mounted.shutdown().await;
    db.close().await;
    Ok(())
}
