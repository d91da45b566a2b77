//! Coalescing concurrent allocations into shared transactions.
//!
//! Every allocation of a popular SKU updates the same stock row, so allocations of that SKU
//! queue on the row's lock one commit at a time. Here, concurrent `Allocate` calls are
//! gathered by a few workers: each takes whatever requests are waiting (up to a maximum)
//! and serves them in one transaction with one update per stock row (see
//! [`Inventory::allocate_batch`]). Batches form only from requests that are already
//! waiting, so a lone request is never delayed by a timer, and under load the batch size
//! grows with the queue.
//!
//! The workers add throughput, not correctness: each batch locks its rows in the database
//! exactly as a single request does, so any number of replicas (each with its own
//! workers) stay correct. A batch that fails as a whole (it lost a race with another
//! replica on an order line or an idempotency key) is re-run request by request.
//!
//! On PostgreSQL a batch first tries the compare-and-set way
//! ([`Inventory::allocate_batch_compared`]): two round trips and no transaction held open,
//! instead of four. Where batches race for the same stock rows (a hot SKU, with several
//! workers or replicas) that way keeps losing, so a SKU whose batch lost is served the
//! locked way for a while: those batches queue on the row lock instead of redoing work.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::db::Backend;
use sqlx::Any;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::domain::allocation::AllocateCommand;
use crate::service::Inventory;
use crate::service::orders::BatchOutcome;

/// Order lines in one batch at most (a batch also stops at the configured number of
/// requests): keeps a batch's statements well inside the database's limit on bound
/// parameters when requests carry many lines.
const MAX_BATCH_LINES: usize = 2000;
/// Requests waiting beyond this many make callers wait to enqueue (back-pressure).
const QUEUE_CAPACITY: usize = 4096;
/// Longest a request waits for a batch to fill while another batch is being served.
const MAX_GATHER: Duration = Duration::from_millis(2);
/// How long a SKU whose compare-and-set batch lost is served the locked way.
const CONTENDED_FOR: Duration = Duration::from_secs(2);
/// SKUs remembered as contended before expired ones are swept out.
const CONTENDED_SWEEP_AT: usize = 4096;

/// SKUs (by client) whose batches recently lost a compare-and-set race, until when.
#[derive(Debug, Default)]
struct Contended {
    until: std::sync::Mutex<HashMap<(String, String), Instant>>,
}

impl Contended {
    /// Whether any line of `commands` is on a contended SKU.
    fn touches(&self, commands: &[AllocateCommand]) -> bool {
        let until = self
            .until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if until.is_empty() {
            return false;
        }
        let now = Instant::now();
        commands.iter().any(|command| {
            command.lines.iter().any(|line| {
                until
                    .get(&(command.client.to_string(), line.sku.to_string()))
                    .is_some_and(|deadline| *deadline > now)
            })
        })
    }

    /// Marks every SKU of `commands` contended.
    fn note(&self, commands: &[AllocateCommand]) {
        let mut until = self
            .until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if until.len() >= CONTENDED_SWEEP_AT {
            until.retain(|_, deadline| *deadline > now);
        }
        for command in commands {
            for line in &command.lines {
                until.insert(
                    (command.client.to_string(), line.sku.to_string()),
                    now + CONTENDED_FOR,
                );
            }
        }
    }
}

/// One waiting request and where its answer goes.
struct Waiting {
    command: AllocateCommand,
    reply_tx: oneshot::Sender<Result<pb::AllocateResponse, Error>>,
}

/// The entry point of coalesced allocation; cheap to clone.
#[derive(Clone)]
pub struct Coalescer {
    queue_tx: mpsc::Sender<Waiting>,
}

/// The running workers.
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    stop_tx: watch::Sender<bool>,
}

impl Coalescer {
    /// Starts `workers` workers, each serving batches of at most `max_batch` requests.
    pub fn start(inventory: Inventory, workers: usize, max_batch: usize) -> (Self, Workers) {
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE_CAPACITY);
        let queue_rx = Arc::new(Mutex::new(queue_rx));
        let (stop_tx, stop_rx) = watch::channel(false);
        let contended = Arc::new(Contended::default());
        let in_flight = Arc::new(InFlight::default());
        let tasks = (0..workers.max(1))
            .map(|_| {
                tokio::spawn(work(
                    inventory.clone(),
                    queue_rx.clone(),
                    contended.clone(),
                    in_flight.clone(),
                    max_batch.max(1),
                    stop_rx.clone(),
                ))
            })
            .collect();
        (Self { queue_tx }, Workers { tasks, stop_tx })
    }

    /// Allocates `command` in the next batch.
    pub async fn allocate(&self, command: AllocateCommand) -> Result<pb::AllocateResponse, Error> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let stopped = || Error::Unavailable("the allocator is shutting down; retry".to_string());
        self.queue_tx
            .send(Waiting { command, reply_tx })
            .await
            .map_err(|_| stopped())?;
        reply_rx.await.map_err(|_| stopped())?
    }
}

