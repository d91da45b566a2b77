//! The allocation benchmark: how close the `Allocate` RPC comes to the database's own
//! speed for the same writes.
//!
//! Against a throwaway PostgreSQL cluster it starts, for each concurrency level and for
//! random SKUs and one hot SKU, it runs:
//!
//! - (a) `pgbench`, prepared protocol, with a script doing in one transaction every write
//!   one allocation does: the stock row update, the allocation row, the ledger row, the
//!   idempotency record and the change-feed entry;
//! - (b) the `Allocate` RPC over gRPC against an in-process inventory server on the same
//!   cluster, from as many concurrent clients;
//!
//! and prints throughput, p50/p99 latency and the ratio (b)/(a) of throughputs.
//!
//! Read the figures with their setting in mind: the cluster runs with `fsync=off` and
//! `synchronous_commit=off` (a commit costs no disk flush), and the gRPC clients run in
//! the benchmark's own process, sharing the machine's cores with the server and the
//! database, while pgbench is a separate C process. Coalescing (many allocations per
//! transaction) is what lets (b) pass (a) on a hot SKU, where (a) queues every
//! transaction on one row lock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_runtime::Db;
use kosha_runtime::db::DbOptions;
use kosha_runtime::server::{Server, ServerOptions};
use kosha_testkit::{PgCluster, TestServer};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sqlx::Connection as _;
use tonic::transport::Channel;

use crate::config::Settings;
use crate::startup::{Peers, mount};
use crate::store::MIGRATIONS;

/// The client every benchmark row belongs to.
const CLIENT: &str = "bench";
/// Units seeded per SKU: never runs out during a run.
const SEED_UNITS: i64 = 1_000_000_000_000_000;
/// Rows of earlier allocations in every table before a run starts.
const HISTORY_ROWS: i64 = 100_000;
/// gRPC clients per HTTP/2 connection: each its own, as each pgbench client has its own
/// database connection.
const CLIENTS_PER_CONNECTION: usize = 1;

/// Settings of `kosha bench allocate`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds each measured run lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrency levels (clients), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    pub clients: Vec<usize>,
    /// Distinct SKUs for the random-SKU case.
    #[arg(long, default_value_t = 10_000)]
    pub skus: usize,
    /// Database connections of the inventory server.
    #[arg(long, default_value_t = 16)]
    pub db_connections: u32,
    /// Allocation workers of the inventory server (batches in flight at once).
    #[arg(long, default_value_t = crate::config::DEFAULT_ALLOCATE_WORKERS)]
    pub workers: usize,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            seconds: 10,
            clients: vec![8, 32],
            skus: 10_000,
            db_connections: 16,
            workers: crate::config::DEFAULT_ALLOCATE_WORKERS,
        }
    }
}

/// Which SKUs the allocations draw on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Uniformly random among many SKUs.
    RandomSkus,
    /// Every allocation on one SKU.
    HotSku,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Self::RandomSkus => "random SKUs",
            Self::HotSku => "hot SKU",
        }
    }
}

/// Throughput and latency of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Allocations per second.
    pub throughput: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Allocations completed.
    pub count: usize,
}

/// Both sides of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Random SKUs or hot SKU.
    pub workload: Workload,
    /// Concurrent clients.
    pub clients: usize,
    /// (a) pgbench.
    pub pgbench: Figures,
    /// (b) the RPC.
    pub grpc: Figures,
}

impl CaseResult {
    /// (b)/(a).
    pub fn ratio(&self) -> f64 {
        if self.pgbench.throughput > 0.0 {
            self.grpc.throughput / self.pgbench.throughput
        } else {
            0.0
        }
    }
}

/// Runs the benchmark and prints the table on stdout.
pub async fn run_and_print(args: &BenchArgs) -> anyhow::Result<()> {
    let results = run(args).await?;
    print!("{}", report(&results));
    Ok(())
}

