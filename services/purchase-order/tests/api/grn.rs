//! Goods receipts: against a PO with QC pass and fail, over-receipt, repeats, short-close,
//! and GRNs without a PO.

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_purchase_order::config::Settings;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::{CLIENT, Fault, spawn_app, spawn_app_with, violated_fields};

fn status_of(po: &pb::PurchaseOrder) -> pb::PurchaseOrderStatus {
    pb::PurchaseOrderStatus::try_from(po.status).unwrap()
}

fn line_totals(po: &pb::PurchaseOrder, sku: &str) -> pb::ReceiptTotals {
    po.lines
        .iter()
        .find(|line| line.sku == sku)
        .unwrap()
        .totals
        .unwrap()
}

async fn grns_move_the_po_forward_and_put_passed_and_failed_units_into_common(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    app.create_po("PO-1", &[("A-1", 10), ("B-1", 4)])
        .await
        .unwrap();

    // Act: part of A-1 (some failing QC), then the rest of both.
    let first = app
        .receive("GRN-1", "PO-1", "", &[("A-1", 6, 2)])
        .await
        .unwrap();
    let after_first = first.purchase_order.clone().unwrap();
    let second = app
        .receive("GRN-2", "PO-1", "", &[("A-1", 2, 0), ("B-1", 3, 1)])
        .await
        .unwrap();

    // Assert: the PO's figures per SKU and its status.
    assert_eq!(
        status_of(&after_first),
        pb::PurchaseOrderStatus::PartiallyReceived
    );
    let a1 = line_totals(&after_first, "A-1");
    assert_eq!(
        (
            a1.ordered,
            a1.received,
            a1.passed,
            a1.failed,
            a1.outstanding
        ),
        (10, 8, 6, 2, 2)
    );
    assert_eq!(line_totals(&after_first, "B-1").outstanding, 4);
    let grn = first.grn.unwrap();
    assert_eq!(
        grn.inventory_delivery,
        i32::from(pb::InventoryDelivery::Delivered)
    );
    assert_eq!(
        (
            grn.received_quantity,
            grn.passed_quantity,
            grn.failed_quantity
        ),
        (8, 6, 2)
    );
    assert!(!first.replayed);

    let done = second.purchase_order.unwrap();
    assert_eq!(status_of(&done), pb::PurchaseOrderStatus::Received);
    let totals = done.totals.unwrap();
    assert_eq!(
        (
            totals.received,
            totals.passed,
            totals.failed,
            totals.outstanding
        ),
        (14, 11, 3, 0)
    );
    assert_eq!(done.grn_count, 2);

    // Assert: the units are in COMMON, passed and failed apart.
    assert_eq!(app.common_stock("A-1").await, (8, 2));
    assert_eq!(app.common_stock("B-1").await, (3, 1));
    let receipts = app.receipts_of("A-1").await;
    assert!(
        receipts
            .iter()
            .all(|transfer| transfer.reference.starts_with("GRN-"))
    );
    assert_eq!(
        receipts
            .iter()
            .map(|transfer| transfer.quantity)
            .sum::<i64>(),
        10
    );
    assert!(app.audit().await.clean);

    app.stop().await;
}

async fn over_receipt_is_refused_unless_the_client_allows_excess(db: TestDatabase) {
    // Arrange: the test client may not over-receive; `other` may.
    let settings = Settings {
        excess_grn_clients: vec!["other".to_string()],
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings).await;
    app.create_client("other").await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    app.add_products("other", &["A-1"]).await;
    app.create_po("PO-1", &[("A-1", 5), ("B-1", 5)])
        .await
        .unwrap();
    app.receive("GRN-1", "PO-1", "", &[("A-1", 4, 0)])
        .await
        .unwrap();

    // Act
    let refused = app
        .receive("GRN-2", "PO-1", "", &[("B-1", 5, 0), ("A-1", 1, 1)])
        .await
        .unwrap_err();
    let not_on_po = app
        .receive("GRN-3", "PO-1", "", &[("C-9", 1, 0)])
        .await
        .unwrap_err();

    // Assert: nothing of the refused GRNs was stored or received.
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("lines[1] SKU `A-1`: 2 received but the PO expects 1 more")
    );
    assert_eq!(violated_fields(&not_on_po), ["lines[0].sku"]);
    let request = pb::GetGrnRequest {
        client_id: CLIENT.into(),
        grn_number: "GRN-2".into(),
    };
    assert_eq!(
        app.po.get_grn(request).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(app.common_stock("B-1").await, (0, 0));
    let po = app.get_po("PO-1").await;
    assert_eq!(po.totals.unwrap().received, 4);

    // Act: the client allowed to over-receive.
    let other_po = pb::CreatePurchaseOrderRequest {
        client_id: "other".into(),
        po_number: "PO-1".into(),
        supplier: "Weaver".into(),
        lines: vec![pb::NewPurchaseOrderLine {
            sku: "A-1".into(),
            quantity: 5,
            unit_cost: "1".into(),
            expected_date: String::new(),
        }],
        actor: String::new(),
    };
    app.po.create_purchase_order(other_po).await.unwrap();
    let mut excess = crate::support::grn_request("GRN-1", "PO-1", "", &[("A-1", 7, 0)]);
    excess.client_id = "other".into();
    let response = app.po.receive_grn(excess).await.unwrap().into_inner();

    // Assert: received beyond the order, RECEIVED, nothing outstanding.
    let po = response.purchase_order.unwrap();
    assert_eq!(status_of(&po), pb::PurchaseOrderStatus::Received);
    let totals = po.totals.unwrap();
    assert_eq!(
        (totals.ordered, totals.received, totals.outstanding),
        (5, 7, 0)
    );

    app.stop().await;
}

