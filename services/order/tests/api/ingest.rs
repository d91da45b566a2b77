//! Taking orders in: resolution, allocation on arrival, idempotency, concurrency, crashes.

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_testkit::TestDatabase;

use crate::harness::{CLIENT, Options, order, spawn_app};

async fn a_marketplace_order_is_allocated_on_arrival_and_a_resend_changes_nothing(
    db: TestDatabase,
) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let request = order("AMAZON", "404-1111111-1111111", &[("AM-1", 2)]);

    // Act
    let first = app
        .orders
        .clone()
        .create_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    let resend = app
        .orders
        .clone()
        .create_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    let mut changed = request.clone();
    changed.lines[0].quantity = 3;
    let conflict = app.orders.clone().create_order(changed).await.unwrap_err();

    // Assert
    let created = first.order.unwrap();
    assert!(first.created);
    assert_eq!(created.status(), api::OrderStatus::Fulfillable);
    assert_eq!(created.lines[0].sku, "SKU-1");
    assert_eq!(created.lines[0].allocated_quantity, 2);
    assert_eq!(created.pool, "COMMON");
    assert!(!resend.created);
    assert_eq!(resend.order.unwrap().order_id, created.order_id);
    assert_eq!(conflict.code(), tonic::Code::AlreadyExists);
    assert_eq!(app.available("SKU-1").await, 3);
    let history = app.history(&created.order_id).await;
    let statuses: Vec<_> = history.iter().map(|entry| entry.to_status()).collect();
    assert_eq!(
        statuses,
        vec![api::OrderStatus::Created, api::OrderStatus::Fulfillable]
    );
    app.assert_audit_clean().await;
}

