//! Stock, availability, allocations, the ledger, stock as of a past time, explanations and
//! the audit.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::AllocationMode::Partial;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::*;

async fn stock_is_read_by_sku_pool_and_grade_and_listed_by_page(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    for sku in ["A", "B", "C"] {
        app.receive(sku, PASS, 4).await;
    }
    app.receive("A", FAIL, 1).await;
    app.create_pool("R", &[]).await;
    app.move_stock("COMMON", "R", "A", 1).await;

    let a = app
        .client
        .get_stock(pb::GetStockRequest {
            client_id: CLIENT.into(),
            skus: vec!["A".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .list_stock(pb::ListStockRequest {
                client_id: CLIENT.into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(
            page.levels
                .into_iter()
                .map(|l| format!("{}/{}/{}", l.sku, l.pool, l.grade)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let no_skus = app
        .client
        .get_stock(pb::GetStockRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await;
    let bad_token = app
        .client
        .list_stock(pb::ListStockRequest {
            client_id: CLIENT.into(),
            page_token: "zz".into(),
            ..Default::default()
        })
        .await;

    assert_eq!(
        a.levels.len(),
        3,
        "A in COMMON PASS, COMMON FAIL and R PASS"
    );
    assert_eq!(
        listed,
        vec![
            "A/COMMON/1",
            "A/COMMON/2",
            "A/R/1",
            "B/COMMON/1",
            "C/COMMON/1"
        ]
    );
    assert_error(no_skus, Code::InvalidArgument, "skus");
    assert_error(bad_token, Code::InvalidArgument, "page_token");
}

async fn channel_availability_subtracts_the_safety_buffer_never_below_zero(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.receive("SKU-1", FAIL, 50).await;
    let buffer = |quantity: i64| pb::SetSafetyBufferRequest {
        client_id: CLIENT.into(),
        channel: "AMAZON".into(),
        quantity,
        idempotency_key: key(),
        actor: "ops".into(),
    };
    let availability = |app: &TestApp| {
        let mut client = app.client.clone();
        async move {
            client
                .get_channel_availability(pb::GetChannelAvailabilityRequest {
                    client_id: CLIENT.into(),
                    channel: "AMAZON".into(),
                    skus: vec!["SKU-1".into(), "SKU-2".into()],
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    app.client.set_safety_buffer(buffer(3)).await.unwrap();
    let with_three = availability(&app).await;
    app.client.set_safety_buffer(buffer(10)).await.unwrap();
    let with_ten = availability(&app).await;
    let buffers = app
        .client
        .list_safety_buffers(pb::ListSafetyBuffersRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    app.client.set_safety_buffer(buffer(0)).await.unwrap();
    let cleared = availability(&app).await;
    let negative = app.client.set_safety_buffer(buffer(-1)).await;

    assert_eq!(with_three.pool, "COMMON");
    assert_eq!(
        (with_three.skus[0].available, with_three.skus[0].sellable),
        (5, 2)
    );
    assert_eq!(
        with_three.skus[1].sellable, 0,
        "an unknown SKU has nothing to sell"
    );
    assert_eq!(with_ten.skus[0].sellable, 0);
    assert_eq!(buffers.safety_buffers.len(), 1);
    assert_eq!(buffers.safety_buffers[0].quantity, 10);
    assert_eq!(cleared.skus[0].sellable, 5);
    assert_error(negative, Code::InvalidArgument, "quantity");
}

async fn allocations_are_listed_by_order_by_sku_and_open_ones(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 10).await;
    app.receive("B", PASS, 10).await;
    app.allocate("O:1", "COMMON", Partial, &[("1", "A", 1), ("2", "B", 1)])
        .await
        .unwrap();
    app.allocate("O:2", "COMMON", Partial, &[("1", "A", 2)])
        .await
        .unwrap();
    app.client
        .release(pb::ReleaseRequest {
            client_id: CLIENT.into(),
            order_ref: "O:2".into(),
            idempotency_key: key(),
            actor: "order".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = |order_ref: &str, sku: &str, open_only: bool, page_size: i32, page_token: String| {
        pb::ListAllocationsRequest {
            client_id: CLIENT.into(),
            order_ref: order_ref.into(),
            sku: sku.into(),
            pool: String::new(),
            open_only,
            page_size,
            page_token,
        }
    };

    let by_order = app
        .client
        .list_allocations(list("O:1", "", false, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    let by_sku = app
        .client
        .list_allocations(list("", "A", false, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    let open = app
        .client
        .list_allocations(list("", "", true, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    let first_page = app
        .client
        .list_allocations(list("", "", false, 2, String::new()))
        .await
        .unwrap()
        .into_inner();
    let second_page = app
        .client
        .list_allocations(list("", "", false, 2, first_page.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    let other_filters = app
        .client
        .list_allocations(list("", "A", false, 2, first_page.next_page_token.clone()))
        .await;

    assert_eq!(by_order.allocations.len(), 2);
    assert_eq!(by_sku.allocations.len(), 2);
    assert_eq!(open.allocations.len(), 2, "the released line is not open");
    assert_eq!(first_page.allocations.len(), 2);
    assert_eq!(second_page.allocations.len(), 1);
    assert!(second_page.next_page_token.is_empty());
    assert_error(other_filters, Code::InvalidArgument, "other filters");
    let released = by_sku
        .allocations
        .iter()
        .find(|a| a.order_ref == "O:2")
        .unwrap();
    assert_eq!((released.quantity, released.released), (0, 2));
}

async fn the_ledger_lists_transfers_by_sku_pool_order_and_time(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 10).await;
    let middle = now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.create_pool("R", &[]).await;
    app.move_stock("COMMON", "R", "A", 3).await;
    app.receive("B", PASS, 1).await;
    app.allocate("O:1", "R", Partial, &[("1", "A", 1)])
        .await
        .unwrap();
    let ledger =
        |sku: &str, pool: &str, order_ref: &str, start: Option<i64>| pb::ListLedgerRequest {
            client_id: CLIENT.into(),
            sku: sku.into(),
            pool: pool.into(),
            order_ref: order_ref.into(),
            start_time: start.map(to_timestamp),
            ..Default::default()
        };

    let of_a = app
        .client
        .list_ledger(ledger("A", "", "", None))
        .await
        .unwrap()
        .into_inner();
    let of_r = app
        .client
        .list_ledger(ledger("", "R", "", None))
        .await
        .unwrap()
        .into_inner();
    let of_order = app
        .client
        .list_ledger(ledger("", "", "O:1", None))
        .await
        .unwrap()
        .into_inner();
    let later = app
        .client
        .list_ledger(ledger("", "", "", Some(middle)))
        .await
        .unwrap()
        .into_inner();
    let backwards = app
        .client
        .list_ledger(pb::ListLedgerRequest {
            start_time: Some(to_timestamp(middle)),
            end_time: Some(to_timestamp(middle - 1)),
            ..ledger("", "", "", None)
        })
        .await;

    let reasons =
        |transfers: &[pb::Transfer]| transfers.iter().map(|t| t.reason).collect::<Vec<_>>();
    use pb::TransferReason::*;
    assert_eq!(
        reasons(&of_a.transfers),
        vec![Receive as i32, PoolMove as i32, Allocate as i32]
    );
    assert_eq!(
        reasons(&of_r.transfers),
        vec![PoolMove as i32, Allocate as i32]
    );
    assert_eq!(of_order.transfers.len(), 1);
    assert_eq!(of_order.transfers[0].line_id, "1");
    assert_eq!(later.transfers.len(), 3);
    assert!(
        of_a.transfers[0].from_bucket.is_none(),
        "a receipt comes from outside"
    );
    assert_error(backwards, Code::InvalidArgument, "end_time");
}

async fn stock_as_of_three_points_of_a_scripted_history(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let before_anything = now_micros();
    pause().await;
    app.receive("A", PASS, 10).await;
    app.create_pool("R", &[]).await;
    pause().await;
    let after_receipt = now_micros();
    pause().await;
    app.move_stock("COMMON", "R", "A", 4).await;
    app.allocate("O:1", "COMMON", Partial, &[("1", "A", 2)])
        .await
        .unwrap();
    pause().await;
    let after_allocation = now_micros();
    pause().await;
    app.client
        .consume(pb::ConsumeRequest {
            client_id: CLIENT.into(),
            order_ref: "O:1".into(),
            lines: vec![pb::ConsumeLine {
                line_id: "1".into(),
                quantity: 2,
            }],
            reference: "INV-9".into(),
            idempotency_key: key(),
            actor: "billing".into(),
        })
        .await
        .unwrap();
    let as_of = |at: i64| pb::GetStockAsOfRequest {
        client_id: CLIENT.into(),
        sku: "A".into(),
        as_of_time: Some(to_timestamp(at)),
        ..Default::default()
    };
    let figures = |response: pb::GetStockAsOfResponse| {
        response
            .levels
            .into_iter()
            .map(|l| {
                let t = l.totals.unwrap();
                (l.pool, t.available, t.allocated, t.recycle)
            })
            .collect::<Vec<_>>()
    };

    let empty = app
        .client
        .get_stock_as_of(as_of(before_anything))
        .await
        .unwrap()
        .into_inner();
    let received = app
        .client
        .get_stock_as_of(as_of(after_receipt))
        .await
        .unwrap()
        .into_inner();
    let allocated = app
        .client
        .get_stock_as_of(as_of(after_allocation))
        .await
        .unwrap()
        .into_inner();
    let now = app
        .client
        .get_stock_as_of(as_of(now_micros()))
        .await
        .unwrap()
        .into_inner();
    let missing_time = app
        .client
        .get_stock_as_of(pb::GetStockAsOfRequest {
            as_of_time: None,
            ..as_of(0)
        })
        .await;

    assert!(empty.levels.is_empty());
    assert_eq!(empty.last_transfer_id, 0);
    assert_eq!(figures(received), vec![("COMMON".to_string(), 10, 0, 0)]);
    assert_eq!(
        figures(allocated),
        vec![("COMMON".to_string(), 4, 2, 0), ("R".to_string(), 4, 0, 0)]
    );
    assert_eq!(
        figures(now),
        vec![("COMMON".to_string(), 4, 0, 0), ("R".to_string(), 4, 0, 0)]
    );
    assert_error(missing_time, Code::InvalidArgument, "as_of_time");
    app.assert_books_clean().await;
}

async fn explain_availability_names_the_smallest_steps_that_cover_the_quantity(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 10).await;
    app.receive("A", FAIL, 7).await;
    app.create_pool("FK", &["FLIPKART"]).await;
    app.create_pool("BIG", &[]).await;
    app.move_stock("COMMON", "FK", "A", 1).await;
    app.move_stock("COMMON", "BIG", "A", 6).await;
    app.client
        .recycle(pb::RecycleRequest {
            client_id: CLIENT.into(),
            pool: "FK".into(),
            sku: "A".into(),
            grade: PASS,
            quantity: 1,
            reason: "torn".into(),
            idempotency_key: key(),
            actor: "qc".into(),
        })
        .await
        .unwrap();

    let explained = app
        .client
        .explain_availability(pb::ExplainAvailabilityRequest {
            client_id: CLIENT.into(),
            sku: "A".into(),
            pool: String::new(),
            channel: "FLIPKART".into(),
            grade: PASS,
            quantity: 4,
        })
        .await
        .unwrap()
        .into_inner();
    let both = app
        .client
        .explain_availability(pb::ExplainAvailabilityRequest {
            client_id: CLIENT.into(),
            sku: "A".into(),
            pool: "FK".into(),
            channel: "FLIPKART".into(),
            grade: PASS,
            quantity: 4,
        })
        .await;
    let never_held = app
        .client
        .explain_availability(pb::ExplainAvailabilityRequest {
            client_id: CLIENT.into(),
            sku: "NOPE".into(),
            pool: "COMMON".into(),
            channel: String::new(),
            grade: PASS,
            quantity: 1,
        })
        .await
        .unwrap()
        .into_inner();

    assert!(
        never_held.summary.contains("never held") && !explained.summary.contains("never held"),
        "{} / {}",
        never_held.summary,
        explained.summary
    );
    assert_eq!(explained.pool, "FK");
    assert_eq!(explained.pool_choice, "assigned");
    assert_eq!(explained.shortfall, 4);
    assert_eq!(explained.target.unwrap().recycle, 1);
    assert_eq!(explained.other_grade.len(), 1);
    let steps: Vec<(i32, &str, i64)> = explained
        .remedies
        .iter()
        .map(|r| (r.kind, r.from_pool.as_str(), r.quantity))
        .collect();
    assert_eq!(
        steps,
        vec![
            (pb::RemedyKind::MakeLive as i32, "FK", 1),
            (pb::RemedyKind::Move as i32, "COMMON", 3)
        ]
    );
    assert!(explained.summary.contains("short"), "{}", explained.summary);
    assert_error(both, Code::InvalidArgument, "channel");
}

async fn audit_finds_a_tampered_bucket_and_names_its_transfers(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("A", PASS, 10).await;
    app.allocate("O:1", "COMMON", Partial, &[("1", "A", 2)])
        .await
        .unwrap();
    sqlx::query("UPDATE stock SET available = available + 5 WHERE sku = 'A'")
        .execute(app.db.pool())
        .await
        .unwrap();

    let audit = app
        .client
        .audit(pb::AuditRequest {
            client_id: CLIENT.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let bad_client = app
        .client
        .audit(pb::AuditRequest {
            client_id: "NOT VALID".into(),
        })
        .await;

    assert!(!audit.clean);
    let kinds: Vec<i32> = audit.discrepancies.iter().map(|d| d.kind).collect();
    assert!(
        kinds.contains(&(pb::DiscrepancyKind::BucketLedgerMismatch as i32)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(pb::DiscrepancyKind::SkuBalanceMismatch as i32)),
        "{kinds:?}"
    );
    let bucket = audit
        .discrepancies
        .iter()
        .find(|d| d.kind == pb::DiscrepancyKind::BucketLedgerMismatch as i32)
        .unwrap();
    assert_eq!((bucket.expected, bucket.actual), (8, 13));
    assert_eq!(bucket.transfer_ids.len(), 2);
    assert_error(bad_client, Code::InvalidArgument, "client_id");

    sqlx::query("UPDATE stock SET available = available - 5 WHERE sku = 'A'")
        .execute(app.db.pool())
        .await
        .unwrap();
    app.assert_books_clean().await;
}

async fn bad_reads_and_settings_name_the_field(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    let mut c = app.client.clone();

    let sweep_pool_alone = c
        .sweep_expired_pools(pb::SweepExpiredPoolsRequest {
            pool: "SALE".into(),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await;
    let availability_bad_channel = c
        .get_channel_availability(pb::GetChannelAvailabilityRequest {
            client_id: CLIENT.into(),
            channel: "amazon".into(),
            skus: vec!["A".into()],
        })
        .await;
    let serving_no_channel = c
        .get_serving_pool(pb::GetServingPoolRequest {
            client_id: CLIENT.into(),
            channel: String::new(),
        })
        .await;
    let buffer_too_big = c
        .set_safety_buffer(pb::SetSafetyBufferRequest {
            client_id: CLIENT.into(),
            channel: "AMAZON".into(),
            quantity: 1_000_000_001,
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await;
    let allocations_bad_token = c
        .list_allocations(pb::ListAllocationsRequest {
            client_id: CLIENT.into(),
            page_token: "not-hex".into(),
            ..Default::default()
        })
        .await;
    let ledger_bad_sku = c
        .list_ledger(pb::ListLedgerRequest {
            client_id: CLIENT.into(),
            sku: "a b".into(),
            ..Default::default()
        })
        .await;
    let as_of_bad_grade = c
        .get_stock_as_of(pb::GetStockAsOfRequest {
            client_id: CLIENT.into(),
            sku: "A".into(),
            grade: 7,
            as_of_time: Some(to_timestamp(now_micros())),
            ..Default::default()
        })
        .await;
    let explain_zero = c
        .explain_availability(pb::ExplainAvailabilityRequest {
            client_id: CLIENT.into(),
            sku: "A".into(),
            pool: "COMMON".into(),
            grade: PASS,
            quantity: 0,
            ..Default::default()
        })
        .await;
    let feed_bad_size = c
        .list_stock_changes(pb::ListStockChangesRequest {
            page_size: -1,
            ..Default::default()
        })
        .await;

    assert_error(sweep_pool_alone, Code::InvalidArgument, "client_id");
    assert_error(availability_bad_channel, Code::InvalidArgument, "channel");
    assert_error(serving_no_channel, Code::InvalidArgument, "channel");
    assert_error(buffer_too_big, Code::InvalidArgument, "quantity");
    assert_error(allocations_bad_token, Code::InvalidArgument, "page_token");
    assert_error(ledger_bad_sku, Code::InvalidArgument, "sku");
    assert_error(as_of_bad_grade, Code::InvalidArgument, "grade");
    assert_error(explain_zero, Code::InvalidArgument, "quantity");
    assert_error(feed_bad_size, Code::InvalidArgument, "page_size");
    app.assert_books_clean().await;
}

kosha_testkit::store_tests!(
    bad_reads_and_settings_name_the_field,
    stock_is_read_by_sku_pool_and_grade_and_listed_by_page,
    channel_availability_subtracts_the_safety_buffer_never_below_zero,
    allocations_are_listed_by_order_by_sku_and_open_ones,
    the_ledger_lists_transfers_by_sku_pool_order_and_time,
    stock_as_of_three_points_of_a_scripted_history,
    explain_availability_names_the_smallest_steps_that_cover_the_quantity,
    audit_finds_a_tampered_bucket_and_names_its_transfers,
);