impl Workers {
    /// Stops the workers after their current batch.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Batches being served by the workers.
#[derive(Debug, Default)]
struct InFlight {
    /// Requests in the batches being served.
    requests: AtomicUsize,
    /// Notified whenever a batch has been served.
    served: Notify,
}

/// One worker: take what is waiting, serve it, repeat.
async fn work(
    inventory: Inventory,
    queue_rx: Arc<Mutex<mpsc::Receiver<Waiting>>>,
    contended: Arc<Contended>,
    in_flight: Arc<InFlight>,
    max_batch: usize,
    mut stop_rx: watch::Receiver<bool>,
) {
    // The worker's own connection, kept between batches; dropped after a failed batch in
    // case the connection is what failed.
    let mut connection_opt: Option<PoolConnection<Any>> = None;
    loop {
        let batch = {
            let mut queue = queue_rx.lock().await;
            let first = tokio::select! {
                waiting = queue.recv() => match waiting {
                    Some(waiting) => waiting,
                    None => return,
                },
                _ = stop_rx.changed() => return,
            };
            gather(&mut queue, first, &in_flight, max_batch).await
        };
        let size = batch.len();
        in_flight.requests.fetch_add(size, Ordering::AcqRel);
        serve(&inventory, &contended, batch, &mut connection_opt).await;
        in_flight.requests.fetch_sub(size, Ordering::AcqRel);
        in_flight.served.notify_waiters();
    }
}

/// The batch that starts with `first`: everything already waiting, and, while another
/// batch is being served, more as they arrive until this one is as large as the batches in
/// flight or one of them has been served.
///
/// Waiting there is what keeps batches large under load: a worker that took whatever was
/// waiting would, with every other worker busy, start batches of one or two requests, and
/// a batch costs the database nearly as much as a request. A request never waits while no
/// batch is being served, and never longer than [`MAX_GATHER`].
async fn gather(
    queue: &mut mpsc::Receiver<Waiting>,
    first: Waiting,
    in_flight: &InFlight,
    max_batch: usize,
) -> Vec<Waiting> {
    let deadline = tokio::time::Instant::now() + MAX_GATHER;
    let mut lines = first.command.lines.len();
    let mut batch = vec![first];
    loop {
        while batch.len() < max_batch && lines < MAX_BATCH_LINES {
            match queue.try_recv() {
                Ok(waiting) => {
                    lines += waiting.command.lines.len();
                    batch.push(waiting);
                }
                Err(_) => break,
            }
        }
        // Registered before the count is read, so a batch served in between still wakes us.
        let served = in_flight.served.notified();
        let target = in_flight.requests.load(Ordering::Acquire).min(max_batch);
        if batch.len() >= target || lines >= MAX_BATCH_LINES {
            return batch;
        }
        tokio::select! {
            waiting = queue.recv() => match waiting {
                Some(waiting) => {
                    lines += waiting.command.lines.len();
                    batch.push(waiting);
                }
                None => return batch,
            },
            _ = served => return batch,
            _ = tokio::time::sleep_until(deadline) => return batch,
        }
    }
}

/// Serves one batch, then any request that has to run on its own.
async fn serve(
    inventory: &Inventory,
    contended: &Contended,
    batch: Vec<Waiting>,
    connection_opt: &mut Option<PoolConnection<Any>>,
) {
    let (commands, replies): (Vec<AllocateCommand>, Vec<_>) = batch
        .into_iter()
        .map(|waiting| (waiting.command, waiting.reply_tx))
        .unzip();

    if connection_opt.is_none() {
        *connection_opt = inventory.db().pool().acquire().await.ok();
    }
    let result = match connection_opt.as_mut() {
        Some(connection) => {
            let compare =
                inventory.db().backend() == Backend::Postgres && !contended.touches(&commands);
            let compared = if compare {
                inventory
                    .allocate_batch_compared(connection, &commands)
                    .await
            } else {
                Ok(None)
            };
            match compared {
                Ok(Some(outcomes)) => Ok(outcomes),
                Ok(None) => {
                    if compare {
                        contended.note(&commands);
                    }
                    inventory
                        .allocate_batch(Some(&mut **connection), &commands)
                        .await
                }
                Err(error) => Err(error),
            }
        }
        None => inventory.allocate_batch(None, &commands).await,
    };
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(error) => {
            *connection_opt = None;
            tracing::debug!(size = commands.len(), error = %error, "batch failed; serving alone");
            commands.iter().map(|_| BatchOutcome::RunAlone).collect()
        }
    };

    let mut alone = Vec::new();
    for ((command, reply_tx), outcome) in commands.into_iter().zip(replies).zip(outcomes) {
        match outcome {
            BatchOutcome::Done(result) => {
                let _ = reply_tx.send(result);
            }
            BatchOutcome::RunAlone => alone.push((command, reply_tx)),
        }
    }
    for (command, reply_tx) in alone {
        let result = inventory.allocate(&command).await;
        let _ = reply_tx.send(result);
    }
}