/// Runs every case.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<CaseResult>> {
    anyhow::ensure!(
        args.seconds > 0 && !args.clients.is_empty() && args.skus > 0,
        "empty benchmark"
    );
    let cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await?
        .map_err(|why| anyhow::anyhow!("cannot start PostgreSQL: {why}"))?;
    let pgbench = cluster.bin_dir.join("pgbench");
    anyhow::ensure!(
        pgbench.exists(),
        "pgbench not found in {}",
        cluster.bin_dir.display()
    );
    let work_dir = tempfile_dir()?;
    eprintln!(
        "bench: PostgreSQL cluster in {} (fsync off)",
        cluster.dir.display()
    );

    let mut results = Vec::new();
    let mut case = 0;
    for workload in [Workload::RandomSkus, Workload::HotSku] {
        for &clients in &args.clients {
            case += 1;
            // Both databases alike, seeded before either run; the cluster settles before
            // each run so that one side's cleanup does not slow the other down.
            let database = format!("bench_pgbench_{case}");
            let pgbench_url = fresh_database(&cluster, &database).await?;
            seed(&pgbench_url, args.skus).await?;
            let grpc_url = fresh_database(&cluster, &format!("bench_grpc_{case}")).await?;
            seed(&grpc_url, args.skus).await?;
            let script = write_script(&work_dir, workload, args.skus)?;

            settle(&cluster).await?;
            let pgbench_figures = run_pgbench(
                &pgbench,
                &cluster,
                &database,
                &script,
                &work_dir,
                clients,
                args.seconds,
            )?;
            settle(&cluster).await?;
            let grpc_figures = run_grpc(&grpc_url, workload, clients, args).await?;

            let result = CaseResult {
                workload,
                clients,
                pgbench: pgbench_figures,
                grpc: grpc_figures,
            };
            eprintln!(
                "bench: {} x{clients}: pgbench {:.0}/s, gRPC {:.0}/s, ratio {:.2}",
                workload.label(),
                result.pgbench.throughput,
                result.grpc.throughput,
                result.ratio()
            );
            results.push(result);
        }
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(results)
}

/// The results as a table.
pub fn report(results: &[CaseResult]) -> String {
    let mut text = String::from(
        "case          clients | pgbench alloc/s  p50 ms  p99 ms \
         | gRPC alloc/s  p50 ms  p99 ms | ratio\n",
    );
    for result in results {
        text.push_str(&format!(
            "{:<13} {:>7} | {:>15.0} {:>7.2} {:>7.2} | {:>12.0} {:>7.2} {:>7.2} | {:>5.2}\n",
            result.workload.label(),
            result.clients,
            result.pgbench.throughput,
            result.pgbench.p50_ms,
            result.pgbench.p99_ms,
            result.grpc.throughput,
            result.grpc.p50_ms,
            result.grpc.p99_ms,
            result.ratio()
        ));
    }
    text
}

// === (a) pgbench ===

/// One allocation's writes, as a pgbench script.
fn write_script(dir: &Path, workload: Workload, skus: usize) -> anyhow::Result<PathBuf> {
    let pick = match workload {
        Workload::RandomSkus => format!("\\set sku random(0, {})", skus - 1),
        Workload::HotSku => "\\set sku 0".to_string(),
    };
    // The same columns, and payloads of the same size as the RPC writes.
    let script = format!(
        r#"{pick}
\set q random(1, 3)
\set r random(1, 9000000000000000000)
BEGIN;
UPDATE stock SET available = available - :q, allocated = allocated + :q, updated_at = 1
  WHERE client_id = 'bench' AND sku = 'SKU-' || lpad(:sku::text, 6, '0')
  AND pool = 'COMMON' AND grade = 1;
INSERT INTO allocations (client_id, order_ref, line_id, sku, pool, grade, quantity,
    consumed, released, created_at, updated_at)
  VALUES ('bench', 'PGB:' || :client_id || ':' || :r, '1',
    'SKU-' || lpad(:sku::text, 6, '0'), 'COMMON', 1, :q, 0, 0, 1, 1);
INSERT INTO ledger (client_id, sku, grade, from_pool, from_state, to_pool, to_state,
    quantity, reason, actor, reference, idempotency_key, order_ref, line_id, created_at)
  VALUES ('bench', 'SKU-' || lpad(:sku::text, 6, '0'), 1, 'COMMON', 1, 'COMMON', 2, :q, 3,
    'bench', '', 'bench-' || :client_id || '-' || :r, 'PGB:' || :client_id || ':' || :r,
    '1', 1);
INSERT INTO idempotency (client_id, idem_key, method, request, response, created_at)
  VALUES ('bench', 'bench-' || :client_id || '-' || :r, 'Allocate',
    decode(repeat('ab', 90), 'hex'), decode(repeat('cd', 80), 'hex'), 1);
INSERT INTO stock_changes (txid, client_id, sku, pool, grade, available, allocated,
    recycle, reason, created_at)
  VALUES (pg_current_xact_id()::text::bigint, 'bench', 'SKU-' || lpad(:sku::text, 6, '0'),
    'COMMON', 1, 0, 0, 0, 3, 1);
END;
"#
    );
    let path = dir.join(format!(
        "allocate-{}.sql",
        workload.label().replace(' ', "-")
    ));
    std::fs::write(&path, script).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

fn run_pgbench(
    pgbench: &Path,
    cluster: &PgCluster,
    database: &str,
    script: &Path,
    work_dir: &Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let log_dir = work_dir.join(format!("log-{database}"));
    std::fs::create_dir_all(&log_dir)?;
    let threads = clients.min(2);
    let output = Command::new(pgbench)
        .current_dir(&log_dir)
        .args([
            "-h",
            &cluster.dir.display().to_string(),
            "-p",
            &cluster.port.to_string(),
        ])
        .args(["-U", "postgres", "-n", "-M", "prepared"])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &seconds.to_string(), "-l", "--log-prefix", "tx"])
        .arg("-f")
        .arg(script)
        .arg(database)
        .output()
        .context("run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let throughput = stdout
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {stdout}"))?;

    // Per-transaction log: `client transaction latency_us script epoch_s epoch_us`.
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&log_dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            if let Some(micros) = line
                .split_whitespace()
                .nth(2)
                .and_then(|f| f.parse::<u64>().ok())
            {
                latencies.push(Duration::from_micros(micros));
            }
        }
    }
    let mut figures = percentiles(&mut latencies);
    figures.throughput = throughput;
    Ok(figures)
}