async fn bad_input_is_refused_with_the_field_named_and_stores_nothing(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    let mut bad = order("AMAZON", "A-1", &[("AM-1", 0)]);
    bad.client_id = "Acme Corp".into();
    bad.actor = "ops\nadmin".into();
    let mut not_ascii = order("AMAZON", "ÄÖ-1", &[("AM-1", 1)]);
    not_ascii.actor = "a".repeat(129);
    not_ascii.dispatch_after_time = Some(prost_types::Timestamp {
        seconds: 253_402_300_799,
        nanos: 0,
    });

    // Act
    let status = app.orders.clone().create_order(bad).await.unwrap_err();
    let not_ascii = app
        .orders
        .clone()
        .create_order(not_ascii)
        .await
        .unwrap_err();
    let backwards = app
        .orders
        .clone()
        .search_orders(api::SearchOrdersRequest {
            client_id: CLIENT.into(),
            order_time_from: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            order_time_to: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let wrong_kind = app
        .orders
        .clone()
        .create_order(order("WHOLESALE", "W-1", &[("AM-1", 1)]))
        .await
        .unwrap_err();
    let unknown_channel = app
        .orders
        .clone()
        .create_order(order("SNAPDEAL", "S-1", &[("AM-1", 1)]))
        .await
        .unwrap_err();
    let search = app
        .orders
        .clone()
        .search_orders(api::SearchOrdersRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("problems"),
        "{}",
        status.message()
    );
    let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
    let fields: Vec<_> = details
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(
        fields.contains(&"client_id")
            && fields.contains(&"lines[0].quantity")
            && fields.contains(&"actor"),
        "{fields:?}"
    );
    let details = tonic_types::StatusExt::get_details_bad_request(&not_ascii).unwrap();
    let fields: Vec<_> = details
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["channel_order_id", "dispatch_after_time", "actor"],
        "{}",
        not_ascii.message()
    );
    assert_eq!(backwards.code(), tonic::Code::InvalidArgument);
    assert!(
        backwards.message().contains("order_time_to"),
        "{}",
        backwards.message()
    );
    assert_eq!(wrong_kind.code(), tonic::Code::InvalidArgument);
    assert!(
        wrong_kind.message().contains("CreateBulkOrder"),
        "{}",
        wrong_kind.message()
    );
    assert_eq!(unknown_channel.code(), tonic::Code::InvalidArgument);
    assert!(search.orders.is_empty());
}

async fn an_unknown_marketplace_sku_fails_the_order_until_the_listing_is_added(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-2", 4, QcGrade::Pass).await;

    // Act
    let failed = app
        .create(order("AMAZON", "404-2", &[("AM-1", 1), ("AM-NEW", 2)]))
        .await;
    let report = app
        .orders
        .clone()
        .list_failed_orders(api::ListFailedOrdersRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    app.add_listing("AMAZON", "AM-NEW", "SKU-2").await;
    let retry = app
        .orders
        .clone()
        .retry_failed_orders(api::RetryFailedOrdersRequest {
            marketplace_sku: "AM-NEW".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(failed.status(), api::OrderStatus::Failed);
    assert_eq!(failed.lines[1].sku, "");
    assert_eq!(failed.lines[1].marketplace_sku, "AM-NEW");
    assert_eq!(report.failed_orders.len(), 1);
    assert_eq!(
        report.failed_orders[0].unknown_marketplace_skus,
        vec!["AM-NEW".to_string()]
    );
    assert!(
        report.failed_orders[0].reason.contains("no listing"),
        "{}",
        report.failed_orders[0].reason
    );
    assert_eq!((retry.retried, retry.resolved), (1, 1));
    let resolved = app.get(&failed.order_id).await;
    assert_eq!(resolved.lines[1].sku, "SKU-2");
    assert_eq!(resolved.status(), api::OrderStatus::PartiallyFulfillable);
    assert_eq!(resolved.lines[1].allocated_quantity, 2);
}

async fn orders_the_marketplace_fulfils_never_take_stock(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let mut request = order("AMAZON", "FBA-1", &[("AM-1", 2)]);
    request.marketplace_fulfilled = true;

    // Act
    let stored = app.create(request).await;
    let pick = app
        .orders
        .clone()
        .pick_order(api::PickOrderRequest {
            lines: Vec::new(),
            order_id: stored.order_id.clone(),
            actor: "test".into(),
        })
        .await
        .unwrap_err();

    // Assert
    assert!(stored.marketplace_fulfilled);
    assert_eq!(stored.status(), api::OrderStatus::Created);
    assert_eq!(stored.lines[0].allocated_quantity, 0);
    assert_eq!(app.available("SKU-1").await, 5);
    assert_eq!(pick.code(), tonic::Code::FailedPrecondition);
    let explained = app.explain(&stored.order_id).await;
    assert!(
        explained
            .order_blockers
            .contains(&(api::Blocker::MarketplaceFulfilled as i32))
    );
}

async fn two_hundred_concurrent_orders_for_fifty_units_allocate_exactly_fifty(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-3", 50, QcGrade::Pass).await;

    // Act
    let mut tasks = Vec::new();
    for n in 0..200 {
        let mut orders = app.orders.clone();
        tasks.push(tokio::spawn(async move {
            orders
                .create_order(order("AMAZON", &format!("C-{n}"), &[("AM-3", 1)]))
                .await
        }));
    }
    let mut allocated = 0;
    for task in tasks {
        let created = task.await.unwrap().unwrap().into_inner().order.unwrap();
        allocated += created.lines[0].allocated_quantity;
    }

    // Assert
    assert_eq!(allocated, 50);
    assert_eq!(app.available("SKU-3").await, 0);
    let unfulfillable = app
        .orders
        .clone()
        .search_orders(api::SearchOrdersRequest {
            client_id: CLIENT.into(),
            statuses: vec![api::OrderStatus::Unfulfillable as i32],
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unfulfillable.orders.len(), 150);
    app.assert_audit_clean().await;
}

async fn the_same_order_sent_three_times_at_once_is_one_order(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 10, QcGrade::Pass).await;
    let request = order("AMAZON", "404-SAME", &[("AM-1", 3)]);

    // Act
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut orders = app.orders.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(
            async move { orders.create_order(request).await },
        ));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let response = task.await.unwrap().unwrap().into_inner();
        created += usize::from(response.created);
        ids.push(response.order.unwrap().order_id);
    }

    // Assert
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    assert_eq!(app.held("AMAZON:404-SAME").await.get("1"), Some(&3));
    assert_eq!(app.available("SKU-1").await, 7);
    app.assert_audit_clean().await;
}

async fn a_crash_between_allocation_and_save_converges_to_one_allocation(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 10, QcGrade::Pass).await;
    let request = order("AMAZON", "404-CRASH", &[("AM-1", 4)]);
    app.faults.fail_after_allocate(1);

    // Act
    let crashed = app
        .orders
        .clone()
        .create_order(request.clone())
        .await
        .unwrap_err();
    let held_after_crash = app.held("AMAZON:404-CRASH").await;
    let retried = app.create(request).await;

    // Assert
    assert_eq!(crashed.code(), tonic::Code::Unavailable);
    assert_eq!(
        held_after_crash.get("1"),
        Some(&4),
        "inventory allocated before the crash"
    );
    assert_eq!(retried.status(), api::OrderStatus::Fulfillable);
    assert_eq!(retried.lines[0].allocated_quantity, 4);
    assert_eq!(app.held("AMAZON:404-CRASH").await.get("1"), Some(&4));
    assert_eq!(app.available("SKU-1").await, 6);
    app.assert_audit_clean().await;
}

async fn block_complete_allocates_all_or_nothing_and_partial_types_take_what_is_there(
    db: TestDatabase,
) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    app.receive("SKU-2", 1, QcGrade::Pass).await;
    let mut block = order("AMAZON", "BC-1", &[("AM-1", 2), ("AM-2", 2)]);
    block.fulfilment_type = api::FulfilmentType::BlockComplete as i32;
    let mut partial = order("AMAZON", "MS-1", &[("AM-1", 2), ("AM-2", 2)]);
    partial.fulfilment_type = api::FulfilmentType::MultiShipmentPartial as i32;

    // Act
    let block = app.create(block).await;
    let partial = app.create(partial).await;

    // Assert
    assert_eq!(block.status(), api::OrderStatus::Unfulfillable);
    assert!(block.lines.iter().all(|line| line.allocated_quantity == 0));
    assert_eq!(partial.status(), api::OrderStatus::PartiallyFulfillable);
    assert_eq!(partial.lines[0].allocated_quantity, 2);
    assert_eq!(partial.lines[1].allocated_quantity, 1);
    let explained = app.explain(&block.order_id).await;
    assert!(
        explained
            .order_blockers
            .contains(&(api::Blocker::BlockComplete as i32)),
        "{explained:?}"
    );
    assert_eq!(explained.lines[0].blocker(), api::Blocker::BlockComplete);
    assert_eq!(explained.lines[1].blocker(), api::Blocker::NoStock);
}

