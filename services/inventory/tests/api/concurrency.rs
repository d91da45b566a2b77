//! Many clients, and two servers on one database, allocating the same stock at once.

use std::collections::HashMap;

use kosha_inventory::config::Settings;
use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_testkit::TestDatabase;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::transport::Channel;

use crate::support::*;

const CLIENTS: usize = 64;
const ALLOCATIONS: usize = 2_000;
const SKUS: usize = 10;
const POOLS: [&str; 3] = ["COMMON", "R1", "R2"];

async fn sixty_four_clients_allocate_exactly_the_stock_there_is(db: TestDatabase) {
    allocate_concurrently(&db, 1).await;
}

async fn two_servers_on_one_database_allocate_exactly_the_stock_there_is(db: TestDatabase) {
    allocate_concurrently(&db, 2).await;
}

/// 500 units of 10 SKUs across COMMON and two reserve pools; 64 clients place 2,000
/// allocations of 1-3 units (some with two lines, some resent with the same key) through
/// `servers` servers sharing the database.
async fn allocate_concurrently(db: &TestDatabase, servers: usize) {
    // Arrange: 50 units per SKU, 20 in COMMON and 15 in each reserve pool.
    let mut apps = Vec::new();
    for _ in 0..servers {
        apps.push(spawn_app_with(db, Settings::default(), NO_SCHEDULER).await);
    }
    let app = &mut apps[0];
    app.create_pool("R1", &[]).await;
    app.create_pool("R2", &[]).await;
    for sku in 0..SKUS {
        let sku = format!("SKU-{sku}");
        app.receive(&sku, PASS, 50).await;
        app.move_stock("COMMON", "R1", &sku, 15).await;
        app.move_stock("COMMON", "R2", &sku, 15).await;
    }
    let clients: Vec<InventoryServiceClient<Channel>> =
        apps.iter().map(|app| app.client.clone()).collect();

    // Act: every client takes its share of the requests, from a seeded generator.
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let mut client = clients[worker % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            let mut allocated: HashMap<(String, String), i64> = HashMap::new();
            for n in (worker..ALLOCATIONS).step_by(CLIENTS) {
                let pool = POOLS[rng.random_range(0..POOLS.len())];
                let line_count = if rng.random_bool(0.2) { 2 } else { 1 };
                let lines: Vec<(String, String, i64)> = (0..line_count)
                    .map(|line| {
                        let sku = format!("SKU-{}", rng.random_range(0..SKUS));
                        (line.to_string(), sku, rng.random_range(1..=3))
                    })
                    .collect();
                let lines_ref: Vec<(&str, &str, i64)> = lines
                    .iter()
                    .map(|(l, s, q)| (l.as_str(), s.as_str(), *q))
                    .collect();
                let request = allocate_request(
                    &format!("LOAD:{n}"),
                    pool,
                    pb::AllocationMode::Partial,
                    &lines_ref,
                    false,
                );
                let response = client
                    .allocate(request.clone())
                    .await
                    .expect("allocate")
                    .into_inner();
                if rng.random_bool(0.1) {
                    let resent = client.allocate(request).await.expect("resend").into_inner();
                    assert_eq!(resent, response, "a resent request gets the first response");
                }
                for line in &response.lines {
                    *allocated
                        .entry((line.sku.clone(), pool.to_string()))
                        .or_default() += line.allocated_now;
                }
            }
            allocated
        }));
    }
    let mut allocated: HashMap<(String, String), i64> = HashMap::new();
    for task in tasks {
        for (key, units) in task.await.expect("client task") {
            *allocated.entry(key).or_default() += units;
        }
    }

    // Assert: every unit allocated exactly once, nothing negative, books clean.
    let app = &mut apps[0];
    let mut total_allocated = 0;
    for sku in 0..SKUS {
        let sku = format!("SKU-{sku}");
        for pool in POOLS {
            let (available, held, recycle) = app.totals(&sku, pool, PASS).await;
            let expected = if pool == "COMMON" { 20 } else { 15 };
            assert_eq!(available, 0, "{sku} in {pool}: demand far exceeds stock");
            assert_eq!(
                held, expected,
                "{sku} in {pool}: all of it allocated, no more"
            );
            assert_eq!(recycle, 0);
            assert_eq!(
                allocated
                    .get(&(sku.clone(), pool.to_string()))
                    .copied()
                    .unwrap_or(0),
                held
            );
            total_allocated += held;
        }
    }
    assert_eq!(total_allocated, 500);
    let negative: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock WHERE available < 0 OR allocated < 0 OR recycle < 0",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(negative, 0);
    app.assert_books_clean().await;
}

