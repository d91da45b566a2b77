//! What the scheduler tests share: a scheduler on a test database, a scriptable job
//! handler, a proxy that can take the handler "down", and polling helpers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_proto::kosha::scheduler::v1::job_handler_server::{JobHandler, JobHandlerServer};
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_scheduler::domain::{Clock, FakeClock};
use kosha_scheduler::{Mounted, Peers, Settings};
use kosha_testkit::{TestServer, test_server_options};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The owner name the test handler answers as.
pub const OWNER: &str = "test-handler";

/// 2025-03-09T12:00:00Z: the day New York moves its clocks forward.
pub const T0: i64 = 1_741_521_600_000_000;

/// One second in microseconds.
pub const SECOND: i64 = 1_000_000;

/// Settings for tests: a fast poll; everything else at its default.
pub fn test_settings(handler_address: &str) -> Settings {
    Settings {
        owners: vec![format!("{OWNER}={handler_address}")],
        poll_interval_ms: 20,
        ..Settings::default()
    }
}

/// A scheduler replica serving on a loopback port.
pub struct Scheduler {
    /// The server.
    pub server: TestServer,
    /// The mounted service; `None` once killed or shut down.
    pub mounted_opt: Option<Mounted>,
    /// A client of it.
    pub client: SchedulerServiceClient<Channel>,
    /// Its database.
    pub db: Db,
}

impl Scheduler {
    /// Starts a replica on `url` with `settings`, on `clock`.
    pub async fn start(url: &str, settings: &Settings, clock: Arc<dyn Clock>) -> Self {
        let db = Db::connect(url, &DbOptions::default())
            .await
            .expect("connect");
        let peers = Peers::from_settings(settings).expect("valid peers");
        let mut server = Server::new(test_server_options());
        let mounted =
            kosha_scheduler::mount_with_clock(&mut server, db.clone(), settings, &peers, clock)
                .await
                .expect("mount");
        let server = TestServer::start(server).await;
        let client = SchedulerServiceClient::new(server.channel().await);
        Self {
            server,
            mounted_opt: Some(mounted),
            client,
            db,
        }
    }

    /// Stops the loop at once, as a crash would, and the server.
    pub async fn kill(mut self) {
        drop(self.mounted_opt.take());
        self.server.stop().await;
    }

    /// Stops gracefully.
    pub async fn stop(mut self) {
        if let Some(mounted) = self.mounted_opt.take() {
            mounted.shutdown().await;
        }
        self.server.stop().await;
    }

    /// One job, read through the API.
    pub async fn job(&self, job_id: &str) -> pb::Job {
        let request = pb::GetJobRequest {
            job_id: job_id.to_string(),
        };
        self.client
            .clone()
            .get_job(request)
            .await
            .expect("get job")
            .into_inner()
            .job
            .expect("job")
    }

    /// Schedules a job of the test owner; panics on refusal.
    pub async fn schedule(&self, kind: &str, key: &str, due_micros: i64) -> pb::Job {
        let request = schedule_request(kind, key, due_micros);
        let response = self
            .client
            .clone()
            .schedule_job(request)
            .await
            .expect("schedule");
        response.into_inner().job.expect("job")
    }

    /// Stored rows of a table, counted directly.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = sqlx::query(&sql)
            .fetch_one(self.db.pool())
            .await
            .expect("count");
        sqlx::Row::try_get(&row, "n").expect("n")
    }
}

/// A `ScheduleJob` request of the test owner.
pub fn schedule_request(kind: &str, key: &str, due_micros: i64) -> pb::ScheduleJobRequest {
    pb::ScheduleJobRequest {
        owner: OWNER.to_string(),
        kind: kind.to_string(),
        payload: key.as_bytes().to_vec(),
        due_time: Some(kosha_runtime::time::to_timestamp(due_micros)),
        idempotency_key: key.to_string(),
        max_attempts: 0,
    }
}

/// One call the handler received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The job.
    pub job: pb::Job,
    /// When it arrived, by the handler's clock.
    pub at: i64,
    /// The `traceparent` the call carried, if any.
    pub traceparent_opt: Option<String>,
}

/// A job handler scripted by kind:
/// - `fail-permanently`: permanent failure;
/// - `fail-retryable`: retryable failure;
/// - anything else: success.
///
/// While calls are held, every call waits before answering. Its effect is idempotent:
/// applied once per idempotency key (or run id), however many times the job is delivered.
#[derive(Debug)]
pub struct TestHandler {
    clock: Arc<dyn Clock>,
    calls: Mutex<Vec<Call>>,
    effects: Mutex<HashMap<String, u32>>,
    running_by_kind: Mutex<HashMap<String, u32>>,
    max_running_by_kind: Mutex<HashMap<String, u32>>,
    hold: AtomicBool,
    released: Notify,
    called: Notify,
}

