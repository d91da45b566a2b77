//! The change feed: ordered, resumable, and never skipping a change committed late.

use std::collections::HashSet;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_testkit::{Store, TestDatabase};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

/// Reads the feed from `cursor` until at least `want` changes came (or ten seconds
/// passed). On PostgreSQL a change shows once every older transaction in the cluster has
/// ended, and other tests run transactions there at the same time, so a reader polls.
async fn read_at_least(
    client: &mut InventoryServiceClient<Channel>,
    cursor: &mut String,
    want: usize,
) -> Vec<pb::StockChange> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut changes = read_all(client, cursor).await;
    while changes.len() < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        changes.extend(read_all(client, cursor).await);
    }
    changes
}

/// Reads the feed from `cursor` until nothing new is visible.
async fn read_all(
    client: &mut InventoryServiceClient<Channel>,
    cursor: &mut String,
) -> Vec<pb::StockChange> {
    let mut changes = Vec::new();
    loop {
        let page = client
            .list_stock_changes(pb::ListStockChangesRequest {
                client_id: String::new(),
                after_cursor: cursor.clone(),
                page_size: 50,
            })
            .await
            .expect("read the feed")
            .into_inner();
        *cursor = page.next_cursor;
        if page.changes.is_empty() {
            return changes;
        }
        changes.extend(page.changes);
    }
}

async fn the_feed_lists_every_change_in_order_and_resumes_from_a_cursor(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 5).await;
    app.create_pool("R", &[]).await;
    app.move_stock("COMMON", "R", "A", 2).await;
    app.allocate("O:1", "R", pb::AllocationMode::Partial, &[("1", "A", 1)])
        .await
        .unwrap();

    let mut cursor = String::new();
    let everything = read_at_least(&mut app.client, &mut cursor, 4).await;
    let mut from_second = everything[0].cursor.clone();
    let after_first = read_at_least(&mut app.client, &mut from_second, 3).await;
    app.receive("A", PASS, 1).await;
    let newer = read_at_least(&mut app.client, &mut cursor, 1).await;
    let junk = app
        .client
        .list_stock_changes(pb::ListStockChangesRequest {
            after_cursor: "x".into(),
            ..Default::default()
        })
        .await;

    let figures: Vec<(&str, i64, i64)> = everything
        .iter()
        .map(|c| {
            (
                c.pool.as_str(),
                c.totals.unwrap().available,
                c.totals.unwrap().allocated,
            )
        })
        .collect();
    assert_eq!(
        figures,
        vec![("COMMON", 5, 0), ("COMMON", 3, 0), ("R", 2, 0), ("R", 1, 1)]
    );
    assert_eq!(everything[0].reason, pb::TransferReason::Receive as i32);
    assert_eq!(after_first.len(), 3);
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].totals.unwrap().available, 4);
    assert_error(junk, Code::InvalidArgument, "after_cursor");
}

async fn a_reader_following_the_feed_during_concurrent_writes_sees_every_change(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SEED", PASS, 1).await;
    let mut reader = app.client.clone();

    // Writers: receipts and allocations of a few SKUs from many tasks at once.
    let mut writers = Vec::new();
    for writer in 0..16 {
        let mut client = app.client.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..15 {
                let sku = format!("S{}", (writer + n) % 4);
                client
                    .receive(pb::ReceiveRequest {
                        client_id: CLIENT.into(),
                        reference: "GRN".into(),
                        lines: vec![pb::ReceiveLine {
                            sku: sku.clone(),
                            grade: PASS,
                            quantity: 2,
                        }],
                        idempotency_key: key(),
                        actor: "test".into(),
                    })
                    .await
                    .unwrap();
                client
                    .allocate(allocate_request(
                        &format!("W{writer}:{n}"),
                        "COMMON",
                        pb::AllocationMode::Partial,
                        &[("1", &sku, 1)],
                        false,
                    ))
                    .await
                    .unwrap();
            }
        }));
    }

    // The reader follows the feed while they write, then catches up.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    while writers.iter().any(|writer| !writer.is_finished()) {
        seen.extend(read_all(&mut reader, &mut cursor).await);
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let stored: Vec<(i64, i64)> =
        sqlx::query_as("SELECT txid, id FROM stock_changes ORDER BY txid, id")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    let missing = stored.len().saturating_sub(seen.len());
    seen.extend(read_at_least(&mut reader, &mut cursor, missing).await);
    let read: Vec<(i64, i64)> = seen
        .iter()
        .map(|change| {
            let (txid, id) = change.cursor.split_once('.').unwrap();
            (txid.parse().unwrap(), id.parse().unwrap())
        })
        .collect();
    let distinct: HashSet<&(i64, i64)> = read.iter().collect();
    assert_eq!(distinct.len(), read.len(), "no change is listed twice");
    assert_eq!(
        read, stored,
        "every committed change is listed, in feed order"
    );
    app.assert_books_clean().await;
}

/// PostgreSQL hands out row ids at insert time, so a change of a transaction that started
/// earlier can commit after a later one. The feed must hold the later one back until the
/// earlier one has ended, or a reader resuming from the later cursor would skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_an_open_transaction_holds_back_later_changes_on_postgres() {
    let Some(db) = TestDatabase::create(Store::Postgres).await else {
        return;
    };
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 1).await;
    let mut cursor = String::new();
    read_at_least(&mut app.client, &mut cursor, 1).await;

    // An earlier transaction writes a change and stays open...
    let mut open = app.db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO stock_changes (txid, client_id, sku, pool, grade, available, allocated, \
         recycle, reason, created_at) VALUES (CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), \
         'acme', 'EARLY', 'COMMON', 1, 0, 0, 0, 1, 0)",
    )
    .execute(&mut *open)
    .await
    .unwrap();
    // ...while a later one commits.
    app.receive("B", PASS, 1).await;
    let while_open = read_all(&mut app.client, &mut cursor).await;
    open.commit().await.unwrap();
    let after = read_at_least(&mut app.client, &mut cursor, 2).await;

    assert!(
        while_open.is_empty(),
        "nothing past the open transaction is listed yet"
    );
    let skus: Vec<&str> = after.iter().map(|c| c.sku.as_str()).collect();
    assert_eq!(skus, vec!["EARLY", "B"]);
}

kosha_testkit::store_tests!(
    the_feed_lists_every_change_in_order_and_resumes_from_a_cursor,
    a_reader_following_the_feed_during_concurrent_writes_sees_every_change,
);
