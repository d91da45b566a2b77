//! Mounting the scheduler on a server: migrations, the API, and the execution loop.

use std::sync::Arc;

use kosha_proto::kosha::scheduler::v1::scheduler_service_server::SchedulerServiceServer;
use kosha_runtime::Db;
use kosha_runtime::server::Server;
use tokio::sync::Notify;

use crate::config::{Peers, Settings};
use crate::domain::{Clock, SystemClock};
use crate::grpc::SchedulerApi;
use crate::runner::{Runner, RunnerHandle};
use crate::store::{MIGRATIONS, Store};

/// The scheduler mounted on a server, with its loop running.
///
/// Dropping it without [`Mounted::shutdown`] stops the loop and its running attempts at
/// once, as a crash would: their leases expire and another replica runs them again.
#[derive(Debug)]
pub struct Mounted {
    runner_opt: Option<RunnerHandle>,
    store: Store,
}

impl Mounted {
    /// Stops the loop: no new claims, running attempts get the drain deadline to finish.
    pub async fn shutdown(mut self) {
        if let Some(runner) = self.runner_opt.take() {
            runner.shutdown().await;
        }
    }

    /// The store, for tools (the benchmark) that inspect what the scheduler holds.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(runner) = &self.runner_opt {
            runner.abort();
        }
    }
}

/// Migrates `db`, adds `SchedulerService` to `server` and starts the execution loop on
/// the system clock.
pub async fn mount(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    peers: &Peers,
) -> anyhow::Result<Mounted> {
    mount_with_clock(server, db, settings, peers, Arc::new(SystemClock)).await
}

/// [`mount`] with a chosen clock, so tests decide what "now" is.
pub async fn mount_with_clock(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    peers: &Peers,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Mounted> {
    let options = settings
        .options()
        .map_err(|problems| anyhow::anyhow!("scheduler settings: {}", problems.join("; ")))?;
    let owners = peers.owners();
    if owners.is_empty() {
        tracing::warn!(
            "no job owner is configured: every job would be refused (set KOSHA_<SERVICE>_ADDR \
             or KOSHA_SCHEDULER_OWNERS)"
        );
    }
    for (owner, address) in owners.iter() {
        tracing::info!(%owner, %address, "job owner");
    }

    db.migrate(crate::NAME, MIGRATIONS).await?;
    let store = Store::new(db.clone());
    let wake = Arc::new(Notify::new());

    let api = SchedulerApi::new(
        store.clone(),
        clock.clone(),
        owners.clone(),
        options.due_window,
        wake.clone(),
    );
    let max_message_bytes = server.options().max_message_bytes;
    server.add_service(
        SchedulerServiceServer::new(api)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes),
    );
    server.require_database(db);

    let runner = Runner::new(store.clone(), clock, options, &owners, wake)?.spawn();
    Ok(Mounted {
        runner_opt: Some(runner),
        store,
    })
}