impl TestHandler {
    /// A handler noting call times by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            calls: Mutex::default(),
            effects: Mutex::default(),
            running_by_kind: Mutex::default(),
            max_running_by_kind: Mutex::default(),
            hold: AtomicBool::new(false),
            released: Notify::new(),
            called: Notify::new(),
        })
    }

    /// Serves the handler on a loopback port.
    pub async fn serve(self: &Arc<Self>) -> TestServer {
        let mut server = Server::new(test_server_options());
        server.add_unlisted_service(JobHandlerServer::from_arc(self.clone()));
        TestServer::start(server).await
    }

    /// Makes calls wait (after applying their effect) until released.
    pub fn hold_calls(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    /// Lets held calls and later ones answer.
    pub fn release_calls(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls of one job.
    pub fn calls_of(&self, job_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| call.job.job_id == job_id)
            .collect()
    }

    /// Calls per job id.
    pub fn calls_per_job(&self) -> HashMap<String, u32> {
        let mut counts = HashMap::new();
        for call in self.calls() {
            *counts.entry(call.job.job_id).or_insert(0) += 1;
        }
        counts
    }

    /// How often the effect of `key` was applied.
    pub fn effects_of(&self, key: &str) -> u32 {
        self.effects.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Most calls of one kind that were running at the same time.
    pub fn max_running(&self, kind: &str) -> u32 {
        self.max_running_by_kind
            .lock()
            .unwrap()
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `count` calls arrived.
    pub async fn wait_for_calls(&self, count: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.called.notified();
            let calls = self.calls();
            if calls.len() >= count {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 30s for {count} calls, got {}",
                calls.len()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

/// Decrements the running count of a kind when a call ends, however it ends.
struct RunningGuard<'a> {
    handler: &'a TestHandler,
    kind: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let mut running = self.handler.running_by_kind.lock().unwrap();
        if let Some(count) = running.get_mut(&self.kind) {
            *count -= 1;
        }
    }
}

#[tonic::async_trait]
impl JobHandler for TestHandler {
    async fn run_job(
        &self,
        request: tonic::Request<pb::RunJobRequest>,
    ) -> Result<tonic::Response<pb::RunJobResponse>, tonic::Status> {
        let traceparent_opt = request
            .metadata()
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let job = request
            .into_inner()
            .job
            .expect("the scheduler sends the job");
        let kind = job.kind.clone();

        // Note the call, and how many of its kind run now.
        {
            let mut running = self.running_by_kind.lock().unwrap();
            let count = running.entry(kind.clone()).or_insert(0);
            *count += 1;
            let mut max_running = self.max_running_by_kind.lock().unwrap();
            let max = max_running.entry(kind.clone()).or_insert(0);
            *max = (*max).max(*count);
        }
        let _guard = RunningGuard {
            handler: self,
            kind: kind.clone(),
        };
        let call = Call {
            job: job.clone(),
            at: self.clock.now_micros(),
            traceparent_opt,
        };
        self.calls.lock().unwrap().push(call);
        self.called.notify_waiters();

        // The effect of a succeeding kind, applied once per key: the handler is idempotent.
        let outcome = match kind.as_str() {
            "fail-permanently" => pb::RunOutcome::PermanentFailure,
            "fail-retryable" => pb::RunOutcome::RetryableFailure,
            _ => pb::RunOutcome::Succeeded,
        };
        if outcome == pb::RunOutcome::Succeeded {
            let effect_key = if job.idempotency_key.is_empty() {
                job.job_id.clone()
            } else {
                job.idempotency_key
            };
            self.effects.lock().unwrap().entry(effect_key).or_insert(1);
        }

        // Held calls answer only once released.
        loop {
            let released = self.released.notified();
            if !self.hold.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }

        let message = match outcome {
            pb::RunOutcome::PermanentFailure => "no such order",
            pb::RunOutcome::RetryableFailure => "stock busy",
            _ => "",
        };
        Ok(tonic::Response::new(pb::RunJobResponse {
            outcome: outcome as i32,
            message: message.to_string(),
            retry_after: None,
        }))
    }
}

/// A TCP proxy in front of a handler that can refuse connections, as a handler that is
/// down would.
pub struct Proxy {
    /// Where the proxy listens.
    pub address: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept_task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target`, starting down.
    pub async fn start_down(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let up = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();

        let accept_up = up.clone();
        let accept_connections = connections.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().unwrap().push(connection);
            }
        });
        Self {
            address,
            up,
            connections,
            accept_task,
        }
    }

    /// Lets connections through.
    pub fn bring_up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// Polls `read` until `done` holds for what it returns, for at most 30 seconds.
pub async fn eventually<T, F, Fut>(what: &str, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30s for {what}; last: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fake clock at [`T0`], shared as a [`Clock`].
pub fn fake_clock() -> (FakeClock, Arc<dyn Clock>) {
    let clock = FakeClock::at(T0);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    (clock, shared)
}

/// Micros of a timestamp in a response.
pub fn micros(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    kosha_runtime::time::from_timestamp(timestamp.as_ref().expect("timestamp"), "t").unwrap()
}

/// The `google.rpc.BadRequest` fields of an error.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .into_iter()
                .map(|violation| violation.field)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits a little real time, for loops that must *not* act to have had the chance.
pub async fn let_loops_poll() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}
