//! The `CreateOrder` benchmark: orders taken in end to end (resolve in catalog, allocate
//! in inventory, persist here) against a pgbench script that does every row write of the
//! same path in one transaction.
//!
//! Catalog, inventory and the order service run in this process on one server, each with
//! its own database in one throwaway PostgreSQL cluster, as the all-in-one runner runs
//! them. Clients (8 and 32 by default) each send one-line orders for random SKUs of a
//! well-stocked catalog over gRPC, one after the other, for a fixed number of orders in
//! total. As in the all-in-one runner, the order service's calls to catalog and inventory
//! stay in-process (same clients and protobuf, no socket); a second run with the same
//! clients makes those calls over loopback gRPC, as separate processes would, and is
//! reported beside it.
//!
//! The pgbench script writes, in one transaction per order, the rows the whole path
//! writes: the order, its line and its two history entries; the stock row (AVAILABLE down,
//! ALLOCATED up), the ledger transfer, the change-feed entry, the allocation and the
//! idempotency row. It writes them into the services' own tables (their migrations, run
//! into a database of its own), so every index and constraint the service pays for, it
//! pays for too. After one unmeasured run of each, the service and pgbench run five times
//! each, in turns, with the same number of clients and of orders, and each side's median
//! run counts. The ratio is service orders per second over pgbench transactions per
//! second: what the service keeps of the database's raw speed after resolution, the calls
//! between services, validation and its own reads.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1 as api;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_proto::types::QcGrade;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_testkit::{PgCluster, test_server_options};
use sqlx::Connection as _;
use tonic::transport::Channel;

use crate::peers::Peers;

/// The seller the benchmark's orders belong to.
const CLIENT: &str = "bench";

/// The channel the orders come from.
const CHANNEL: &str = "AMAZON";

/// The benchmark's databases: one per service and pgbench's.
const DATABASES: [&str; 4] = [
    "bench_catalog",
    "bench_inventory",
    "bench_order",
    "bench_plain",
];

/// The run index of the unmeasured first run, apart from every measured run's.
const WARM_UP_RUN: usize = 1_000_000;

/// Runs of the service and of pgbench per number of clients; their medians are compared.
const RUNS: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Orders per run (split evenly between the clients).
    pub orders: usize,
    /// Concurrent clients of each run.
    pub clients: Vec<usize>,
    /// Distinct SKUs the orders pick from.
    pub skus: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            orders: 4000,
            clients: vec![8, 32],
            skus: 500,
        }
    }
}

/// The runs at one number of clients.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Orders taken in per run.
    pub orders: usize,
    /// Wall time of the median service run.
    pub service_elapsed: Duration,
    /// Orders per second of every service run, in the order they ran.
    pub service_rates: Vec<f64>,
    /// Transactions per second of every pgbench run, in the order they ran.
    pub pgbench_rates: Vec<f64>,
    /// Median latency of one CreateOrder in the median run.
    pub p50: Duration,
    /// 99th percentile latency in the median run.
    pub p99: Duration,
    /// pgbench transactions per second with the same clients, the median run.
    pub pgbench_tps: f64,
    /// Orders per second with the services calling each other over loopback gRPC.
    pub network_per_second: f64,
    /// Catalog's ResolveListings alone, calls per second with the same clients.
    pub resolve_per_second: f64,
    /// Inventory's Allocate alone (one line, new order each), calls per second with the
    /// same clients.
    pub allocate_per_second: f64,
}

