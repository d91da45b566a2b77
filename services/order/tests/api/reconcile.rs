//! Reconcile releases what inventory holds beyond what orders need, never picked units.

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_testkit::TestDatabase;

use crate::harness::{Options, order, spawn_app};

async fn reconcile_releases_a_leaked_allocation_but_never_picked_units(db: TestDatabase) {
    // Arrange: a cancellation whose release failed, a picked order, and an allocation of
    // an order this service never stored.
    let mut options = Options::default();
    options.settings.orphan_grace_secs = 0;
    let app = spawn_app(db, options).await;
    app.receive("SKU-1", 10, QcGrade::Pass).await;
    let leaked = app.create(order("AMAZON", "LEAK-1", &[("AM-1", 3)])).await;
    app.faults.fail_releases(1);
    let cancelled = app
        .orders
        .clone()
        .cancel_order(api::CancelOrderRequest {
            order_id: leaked.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let picked = app
        .create(order("AMAZON", "PICKED-1", &[("AM-1", 2)]))
        .await;
    app.orders
        .clone()
        .pick_order(api::PickOrderRequest {
            order_id: picked.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.allocate_directly("AMAZON:GHOST-1", "SKU-1", 1, "ghost")
        .await;

    // Act
    let holdings = app
        .orders
        .clone()
        .get_order_holdings(api::GetOrderHoldingsRequest {
            order_ids: vec![
                leaked.order_id.clone(),
                picked.order_id.clone(),
                leaked.order_id.to_lowercase(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let dry_run = app.reconcile(true).await;
    let available_after_dry_run = app.available("SKU-1").await;
    let reconciled = app.reconcile(false).await;
    let again = app.reconcile(false).await;

    // Assert
    assert!(
        cancelled.message.contains("pending"),
        "{}",
        cancelled.message
    );
    assert_eq!(
        holdings.holdings.len(),
        2,
        "an order named twice is answered once"
    );
    assert_eq!(holdings.holdings[0].excess_quantity, 3);
    assert_eq!(holdings.holdings[1].excess_quantity, 0);
    assert_eq!(holdings.holdings[1].picked_open_quantity, 2);
    assert_eq!(dry_run.adjusted.len(), 2);
    assert_eq!(available_after_dry_run, 4, "a dry run releases nothing");
    let released: i64 = reconciled
        .adjusted
        .iter()
        .map(|line| line.released_quantity)
        .sum();
    assert_eq!(released, 4);
    assert!(
        reconciled
            .adjusted
            .iter()
            .any(|line| line.order_id == "AMAZON:GHOST-1")
    );
    assert!(again.adjusted.is_empty());
    assert_eq!(
        app.held("AMAZON:PICKED-1").await.get("1"),
        Some(&2),
        "picked units are never released"
    );
    assert_eq!(app.available("SKU-1").await, 8);
    app.assert_audit_clean().await;
}

kosha_testkit::store_tests!(reconcile_releases_a_leaked_allocation_but_never_picked_units);

async fn reconcile_releases_units_allocated_again_after_a_cancel(db: TestDatabase) {
    // Arrange: a cancelled order whose release went through, then units allocated to the
    // same line again (a retry that raced the cancel). The second holding has the same
    // figures as the first had when the cancel released it.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 10, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "AGAIN-1", &[("AM-1", 2)])).await;
    app.orders
        .clone()
        .cancel_order(api::CancelOrderRequest {
            order_id: created.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let available_after_cancel = app.available("SKU-1").await;
    app.allocate_directly("AMAZON:AGAIN-1", "SKU-1", 2, "AMAZON:AGAIN-1#late-retry")
        .await;

    // Act
    let reconciled = app.reconcile(false).await;
    let again = app.reconcile(false).await;

    // Assert
    assert_eq!(available_after_cancel, 10);
    let released: i64 = reconciled
        .adjusted
        .iter()
        .map(|line| line.released_quantity)
        .sum();
    assert_eq!(released, 2, "{reconciled:?}");
    assert!(again.adjusted.is_empty(), "{again:?}");
    assert_eq!(
        app.held("AMAZON:AGAIN-1")
            .await
            .get("1")
            .copied()
            .unwrap_or(0),
        0
    );
    assert_eq!(app.available("SKU-1").await, 10);
    app.assert_audit_clean().await;
}

kosha_testkit::store_tests!(reconcile_releases_units_allocated_again_after_a_cancel);
