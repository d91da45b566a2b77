//! Pool expiry through the scheduler: the outbox delivers the job, the handler sweeps.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kosha_inventory::config::Settings;
use kosha_inventory::domain::ids::{ClientId, PoolName};
use kosha_inventory::service::pools::expiry_job_key;
use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::scheduler::v1 as sched;
use kosha_proto::kosha::scheduler::v1::scheduler_service_server::{
    SchedulerService, SchedulerServiceServer,
};
use kosha_runtime::server::Server;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::{TestDatabase, TestServer, test_server_options};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::support::*;

/// A scheduler that refuses the first `refusals` jobs and records the rest, or, with
/// `refuse_as_invalid`, refuses every job as one it can never take.
#[derive(Default)]
struct FakeScheduler {
    refusals: AtomicUsize,
    refuse_as_invalid: AtomicBool,
    taken: Mutex<Vec<sched::ScheduleJobRequest>>,
}

fn not_used() -> Status {
    Status::internal("the fake scheduler of this test only takes ScheduleJob")
}

#[tonic::async_trait]
impl SchedulerService for FakeScheduler {
    async fn schedule_job(
        &self,
        request: Request<sched::ScheduleJobRequest>,
    ) -> Result<Response<sched::ScheduleJobResponse>, Status> {
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if refuse {
            return Err(Status::unavailable("scheduler restarting"));
        }
        if self.refuse_as_invalid.load(Ordering::SeqCst) {
            return Err(Status::invalid_argument(
                "invalid `due_time`: more than 24h in the past",
            ));
        }
        self.taken.lock().unwrap().push(request.into_inner());
        Ok(Response::new(sched::ScheduleJobResponse {
            job: None,
            created: true,
        }))
    }
    async fn register_recurring_job(
        &self,
        _: Request<sched::RegisterRecurringJobRequest>,
    ) -> Result<Response<sched::RegisterRecurringJobResponse>, Status> {
        Err(not_used())
    }
    async fn get_job(
        &self,
        _: Request<sched::GetJobRequest>,
    ) -> Result<Response<sched::GetJobResponse>, Status> {
        Err(not_used())
    }
    async fn list_jobs(
        &self,
        _: Request<sched::ListJobsRequest>,
    ) -> Result<Response<sched::ListJobsResponse>, Status> {
        Err(not_used())
    }
    async fn cancel_job(
        &self,
        _: Request<sched::CancelJobRequest>,
    ) -> Result<Response<sched::CancelJobResponse>, Status> {
        Err(not_used())
    }
    async fn run_now(
        &self,
        _: Request<sched::RunNowRequest>,
    ) -> Result<Response<sched::RunNowResponse>, Status> {
        Err(not_used())
    }
    async fn list_runs(
        &self,
        _: Request<sched::ListRunsRequest>,
    ) -> Result<Response<sched::ListRunsResponse>, Status> {
        Err(not_used())
    }
    async fn list_recurring_jobs(
        &self,
        _: Request<sched::ListRecurringJobsRequest>,
    ) -> Result<Response<sched::ListRecurringJobsResponse>, Status> {
        Err(not_used())
    }
}

async fn start_fake_scheduler(refusals: usize) -> (Arc<FakeScheduler>, TestServer) {
    let fake = Arc::new(FakeScheduler {
        refusals: AtomicUsize::new(refusals),
        ..Default::default()
    });
    let mut server = Server::new(test_server_options());
    server.add_service(SchedulerServiceServer::from_arc(fake.clone()));
    (fake, TestServer::start(server).await)
}

fn job(kind: &str, payload: Vec<u8>) -> sched::RunJobRequest {
    sched::RunJobRequest {
        job: Some(sched::Job {
            job_id: format!("job-{}", key()),
            owner: "inventory".into(),
            kind: kind.into(),
            payload,
            ..Default::default()
        }),
    }
}

fn expiry_payload(pool: &str, expire_at: i64) -> Vec<u8> {
    pb::PoolExpiryJob {
        client_id: CLIENT.into(),
        pool: pool.into(),
        expire_time: Some(to_timestamp(expire_at)),
    }
    .encode_to_vec()
}