impl RunReport {
    /// Orders per second through the service.
    pub fn service_per_second(&self) -> f64 {
        self.orders as f64 / self.service_elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Service orders per second over pgbench transactions per second.
    pub fn ratio(&self) -> f64 {
        self.service_per_second() / self.pgbench_tps.max(f64::EPSILON)
    }
}

/// The whole benchmark.
#[derive(Debug, Clone)]
pub struct OrderBenchmark {
    /// Per number of clients.
    pub runs: Vec<RunReport>,
    /// The target ratio.
    pub target_ratio: f64,
}

impl fmt::Display for OrderBenchmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "CreateOrder end to end (resolve + allocate + persist) on PostgreSQL; \
             each side the median of {RUNS} runs taken in turns"
        )?;
        for run in &self.runs {
            writeln!(
                f,
                "  {:>3} clients: {:>6} orders in {:>7.2} s = {:>8.1} orders/s (p50 {:>6.1} ms, \
                 p99 {:>6.1} ms); pgbench same writes in one transaction: {:>8.1} tps; ratio {:.3} \
                 (target >= {:.1})",
                run.clients,
                run.orders,
                run.service_elapsed.as_secs_f64(),
                run.service_per_second(),
                run.p50.as_secs_f64() * 1000.0,
                run.p99.as_secs_f64() * 1000.0,
                run.pgbench_tps,
                run.ratio(),
                self.target_ratio
            )?;
            let rates = |rates: &[f64]| {
                let rates: Vec<String> = rates.iter().map(|rate| format!("{rate:.1}")).collect();
                rates.join(", ")
            };
            writeln!(
                f,
                "      every run: service {} orders/s; pgbench {} tps",
                rates(&run.service_rates),
                rates(&run.pgbench_rates)
            )?;
            writeln!(
                f,
                "      with catalog and inventory called over loopback gRPC instead of \
                 in-process: {:.1} orders/s, ratio {:.3}",
                run.network_per_second,
                run.network_per_second / run.pgbench_tps.max(f64::EPSILON)
            )?;
            writeln!(
                f,
                "      the same clients on one hop alone: catalog ResolveListings {:.1} calls/s, \
                 inventory Allocate {:.1} calls/s",
                run.resolve_per_second, run.allocate_per_second
            )?;
        }
        Ok(())
    }
}