// === (b) the RPC ===

async fn run_grpc(
    url: &str,
    workload: Workload,
    clients: usize,
    args: &BenchArgs,
) -> anyhow::Result<Figures> {
    // An inventory server on the database, as deployed: coalescing on.
    let options = DbOptions {
        max_connections: args.db_connections,
        ..DbOptions::default()
    };
    let db = Db::connect(url, &options).await?;
    let mut server = Server::new(ServerOptions::default());
    let settings = Settings {
        allocate_workers: args.workers,
        ..Settings::default()
    };
    let mounted = mount(&mut server, db.clone(), &settings, &Peers::default()).await?;
    let server = TestServer::start(server).await;

    // Clients, a few per connection, each allocating until the deadline.
    let mut channels = Vec::new();
    for _ in 0..clients.div_ceil(CLIENTS_PER_CONNECTION) {
        channels.push(server.channel().await);
    }
    let warmup = Duration::from_secs(1).min(Duration::from_secs(args.seconds));
    let started = Instant::now();
    let measure_from = started + warmup;
    let deadline = measure_from + Duration::from_secs(args.seconds);
    let skus = args.skus;
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let client = InventoryServiceClient::new(channels[worker % channels.len()].clone());
        tasks.push(tokio::spawn(allocate_until(
            client,
            worker,
            workload,
            skus,
            measure_from,
            deadline,
        )));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }

    let mut figures = percentiles(&mut latencies);
    figures.throughput = figures.count as f64 / args.seconds as f64;
    server.stop().await;
    mounted.shutdown().await;
    db.close().await;
    Ok(figures)
}

/// One client: allocate one line at a time, recording latencies after `measure_from`.
async fn allocate_until(
    mut client: InventoryServiceClient<Channel>,
    worker: usize,
    workload: Workload,
    skus: usize,
    measure_from: Instant,
    deadline: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut rng = StdRng::seed_from_u64(worker as u64);
    let mut latencies = Vec::new();
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(latencies);
        }
        n += 1;
        let sku = match workload {
            Workload::RandomSkus => rng.random_range(0..skus),
            Workload::HotSku => 0,
        };
        let request = pb::AllocateRequest {
            client_id: CLIENT.into(),
            order_ref: format!("GRPC:{worker}:{n}"),
            pool: "COMMON".into(),
            channel: String::new(),
            grade: kosha_proto::types::QcGrade::Pass as i32,
            mode: pb::AllocationMode::Partial as i32,
            lines: vec![pb::AllocateLine {
                line_id: "1".into(),
                sku: sku_name(sku),
                quantity: rng.random_range(1..=3),
            }],
            top_up: false,
            idempotency_key: format!("bench-{worker}-{n}"),
            actor: "bench".into(),
        };
        client.allocate(request).await.context("allocate")?;
        if now >= measure_from {
            latencies.push(now.elapsed());
        }
    }
}

// === Shared ===

fn sku_name(index: usize) -> String {
    format!("SKU-{index:06}")
}

