//! `kosha.scheduler.v1.SchedulerService`: thin handlers that check a request, call the
//! store, and answer.

use std::sync::Arc;

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_proto::kosha::scheduler::v1::scheduler_service_server::SchedulerService;
use kosha_runtime::time::from_timestamp;
use kosha_runtime::{Error, page};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::domain::job::check_id;
use crate::domain::{Clock, DueWindow, JobState, NewJob, Owners, RecurringRegistration};
use crate::store::{JobFilter, JobPageKey, RecurringPageKey, Store};
use crate::trace_context::current_traceparent;

/// The scheduler's API.
#[derive(Debug, Clone)]
pub struct SchedulerApi {
    store: Store,
    clock: Arc<dyn Clock>,
    owners: Owners,
    due_window: DueWindow,
    /// Wakes this replica's loop when a job is due at once.
    wake: Arc<Notify>,
}

impl SchedulerApi {
    /// The API over `store`, accepting jobs of `owners`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        owners: Owners,
        due_window: DueWindow,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            clock,
            owners,
            due_window,
            wake,
        }
    }

    /// Schedules a job, or finds the one scheduled under the same key.
    async fn schedule(
        &self,
        request: pb::ScheduleJobRequest,
    ) -> Result<pb::ScheduleJobResponse, Error> {
        let now = self.clock.now_micros();
        let new_job = NewJob::parse(request, &self.owners, now)?;

        // A repeated key returns the first job: checked before the due window, so that a
        // retry long after the first call still gets its answer.
        if let Some(existing) = self
            .store
            .job_by_idempotency_key(&new_job.idempotency_key)
            .await?
        {
            return self.answer_repeated_key(&new_job, existing);
        }
        if let Some(why) = self.due_window.problem(new_job.due_at, now) {
            return Err(Error::invalid("due_time", why));
        }

        let traceparent = current_traceparent();
        let Some(job) = self.store.insert_job(&new_job, &traceparent, now).await? else {
            // A concurrent call with the same key won the insert.
            let existing = self
                .store
                .job_by_idempotency_key(&new_job.idempotency_key)
                .await?
                .ok_or_else(|| {
                    Error::Aborted("a concurrent call used the same key; retry".into())
                })?;
            return self.answer_repeated_key(&new_job, existing);
        };

        tracing::debug!(
            job_id = %job.job_id,
            owner = %job.owner,
            kind = %job.kind,
            "job scheduled"
        );
        if job.due_at <= now {
            self.wake.notify_one();
        }
        Ok(pb::ScheduleJobResponse {
            job: Some(job.to_proto()),
            created: true,
        })
    }

    fn answer_repeated_key(
        &self,
        new_job: &NewJob,
        existing: crate::domain::Job,
    ) -> Result<pb::ScheduleJobResponse, Error> {
        if !new_job.is_same_request_as(&existing) {
            return Err(Error::AlreadyExists(format!(
                "idempotency key `{}` was already used for job `{}` with a different owner, \
                 kind or payload; a new job needs a new key",
                new_job.idempotency_key, existing.job_id
            )));
        }
        Ok(pb::ScheduleJobResponse {
            job: Some(existing.to_proto()),
            created: false,
        })
    }

    async fn list(&self, request: pb::ListJobsRequest) -> Result<pb::ListJobsResponse, Error> {
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = JobPageKey::from_token(&query, &request.page_token)?;
        let filter = JobFilter {
            owner_opt: non_empty(request.owner),
            kind_opt: non_empty(request.kind),
            state_opt: JobState::from_proto_filter(request.state)?,
            due_from_opt: request
                .due_after
                .as_ref()
                .map(|timestamp| from_timestamp(timestamp, "due_after"))
                .transpose()?,
            due_before_opt: request
                .due_before
                .as_ref()
                .map(|timestamp| from_timestamp(timestamp, "due_before"))
                .transpose()?,
        };
        if let (Some(from), Some(before)) = (filter.due_from_opt, filter.due_before_opt)
            && from >= before
        {
            return Err(Error::invalid(
                "due_after",
                "is not before due_before: no job could be due in between",
            ));
        }
        let (jobs, next_opt) = self
            .store
            .list_jobs(&filter, after_opt.as_ref(), limit)
            .await?;
        Ok(pb::ListJobsResponse {
            jobs: jobs.iter().map(crate::domain::Job::to_proto).collect(),
            next_page_token: next_opt.map(|key| key.to_token(&query)).unwrap_or_default(),
        })
    }

    async fn run_now(&self, request: pb::RunNowRequest) -> Result<pb::RunNowResponse, Error> {
        check_id("job_id", &request.job_id)?;
        let now = self.clock.now_micros();
        let job = if self.store.job_exists(&request.job_id).await? {
            self.store.make_job_due_now(&request.job_id, now).await?
        } else {
            self.store
                .make_recurring_due_now(&request.job_id, now)
                .await?
        };
        tracing::info!(
            job_id = %job.job_id,
            owner = %job.owner,
            kind = %job.kind,
            "job made due now"
        );
        self.wake.notify_one();
        Ok(pb::RunNowResponse {
            job: Some(job.to_proto()),
        })
    }
}

