//! One `JobHandler` for the whole suite.
//!
//! Deployed alone, each service that owns jobs serves its own `JobHandler` and the
//! scheduler calls it at that service's address. In the all-in-one runner every service
//! shares one address, so this handler takes every job and passes it, in-process, to the
//! handler of the service named as the job's owner.

use std::collections::BTreeMap;
use std::sync::Arc;

use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandler;
use kosha_proto::kosha::scheduler::v1::{RunJobRequest, RunJobResponse};
use tonic::{Request, Response, Status};

/// Routes each job to its owner's handler.
#[derive(Clone, Default)]
pub struct JobDispatcher {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl JobDispatcher {
    /// Adds the handler of `owner` (a service name such as `inventory`).
    pub fn register(&mut self, owner: &str, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(owner.to_string(), handler);
    }

    /// Owners with a handler.
    pub fn owners(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
}

#[tonic::async_trait]
impl JobHandler for JobDispatcher {
    async fn run_job(
        &self,
        request: Request<RunJobRequest>,
    ) -> Result<Response<RunJobResponse>, Status> {
        let owner = request
            .get_ref()
            .job
            .as_ref()
            .map(|job| job.owner.clone())
            .unwrap_or_default();
        match self.handlers.get(&owner) {
            Some(handler) => handler.run_job(request).await,
            // A job whose owner this process does not run cannot succeed by retrying here.
            None => Err(Status::not_found(format!(
                "no service `{owner}` in this process; owners here: {}",
                self.owners().join(", ")
            ))),
        }
    }
}