/// Creates database `name` in the cluster; returns its URL.
async fn fresh_database(cluster: &PgCluster, name: &str) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let _ = admin.close().await;
    Ok(cluster.url(name))
}

/// Flushes the cluster's dirty pages and gives background work a moment to finish.
async fn settle(cluster: &PgCluster) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    sqlx::query("CHECKPOINT").execute(&mut admin).await?;
    let _ = admin.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Applies the schema and gives every SKU plenty of AVAILABLE units in COMMON.
async fn seed(url: &str, skus: usize) -> anyhow::Result<()> {
    let db = Db::connect(url, &DbOptions::default()).await?;
    db.migrate(crate::NAME, MIGRATIONS).await?;
    sqlx::query(
        "INSERT INTO pools (client_id, name, description, created_at, updated_at) \
         VALUES ($1, 'COMMON', '', 0, 0)",
    )
    .bind(CLIENT)
    .execute(db.pool())
    .await?;
    sqlx::query(
        "INSERT INTO stock (client_id, sku, pool, grade, available, allocated, recycle, \
         updated_at) \
         SELECT $1, 'SKU-' || lpad(CAST(n AS TEXT), 6, '0'), 'COMMON', 1, $2, 0, 0, 0 \
         FROM generate_series(0, $3) AS n",
    )
    .bind(CLIENT)
    .bind(SEED_UNITS)
    .bind(i64::try_from(skus).unwrap_or(i64::MAX) - 1)
    .execute(db.pool())
    .await?;
    // A history, as a running system has: the lookups an allocation makes then meet
    // tables of realistic size with statistics, not empty ones whose cached plans would
    // scan them.
    for sql in [
        "INSERT INTO allocations (client_id, order_ref, line_id, sku, pool, grade, quantity, \
         consumed, released, created_at, updated_at) \
         SELECT $1, 'HISTORY:' || n, '1', 'SKU-000000', 'COMMON', 1, 0, 1, 0, 0, 0 \
         FROM generate_series(1, $2) AS n",
        "INSERT INTO idempotency (client_id, idem_key, method, request, response, created_at) \
         SELECT $1, 'history-' || n, 'Allocate', decode('00', 'hex'), decode('00', 'hex'), 0 \
         FROM generate_series(1, $2) AS n",
        "INSERT INTO ledger (client_id, sku, grade, from_pool, from_state, to_pool, to_state, \
         quantity, reason, actor, reference, idempotency_key, order_ref, line_id, created_at) \
         SELECT $1, 'SKU-000000', 1, 'COMMON', 1, 'COMMON', 2, 1, 3, 'history', '', \
         'history-' || n, 'HISTORY:' || n, '1', 0 FROM generate_series(1, $2) AS n",
        "INSERT INTO stock_changes (txid, client_id, sku, pool, grade, available, allocated, \
         recycle, reason, created_at) \
         SELECT 0, $1, 'SKU-000000', 'COMMON', 1, 0, 0, 0, 3, 0 FROM generate_series(1, $2) AS n",
    ] {
        sqlx::query(sql)
            .bind(CLIENT)
            .bind(HISTORY_ROWS)
            .execute(db.pool())
            .await?;
    }
    sqlx::query("VACUUM ANALYZE").execute(db.pool()).await?;
    db.close().await;
    Ok(())
}

/// Median and 99th percentile of `latencies` (sorted in place).
fn percentiles(latencies: &mut [Duration]) -> Figures {
    latencies.sort_unstable();
    let at = |fraction: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index =
            ((latencies.len() as f64 * fraction).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    Figures {
        throughput: 0.0,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        count: latencies.len(),
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kosha-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    // pgbench writes its logs here; as root the cluster's user needs no access to it.
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_median_and_the_tail() {
        let mut latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();

        let figures = percentiles(&mut latencies);

        assert_eq!(figures.p50_ms, 50.0);
        assert_eq!(figures.p99_ms, 99.0);
        assert_eq!(figures.count, 100);
    }

    #[test]
    fn the_pgbench_script_writes_what_an_allocation_writes() {
        let dir = tempfile_dir().unwrap();

        let script =
            std::fs::read_to_string(write_script(&dir, Workload::HotSku, 10).unwrap()).unwrap();

        for table in [
            "UPDATE stock",
            "INTO allocations",
            "INTO ledger",
            "INTO idempotency",
            "INTO stock_changes",
        ] {
            assert!(script.contains(table), "{table}");
        }
        assert!(script.contains("\\set sku 0"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
