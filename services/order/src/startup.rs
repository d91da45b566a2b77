//! Mounting the order service on a server, for its own binary and the all-in-one runner.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kosha_proto::kosha::order::v1::order_service_server::OrderServiceServer;
use kosha_proto::kosha::scheduler::v1 as scheduler;
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandler;
use kosha_runtime::Db;
use kosha_runtime::server::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, Faults, JOB_OWNER};
use crate::config::Settings;
use crate::grpc::OrderGrpc;
use crate::jobs::{OrderJobs, recurring_jobs};
use crate::peers::{Clients, Peers};
use crate::store::MIGRATIONS;

/// Longest wait between two attempts to register the recurring jobs.
const MAX_REGISTER_BACKOFF: Duration = Duration::from_secs(30);

/// The mounted service and its background tasks.
pub struct Mounted {
    app: App,
    jobs: Arc<OrderJobs>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Mounted {
    /// The handler of the order service's scheduler jobs (owner `order`).
    pub fn job_handler(&self) -> Arc<dyn JobHandler> {
        self.jobs.clone()
    }

    /// The same handler with its concrete type (for `JobHandlerServer::from_arc`).
    pub fn order_jobs(&self) -> Arc<OrderJobs> {
        self.jobs.clone()
    }

    /// The application, for tools and tests in this process.
    pub fn app(&self) -> App {
        self.app.clone()
    }

    /// Failure injection points, for tests that reproduce crashes and outages.
    pub fn faults(&self) -> Arc<Faults> {
        self.app.faults()
    }

    /// Stops the background tasks and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!("order service background tasks stopped");
    }
}

/// Migrates the database, adds the order service to `server`, and starts its background
/// tasks (registering recurring jobs with the scheduler, delivering the outbox).
pub async fn mount(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    peers: &Peers,
) -> anyhow::Result<Mounted> {
    // Configuration and schema first: a bad setting stops the start.
    let config = settings
        .resolve()
        .map_err(|problems| anyhow::anyhow!("order settings: {}", problems.join("; ")))?;
    db.migrate(crate::NAME, MIGRATIONS)
        .await
        .context("migrate the order database")?;
    tracing::info!(
        hold_rules = %config.hold_rules.describe(),
        connectors = ?config.connectors.keys().collect::<Vec<_>>(),
        sync_targets = ?config.sync_targets,
        catalog = %peers.catalog,
        inventory = %peers.inventory,
        scheduler = %peers.scheduler,
        "order service configured"
    );

    // The service itself.
    let max_message_bytes = server.options().max_message_bytes;
    let clients = Clients::connect(peers, &config.connectors, max_message_bytes)?;
    let app = App::new(db.clone(), config.clone(), clients);
    let jobs = Arc::new(OrderJobs::new(app.clone()));
    server.add_service(
        OrderServiceServer::new(OrderGrpc::new(app.clone()))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes),
    );
    server.require_database(db);

    // Background work, stopped by `Mounted::shutdown`.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if config.register_jobs {
        tasks.push(tokio::spawn(register_recurring_jobs(
            app.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(deliver_outbox_periodically(
        app.clone(),
        config.outbox_interval,
        stop_rx,
    )));
    Ok(Mounted {
        app,
        jobs,
        stop_tx,
        tasks,
    })
}

/// Registers the recurring jobs, retrying until the scheduler answers (it may start after
/// this service, or be served by this very process once it starts listening).
async fn register_recurring_jobs(app: App, mut stop_rx: watch::Receiver<bool>) {
    let wanted = recurring_jobs(&app.config);
    let mut backoff = Duration::from_millis(200);
    let mut pending = wanted;
    while !pending.is_empty() {
        let mut still_pending = Vec::new();
        for job in pending {
            let request = scheduler::RegisterRecurringJobRequest {
                owner: JOB_OWNER.to_string(),
                kind: job.kind.clone(),
                payload: Vec::new(),
                interval: prost_types::Duration::try_from(job.interval).ok(),
                cron: String::new(),
            };
            match app
                .clients
                .scheduler
                .clone()
                .register_recurring_job(request)
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        kind = %job.kind,
                        interval_secs = job.interval.as_secs(),
                        "recurring job registered"
                    )
                }
                Err(status) => {
                    tracing::debug!(
                        kind = %job.kind,
                        %status,
                        "scheduler not ready for recurring jobs"
                    );
                    still_pending.push(job);
                }
            }
        }
        pending = still_pending;
        if pending.is_empty() {
            break;
        }
        tokio::select! {
            _ = stop_rx.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_REGISTER_BACKOFF);
    }
}

/// Delivers outbox rows whose first delivery failed.
async fn deliver_outbox_periodically(
    app: App,
    interval: Duration,
    mut stop_rx: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop_rx.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match app.deliver_outbox(&[]).await {
            Ok(0) => {}
            Ok(delivered) => tracing::info!(delivered, "outbox rows delivered"),
            Err(error) => tracing::warn!(%error, "outbox delivery sweep failed"),
        }
    }
}