/// Runs the benchmark on a throwaway PostgreSQL cluster.
pub async fn run(options: &BenchOptions) -> anyhow::Result<OrderBenchmark> {
    anyhow::ensure!(
        options.orders > 0 && options.skus > 0,
        "the benchmark needs orders and SKUs"
    );
    anyhow::ensure!(
        options.clients.iter().all(|c| *c > 0),
        "every run needs at least one client"
    );

    // One cluster, one database per service and one for pgbench.
    let cluster = PgCluster::start().map_err(|why| anyhow::anyhow!("PostgreSQL: {why}"))?;
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    for name in DATABASES {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;

    // The services on one server, as the all-in-one runner runs them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let db_options = DbOptions {
        max_connections: 32,
        ..DbOptions::default()
    };
    let connect = |name: &'static str| {
        let url = cluster.url(name);
        let db_options = db_options.clone();
        async move { Db::connect(&url, &db_options).await }
    };
    let mut server = Server::new(test_server_options());
    let catalog_mounted = kosha_catalog::startup::mount(
        &mut server,
        connect("bench_catalog").await?,
        &kosha_catalog::config::Settings::default(),
        &kosha_catalog::startup::Peers::default(),
    )
    .await?;
    let inventory_mounted = kosha_inventory::startup::mount(
        &mut server,
        connect("bench_inventory").await?,
        &kosha_inventory::config::Settings::default(),
        &kosha_inventory::startup::Peers {
            scheduler: address.clone(),
        },
    )
    .await?;
    let settings = crate::Settings {
        hold_rules: String::new(),
        register_jobs: false,
        ..crate::Settings::default()
    };
    let order_mounted = crate::mount(
        &mut server,
        connect("bench_order").await?,
        &settings,
        &Peers::all_at(&address),
    )
    .await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stop_rx.await;
    }));
    let channel = connect_channel(&address).await?;

    // Master data and plenty of stock, with the planner's statistics of a running system
    // (autovacuum gathers them within a minute; the runs start sooner than that). The
    // order database starts empty and is left to autovacuum like any growing table.
    seed(&channel, options.skus, options.orders).await?;
    for name in ["bench_catalog", "bench_inventory"] {
        let mut conn = sqlx::PgConnection::connect(&cluster.url(name)).await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        conn.close().await?;
    }
    let script = pgbench_script(&cluster, options.skus).await?;

    // One unmeasured run of each side first: a first run is unlike the rest, as it opens
    // connections, makes the statements' plans and fills what is kept in memory.
    let first_clients = options.clients[0];
    service_run(
        &address,
        first_clients,
        options.orders,
        options.skus,
        WARM_UP_RUN,
    )
    .await?;
    pgbench(
        &cluster,
        &script,
        first_clients,
        options.orders / first_clients,
    )
    .await?;

    // The runs.
    let mut runs = Vec::new();
    for (index, clients) in options.clients.iter().copied().enumerate() {
        // Either side's single run can meet a stray checkpoint or autovacuum, and the
        // machine's speed drifts: each side runs five times, in turns, and each side's
        // median run counts: it moves only when three runs of a side go astray.
        let mut service_runs = Vec::with_capacity(RUNS);
        let mut pgbench_runs = Vec::with_capacity(RUNS);
        for turn in 0..RUNS {
            let run_index = (index * RUNS + turn) * 2;
            service_runs.push(
                service_run(&address, clients, options.orders, options.skus, run_index).await?,
            );
            pgbench_runs.push(pgbench(&cluster, &script, clients, options.orders / clients).await?);
        }
        let service_rates: Vec<f64> = service_runs
            .iter()
            .map(|(elapsed, latencies)| {
                latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
            })
            .collect();
        let pgbench_rates = pgbench_runs.clone();
        service_runs.sort_by_key(|(elapsed, _)| *elapsed);
        let (elapsed, mut latencies) = service_runs.swap_remove(RUNS / 2);
        latencies.sort();
        let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
        pgbench_runs.sort_by(f64::total_cmp);
        let pgbench_tps = pgbench_runs[RUNS / 2];
        kosha_runtime::client::set_in_process_calls(false);
        let network = service_run(
            &address,
            clients,
            options.orders,
            options.skus,
            (index * RUNS) * 2 + 1,
        )
        .await;
        kosha_runtime::client::set_in_process_calls(true);
        let (network_elapsed, network_latencies) = network?;
        let network_per_second =
            network_latencies.len() as f64 / network_elapsed.as_secs_f64().max(f64::EPSILON);
        let resolve_per_second = hop_run(
            &address,
            clients,
            options.orders,
            options.skus,
            index,
            Hop::Resolve,
        )
        .await?;
        let allocate_per_second = hop_run(
            &address,
            clients,
            options.orders,
            options.skus,
            index,
            Hop::Allocate,
        )
        .await?;
        let report = RunReport {
            resolve_per_second,
            allocate_per_second,
            clients,
            orders: latencies.len(),
            service_elapsed: elapsed,
            service_rates,
            pgbench_rates,
            p50: percentile(0.5),
            p99: percentile(0.99),
            pgbench_tps,
            network_per_second,
        };
        tracing::info!(
            clients,
            per_second = report.service_per_second(),
            pgbench_tps,
            "benchmark run done"
        );
        runs.push(report);
    }

    // Stop everything.
    let _ = stop_tx.send(());
    let _ = serving.await;
    order_mounted.shutdown().await;
    inventory_mounted.shutdown().await;
    catalog_mounted.shutdown().await;
    Ok(OrderBenchmark {
        runs,
        target_ratio: 0.5,
    })
}

/// A connection of its own for each of `clients` clients, as pgbench gives each of its
/// clients: callers that share one HTTP/2 connection also share the one task that reads and
/// writes it on each side.
async fn client_channels(address: &str, clients: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(clients);
    for _ in 0..clients {
        channels.push(connect_channel(address).await?);
    }
    Ok(channels)
}

