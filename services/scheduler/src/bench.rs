//! The scheduler benchmark: scheduling throughput over gRPC and due-to-run lag with a
//! large backlog of pending jobs, on SQLite and on a throwaway PostgreSQL.
//!
//! For each store the benchmark starts, in this process, a job handler that notes when
//! each job reaches it, and one scheduler replica (default settings) on a fresh database.
//! Then:
//! 1. throughput: `pending_jobs` jobs are scheduled over gRPC by `concurrency` callers,
//!    all due an hour ahead, so they stay pending through the rest of the run;
//! 2. steady lag: `lag_jobs` jobs are scheduled ahead of time, due one after another over
//!    `lag_spread`; lag is when the handler received each minus when it was due;
//! 3. burst lag: `burst_jobs` jobs due at the same instant, which shows how fast one
//!    replica drains a queue (bounded by `max_runs_per_owner` calls at once).
//!
//! Run it with `kosha bench scheduler`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_proto::kosha::scheduler::v1::job_handler_server::{JobHandler, JobHandlerServer};
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_runtime::time::{from_timestamp, now_micros, to_timestamp};
use kosha_testkit::{PgCluster, TestServer, test_server_options};
use tokio::sync::Notify;

use crate::config::{Peers, Settings};

/// The owner name the benchmark's handler answers as.
const BENCH_OWNER: &str = "bench";

/// Which stores to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchStore {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A throwaway PostgreSQL cluster started for the run.
    Postgres,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Jobs scheduled for the throughput figure; they stay pending as the backlog.
    pub pending_jobs: usize,
    /// Jobs due one after another for the steady lag figure.
    pub lag_jobs: usize,
    /// Over how long the steady jobs fall due.
    pub lag_spread: Duration,
    /// Jobs due at one instant for the burst figure (0 to skip).
    pub burst_jobs: usize,
    /// Callers scheduling at once.
    pub concurrency: usize,
    /// Stores to run on.
    pub stores: Vec<BenchStore>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            pending_jobs: 10_000,
            lag_jobs: 500,
            lag_spread: Duration::from_secs(5),
            burst_jobs: 500,
            concurrency: 32,
            stores: vec![BenchStore::Sqlite, BenchStore::Postgres],
        }
    }
}

/// Lag figures of one set of jobs, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LagFigures {
    /// Jobs that ran.
    pub samples: usize,
    /// Jobs that did not run before the wait ended.
    pub missing: usize,
    /// Median lag.
    pub p50_ms: f64,
    /// 99th percentile lag.
    pub p99_ms: f64,
    /// Worst lag.
    pub max_ms: f64,
}

/// Figures of one store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreReport {
    /// Which store.
    pub store: BenchStore,
    /// Jobs scheduled for the throughput figure.
    pub scheduled: usize,
    /// Scheduling throughput, jobs per second over gRPC.
    pub jobs_per_second: f64,
    /// Pending jobs stored while lag was measured.
    pub pending_during_lag: i64,
    /// Lag of jobs falling due one after another.
    pub steady_lag: LagFigures,
    /// Lag of jobs all due at one instant, if measured.
    pub burst_lag_opt: Option<LagFigures>,
}

/// Figures of every store measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// One per store, in the order asked.
    pub stores: Vec<StoreReport>,
}

impl BenchReport {
    /// Whether every job ran, and ran within a second of its due time (steady load).
    pub fn lag_within_a_second(&self) -> bool {
        self.stores
            .iter()
            .all(|store| store.steady_lag.missing == 0 && store.steady_lag.max_ms < 1_000.0)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for report in &self.stores {
            writeln!(f, "scheduler on {:?}", report.store)?;
            writeln!(
                f,
                "  schedule: {} jobs at {:.0} jobs/s over gRPC",
                report.scheduled, report.jobs_per_second
            )?;
            let lag = &report.steady_lag;
            writeln!(
                f,
                "  due-to-run lag, {} pending, {} jobs due in turn: p50 {:.1} ms, p99 {:.1} ms, \
                 max {:.1} ms{}",
                report.pending_during_lag,
                lag.samples,
                lag.p50_ms,
                lag.p99_ms,
                lag.max_ms,
                missing_note(lag.missing)
            )?;
            if let Some(burst) = &report.burst_lag_opt {
                writeln!(
                    f,
                    "  burst of {} jobs due at once: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
                    burst.samples,
                    burst.p50_ms,
                    burst.p99_ms,
                    burst.max_ms,
                    missing_note(burst.missing)
                )?;
            }
        }
        Ok(())
    }
}

