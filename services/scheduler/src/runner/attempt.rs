//! One attempt of one job: call the owner's handler under a renewed lease, then record
//! how it went.

use std::sync::Arc;
use std::time::Duration;

use kosha_proto::kosha::scheduler::v1::job_handler_client::JobHandlerClient;
use kosha_proto::kosha::scheduler::v1::{RunJobRequest, RunOutcome};
use kosha_runtime::client::TracedChannel;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use crate::config::SchedulerOptions;
use crate::domain::job::describe_micros;
use crate::domain::{Clock, Job, JobState};
use crate::store::{AttemptEnd, Store};
use crate::trace_context::continue_trace;

/// Longest wait a handler may ask for before the next attempt.
const MAX_RETRY_AFTER_MICROS: i64 = 24 * 3_600 * 1_000_000;

/// Tries to record an outcome this many times before leaving it to the lease.
const RECORD_TRIES: u32 = 3;

/// What the loop needs to run attempts, shared by all of them.
#[derive(Debug)]
pub(crate) struct AttemptContext {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub options: SchedulerOptions,
}

/// How an attempt ended, for the loop's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptReport {
    /// The job succeeded.
    Succeeded,
    /// The job waits for another attempt.
    Retried,
    /// The job failed for good.
    Failed,
    /// The job was cancelled while running.
    Cancelled,
    /// Another replica took the job over; nothing was recorded.
    LeaseLost,
    /// The outcome could not be stored; the lease will expire and the job run again.
    NotRecorded,
}

/// Runs one claimed attempt of `job` and records its outcome. `permit` holds the owner's
/// concurrency slot until the attempt is over.
pub(crate) async fn run_attempt(
    context: Arc<AttemptContext>,
    client: JobHandlerClient<TracedChannel>,
    job: Job,
    lease_token: String,
    permit: OwnedSemaphorePermit,
) -> AttemptReport {
    let span = tracing::info_span!(
        "scheduler.run_job",
        otel.name = "scheduler.run_job",
        otel.kind = "client",
        job_id = %job.job_id,
        owner = %job.owner,
        kind = %job.kind,
        attempt = job.attempts,
    );
    continue_trace(&span, &job.traceparent);

    let report = attempt(&context, client, &job, &lease_token)
        .instrument(span)
        .await;
    drop(permit);
    report
}

async fn attempt(
    context: &AttemptContext,
    mut client: JobHandlerClient<TracedChannel>,
    job: &Job,
    lease_token: &str,
) -> AttemptReport {
    let options = &context.options;
    debug_assert_eq!(job.state, JobState::Running);

    // Call the handler, renewing the lease while it works.
    let call = async {
        let mut request = tonic::Request::new(RunJobRequest {
            job: Some(job.to_proto()),
        });
        request.set_timeout(options.run_timeout);
        client.run_job(request).await
    };
    let call = tokio::time::timeout(options.run_timeout, call);
    tokio::pin!(call);
    let renew_every = options.lease / 3;
    let mut renewals =
        tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    let outcome = loop {
        tokio::select! {
            outcome = &mut call => break outcome,
            _ = renewals.tick() => {
                let lease_expires_at = context.clock.now_micros() + micros(options.lease);
                match context.store.renew_lease(&job.job_id, lease_token, lease_expires_at).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another replica took the job over: stop, it runs the job now.
                        tracing::warn!("lease lost while the handler was working; abandoning");
                        return AttemptReport::LeaseLost;
                    }
                    Err(error) => tracing::warn!(%error, "could not renew the lease"),
                }
            }
        }
    };

    // Turn the answer into what the store records.
    let now = context.clock.now_micros();
    let end = match outcome {
        Err(_elapsed) => retryable(
            context,
            job,
            format!(
                "the handler did not answer within {}",
                describe_micros(micros(options.run_timeout))
            ),
            0,
            now,
        ),
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => AttemptEnd::Permanent {
            error: format!("the handler refused the job: {}", status.message()),
        },
        Ok(Err(status)) => retryable(
            context,
            job,
            format!(
                "calling the handler failed: {:?}: {}",
                status.code(),
                status.message()
            ),
            0,
            now,
        ),
        Ok(Ok(response)) => {
            let response = response.into_inner();
            let retry_after_micros = response
                .retry_after
                .map(|after| {
                    after.seconds.saturating_mul(1_000_000) + i64::from(after.nanos) / 1_000
                })
                .unwrap_or(0)
                .clamp(0, MAX_RETRY_AFTER_MICROS);
            match RunOutcome::try_from(response.outcome) {
                Ok(RunOutcome::Succeeded) => AttemptEnd::Succeeded,
                Ok(RunOutcome::PermanentFailure) => AttemptEnd::Permanent {
                    error: non_empty(response.message, "the handler reported a permanent failure"),
                },
                Ok(RunOutcome::RetryableFailure) => retryable(
                    context,
                    job,
                    non_empty(response.message, "the handler asked for a retry"),
                    retry_after_micros,
                    now,
                ),
                Ok(RunOutcome::Unspecified) | Err(_) => retryable(
                    context,
                    job,
                    format!(
                        "the handler answered without an outcome ({})",
                        response.outcome
                    ),
                    retry_after_micros,
                    now,
                ),
            }
        }
    };

    record(context, job, lease_token, &end).await
}