async fn concurrent_retries_of_one_order_line_with_different_keys_allocate_it_once(
    db: TestDatabase,
) {
    let a = spawn_app(&db).await;
    let b = spawn_app(&db).await;
    let mut setup = a.client.clone();
    setup
        .receive(pb::ReceiveRequest {
            client_id: CLIENT.into(),
            reference: "GRN".into(),
            lines: vec![pb::ReceiveLine {
                sku: "HOT".into(),
                grade: PASS,
                quantity: 1000,
            }],
            idempotency_key: key(),
            actor: "test".into(),
        })
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for attempt in 0..16 {
        let mut client = if attempt % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        tasks.push(tokio::spawn(async move {
            let request = allocate_request(
                "AMAZON:RACE",
                "COMMON",
                pb::AllocationMode::Partial,
                &[("1", "HOT", 3)],
                attempt % 3 == 0,
            );
            client
                .allocate(request)
                .await
                .expect("allocate")
                .into_inner()
        }));
    }
    let mut newly_allocated = 0;
    for task in tasks {
        newly_allocated += task.await.unwrap().lines[0].allocated_now;
    }

    let mut a = a;
    assert_eq!(
        newly_allocated, 3,
        "the line got its 3 units once, whoever won"
    );
    assert_eq!(a.totals("HOT", "COMMON", PASS).await, (997, 3, 0));
    a.assert_books_clean().await;
}

/// A server keeps the stock figures its batches read and wrote, and uses them for its next
/// batch. Another server allocating the same stock in between makes them stale: the next
/// batch must notice and allocate from what is really there.
async fn figures_kept_from_an_earlier_batch_never_oversell_after_another_server_allocates(
    db: TestDatabase,
) {
    let mut a = spawn_app(&db).await;
    let mut b = spawn_app(&db).await;
    a.receive("KEPT", PASS, 5).await;
    let partial = pb::AllocationMode::Partial;

    // a reads and keeps the row (4 left after its batch); b takes 3 of them behind it.
    a.allocate("O-1", "COMMON", partial, &[("1", "KEPT", 1)])
        .await
        .unwrap();
    b.allocate("O-2", "COMMON", partial, &[("1", "KEPT", 3)])
        .await
        .unwrap();
    let late = a
        .allocate("O-3", "COMMON", partial, &[("1", "KEPT", 3)])
        .await
        .unwrap();
    let after = a
        .allocate("O-4", "COMMON", partial, &[("1", "KEPT", 1)])
        .await
        .unwrap();

    assert_eq!(late.lines[0].allocated_now, 1, "only one unit was left");
    assert_eq!(after.lines[0].allocated_now, 0, "nothing was left");
    assert_eq!(a.totals("KEPT", "COMMON", PASS).await, (0, 5, 0));
    a.assert_books_clean().await;
}

kosha_testkit::store_tests!(
    sixty_four_clients_allocate_exactly_the_stock_there_is,
    two_servers_on_one_database_allocate_exactly_the_stock_there_is,
    concurrent_retries_of_one_order_line_with_different_keys_allocate_it_once,
    figures_kept_from_an_earlier_batch_never_oversell_after_another_server_allocates,
);
