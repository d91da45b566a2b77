//! The execution loop: claim due jobs, run them through their owners' handlers, take
//! back the jobs of runners that died.
//!
//! Each cycle, for every owner with a free slot, the loop claims up to that many due jobs
//! under a lease and runs each as its own task; at most `max_runs_per_owner` attempts per
//! owner run at once on one replica. A cycle starts every poll interval, at once when
//! this replica schedules a job due now, and whenever an attempt finishes (a slot frees
//! up). Once a second, housekeeping takes back jobs whose lease expired, repairs
//! recurring jobs left without a next run, and logs the counts of the past second (due,
//! run, retried, failed) when any is non-zero, so a busy loop writes one line a second.

mod attempt;

use std::sync::Arc;
use std::time::Duration;

use kosha_proto::kosha::scheduler::v1::job_handler_client::JobHandlerClient;
use kosha_runtime::Error;
use kosha_runtime::client::TracedChannel;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::SchedulerOptions;
use crate::domain::{Clock, Owners};
use crate::store::Store;
use attempt::{AttemptContext, AttemptReport, run_attempt};

/// How often housekeeping runs and counts are logged.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How often owners with due jobs but no configured address are warned about.
const UNKNOWN_OWNER_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Most expired leases or broken recurring jobs handled per housekeeping round.
const HOUSEKEEPING_BATCH: i64 = 100;
/// Longest pause after the database failed, doubling from the poll interval.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// One owner's handler and its concurrency slots.
struct OwnerLane {
    name: String,
    client: JobHandlerClient<TracedChannel>,
    slots: Arc<Semaphore>,
}

/// The loop of one scheduler replica.
pub struct Runner {
    context: Arc<AttemptContext>,
    lanes: Vec<OwnerLane>,
    replica_id: String,
    claims: u64,
    wake: Arc<Notify>,
}

/// A running loop; stop it with [`RunnerHandle::shutdown`], or kill it with
/// [`RunnerHandle::abort`].
#[derive(Debug)]
pub struct RunnerHandle {
    shutdown_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunnerHandle {
    /// Stops claiming, waits for running attempts up to the drain deadline, cuts off the
    /// rest (their leases expire and another replica runs them again) and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.task.await;
    }

    /// Stops the loop and its attempts at once, recording nothing, as a crash would.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Counts since the last report.
#[derive(Debug, Default)]
struct Tally {
    due: u64,
    run: u64,
    retried: u64,
    failed: u64,
    reclaimed: u64,
}

impl Tally {
    fn count(&mut self, report: AttemptReport) {
        match report {
            AttemptReport::Succeeded | AttemptReport::Cancelled => self.run += 1,
            AttemptReport::Retried => {
                self.run += 1;
                self.retried += 1;
            }
            AttemptReport::Failed => {
                self.run += 1;
                self.failed += 1;
            }
            AttemptReport::LeaseLost | AttemptReport::NotRecorded => {}
        }
    }

    fn log_and_reset(&mut self) {
        let Self {
            due,
            run,
            retried,
            failed,
            reclaimed,
        } = std::mem::take(self);
        if due + run + retried + failed + reclaimed > 0 {
            tracing::info!(due, run, retried, failed, reclaimed, "scheduler cycle");
        }
    }
}

// === impl Runner ===

impl Runner {
    /// A loop over `store` calling `owners`; `wake` starts a cycle at once.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        options: SchedulerOptions,
        owners: &Owners,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let mut lanes = Vec::new();
        for (name, address) in owners.iter() {
            let channel = kosha_runtime::client::connect_lazy(address)?;
            lanes.push(OwnerLane {
                name: name.to_string(),
                client: JobHandlerClient::new(channel),
                slots: Arc::new(Semaphore::new(options.max_runs_per_owner)),
            });
        }
        let replica_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        Ok(Self {
            context: Arc::new(AttemptContext {
                store,
                clock,
                options,
            }),
            lanes,
            replica_id,
            claims: 0,
            wake,
        })
    }

    /// Starts the loop as a task.
    pub fn spawn(self) -> RunnerHandle {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(self.run(shutdown_rx));
        RunnerHandle { shutdown_tx, task }
    }