fn missing_note(missing: usize) -> String {
    if missing == 0 {
        String::new()
    } else {
        format!(" ({missing} never ran)")
    }
}

/// Runs the benchmark on every store asked for.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let mut stores = Vec::new();
    for store in &options.stores {
        // The directory or cluster must outlive the measurement of its store.
        let mut _sqlite_dir_opt = None;
        let mut _cluster_opt = None;
        let url = match store {
            BenchStore::Sqlite => {
                let dir = tempfile::Builder::new().prefix("kosha-bench-").tempdir()?;
                let url = format!("sqlite://{}/scheduler.db", dir.path().display());
                _sqlite_dir_opt = Some(dir);
                url
            }
            BenchStore::Postgres => {
                let cluster =
                    PgCluster::start().map_err(|why| anyhow::anyhow!("PostgreSQL: {why}"))?;
                let url = cluster.url("postgres");
                _cluster_opt = Some(cluster);
                url
            }
        };
        stores.push(measure_store(*store, &url, options).await?);
    }
    Ok(BenchReport { stores })
}

async fn measure_store(
    store: BenchStore,
    url: &str,
    options: &BenchOptions,
) -> anyhow::Result<StoreReport> {
    // A handler noting when each job arrives, and a scheduler calling it.
    let handler = Arc::new(ArrivalHandler::default());
    let mut handler_server = Server::new(test_server_options());
    handler_server.add_unlisted_service(JobHandlerServer::from_arc(handler.clone()));
    let handler_server = TestServer::start(handler_server).await;

    let db = Db::connect(url, &DbOptions::default()).await?;
    let settings = Settings {
        owners: vec![format!("{BENCH_OWNER}={}", handler_server.address_string())],
        ..Settings::default()
    };
    let peers =
        Peers::from_settings(&settings).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let mut scheduler_server = Server::new(test_server_options());
    let mounted = crate::mount(&mut scheduler_server, db.clone(), &settings, &peers).await?;
    let scheduler_server = TestServer::start(scheduler_server).await;
    let client = SchedulerServiceClient::new(scheduler_server.channel().await);

    // 1. Throughput, building the backlog.
    let far_ahead = now_micros() + 3_600_000_000;
    let backlog: Vec<i64> = vec![far_ahead; options.pending_jobs];
    let started = Instant::now();
    schedule_all(&client, "backlog", &backlog, options.concurrency).await?;
    let schedule_secs = started.elapsed().as_secs_f64();
    let jobs_per_second = options.pending_jobs as f64 / schedule_secs.max(f64::EPSILON);
    let pending_during_lag = mounted.store().count_jobs().await?;

    // 2. Steady lag: scheduled ahead, due in turn.
    let first_due = now_micros() + 3_000_000;
    let step_micros = i64::try_from(options.lag_spread.as_micros()).unwrap_or(i64::MAX)
        / i64::try_from(options.lag_jobs.max(1)).unwrap_or(1);
    let steady: Vec<i64> = (0..options.lag_jobs)
        .map(|i| first_due + step_micros * i as i64)
        .collect();
    let steady_ids = schedule_all(&client, "steady", &steady, options.concurrency).await?;
    let steady_lag = wait_for_lag(&handler, &steady_ids, options.lag_spread).await;

    // 3. Burst lag: all due at one instant.
    let mut burst_lag_opt = None;
    if options.burst_jobs > 0 {
        let due = now_micros() + 2_000_000;
        let burst = vec![due; options.burst_jobs];
        let burst_ids = schedule_all(&client, "burst", &burst, options.concurrency).await?;
        burst_lag_opt = Some(wait_for_lag(&handler, &burst_ids, Duration::ZERO).await);
    }

    mounted.shutdown().await;
    scheduler_server.stop().await;
    handler_server.stop().await;
    db.close().await;
    Ok(StoreReport {
        store,
        scheduled: options.pending_jobs,
        jobs_per_second,
        pending_during_lag,
        steady_lag,
        burst_lag_opt,
    })
}