async fn a_marketplace_sku_no_listing_could_hold_fails_the_order_with_its_raw_line(
    db: TestDatabase,
) {
    // Arrange: a real export once carried a SKU with two spaces in it.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-2", 4, QcGrade::Pass).await;

    // Act
    let failed = app
        .create(order(
            "AMAZON",
            "406-1",
            &[("AM-1", 1), ("SET397-KR-NP  -M", 1)],
        ))
        .await;
    let report = app
        .orders
        .clone()
        .list_failed_orders(api::ListFailedOrdersRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert: kept, FAILED, with the channel's text as sent and the reason.
    assert_eq!(failed.status(), api::OrderStatus::Failed);
    assert_eq!(failed.lines[1].marketplace_sku, "SET397-KR-NP  -M");
    assert_eq!(report.failed_orders.len(), 1);
    assert_eq!(
        report.failed_orders[0].unknown_marketplace_skus,
        vec!["SET397-KR-NP  -M".to_string()]
    );
    assert!(
        report.failed_orders[0]
            .reason
            .contains("in no product master"),
        "{}",
        report.failed_orders[0].reason
    );
}

async fn orders_arriving_together_each_get_their_own_answer(db: TestDatabase) {
    // Arrange: stock for one SKU, and one order stored already.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 10, QcGrade::Pass).await;
    app.receive("SKU-2", 1, QcGrade::Pass).await;
    app.receive("SKU-3", 1, QcGrade::Pass).await;
    let stored = app
        .create(order("AMAZON", "STORED-1", &[("AM-1", 1)]))
        .await;
    let mut changed = order("AMAZON", "STORED-1", &[("AM-1", 1)]);
    changed.lines[0].quantity = 2;
    let requests = vec![
        // Taken in and allocated.
        order("AMAZON", "NEW-1", &[("AM-1", 2)]),
        // Same SKU on another channel, same catalog call per channel.
        order("FLIPKART", "NEW-2", &[("FK-1", 1), ("FK-2", 1)]),
        // No listing: kept as FAILED.
        order("AMAZON", "NEW-3", &[("AM-404", 1)]),
        // A resend of a stored order, and a different order under its key.
        order("AMAZON", "STORED-1", &[("AM-1", 1)]),
        changed,
        // The same new order twice in one go.
        order("AMAZON", "TWICE-1", &[("AM-1", 1)]),
        order("AMAZON", "TWICE-1", &[("AM-1", 1)]),
        // More than the stock of SKU-3.
        order("MYNTRA", "NEW-4", &[("MY-3", 3)]),
    ];

    // Act: all at once, so the intake takes them in together.
    let calls = requests.into_iter().map(|request| {
        let mut orders = app.orders.clone();
        async move { orders.create_order(request).await.map(|r| r.into_inner()) }
    });
    let answers = futures::future::join_all(calls).await;
    let bulk = app
        .orders
        .clone()
        .create_bulk_order(crate::harness::bulk_order("B-1", &[("NO-SUCH-SKU", 1)]))
        .await
        .unwrap_err();

    // Assert: each answer is the one it would get alone.
    let ok = |index: usize| answers[index].as_ref().unwrap();
    let new_1 = ok(0).order.as_ref().unwrap();
    assert!(ok(0).created);
    assert_eq!(new_1.status(), api::OrderStatus::Fulfillable);
    assert_eq!(new_1.lines[0].allocated_quantity, 2);
    let new_2 = ok(1).order.as_ref().unwrap();
    assert_eq!(new_2.status(), api::OrderStatus::Fulfillable);
    assert_eq!(new_2.lines[1].sku, "SKU-2");
    let new_3 = ok(2).order.as_ref().unwrap();
    assert_eq!(new_3.status(), api::OrderStatus::Failed);
    assert_eq!(ok(3).order.as_ref().unwrap().order_id, stored.order_id);
    assert!(!ok(3).created);
    assert_eq!(
        answers[4].as_ref().unwrap_err().code(),
        tonic::Code::AlreadyExists
    );
    let twice: Vec<_> = [5, 6]
        .iter()
        .map(|&index| {
            (
                ok(index).created,
                ok(index).order.as_ref().unwrap().order_id.clone(),
            )
        })
        .collect();
    assert_eq!(twice[0].1, twice[1].1);
    assert_eq!(twice.iter().filter(|(created, _)| *created).count(), 1);
    let new_4 = ok(7).order.as_ref().unwrap();
    assert_ne!(new_4.status(), api::OrderStatus::Fulfillable, "{new_4:?}");
    assert_eq!(
        new_4.lines[0].allocated_quantity + app.available("SKU-3").await,
        1,
        "{new_4:?}"
    );
    assert_eq!(bulk.code(), tonic::Code::InvalidArgument);
    // SKU-1: 1 (stored) + 2 + 1 + 1 (once); SKU-2: its one unit went to NEW-2.
    assert_eq!(app.available("SKU-1").await, 5);
    assert_eq!(app.available("SKU-2").await, 0);
    app.assert_audit_clean().await;
}

async fn an_order_whose_allocation_key_another_request_took_is_refused_as_an_order(
    db: TestDatabase,
) {
    // Arrange: another request for the same channel order, with other lines, allocated
    // first and is not stored yet.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    app.allocate_directly("AMAZON:RACE-1", "SKU-1", 2, "AMAZON:RACE-1#alloc-1")
        .await;

    // Act
    let refused = app
        .orders
        .clone()
        .create_order(order("AMAZON", "RACE-1", &[("AM-1", 1)]))
        .await;

    // Assert
    let status = refused.expect_err("the key belongs to another request");
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert!(
        status.message().contains("RACE-1") && !status.message().contains("idempotency"),
        "{}",
        status.message()
    );
    app.assert_audit_clean().await;
}

kosha_testkit::store_tests!(
    an_order_whose_allocation_key_another_request_took_is_refused_as_an_order,
    a_marketplace_order_is_allocated_on_arrival_and_a_resend_changes_nothing,
    bad_input_is_refused_with_the_field_named_and_stores_nothing,
    an_unknown_marketplace_sku_fails_the_order_until_the_listing_is_added,
    a_marketplace_sku_no_listing_could_hold_fails_the_order_with_its_raw_line,
    orders_the_marketplace_fulfils_never_take_stock,
    two_hundred_concurrent_orders_for_fifty_units_allocate_exactly_fifty,
    the_same_order_sent_three_times_at_once_is_one_order,
    a_crash_between_allocation_and_save_converges_to_one_allocation,
    block_complete_allocates_all_or_nothing_and_partial_types_take_what_is_there,
    orders_arriving_together_each_get_their_own_answer,
);