async fn a_repeated_grn_number_returns_the_first_receipt_and_changes_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    app.create_po("PO-1", &[("A-1", 10)]).await.unwrap();
    let first = app
        .receive("GRN-1", "PO-1", "", &[("A-1", 3, 1)])
        .await
        .unwrap();

    let again = app
        .receive("GRN-1", "PO-1", "", &[("A-1", 3, 1)])
        .await
        .unwrap();
    let other_lines = app
        .receive("GRN-1", "PO-1", "", &[("A-1", 4, 0)])
        .await
        .unwrap_err();
    let other_po = app
        .receive("GRN-1", "", "return", &[("A-1", 3, 1)])
        .await
        .unwrap_err();

    assert!(again.replayed);
    assert_eq!(
        again.grn.unwrap().create_time,
        first.grn.unwrap().create_time
    );
    assert_eq!(other_lines.code(), Code::AlreadyExists, "{other_lines:?}");
    assert_eq!(other_po.code(), Code::AlreadyExists, "{other_po:?}");
    assert_eq!(app.common_stock("A-1").await, (3, 1));
    assert_eq!(app.receipts_of("A-1").await.len(), 2);
    assert_eq!(app.get_po("PO-1").await.totals.unwrap().received, 4);

    app.stop().await;
}

async fn short_close_records_what_never_arrived_and_ends_receiving(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    app.create_po("PO-1", &[("A-1", 10), ("B-1", 4)])
        .await
        .unwrap();
    app.create_po("PO-2", &[("A-1", 1)]).await.unwrap();
    app.receive("GRN-1", "PO-1", "", &[("A-1", 7, 0)])
        .await
        .unwrap();
    app.receive("GRN-2", "PO-2", "", &[("A-1", 1, 0)])
        .await
        .unwrap();
    let close = |po_number: &str, reason: &str| pb::ClosePurchaseOrderRequest {
        client_id: CLIENT.into(),
        po_number: po_number.into(),
        reason: reason.into(),
        actor: "asha".into(),
    };

    let closed = app
        .po
        .close_purchase_order(close("PO-1", "supplier out of stock"))
        .await
        .unwrap();
    let again = app
        .po
        .close_purchase_order(close("PO-1", "again"))
        .await
        .unwrap();
    let received = app
        .po
        .close_purchase_order(close("PO-2", "done"))
        .await
        .unwrap_err();
    let no_reason = app
        .po
        .close_purchase_order(close("PO-1", " "))
        .await
        .unwrap_err();
    let late = app
        .receive("GRN-3", "PO-1", "", &[("A-1", 1, 0)])
        .await
        .unwrap_err();

    let po = closed.into_inner().purchase_order.unwrap();
    assert_eq!(status_of(&po), pb::PurchaseOrderStatus::Closed);
    assert_eq!(
        (po.close_reason.as_str(), po.closed_by.as_str()),
        ("supplier out of stock", "asha")
    );
    assert_eq!(line_totals(&po, "A-1").short_closed, 3);
    assert_eq!(line_totals(&po, "B-1").short_closed, 4);
    let totals = po.totals.unwrap();
    assert_eq!(
        (totals.short_closed, totals.outstanding, totals.received),
        (7, 0, 7)
    );
    let again = again.into_inner().purchase_order.unwrap();
    assert_eq!(again.close_reason, "supplier out of stock");
    assert_eq!(received.code(), Code::FailedPrecondition);
    assert_eq!(violated_fields(&no_reason), ["reason"]);
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(app.common_stock("A-1").await, (8, 0));

    app.stop().await;
}

async fn a_grn_without_a_po_needs_a_reason_and_brings_units_back(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "OLD"]).await;
    app.disable_product(CLIENT, "OLD").await;

    let no_reason = app
        .receive("RET-1", "", "", &[("A-1", 1, 0)])
        .await
        .unwrap_err();
    let unknown = app
        .receive("RET-1", "", "return", &[("A-1", 1, 0), ("NOPE", 1, 0)])
        .await;
    let no_po = app
        .receive("RET-1", "PO-404", "", &[("A-1", 1, 0)])
        .await
        .unwrap_err();
    let returned = app
        .receive(
            "RET-1",
            "",
            "returned by customer",
            &[("A-1", 0, 2), ("OLD", 1, 0)],
        )
        .await;

    assert_eq!(violated_fields(&no_reason), ["reason"]);
    assert_eq!(violated_fields(&unknown.unwrap_err()), ["lines[1].sku"]);
    assert_eq!(no_po.code(), Code::NotFound);
    let response = returned.unwrap();
    assert!(response.purchase_order.is_none());
    let grn = response.grn.unwrap();
    assert_eq!(
        (grn.po_number.as_str(), grn.reason.as_str()),
        ("", "returned by customer")
    );
    assert_eq!(app.common_stock("A-1").await, (0, 2));
    assert_eq!(app.common_stock("OLD").await, (1, 0));
    assert!(app.audit().await.clean);

    app.stop().await;
}