#[tonic::async_trait]
impl SchedulerService for SchedulerApi {
    async fn schedule_job(
        &self,
        request: Request<pb::ScheduleJobRequest>,
    ) -> Result<Response<pb::ScheduleJobResponse>, Status> {
        Ok(Response::new(self.schedule(request.into_inner()).await?))
    }

    async fn register_recurring_job(
        &self,
        request: Request<pb::RegisterRecurringJobRequest>,
    ) -> Result<Response<pb::RegisterRecurringJobResponse>, Status> {
        let now = self.clock.now_micros();
        let registration = RecurringRegistration::parse(
            request.into_inner(),
            &self.owners,
            &self.due_window,
            now,
        )?;
        let recurring = self.store.register_recurring(&registration, now).await?;
        Ok(Response::new(pb::RegisterRecurringJobResponse {
            recurring_job: Some(recurring.to_proto()),
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        let job_id = request.into_inner().job_id;
        check_id("job_id", &job_id)?;
        let job = self
            .store
            .job(&job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", &job_id))?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(job.to_proto()),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner()).await?))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let job_id = request.into_inner().job_id;
        check_id("job_id", &job_id)?;
        let job = self
            .store
            .cancel_job(&job_id, self.clock.now_micros())
            .await?;
        tracing::info!(%job_id, state = job.state.as_str(), "job cancel asked");
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(job.to_proto()),
        }))
    }

    async fn run_now(
        &self,
        request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        Ok(Response::new(
            SchedulerApi::run_now(self, request.into_inner()).await?,
        ))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let request = request.into_inner();
        check_id("recurring_job_id", &request.recurring_job_id)?;
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let before_opt = JobPageKey::from_token(&query, &request.page_token)?;
        if self
            .store
            .recurring(&request.recurring_job_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found("recurring job", &request.recurring_job_id).into());
        }
        let (runs, next_opt) = self
            .store
            .list_runs(&request.recurring_job_id, before_opt.as_ref(), limit)
            .await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(crate::domain::Job::to_proto).collect(),
            next_page_token: next_opt.map(|key| key.to_token(&query)).unwrap_or_default(),
        }))
    }

    async fn list_recurring_jobs(
        &self,
        request: Request<pb::ListRecurringJobsRequest>,
    ) -> Result<Response<pb::ListRecurringJobsResponse>, Status> {
        let request = request.into_inner();
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = RecurringPageKey::from_token(&query, &request.page_token)?;
        let owner_opt = non_empty(request.owner);
        let (recurring_jobs, next_opt) = self
            .store
            .list_recurring(owner_opt.as_deref(), after_opt.as_ref(), limit)
            .await?;
        Ok(Response::new(pb::ListRecurringJobsResponse {
            recurring_jobs: recurring_jobs.iter().map(|r| r.to_proto()).collect(),
            next_page_token: next_opt.map(|key| key.to_token(&query)).unwrap_or_default(),
        }))
    }
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}
