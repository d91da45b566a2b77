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

async fn reconcile_racing_invoices_and_new_orders_releases_nothing_they_hold(db: TestDatabase) {
    // Arrange: orders allocated 4 with 2 picked and packed, each shipping in several
    // shipments, behind enough other orders that reconcile's walk takes a while.
    let app = spawn_app(db, Options::default()).await;
    const FILLERS: usize = 60;
    const TARGETS: usize = 10;
    app.receive("SKU-1", (FILLERS + 4 * TARGETS) as i64, QcGrade::Pass)
        .await;
    app.receive("SKU-2", TARGETS as i64, QcGrade::Pass).await;
    for n in 0..FILLERS {
        app.create(order("AMAZON", &format!("FILL-{n:03}"), &[("AM-1", 1)]))
            .await;
    }
    let mut targets = Vec::new();
    for n in 0..TARGETS {
        let mut request = order("AMAZON", &format!("ZZ-{n:03}"), &[("AM-1", 4)]);
        request.fulfilment_type = api::FulfilmentType::MultiShipmentPartial as i32;
        let created = app.create(request).await;
        let mut orders = app.orders.clone();
        orders
            .pick_order(api::PickOrderRequest {
                order_id: created.order_id.clone(),
                actor: "picker".into(),
                lines: vec![api::PickLine {
                    line_no: 1,
                    quantity: 2,
                }],
            })
            .await
            .unwrap();
        orders
            .pack_order(api::PackOrderRequest {
                order_id: created.order_id.clone(),
                actor: "packer".into(),
            })
            .await
            .unwrap();
        targets.push(created.order_id);
    }

    // Act: reconciles while every target is invoiced and new orders come in.
    let reconciles = async {
        for _ in 0..3 {
            app.reconcile(false).await;
        }
    };
    let invoices = async {
        for order_id in &targets {
            app.orders
                .clone()
                .invoice_order(api::InvoiceOrderRequest {
                    order_id: order_id.clone(),
                    actor: "billing".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    };
    let arrivals = async {
        let mut created = Vec::new();
        for n in 0..TARGETS {
            created.push(
                app.create(order("AMAZON", &format!("NEW-{n:03}"), &[("AM-2", 1)]))
                    .await,
            );
        }
        created
    };
    let ((), (), arrived) = tokio::join!(reconciles, invoices, arrivals);

    // Assert: every order holds what it should, and the rest of each target still ships.
    for order_id in &targets {
        let lines = app.holdings(order_id).await;
        assert_eq!(
            (lines[0].held_quantity, lines[0].expected_quantity),
            (2, 2),
            "{order_id}: the units not yet invoiced stay held"
        );
    }
    for new in &arrived {
        assert_eq!(
            app.get(&new.order_id).await.status(),
            api::OrderStatus::Fulfillable,
            "{}: an order allocated during reconcile keeps its units",
            new.order_id
        );
        let lines = app.holdings(&new.order_id).await;
        assert_eq!(lines[0].held_quantity, 1, "{}", new.order_id);
    }
    let history_says_unfulfillable = {
        let mut any = false;
        for new in &arrived {
            any |= app
                .history(&new.order_id)
                .await
                .iter()
                .any(|entry| entry.to_status() == api::OrderStatus::Unfulfillable);
        }
        any
    };
    assert!(
        !history_says_unfulfillable,
        "no new order was marked as holding nothing"
    );
    app.assert_audit_clean().await;
}

kosha_testkit::store_tests!(
    reconcile_releases_units_allocated_again_after_a_cancel,
    reconcile_racing_invoices_and_new_orders_releases_nothing_they_hold,
);