/// Schedules one job per due time with `concurrency` calls in flight; returns the ids.
async fn schedule_all(
    client: &SchedulerServiceClient<tonic::transport::Channel>,
    label: &str,
    due_times: &[i64],
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let calls = due_times.iter().enumerate().map(|(index, due)| {
        let mut client = client.clone();
        let request = pb::ScheduleJobRequest {
            owner: BENCH_OWNER.to_string(),
            kind: format!("bench-{label}"),
            payload: Vec::new(),
            due_time: Some(to_timestamp(*due)),
            idempotency_key: format!("bench/{run}/{label}/{index}"),
            max_attempts: 0,
        };
        async move { client.schedule_job(request).await }
    });
    let mut ids = Vec::with_capacity(due_times.len());
    let mut responses = futures::stream::iter(calls).buffer_unordered(concurrency.max(1));
    while let Some(response) = responses.next().await {
        let job = response?
            .into_inner()
            .job
            .ok_or_else(|| anyhow::anyhow!("no job returned"))?;
        ids.push(job.job_id);
    }
    Ok(ids)
}

/// Waits until every job in `ids` reached the handler (or the wait ran out) and returns
/// the lag figures.
async fn wait_for_lag(handler: &ArrivalHandler, ids: &[String], spread: Duration) -> LagFigures {
    let deadline = Instant::now() + spread + Duration::from_secs(60);
    loop {
        let arrived = {
            let arrivals = handler
                .arrivals
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            ids.iter().filter(|id| arrivals.contains_key(*id)).count()
        };
        if arrived == ids.len() || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            () = handler.arrived.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }

    let arrivals = handler
        .arrivals
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut lags_ms: Vec<f64> = ids
        .iter()
        .filter_map(|id| arrivals.get(id))
        .map(|(due, received)| (received - due) as f64 / 1_000.0)
        .collect();
    lags_ms.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| -> f64 {
        if lags_ms.is_empty() {
            return f64::NAN;
        }
        let index = ((lags_ms.len() as f64 * fraction).ceil() as usize).clamp(1, lags_ms.len());
        lags_ms[index - 1]
    };
    LagFigures {
        samples: lags_ms.len(),
        missing: ids.len() - lags_ms.len(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        max_ms: lags_ms.last().copied().unwrap_or(f64::NAN),
    }
}

/// A job handler that notes, per job, its due time and when it arrived.
#[derive(Debug, Default)]
struct ArrivalHandler {
    arrivals: Mutex<HashMap<String, (i64, i64)>>,
    arrived: Notify,
}

#[tonic::async_trait]
impl JobHandler for ArrivalHandler {
    async fn run_job(
        &self,
        request: tonic::Request<pb::RunJobRequest>,
    ) -> Result<tonic::Response<pb::RunJobResponse>, tonic::Status> {
        let received = now_micros();
        let job = request
            .into_inner()
            .job
            .ok_or_else(|| tonic::Status::invalid_argument("job"))?;
        let due = job
            .due_time
            .as_ref()
            .map(|timestamp| from_timestamp(timestamp, "job.due_time"))
            .transpose()?
            .unwrap_or(received);
        self.arrivals
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(job.job_id)
            .or_insert((due, received));
        self.arrived.notify_waiters();
        Ok(tonic::Response::new(pb::RunJobResponse {
            outcome: pb::RunOutcome::Succeeded as i32,
            message: String::new(),
            retry_after: None,
        }))
    }
}