async fn the_job_handler_sweeps_an_expired_pool_and_shrugs_off_stale_jobs(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 5).await;
    let expire_at = now_micros() + 2_000_000;
    app.client
        .create_pool(pb::CreatePoolRequest {
            client_id: CLIENT.into(),
            name: "FLASH".into(),
            expire_time: Some(to_timestamp(expire_at)),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.move_stock("COMMON", "FLASH", "A", 3).await;
    let handler = app.mounted.job_handler();
    let run = |request: sched::RunJobRequest| {
        let handler = handler.clone();
        async move {
            handler
                .run_job(Request::new(request))
                .await
                .unwrap()
                .into_inner()
        }
    };

    let early = run(job("pool-expiry", expiry_payload("FLASH", expire_at))).await;
    tokio::time::sleep(Duration::from_micros(
        u64::try_from(expire_at - now_micros()).unwrap_or(0) + 50_000,
    ))
    .await;
    let swept = run(job("pool-expiry", expiry_payload("FLASH", expire_at))).await;
    let again = run(job("pool-expiry", expiry_payload("FLASH", expire_at))).await;
    let stale = run(job("pool-expiry", expiry_payload("FLASH", expire_at - 1))).await;
    let deleted_pool = run(job("pool-expiry", expiry_payload("GONE", expire_at))).await;
    let wrong_kind = run(job("reindex", Vec::new())).await;
    let junk = run(job("pool-expiry", vec![0xff, 0xff])).await;

    use sched::RunOutcome::*;
    assert_eq!(early.outcome, RetryableFailure as i32);
    assert!(early.retry_after.is_some());
    assert_eq!(swept.outcome, Succeeded as i32);
    assert!(swept.message.contains("moved 3 units"), "{}", swept.message);
    assert_eq!(again.outcome, Succeeded as i32);
    assert!(again.message.contains("moved 0 units"), "{}", again.message);
    assert_eq!(stale.outcome, Succeeded as i32);
    assert!(
        stale.message.contains("no longer expires"),
        "{}",
        stale.message
    );
    assert_eq!(deleted_pool.outcome, Succeeded as i32);
    assert_eq!(wrong_kind.outcome, PermanentFailure as i32);
    assert_eq!(junk.outcome, PermanentFailure as i32);
    assert_eq!(app.totals("A", "COMMON", PASS).await, (5, 0, 0));
    app.assert_books_clean().await;
}

async fn pool_expiry_jobs_survive_a_down_scheduler_and_a_restart(db: TestDatabase) {
    // Arrange: the scheduler refuses everything at first; inventory retries every second.
    let (fake, scheduler) = start_fake_scheduler(usize::MAX).await;
    let settings = Settings {
        outbox_interval_secs: 1,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings.clone(), &scheduler.address_string()).await;
    let expire_at = now_micros() + 3_600_000_000;
    app.client
        .create_pool(pb::CreatePoolRequest {
            client_id: CLIENT.into(),
            name: "DIWALI".into(),
            expire_time: Some(to_timestamp(expire_at)),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.taken.lock().unwrap().is_empty());

    // Act: inventory stops before delivering; a new instance starts and the scheduler
    // comes back.
    app.server.stop().await;
    app.mounted.shutdown().await;
    fake.refusals.store(1, Ordering::SeqCst);
    let app = spawn_app_with(&db, settings, &scheduler.address_string()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.taken.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert: the job arrived once, as queued, and nothing is left pending.
    let taken = fake.taken.lock().unwrap().clone();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let job = &taken[0];
    assert_eq!(
        (job.owner.as_str(), job.kind.as_str()),
        ("inventory", "pool-expiry")
    );
    let client = ClientId::parse("c", CLIENT).unwrap();
    let pool = PoolName::parse("p", "DIWALI").unwrap();
    assert_eq!(
        job.idempotency_key,
        expiry_job_key(&client, &pool, expire_at)
    );
    assert_eq!(job.due_time, Some(to_timestamp(expire_at)));
    let payload = pb::PoolExpiryJob::decode(job.payload.as_slice()).unwrap();
    assert_eq!(payload.pool, "DIWALI");
    let pending = kosha_inventory::store::outbox::pending(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    scheduler.stop().await;
}

async fn an_overdue_expiry_the_scheduler_refuses_is_swept_by_inventory_itself(db: TestDatabase) {
    // Arrange: a scheduler that refuses the job as one it can never take, and a pool that
    // expires in a moment.
    let (fake, scheduler) = start_fake_scheduler(0).await;
    fake.refuse_as_invalid.store(true, Ordering::SeqCst);
    let settings = Settings {
        outbox_interval_secs: 1,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings, &scheduler.address_string()).await;
    app.receive("A", PASS, 5).await;
    app.client
        .create_pool(pb::CreatePoolRequest {
            client_id: CLIENT.into(),
            name: "FLASH".into(),
            expire_time: Some(to_timestamp(now_micros() + 1_500_000)),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.move_stock("COMMON", "FLASH", "A", 3).await;

    // Act: wait for the retries after the expiry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.totals("A", "FLASH", PASS).await.0 > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert_eq!(app.totals("A", "FLASH", PASS).await, (0, 0, 0));
    assert_eq!(app.totals("A", "COMMON", PASS).await, (5, 0, 0));
    assert!(fake.taken.lock().unwrap().is_empty());
    let pending = kosha_inventory::store::outbox::pending(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    app.assert_books_clean().await;
    scheduler.stop().await;
}

kosha_testkit::store_tests!(
    the_job_handler_sweeps_an_expired_pool_and_shrugs_off_stale_jobs,
    pool_expiry_jobs_survive_a_down_scheduler_and_a_restart,
    an_overdue_expiry_the_scheduler_refuses_is_swept_by_inventory_itself,
);
