//! The scheduler's callback: runs the jobs inventory scheduled for itself.
//!
//! Inventory owns one kind of job, `pool-expiry`, queued through the outbox whenever a
//! pool gets an expiry time. Delivery is at least once and a job may be stale (the pool's
//! expiry changed, or the pool was deleted), so the handler checks the pool before it
//! sweeps, and the sweep itself is keyed by the job id.

use std::time::Duration;

use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandler;
use kosha_proto::kosha::scheduler::v1::{RunJobRequest, RunJobResponse, RunOutcome};
use kosha_runtime::Error;
use tonic::{Request, Response, Status};

use crate::NAME;
use crate::service::Inventory;
use crate::service::pools::{ExpiryJobOutcome, POOL_EXPIRY_JOB};

/// Inventory's [`JobHandler`].
#[derive(Debug, Clone)]
pub struct InventoryJobs {
    inventory: Inventory,
}

impl InventoryJobs {
    /// A handler over `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }
}

#[tonic::async_trait]
impl JobHandler for InventoryJobs {
    async fn run_job(
        &self,
        request: Request<RunJobRequest>,
    ) -> Result<Response<RunJobResponse>, Status> {
        let Some(job) = request.into_inner().job else {
            return Err(Status::invalid_argument(
                "invalid `job`: the job is required",
            ));
        };
        if job.owner != NAME {
            return Ok(outcome(
                RunOutcome::PermanentFailure,
                format!(
                    "job `{}` belongs to `{}`, not to inventory",
                    job.job_id, job.owner
                ),
            ));
        }
        if job.kind != POOL_EXPIRY_JOB {
            return Ok(outcome(
                RunOutcome::PermanentFailure,
                format!("inventory has no job kind `{}`", job.kind),
            ));
        }

        let response = match self
            .inventory
            .run_expiry_job(&job.job_id, &job.payload)
            .await
        {
            Ok(ExpiryJobOutcome::Swept(units)) => outcome(
                RunOutcome::Succeeded,
                format!("moved {units} units back to COMMON"),
            ),
            Ok(ExpiryJobOutcome::Skipped(why)) => outcome(RunOutcome::Succeeded, why),
            Ok(ExpiryJobOutcome::TooEarly(micros)) => {
                let mut response = outcome(
                    RunOutcome::RetryableFailure,
                    "the pool has not expired yet".to_string(),
                );
                let wait = Duration::from_micros(u64::try_from(micros).unwrap_or_default());
                response.get_mut().retry_after = prost_types::Duration::try_from(wait).ok();
                response
            }
            Err(error @ Error::InvalidArgument { .. }) => {
                outcome(RunOutcome::PermanentFailure, error.to_string())
            }
            Err(error @ (Error::Internal(_) | Error::Unavailable(_) | Error::Aborted(_))) => {
                // Logged here because the status message the scheduler keeps is masked.
                tracing::warn!(job_id = %job.job_id, error = %error, "pool expiry job failed");
                outcome(
                    RunOutcome::RetryableFailure,
                    "inventory could not sweep now".to_string(),
                )
            }
            Err(error) => outcome(RunOutcome::PermanentFailure, error.to_string()),
        };
        Ok(response)
    }
}

fn outcome(outcome: RunOutcome, message: String) -> Response<RunJobResponse> {
    Response::new(RunJobResponse {
        outcome: outcome as i32,
        message,
        retry_after: None,
    })
}
