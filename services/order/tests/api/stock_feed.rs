//! Waiting marketplace orders are retried when stock arrives, in one total order, and new
//! orders take only what older waiting ones cannot use.

use std::time::Duration;

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::TestDatabase;

use crate::harness::{CLIENT, Options, bulk_order, order, spawn_app};

fn placed(request: &mut api::CreateOrderRequest, minutes_ago: i64) {
    request.order_time = Some(to_timestamp(now_micros() - minutes_ago * 60_000_000));
}

async fn a_grn_makes_waiting_orders_fulfillable_in_priority_order_within_two_job_cycles(
    db: TestDatabase,
) {
    // Arrange: three waiting orders and a waiting bulk order for one SKU.
    let app = spawn_app(db, Options::default()).await;
    let mut oldest = order("AMAZON", "W-OLDEST", &[("AM-4", 1)]);
    placed(&mut oldest, 30);
    let mut with_sla = order("AMAZON", "W-SLA", &[("AM-4", 1)]);
    placed(&mut with_sla, 20);
    with_sla.dispatch_by_time = Some(to_timestamp(now_micros() + 3_600_000_000));
    let mut urgent = order("AMAZON", "W-URGENT", &[("AM-4", 1)]);
    placed(&mut urgent, 10);
    urgent.priority = true;
    let oldest = app.create(oldest).await;
    let with_sla = app.create(with_sla).await;
    let urgent = app.create(urgent).await;
    let bulk = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-W", &[("SKU-4", 1)]))
        .await
        .unwrap();
    let bulk = bulk.into_inner().order.unwrap();

    // Act: a GRN of two units, then of one more; no call to the order service.
    app.receive("SKU-4", 2, QcGrade::Pass).await;
    let follow_interval = Duration::from_secs(1);
    tokio::time::sleep(2 * follow_interval + Duration::from_millis(1500)).await;
    let after_first = [
        app.get(&urgent.order_id).await.status(),
        app.get(&with_sla.order_id).await.status(),
        app.get(&oldest.order_id).await.status(),
    ];
    app.receive("SKU-4", 1, QcGrade::Pass).await;
    tokio::time::sleep(2 * follow_interval + Duration::from_millis(1500)).await;
    let oldest_after_second = app.get(&oldest.order_id).await;

    // Assert
    for waiting in [&oldest, &with_sla, &urgent] {
        assert_eq!(waiting.status(), api::OrderStatus::Unfulfillable);
    }
    assert_eq!(
        after_first,
        [
            api::OrderStatus::Fulfillable,
            api::OrderStatus::Fulfillable,
            api::OrderStatus::Unfulfillable
        ],
        "priority first, then earliest dispatch-by, then earliest order time"
    );
    assert_eq!(oldest_after_second.status(), api::OrderStatus::Fulfillable);
    let history = app.history(&urgent.order_id).await;
    let retry = history.last().unwrap();
    assert_eq!(retry.actor, "stock-feed");
    assert!(retry.reason.contains("stock arrived"), "{}", retry.reason);
    let bulk_now = app.get(&bulk.order_id).await;
    assert_eq!(
        bulk_now.status(),
        api::OrderStatus::Created,
        "a bulk order waits for an operator's retry"
    );
    assert_eq!(bulk_now.lines[0].allocated_quantity, 0);
}

async fn a_new_order_takes_only_what_older_waiting_orders_cannot_use(db: TestDatabase) {
    // Arrange: the follower does not run; arrivals decide.
    let mut options = Options::default();
    options.settings.follow_interval_secs = 3600;
    let app = spawn_app(db, options).await;
    let older = app.create(order("AMAZON", "N-OLD", &[("AM-6", 2)])).await;
    let mut blocked_request = order("AMAZON", "N-BLOCK", &[("AM-5", 5)]);
    blocked_request.fulfilment_type = api::FulfilmentType::BlockComplete as i32;
    let blocked = app.create(blocked_request).await;
    app.receive("SKU-6", 3, QcGrade::Pass).await;
    app.receive("SKU-5", 2, QcGrade::Pass).await;

    // Act
    let newer = app.create(order("AMAZON", "N-NEW", &[("AM-6", 2)])).await;
    let beside_blocked = app
        .create(order("AMAZON", "N-BESIDE", &[("AM-5", 2)]))
        .await;

    // Assert
    assert_eq!(
        app.get(&older.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
    assert_eq!(newer.status(), api::OrderStatus::PartiallyFulfillable);
    assert_eq!(
        newer.lines[0].allocated_quantity, 1,
        "only what the older order could not use"
    );
    assert_eq!(
        app.get(&blocked.order_id).await.status(),
        api::OrderStatus::Unfulfillable
    );
    assert_eq!(
        beside_blocked.status(),
        api::OrderStatus::Fulfillable,
        "a block-complete order cannot use 2 of 5"
    );
    app.assert_audit_clean().await;
}

async fn retry_waiting_orders_on_demand_tops_up_in_the_same_order(db: TestDatabase) {
    // Arrange
    let mut options = Options::default();
    options.settings.follow_interval_secs = 3600;
    let app = spawn_app(db, options).await;
    let first = app.create(order("AMAZON", "D-1", &[("AM-2", 2)])).await;
    let second = app.create(order("AMAZON", "D-2", &[("AM-2", 2)])).await;
    let explained = app.explain(&second.order_id).await;
    app.receive("SKU-2", 3, QcGrade::Pass).await;

    // Act
    let response = app
        .orders
        .clone()
        .retry_waiting_orders(api::RetryWaitingOrdersRequest {
            client_id: CLIENT.into(),
            skus: vec!["SKU-2".into()],
            actor: "ops".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let retry_one = app
        .orders
        .clone()
        .retry_allocation(api::RetryAllocationRequest {
            order_id: second.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    let line = &explained.lines[0];
    assert_eq!(line.needed_by_orders_ahead, 2);
    let receive: Vec<i64> = line
        .unblock
        .iter()
        .filter(|step| step.action() == api::UnblockAction::ReceiveStock)
        .map(|step| step.quantity)
        .collect();
    assert_eq!(
        receive,
        [4],
        "its own 2 units and the 2 the older order needs first"
    );
    assert_eq!(
        response.tried_order_ids,
        vec![first.order_id.clone(), second.order_id.clone()]
    );
    assert_eq!(response.changes.len(), 2);
    assert_eq!(
        app.get(&first.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
    let second_now = retry_one.order.unwrap();
    assert_eq!(second_now.status(), api::OrderStatus::PartiallyFulfillable);
    assert_eq!(second_now.lines[0].allocated_quantity, 1);
    assert!(
        retry_one.job_id.is_empty(),
        "a marketplace order is retried at once, not as a job"
    );
}

kosha_testkit::store_tests!(
    a_grn_makes_waiting_orders_fulfillable_in_priority_order_within_two_job_cycles,
    a_new_order_takes_only_what_older_waiting_orders_cannot_use,
    retry_waiting_orders_on_demand_tops_up_in_the_same_order,
);
