//! Mounting inventory on a server: migrations, the gRPC service, background tasks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kosha_proto::kosha::inventory::v1::inventory_service_server::InventoryServiceServer;
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandler;
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::Db;
use kosha_runtime::config::DEFAULT_LISTEN;
use kosha_runtime::server::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::coalesce::{Coalescer, Workers};
use crate::config::Settings;
use crate::grpc::InventoryGrpc;
use crate::jobs::InventoryJobs;
use crate::service::Inventory;
use crate::store::MIGRATIONS;
use crate::{NAME, delivery};

/// Addresses of the services inventory calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The scheduler (`KOSHA_SCHEDULER_ADDR`), for pool expiry jobs.
    pub scheduler: String,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            scheduler: DEFAULT_LISTEN.to_string(),
        }
    }
}

/// Inventory mounted on a server, with its background tasks running.
pub struct Mounted {
    inventory: Inventory,
    jobs: Arc<InventoryJobs>,
    workers: Workers,
    delivery: JoinHandle<()>,
    stop_tx: watch::Sender<bool>,
}

impl Mounted {
    /// The operations, for tools and tests that call them in-process.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The scheduler callback for jobs owned by `inventory`.
    pub fn job_handler(&self) -> Arc<dyn JobHandler> {
        self.jobs.clone()
    }

    /// The same callback with its concrete type (for `JobHandlerServer::from_arc`).
    pub fn inventory_jobs(&self) -> Arc<InventoryJobs> {
        self.jobs.clone()
    }

    /// Stops the background tasks: allocation workers after their batch, outbox delivery
    /// after its round. Jobs not delivered stay queued for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        self.workers.shutdown().await;
        let _ = self.delivery.await;
        tracing::info!("inventory background tasks stopped");
    }
}

/// Migrates `db`, adds the inventory service to `server`, and starts the allocation
/// workers and the outbox delivery loop. Adds no `JobHandler` server: the caller routes
/// jobs to [`Mounted::job_handler`].
pub async fn mount(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    peers: &Peers,
) -> anyhow::Result<Mounted> {
    let problems = settings.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "bad inventory settings: {}",
        problems.join("; ")
    );
    db.migrate(NAME, MIGRATIONS)
        .await
        .context("migrate the inventory database")?;
    let inventory = Inventory::new(db.clone());

    // Allocation workers.
    let (coalescer, workers) = Coalescer::start(
        inventory.clone(),
        settings.allocate_workers,
        settings.allocate_max_batch,
    );

    // Outbox delivery to the scheduler.
    let channel = kosha_runtime::client::connect_lazy(&peers.scheduler)
        .with_context(|| format!("scheduler address `{}`", peers.scheduler))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivery = tokio::spawn(delivery::run(
        inventory.clone(),
        SchedulerServiceClient::new(channel),
        inventory.outbox_wake(),
        Duration::from_secs(settings.outbox_interval_secs),
        stop_rx,
    ));

    // The gRPC service.
    let max_bytes = server.options().max_message_bytes;
    let service = InventoryServiceServer::new(InventoryGrpc::new(inventory.clone(), coalescer))
        .max_decoding_message_size(max_bytes)
        .max_encoding_message_size(max_bytes);
    server.add_service(service);
    server.require_database(db);

    tracing::info!(
        allocate_workers = settings.allocate_workers,
        allocate_max_batch = settings.allocate_max_batch,
        outbox_interval_secs = settings.outbox_interval_secs,
        scheduler = %peers.scheduler,
        "inventory mounted"
    );
    let jobs = Arc::new(InventoryJobs::new(inventory.clone()));
    Ok(Mounted {
        inventory,
        jobs,
        workers,
        delivery,
        stop_tx,
    })
}