async fn connect_channel(address: &str) -> anyhow::Result<Channel> {
    let uri = format!("http://{address}");
    for _ in 0..250 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(uri.clone())?
            .connect()
            .await
        {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the benchmark server never accepted a connection")
}

async fn seed(channel: &Channel, skus: usize, orders: usize) -> anyhow::Result<()> {
    let mut catalog = CatalogServiceClient::new(channel.clone());
    catalog
        .create_client(catalog::CreateClientRequest {
            client_id: CLIENT.into(),
            display_name: "Bench".into(),
        })
        .await?;
    catalog
        .create_channel(catalog::CreateChannelRequest {
            code: CHANNEL.into(),
            display_name: "Amazon".into(),
            kind: catalog::ChannelKind::Marketplace as i32,
        })
        .await?;
    let mut receive_lines = Vec::new();
    for n in 0..skus {
        let sku = format!("SKU-{n}");
        catalog
            .create_product(catalog::CreateProductRequest {
                product: Some(catalog::Product {
                    client_id: CLIENT.into(),
                    sku: sku.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        catalog
            .create_listing(catalog::CreateListingRequest {
                listing: Some(catalog::Listing {
                    client_id: CLIENT.into(),
                    channel: CHANNEL.into(),
                    marketplace_sku: format!("M-{n}"),
                    sku: sku.clone(),
                    update_time: None,
                }),
            })
            .await?;
        receive_lines.push(inv::ReceiveLine {
            sku,
            grade: QcGrade::Pass as i32,
            quantity: (orders * 4) as i64,
        });
    }
    let mut inventory = InventoryServiceClient::new(channel.clone());
    for (index, chunk) in receive_lines.chunks(1000).enumerate() {
        inventory
            .receive(inv::ReceiveRequest {
                client_id: CLIENT.into(),
                reference: format!("GRN-BENCH-{index}"),
                lines: chunk.to_vec(),
                idempotency_key: format!("grn:bench-{index}"),
                actor: "bench".into(),
            })
            .await?;
    }
    Ok(())
}

/// `clients` tasks send `orders` one-line orders in total; returns the wall time and
/// every call's latency.
async fn service_run(
    address: &str,
    clients: usize,
    orders: usize,
    skus: usize,
    run_index: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let per_client = orders / clients;
    let channels = client_channels(address, clients).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, channel) in channels.into_iter().enumerate() {
        let mut orders_client = OrderServiceClient::new(channel);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for n in 0..per_client {
                let sku = (client * 7919 + n * 104_729) % skus;
                let request = api::CreateOrderRequest {
                    client_id: CLIENT.into(),
                    channel: CHANNEL.into(),
                    channel_order_id: format!("R{run_index}-C{client}-{n}"),
                    lines: vec![api::NewOrderLine {
                        marketplace_sku: format!("M-{sku}"),
                        quantity: 1,
                        price: "499".into(),
                        ..Default::default()
                    }],
                    actor: "bench".into(),
                    ..Default::default()
                };
                let call_started = Instant::now();
                let response = orders_client.create_order(request).await?.into_inner();
                latencies.push(call_started.elapsed());
                let status = response
                    .order
                    .map(|order| order.status())
                    .unwrap_or_default();
                anyhow::ensure!(
                    status == api::OrderStatus::Fulfillable,
                    "an order ended {status:?}"
                );
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(orders);
    for task in tasks {
        latencies.extend(task.await.context("benchmark client")??);
    }
    Ok((started.elapsed(), latencies))
}

/// One call of another service on the CreateOrder path.
#[derive(Debug, Clone, Copy)]
enum Hop {
    /// Catalog's ResolveListings of one marketplace SKU.
    Resolve,
    /// Inventory's Allocate of one unit to a new order.
    Allocate,
}

/// Calls per second of one hop alone, with `clients` clients and `calls` calls in total.
async fn hop_run(
    address: &str,
    clients: usize,
    calls: usize,
    skus: usize,
    run_index: usize,
    hop: Hop,
) -> anyhow::Result<f64> {
    let per_client = calls / clients;
    let channels = client_channels(address, clients).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, channel) in channels.into_iter().enumerate() {
        let mut catalog = CatalogServiceClient::new(channel.clone());
        let mut inventory = InventoryServiceClient::new(channel);
        tasks.push(tokio::spawn(async move {
            for n in 0..per_client {
                let sku = (client * 7919 + n * 104_729) % skus;
                match hop {
                    Hop::Resolve => {
                        let request = catalog::ResolveListingsRequest {
                            client_id: CLIENT.into(),
                            channel: CHANNEL.into(),
                            marketplace_skus: vec![format!("M-{sku}")],
                        };
                        catalog.resolve_listings(request).await?;
                    }
                    Hop::Allocate => {
                        let order_ref = format!("{CHANNEL}:HOP{run_index}-C{client}-{n}");
                        let request = inv::AllocateRequest {
                            client_id: CLIENT.into(),
                            order_ref: order_ref.clone(),
                            pool: String::new(),
                            channel: CHANNEL.into(),
                            grade: QcGrade::Pass as i32,
                            mode: inv::AllocationMode::Partial as i32,
                            lines: vec![inv::AllocateLine {
                                line_id: "1".into(),
                                sku: format!("SKU-{sku}"),
                                quantity: 1,
                            }],
                            top_up: true,
                            idempotency_key: format!("{order_ref}#alloc-1"),
                            actor: "bench".into(),
                        };
                        inventory.allocate(request).await?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await.context("benchmark client")??;
    }
    Ok((per_client * clients) as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON))
}

/// Schema of the pgbench database holding the order service's tables.
const PLAIN_ORDER: &str = "plain_order";

/// Schema of the pgbench database holding inventory's tables.
const PLAIN_INVENTORY: &str = "plain_inventory";

/// Creates the tables the pgbench script writes and returns the script's path.
///
/// The tables are the services' own: their migrations run into two schemas of the pgbench
/// database, so each row the script writes pays for the same columns, indexes, checks and
/// foreign keys as the row the service writes.
async fn pgbench_script(cluster: &PgCluster, skus: usize) -> anyhow::Result<std::path::PathBuf> {
    let mut conn = sqlx::PgConnection::connect(&cluster.url("bench_plain")).await?;
    for schema in [PLAIN_ORDER, PLAIN_INVENTORY] {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
    }
    for (schema, service, migrations) in [
        (PLAIN_ORDER, crate::NAME, crate::store::MIGRATIONS),
        (
            PLAIN_INVENTORY,
            kosha_inventory::NAME,
            kosha_inventory::store::MIGRATIONS,
        ),
    ] {
        let url = format!(
            "{}&options[search_path]={schema}",
            cluster.url("bench_plain")
        );
        let db = Db::connect(&url, &DbOptions::default()).await?;
        db.migrate(service, migrations).await?;
        db.close().await;
    }
    sqlx::query(&format!(
        "INSERT INTO {PLAIN_INVENTORY}.stock (client_id, sku, pool, grade, available, \
         allocated, recycle, updated_at) SELECT 'bench', 'SKU-' || n, 'COMMON', 1, \
         1000000000, 0, 0, 0 FROM generate_series(0, $1) AS n"
    ))
    .bind(skus as i64 - 1)
    .execute(&mut conn)
    .await?;
    // Only the stock table is analysed: statistics of the still-empty tables would make
    // the planner expect them to stay empty and check foreign keys with sequential scans.
    sqlx::query(&format!("ANALYZE {PLAIN_INVENTORY}.stock"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    // The rows of one fulfillable one-line order as the services store them. pgbench reads
    // `:name` as a variable even inside quotes, so the colon of an order ref is written as
    // `chr(58)`; the casts give prepared statements their types. The stored idempotency
    // request and response are stood in for by bytes of their usual sizes.
    let script = format!(
        "\\set sku random(0, {last})
\\set n random(1, 9000000000000000000)
BEGIN;
INSERT INTO {o}.orders (client_id, channel, channel_order_id, channel_order_id_lc,
    parent_order_id, parent_order_id_lc, kind, status, fulfilment, grade,
    marketplace_fulfilled, priority, order_time, dispatch_by, start_processing,
    dispatch_after, replacement_for, pool, failure_reason, unknown_skus, channel_conflict,
    fingerprint, alloc_attempts, waiting, created_at, updated_at)
    VALUES ('bench', 'AMAZON', 'P' || (:n)::text, 'p' || (:n)::text, '', '', 'MARKETPLACE',
    'FULFILLABLE', 'SINGLE_SHIPMENT_PARTIAL', 'PASS', 0, 0, 1796461583879008, NULL, NULL,
    NULL, '', 'COMMON', '', '', '', '3ea49667e928e5d1', 1, 0, 1796461583879008,
    1796461583879008);
INSERT INTO {o}.order_lines (order_id, line_no, marketplace_sku, sku, quantity, price_paise,
    cancelled, held, picked, packed, invoiced, dispatched)
    VALUES (currval('{o}.orders_id_seq'), 1, 'M-' || (:sku)::text, 'SKU-' || (:sku)::text,
    1, 49900, 0, 1, 0, 0, 0, 0);
INSERT INTO {o}.order_history (order_id, at, actor, from_status, to_status, reason) VALUES
    (currval('{o}.orders_id_seq'), 1796461583879008, 'bench', '', 'CREATED',
    'received from AMAZON'),
    (currval('{o}.orders_id_seq'), 1796461583879008, 'bench', 'CREATED', 'FULFILLABLE',
    'allocated 1 of 1 units from pool COMMON');
UPDATE {i}.stock SET available = available - 1, allocated = allocated + 1,
    updated_at = 1796461583879008 WHERE client_id = 'bench' AND sku = 'SKU-' || (:sku)::text
    AND pool = 'COMMON' AND grade = 1;
INSERT INTO {i}.ledger (client_id, sku, grade, from_pool, from_state, to_pool, to_state,
    quantity, reason, actor, reference, idempotency_key, order_ref, line_id, created_at)
    VALUES ('bench', 'SKU-' || (:sku)::text, 1, 'COMMON', 1, 'COMMON', 2, 1, 3, 'order', '',
    'AMAZON' || chr(58) || 'P' || (:n)::text || '#alloc-1',
    'AMAZON' || chr(58) || 'P' || (:n)::text, '1', 1796461583879008);
INSERT INTO {i}.stock_changes (txid, client_id, sku, pool, grade, available, allocated,
    recycle, reason, created_at)
    VALUES (CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), 'bench',
    'SKU-' || (:sku)::text, 'COMMON', 1, 999999999, 1, 0, 3, 1796461583879008);
INSERT INTO {i}.allocations (client_id, order_ref, line_id, sku, pool, grade, quantity,
    consumed, released, created_at, updated_at)
    VALUES ('bench', 'AMAZON' || chr(58) || 'P' || (:n)::text, '1', 'SKU-' || (:sku)::text,
    'COMMON', 1, 1, 0, 0, 1796461583879008, 1796461583879008);
INSERT INTO {i}.idempotency (client_id, idem_key, method, request, response, created_at)
    VALUES ('bench', 'AMAZON' || chr(58) || 'P' || (:n)::text || '#alloc-1', 'Allocate',
    decode(repeat('5a', 90), 'hex'), decode(repeat('a5', 36), 'hex'), 1796461583879008);
END;
",
        last = skus - 1,
        o = PLAIN_ORDER,
        i = PLAIN_INVENTORY,
    );
    let path = cluster.dir.join("create_order.sql");
    std::fs::write(&path, script).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Runs pgbench with `clients` clients, `transactions` each; returns its tps.
async fn pgbench(
    cluster: &PgCluster,
    script: &std::path::Path,
    clients: usize,
    transactions: usize,
) -> anyhow::Result<f64> {
    let binary = cluster.bin_dir.join("pgbench");
    let threads = clients.min(4);
    let output = tokio::process::Command::new(&binary)
        .args(["-n", "-M", "prepared", "-U", "postgres"])
        .arg("-h")
        .arg(&cluster.dir)
        .args(["-p", &cluster.port.to_string()])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-t", &transactions.max(1).to_string()])
        .arg("-f")
        .arg(script)
        .arg("bench_plain")
        .output()
        .await
        .with_context(|| format!("run {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .with_context(|| format!("no tps in pgbench output: {stdout}"))
}
