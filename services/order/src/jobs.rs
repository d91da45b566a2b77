//! The order service's scheduler jobs and the `JobHandler` that runs them.
//!
//! One-shot jobs: `release-hold` (payload: hold id) at a time hold's instant, and
//! `bulk-retry` (payload: `ORD-<n>|actor`) when an operator retries a bulk order.
//! Recurring jobs, registered at start: `follow-stock-changes` (retry waiting orders when
//! stock arrives), `release-due-holds` (the safety-net sweep of due holds and of the
//! outbox), `reconcile`, and one `sync-channel:<client>:<CHANNEL>` per configured sync
//! target (pull orders and statuses, push availability). Delivery is at least once;
//! every job is idempotent.

use std::time::Duration;

use kosha_proto::kosha::scheduler::v1 as scheduler;
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandler;
use kosha_runtime::Error;
use kosha_runtime::time::now_micros;
use tonic::{Request, Response, Status};

use crate::app::holds::HoldJobOutcome;
use crate::app::{App, JOB_OWNER};
use crate::config::OrderConfig;
use crate::domain::OrderId;

/// Releases one time hold.
pub const RELEASE_HOLD: &str = "release-hold";
/// Allocates a bulk order an operator retried.
pub const BULK_RETRY: &str = "bulk-retry";
/// Follows inventory's change feed.
pub const FOLLOW_STOCK_CHANGES: &str = "follow-stock-changes";
/// Sweeps due holds and the outbox.
pub const RELEASE_DUE_HOLDS: &str = "release-due-holds";
/// Reconciles holdings with inventory.
pub const RECONCILE: &str = "reconcile";
/// Prefix of a channel's sync job kind.
pub const SYNC_CHANNEL_PREFIX: &str = "sync-channel:";

/// A recurring job to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringJob {
    /// Kind (unique per owner).
    pub kind: String,
    /// Interval between runs.
    pub interval: Duration,
}

/// The recurring jobs this configuration needs.
pub fn recurring_jobs(config: &OrderConfig) -> Vec<RecurringJob> {
    let mut jobs = vec![
        RecurringJob {
            kind: FOLLOW_STOCK_CHANGES.into(),
            interval: config.follow_interval,
        },
        RecurringJob {
            kind: RELEASE_DUE_HOLDS.into(),
            interval: config.hold_sweep_interval,
        },
        RecurringJob {
            kind: RECONCILE.into(),
            interval: config.reconcile_interval,
        },
    ];
    for (client_id, channel) in &config.sync_targets {
        jobs.push(RecurringJob {
            kind: format!("{SYNC_CHANNEL_PREFIX}{client_id}:{channel}"),
            interval: config.sync_interval,
        });
    }
    jobs
}

/// Runs the order service's jobs when the scheduler calls.
#[derive(Clone)]
pub struct OrderJobs {
    app: App,
}

