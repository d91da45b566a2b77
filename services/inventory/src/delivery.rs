//! Delivers queued scheduler jobs (the outbox) after commit, and retries until the
//! scheduler has them.

use std::sync::Arc;
use std::time::Duration;

use kosha_proto::kosha::scheduler::v1::ScheduleJobRequest;
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::Error;
use kosha_runtime::client::TracedChannel;
use kosha_runtime::time::{now_micros, to_timestamp};
use tokio::sync::{Notify, watch};

use crate::NAME;
use crate::service::Inventory;
use crate::service::pools::{ExpiryJobOutcome, POOL_EXPIRY_JOB};
use crate::store::outbox;

/// How long a claimed job is left to one replica before another may deliver it.
const LEASE: Duration = Duration::from_secs(60);
/// Jobs claimed per round.
const CLAIM_LIMIT: i64 = 20;
/// Longest wait between two attempts of one job.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A scheduler client as the delivery loop uses it.
pub type Scheduler = SchedulerServiceClient<TracedChannel>;

/// Delivers due jobs whenever woken and every `interval`, until `stop_rx` turns true.
pub async fn run(
    inventory: Inventory,
    mut scheduler: Scheduler,
    wake: Arc<Notify>,
    interval: Duration,
    mut stop_rx: watch::Receiver<bool>,
) {
    loop {
        if let Err(error) = deliver_due(&inventory, &mut scheduler).await {
            tracing::warn!(error = %error, "outbox delivery round failed");
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
            _ = stop_rx.changed() => return,
        }
    }
}

/// Delivers every job due now; returns how many the scheduler accepted.
pub async fn deliver_due(inventory: &Inventory, scheduler: &mut Scheduler) -> Result<usize, Error> {
    let mut delivered = 0;
    loop {
        let now = now_micros();
        let lease = i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX);
        let claimed = outbox::claim(inventory.db(), now, lease, CLAIM_LIMIT).await?;
        if claimed.is_empty() {
            return Ok(delivered);
        }
        let mut failed = 0;
        for job in &claimed {
            let request = ScheduleJobRequest {
                owner: NAME.to_string(),
                kind: job.kind.clone(),
                payload: job.payload.clone(),
                due_time: Some(to_timestamp(job.due_at)),
                idempotency_key: job.dedupe_key.clone(),
                max_attempts: 0,
            };
            match scheduler.schedule_job(request).await {
                Ok(_) => {
                    outbox::mark_delivered(inventory.db(), job.id, now_micros()).await?;
                    delivered += 1;
                    tracing::info!(
                        key = %job.dedupe_key,
                        kind = %job.kind,
                        "job handed to the scheduler"
                    );
                }
                Err(status)
                    if status.code() == tonic::Code::InvalidArgument
                        && job.kind == POOL_EXPIRY_JOB
                        && job.due_at <= now_micros() =>
                {
                    // The scheduler refuses a due time too far in the past (the job waited
                    // out a long scheduler outage). The sweep is due, so inventory runs it
                    // itself rather than retrying a job that can never be taken.
                    match inventory
                        .run_expiry_job(&job.dedupe_key, &job.payload)
                        .await
                    {
                        Ok(ExpiryJobOutcome::TooEarly(_)) | Err(_) => {
                            failed += 1;
                            let next = now_micros() + micros(backoff(job.attempts));
                            outbox::mark_failed(inventory.db(), job.id, status.message(), next)
                                .await?;
                        }
                        Ok(outcome) => {
                            outbox::mark_delivered(inventory.db(), job.id, now_micros()).await?;
                            delivered += 1;
                            tracing::info!(
                                key = %job.dedupe_key,
                                outcome = ?outcome,
                                "overdue job the scheduler refused was run here"
                            );
                        }
                    }
                }
                Err(status) => {
                    failed += 1;
                    let backoff = backoff(job.attempts);
                    let next = now_micros() + micros(backoff);
                    outbox::mark_failed(inventory.db(), job.id, status.message(), next).await?;
                    tracing::warn!(
                        key = %job.dedupe_key,
                        attempts = job.attempts,
                        retry_in_secs = backoff.as_secs(),
                        error = %status.message(),
                        "scheduler did not take the job; will retry"
                    );
                }
            }
        }
        // Everything failed: the scheduler is down; wait for the next round.
        if failed == claimed.len() {
            return Ok(delivered);
        }
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Exponential backoff from one second, capped.
fn backoff(attempts: i64) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
