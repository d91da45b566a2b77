//! Inventory's own settings, from flags and `KOSHA_INVENTORY_*` variables.

use kosha_runtime::config::DEFAULT_LISTEN;

/// Concurrent allocation batches per process by default. Two let one batch be decided
/// while the other is written, and a worker that starts while the other is busy lets its
/// batch fill to the same size first, so batches stay large; a second worker also keeps
/// allocations going while one batch waits on a row lock held by another transaction. A
/// database server with many cores may want more.
pub const DEFAULT_ALLOCATE_WORKERS: usize = 2;
/// Largest batch of allocations served in one transaction by default.
pub const DEFAULT_ALLOCATE_MAX_BATCH: usize = 64;
/// Seconds between two rounds of outbox delivery by default (a commit that queues a job
/// also wakes the loop at once).
pub const DEFAULT_OUTBOX_INTERVAL_SECS: u64 = 10;

/// Settings of the inventory service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Allocation workers: how many batches of concurrent `Allocate` calls run at once.
    #[arg(
        long = "inventory-allocate-workers",
        env = "KOSHA_INVENTORY_ALLOCATE_WORKERS",
        default_value_t = DEFAULT_ALLOCATE_WORKERS
    )]
    pub allocate_workers: usize,

    /// Most `Allocate` calls served in one transaction.
    #[arg(
        long = "inventory-allocate-max-batch",
        env = "KOSHA_INVENTORY_ALLOCATE_MAX_BATCH",
        default_value_t = DEFAULT_ALLOCATE_MAX_BATCH
    )]
    pub allocate_max_batch: usize,

    /// Seconds between retries of scheduler jobs not delivered yet.
    #[arg(
        long = "inventory-outbox-interval-secs",
        env = "KOSHA_INVENTORY_OUTBOX_INTERVAL_SECS",
        default_value_t = DEFAULT_OUTBOX_INTERVAL_SECS
    )]
    pub outbox_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allocate_workers: DEFAULT_ALLOCATE_WORKERS,
            allocate_max_batch: DEFAULT_ALLOCATE_MAX_BATCH,
            outbox_interval_secs: DEFAULT_OUTBOX_INTERVAL_SECS,
        }
    }
}

impl Settings {
    /// Every bad setting at once.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.allocate_workers == 0 {
            problems.push("KOSHA_INVENTORY_ALLOCATE_WORKERS must be at least 1".to_string());
        }
        if self.allocate_max_batch == 0 {
            problems.push("KOSHA_INVENTORY_ALLOCATE_MAX_BATCH must be at least 1".to_string());
        }
        if self.outbox_interval_secs == 0 {
            problems.push("KOSHA_INVENTORY_OUTBOX_INTERVAL_SECS must be at least 1".to_string());
        }
        problems
    }
}

/// Addresses of the services inventory calls, for the service's own binary (the
/// all-in-one runner fills [`crate::startup::Peers`] itself).
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Address of the scheduler service (`host:port` or a URI).
    #[arg(long, env = "KOSHA_SCHEDULER_ADDR", default_value = DEFAULT_LISTEN)]
    pub scheduler_addr: String,
}