async fn concurrent_receipts_never_over_receive_and_a_doubled_grn_lands_once(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    app.create_po("PO-1", &[("A-1", 10)]).await.unwrap();

    // Act: five GRNs of 3 units at once against 10 ordered, then one GRN sent twice at once.
    let mut racing = Vec::new();
    for n in 1..=5 {
        let mut client = app.po.clone();
        let request =
            crate::support::grn_request(&format!("GRN-{n}"), "PO-1", "", &[("A-1", 3, 0)]);
        racing.push(tokio::spawn(
            async move { client.receive_grn(request).await },
        ));
    }
    let mut outcomes = Vec::new();
    for task in racing {
        outcomes.push(task.await.unwrap());
    }
    app.create_po("PO-2", &[("A-1", 5)]).await.unwrap();
    let request = crate::support::grn_request("GRN-X", "PO-2", "", &[("A-1", 5, 0)]);
    let (mut first, mut second) = (app.po.clone(), app.po.clone());
    let (one, two) = tokio::join!(
        first.receive_grn(request.clone()),
        second.receive_grn(request.clone())
    );

    // Assert: three fit, two are refused, and nothing is received twice.
    let accepted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(accepted, 3, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    assert_eq!(app.get_po("PO-1").await.totals.unwrap().received, 9);
    let replays = [one.unwrap().into_inner(), two.unwrap().into_inner()]
        .iter()
        .filter(|response| response.replayed)
        .count();
    assert_eq!(replays, 1);
    assert_eq!(app.common_stock("A-1").await, (14, 0));
    assert!(app.audit().await.clean);

    app.stop().await;
}

async fn a_grn_whose_stock_inventory_refuses_says_why_and_stays_pending(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    app.create_po("PO-1", &[("A-1", 10)]).await.unwrap();
    app.stock_faults.arm(Fault::Refused);

    // Act
    let refused = app
        .receive("GRN-X1", "PO-1", "", &[("A-1", 2, 0)])
        .await
        .unwrap_err();

    // Assert
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("inventory refused its stock")
            && refused.message().contains("last_delivery_error"),
        "{}",
        refused.message()
    );
    let grn = app.get_grn("GRN-X1").await;
    assert_eq!(
        grn.inventory_delivery,
        i32::from(pb::InventoryDelivery::Pending)
    );
    assert!(
        grn.last_delivery_error.contains("injected refusal"),
        "{}",
        grn.last_delivery_error
    );

    app.stop().await;
}

async fn a_receipt_sent_by_hand_under_a_grns_number_does_not_block_it(db: TestDatabase) {
    // Arrange: a receipt sent straight to inventory under the key a GRN's number alone
    // would give.
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    app.create_po("PO-1", &[("A-1", 10)]).await.unwrap();
    app.inventory
        .receive(kosha_proto::kosha::inventory::v1::ReceiveRequest {
            client_id: CLIENT.into(),
            reference: "by hand".into(),
            lines: vec![kosha_proto::kosha::inventory::v1::ReceiveLine {
                sku: "A-1".into(),
                grade: kosha_proto::types::QcGrade::Pass as i32,
                quantity: 1,
            }],
            idempotency_key: "grn:GRN-X1:1".into(),
            actor: "someone".into(),
        })
        .await
        .unwrap();

    // Act
    let received = app
        .receive("GRN-X1", "PO-1", "", &[("A-1", 2, 0)])
        .await
        .unwrap();

    // Assert
    assert_eq!(
        received.grn.unwrap().inventory_delivery,
        i32::from(pb::InventoryDelivery::Delivered)
    );
    assert_eq!(
        app.common_stock("A-1").await,
        (3, 0),
        "both receipts landed"
    );

    app.stop().await;
}

kosha_testkit::store_tests!(
    concurrent_receipts_never_over_receive_and_a_doubled_grn_lands_once,
    grns_move_the_po_forward_and_put_passed_and_failed_units_into_common,
    over_receipt_is_refused_unless_the_client_allows_excess,
    a_repeated_grn_number_returns_the_first_receipt_and_changes_nothing,
    short_close_records_what_never_arrived_and_ends_receiving,
    a_grn_without_a_po_needs_a_reason_and_brings_units_back,
    a_grn_whose_stock_inventory_refuses_says_why_and_stays_pending,
    a_receipt_sent_by_hand_under_a_grns_number_does_not_block_it,
);
