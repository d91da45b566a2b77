//! A GRN interrupted between recording it and inventory confirming its stock converges on
//! exactly one receipt: on retry of the same request, or in the background.

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_purchase_order::config::Settings;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::{CLIENT, Fault, TestApp, spawn_app, spawn_app_with};

/// SKUs of a GRN big enough to go to inventory in two parts.
fn skus(count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("SKU-{n:04}")).collect()
}

/// A PO for `skus`, 3 units each, received in full by GRN `GRN-1`: 2 pass, 1 fails.
async fn arrange_po(app: &mut TestApp, skus: &[String]) -> Vec<(String, i64, i64)> {
    let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    app.add_products(CLIENT, &refs).await;
    let lines: Vec<(&str, i64)> = refs.iter().map(|sku| (*sku, 3)).collect();
    app.create_po("PO-1", &lines).await.unwrap();
    skus.iter().map(|sku| (sku.clone(), 2, 1)).collect()
}

fn as_refs(lines: &[(String, i64, i64)]) -> Vec<(&str, i64, i64)> {
    lines
        .iter()
        .map(|(sku, passed, failed)| (sku.as_str(), *passed, *failed))
        .collect()
}

/// Exactly one receipt per SKU and grade, and the books agree.
async fn assert_received_once(app: &mut TestApp, skus: &[String]) {
    let count = skus.len() as i64;
    assert_eq!(app.common_totals().await, (2 * count, count));
    for sku in [skus.first().unwrap(), skus.last().unwrap()] {
        let receipts = app.receipts_of(sku).await;
        let quantities: Vec<i64> = receipts.iter().map(|transfer| transfer.quantity).collect();
        assert_eq!(receipts.len(), 2, "{sku}: {receipts:?}");
        assert_eq!(quantities.iter().sum::<i64>(), 3, "{sku}");
    }
    let audit = app.audit().await;
    assert!(audit.clean, "{:?}", audit.discrepancies.first());
    let po = app.get_po("PO-1").await;
    assert_eq!(po.totals.unwrap().received, 3 * count);
}

async fn converges_after(db: TestDatabase, fault: Fault) {
    let mut app = spawn_app(&db).await;
    let skus = skus(600);
    let lines = arrange_po(&mut app, &skus).await;

    // Act: the first attempt dies around inventory's first part.
    app.stock_faults.arm(fault);
    let interrupted = app
        .receive("GRN-1", "PO-1", "", &as_refs(&lines))
        .await
        .unwrap_err();
    let pending = app.get_grn("GRN-1").await;
    let retried = app
        .receive("GRN-1", "PO-1", "", &as_refs(&lines))
        .await
        .unwrap();
    let retried_again = app
        .receive("GRN-1", "PO-1", "", &as_refs(&lines))
        .await
        .unwrap();

    // Assert: recorded and pending after the failure; once in stock after the retries.
    assert_eq!(interrupted.code(), Code::Unavailable, "{interrupted:?}");
    assert!(
        interrupted
            .message()
            .contains("call again with the same GRN number")
    );
    assert_eq!(
        pending.inventory_delivery,
        i32::from(pb::InventoryDelivery::Pending)
    );
    assert_eq!(pending.delivery_attempts, 1);
    assert!(
        pending.last_delivery_error.contains("injected"),
        "{}",
        pending.last_delivery_error
    );
    assert!(retried.replayed && retried_again.replayed);
    let grn = retried.grn.unwrap();
    assert_eq!(
        grn.inventory_delivery,
        i32::from(pb::InventoryDelivery::Delivered)
    );
    assert!(grn.last_delivery_error.is_empty());
    assert_received_once(&mut app, &skus).await;

    app.stop().await;
}

async fn a_grn_interrupted_before_the_inventory_call_lands_once_on_retry(db: TestDatabase) {
    converges_after(db, Fault::BeforeCall).await;
}

async fn a_grn_interrupted_after_the_inventory_call_lands_once_on_retry(db: TestDatabase) {
    converges_after(db, Fault::AfterCall).await;
}

async fn a_pending_grn_is_delivered_in_the_background_without_a_retry(db: TestDatabase) {
    let settings = Settings {
        redelivery_interval_ms: 50,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings).await;
    let skus = skus(3);
    let lines = arrange_po(&mut app, &skus).await;

    app.stock_faults.arm(Fault::AfterCall);
    let interrupted = app
        .receive("GRN-1", "PO-1", "", &as_refs(&lines))
        .await
        .unwrap_err();
    let delivered = app.wait_until_delivered("GRN-1").await;

    assert_eq!(interrupted.code(), Code::Unavailable);
    assert!(delivered.delivery_attempts >= 2);
    assert_received_once(&mut app, &skus).await;
    let request = pb::ListGrnsRequest {
        client_id: CLIENT.to_string(),
        pending_only: true,
        ..Default::default()
    };
    assert!(
        app.po
            .list_grns(request)
            .await
            .unwrap()
            .into_inner()
            .grns
            .is_empty()
    );

    app.stop().await;
}

kosha_testkit::store_tests!(
    a_grn_interrupted_before_the_inventory_call_lands_once_on_retry,
    a_grn_interrupted_after_the_inventory_call_lands_once_on_retry,
    a_pending_grn_is_delivered_in_the_background_without_a_retry,
);