/// A retryable failure due again after the backoff (or later, if the handler asked).
fn retryable(
    context: &AttemptContext,
    job: &Job,
    error: String,
    retry_after_micros: i64,
    now: i64,
) -> AttemptEnd {
    let failed_attempt = u32::try_from(job.attempts).unwrap_or(1);
    let backoff = context
        .options
        .retry
        .delay(failed_attempt, &mut rand::rng());
    let wait_micros = micros(backoff).max(retry_after_micros);
    AttemptEnd::Retryable {
        error,
        retry_at: now.saturating_add(wait_micros),
    }
}

/// Stores the outcome, trying again briefly if the database hiccups.
async fn record(
    context: &AttemptContext,
    job: &Job,
    lease_token: &str,
    end: &AttemptEnd,
) -> AttemptReport {
    let mut tries = 0;
    loop {
        tries += 1;
        let now = context.clock.now_micros();
        match context
            .store
            .finish_attempt(&job.job_id, lease_token, end, now)
            .await
        {
            Ok(Some(stored)) => return report(&stored, end),
            Ok(None) => {
                tracing::warn!(
                    "lease lost before the outcome was recorded; the new runner's counts"
                );
                return AttemptReport::LeaseLost;
            }
            Err(error) if tries < RECORD_TRIES => {
                tracing::warn!(%error, tries, "could not record the outcome; trying again");
                tokio::time::sleep(Duration::from_millis(200) * tries).await;
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    "could not record the outcome; the job runs again when its lease expires"
                );
                return AttemptReport::NotRecorded;
            }
        }
    }
}

fn report(stored: &Job, end: &AttemptEnd) -> AttemptReport {
    match stored.state {
        JobState::Succeeded => {
            tracing::debug!("job succeeded");
            AttemptReport::Succeeded
        }
        JobState::Pending => {
            tracing::debug!(
                error = %stored.last_error,
                retry_at = %kosha_runtime::time::format_micros(stored.due_at),
                "attempt failed; retrying later"
            );
            AttemptReport::Retried
        }
        JobState::Failed => {
            tracing::warn!(error = %stored.last_error, attempts = stored.attempts, "job failed");
            AttemptReport::Failed
        }
        JobState::Cancelled => {
            tracing::info!(error = %stored.last_error, "job cancelled after its running attempt");
            AttemptReport::Cancelled
        }
        JobState::Running => {
            // Every recorded outcome leaves the running state; reaching here is a bug.
            debug_assert!(false, "recorded {end:?} but the job is still running");
            AttemptReport::NotRecorded
        }
    }
}

fn non_empty(message: String, fallback: &str) -> String {
    if message.trim().is_empty() {
        fallback.to_string()
    } else {
        message
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