impl OrderJobs {
    /// The handler over the service.
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Runs one job by kind and payload; `Ok(None)` is success, `Ok(Some(d))` asks to run
    /// again after `d`.
    pub async fn run(
        &self,
        kind: &str,
        payload: &[u8],
    ) -> Result<(String, Option<Duration>), Error> {
        let payload = std::str::from_utf8(payload)
            .map_err(|_| Error::invalid("job.payload", "not UTF-8 text"))?;
        match kind {
            RELEASE_HOLD => {
                let hold_id: i64 = payload.trim().parse().map_err(|_| {
                    Error::invalid("job.payload", format!("`{payload}` is not a hold id"))
                })?;
                match self.app.run_hold_release_job(hold_id).await? {
                    HoldJobOutcome::Done(report) => {
                        Ok((format!("released {} hold(s)", report.released.len()), None))
                    }
                    HoldJobOutcome::NotDue(wait_micros) => Ok((
                        "hold not due yet".into(),
                        Some(Duration::from_micros(
                            u64::try_from(wait_micros).unwrap_or(0),
                        )),
                    )),
                }
            }
            BULK_RETRY => {
                let (order_text, actor) = payload.split_once('|').unwrap_or((payload, "operator"));
                let id = OrderId::parse("job.payload", order_text.trim())?;
                let outcome = self
                    .app
                    .allocate_existing(id, actor, "operator's retry of a bulk order")
                    .await?;
                let status = self.app.load(id).await?.status;
                Ok((
                    format!(
                        "{id} is {status} ({} status change)",
                        usize::from(outcome.change_opt.is_some())
                    ),
                    None,
                ))
            }
            FOLLOW_STOCK_CHANGES => {
                let report = self.app.follow_stock_changes().await?;
                Ok((
                    format!(
                        "{} changes read, {} orders tried, {} changed",
                        report.changes_read,
                        report.orders_tried,
                        report.changes.len()
                    ),
                    None,
                ))
            }
            RELEASE_DUE_HOLDS => {
                let report = self
                    .app
                    .release_due_holds(now_micros(), "hold-sweep")
                    .await?;
                let delivered = self.app.deliver_outbox(&[]).await?;
                Ok((
                    format!(
                        "{} holds released, {delivered} outbox rows delivered",
                        report.released.len()
                    ),
                    None,
                ))
            }
            RECONCILE => {
                let (checked, adjusted) = self.app.reconcile("", false).await?;
                Ok((
                    format!("{checked} lines checked, {} adjusted", adjusted.len()),
                    None,
                ))
            }
            kind if kind.starts_with(SYNC_CHANNEL_PREFIX) => {
                let target = &kind[SYNC_CHANNEL_PREFIX.len()..];
                let Some((client_id, channel)) = target.split_once(':') else {
                    return Err(Error::invalid(
                        "job.kind",
                        format!("`{kind}` names no client:CHANNEL"),
                    ));
                };
                let orders = self.app.sync_orders(client_id, channel).await?;
                let statuses = self.app.sync_channel_statuses(client_id, channel).await?;
                let (pushed, _) = self.app.push_availability(client_id, channel).await?;
                Ok((
                    format!(
                        "{} new orders, {} cancelled by the channel, {pushed} listings pushed",
                        orders.created,
                        statuses.cancelled_order_ids.len()
                    ),
                    None,
                ))
            }
            other => Err(Error::invalid(
                "job.kind",
                format!("the order service has no job `{other}`"),
            )),
        }
    }
}

#[tonic::async_trait]
impl JobHandler for OrderJobs {
    async fn run_job(
        &self,
        request: Request<scheduler::RunJobRequest>,
    ) -> Result<Response<scheduler::RunJobResponse>, Status> {
        let Some(job) = request.into_inner().job else {
            return Err(Status::from(Error::invalid("job", "required")));
        };
        if job.owner != JOB_OWNER {
            return Err(Status::from(Error::invalid(
                "job.owner",
                format!("job of `{}` sent to the order service", job.owner),
            )));
        }
        tracing::debug!(
            job_id = %job.job_id,
            kind = %job.kind,
            attempt = job.attempts,
            "running job"
        );
        let response = match self.run(&job.kind, &job.payload).await {
            Ok((message, None)) => scheduler::RunJobResponse {
                outcome: scheduler::RunOutcome::Succeeded as i32,
                message,
                retry_after: None,
            },
            Ok((message, Some(wait))) => scheduler::RunJobResponse {
                outcome: scheduler::RunOutcome::RetryableFailure as i32,
                message,
                retry_after: prost_types::Duration::try_from(wait).ok(),
            },
            Err(error) => {
                let permanent = matches!(
                    error,
                    Error::InvalidArgument { .. }
                        | Error::NotFound(_)
                        | Error::FailedPrecondition(_)
                );
                if !permanent {
                    tracing::warn!(
                        job_id = %job.job_id,
                        kind = %job.kind,
                        %error,
                        "job failed; it will be retried"
                    );
                }
                let outcome = if permanent {
                    scheduler::RunOutcome::PermanentFailure
                } else {
                    scheduler::RunOutcome::RetryableFailure
                };
                // The cause of an internal error stays in this service's log.
                let message = match &error {
                    Error::Internal(cause) => {
                        tracing::error!(error = ?cause, kind = %job.kind, "job failed internally");
                        "internal error; the cause is in the order service's log".to_string()
                    }
                    other => other.to_string(),
                };
                scheduler::RunJobResponse {
                    outcome: outcome as i32,
                    message,
                    retry_after: None,
                }
            }
        };
        Ok(Response::new(response))
    }
}