    async fn run(mut self, mut shutdown_rx: watch::Receiver<bool>) {
        let owners: Vec<&str> = self.lanes.iter().map(|lane| lane.name.as_str()).collect();
        tracing::info!(
            replica = %self.replica_id,
            ?owners,
            poll_interval_ms = self.context.options.poll_interval.as_millis() as u64,
            lease_secs = self.context.options.lease.as_secs(),
            max_runs_per_owner = self.context.options.max_runs_per_owner,
            "scheduler loop started"
        );

        // Attempts live in this set: aborting the loop task drops it, which cuts them off.
        let mut attempts: JoinSet<AttemptReport> = JoinSet::new();
        let mut tally = Tally::default();
        let mut next_housekeeping = Instant::now();
        let mut next_unknown_owner_check = Instant::now();
        let mut error_backoff_opt: Option<Duration> = None;

        loop {
            // One cycle: housekeeping when due, then claims.
            let mut result = Ok(());
            if Instant::now() >= next_housekeeping {
                let check_unknown_owners = Instant::now() >= next_unknown_owner_check;
                if check_unknown_owners {
                    next_unknown_owner_check = Instant::now() + UNKNOWN_OWNER_WARNING_INTERVAL;
                }
                result = self.housekeeping(&mut tally, check_unknown_owners).await;
                tally.log_and_reset();
                next_housekeeping = Instant::now() + HOUSEKEEPING_INTERVAL;
            }
            if result.is_ok() {
                result = self.claim_and_start(&mut attempts, &mut tally).await;
            }

            // Back off while the database fails, logging only the changes.
            let pause = match (result, error_backoff_opt) {
                (Ok(()), None) => self.context.options.poll_interval,
                (Ok(()), Some(_)) => {
                    tracing::info!("database reachable again; scheduling resumes");
                    error_backoff_opt = None;
                    self.context.options.poll_interval
                }
                (Err(error), None) => {
                    tracing::warn!(%error, "scheduler cycle failed; backing off");
                    let backoff = self.context.options.poll_interval;
                    error_backoff_opt = Some(backoff);
                    backoff
                }
                (Err(_), Some(previous)) => {
                    let backoff = (previous * 2).min(MAX_ERROR_BACKOFF);
                    error_backoff_opt = Some(backoff);
                    backoff
                }
            };

            // Wait for the next reason to look again.
            tokio::select! {
                biased;
                _ = shutdown_rx.changed() => break,
                Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                    count_joined(&mut tally, joined);
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
            while let Some(joined) = attempts.try_join_next() {
                count_joined(&mut tally, joined);
            }
        }

        self.drain(attempts, &mut tally).await;
        tally.log_and_reset();
        tracing::info!(replica = %self.replica_id, "scheduler loop stopped");
    }

    /// Claims due jobs for every owner with free slots and starts an attempt for each.
    async fn claim_and_start(
        &mut self,
        attempts: &mut JoinSet<AttemptReport>,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let store = &self.context.store;
        let lease_micros =
            i64::try_from(self.context.options.lease.as_micros()).unwrap_or(i64::MAX);
        for lane in &self.lanes {
            let free = lane.slots.available_permits();
            if free == 0 {
                continue;
            }
            let now = self.context.clock.now_micros();
            if !store.has_due_jobs(&lane.name, now).await? {
                continue;
            }

            self.claims += 1;
            let lease_token = format!("{}-{}", self.replica_id, self.claims);
            let limit = i64::try_from(free).unwrap_or(i64::MAX);
            let jobs = store
                .claim_due_jobs(
                    &lane.name,
                    now,
                    limit,
                    &lease_token,
                    now.saturating_add(lease_micros),
                )
                .await?;
            debug_assert!(jobs.len() <= free);
            tally.due += jobs.len() as u64;

            for job in jobs {
                // Only this loop takes slots, and it claimed no more than were free, so
                // this never waits.
                let Ok(permit) = lane.slots.clone().acquire_owned().await else {
                    continue;
                };
                tracing::debug!(
                    job_id = %job.job_id,
                    owner = %lane.name,
                    attempt = job.attempts,
                    "job claimed"
                );
                attempts.spawn(run_attempt(
                    self.context.clone(),
                    lane.client.clone(),
                    job,
                    lease_token.clone(),
                    permit,
                ));
            }
        }
        Ok(())
    }

    /// Takes back expired leases, repairs recurring jobs without a next run, and warns
    /// about due jobs of owners this replica cannot call.
    async fn housekeeping(
        &self,
        tally: &mut Tally,
        check_unknown_owners: bool,
    ) -> Result<(), Error> {
        let store = &self.context.store;
        let now = self.context.clock.now_micros();

        for expired in store.expired_leases(now, HOUSEKEEPING_BATCH).await? {
            if let Some(job) = store.reclaim_expired(&expired, now).await? {
                tally.reclaimed += 1;
                tracing::info!(
                    job_id = %job.job_id,
                    owner = %job.owner,
                    state = job.state.as_str(),
                    attempts = job.attempts,
                    "took back a job whose runner's lease expired"
                );
            }
        }

        for recurring_job_id in store.recurring_without_open_run(HOUSEKEEPING_BATCH).await? {
            if let Some(run) = store.ensure_next_run(&recurring_job_id, now).await? {
                tracing::warn!(
                    %recurring_job_id,
                    job_id = %run.job_id,
                    "recurring job had no next run; created it"
                );
            }
        }

        if check_unknown_owners {
            for (owner, due) in store.owners_with_due_jobs(now).await? {
                if !self.lanes.iter().any(|lane| lane.name == owner) {
                    tracing::warn!(
                        %owner,
                        due,
                        "due jobs of an owner this scheduler has no address for; they wait"
                    );
                }
            }
        }
        Ok(())
    }

    /// Lets running attempts finish until the drain deadline, then cuts them off.
    async fn drain(&self, mut attempts: JoinSet<AttemptReport>, tally: &mut Tally) {
        let running = attempts.len();
        if running == 0 {
            return;
        }
        tracing::info!(running, "waiting for running attempts to finish");
        let deadline = tokio::time::sleep(self.context.options.drain_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined_opt = attempts.join_next() => match joined_opt {
                    Some(joined) => count_joined(tally, joined),
                    None => return,
                },
                () = &mut deadline => {
                    tracing::warn!(
                        cut_off = attempts.len(),
                        "drain deadline reached; cutting off attempts (their leases will expire \
                         and another replica runs them again)"
                    );
                    attempts.shutdown().await;
                    return;
                }
            }
        }
    }
}

fn count_joined(tally: &mut Tally, joined: Result<AttemptReport, tokio::task::JoinError>) {
    match joined {
        Ok(report) => tally.count(report),
        Err(error) if error.is_cancelled() => {}
        Err(error) => tracing::error!(%error, "an attempt task panicked"),
    }
}
