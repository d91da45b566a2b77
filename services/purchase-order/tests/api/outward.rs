//! Outward (B2B) POs and their bulk orders in the order service.

use kosha_proto::kosha::order::v1 as order_pb;
use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_proto::types::QcGrade;
use kosha_purchase_order::config::Settings;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::{CLIENT, Fault, TestApp, report_problems, spawn_app, spawn_app_with};

fn outward_request(
    po_number: &str,
    lines: &[(&str, i64)],
) -> pb::CreateOutwardPurchaseOrderRequest {
    pb::CreateOutwardPurchaseOrderRequest {
        client_id: CLIENT.to_string(),
        po_number: po_number.to_string(),
        customer: "CUST-0001".to_string(),
        fulfilment_type: pb::FulfilmentType::BlockComplete.into(),
        qc_grade: QcGrade::Fail.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::OutwardPurchaseOrderLine {
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        actor: "warehouse".to_string(),
    }
}

async fn get_order(app: &mut TestApp, order_id: &str) -> order_pb::Order {
    let request = order_pb::GetOrderRequest {
        order_id: order_id.to_string(),
    };
    app.orders
        .get_order(request)
        .await
        .expect("get order")
        .into_inner()
        .order
        .unwrap()
}

/// Orders of the test client whose channel order id is `reference`.
async fn orders_with_reference(app: &mut TestApp, reference: &str) -> Vec<order_pb::Order> {
    let request = order_pb::SearchOrdersRequest {
        client_id: CLIENT.to_string(),
        id: reference.to_string(),
        ..Default::default()
    };
    app.orders
        .search_orders(request)
        .await
        .expect("search orders")
        .into_inner()
        .orders
}

async fn an_outward_po_becomes_one_bulk_order_linked_both_ways(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;

    let first = app
        .po
        .create_outward_purchase_order(outward_request("B2B-1", &[("B-1", 2), ("A-1", 5)]))
        .await
        .unwrap()
        .into_inner();
    let again = app
        .po
        .create_outward_purchase_order(outward_request("B2B-1", &[("A-1", 5), ("B-1", 2)]))
        .await
        .unwrap()
        .into_inner();
    let conflict = app
        .po
        .create_outward_purchase_order(outward_request("B2B-1", &[("A-1", 6)]))
        .await
        .unwrap_err();

    // The PO names its order, the order names its PO.
    let po = first.outward_purchase_order.unwrap();
    assert!(first.created);
    assert_eq!(po.order_link, i32::from(pb::OrderLink::Linked));
    assert_eq!(po.total_quantity, 7);
    let order = get_order(&mut app, &po.order_id).await;
    assert_eq!(
        (order.channel.as_str(), order.channel_order_id.as_str()),
        ("INTERNAL", "B2B-1")
    );
    assert_eq!(order.kind, i32::from(order_pb::OrderKind::Bulk));
    assert_eq!(
        order.fulfilment_type,
        i32::from(order_pb::FulfilmentType::BlockComplete)
    );
    assert_eq!(order.qc_grade, i32::from(QcGrade::Fail));
    let mut lines: Vec<(String, i64)> = order
        .lines
        .iter()
        .map(|line| (line.sku.clone(), line.quantity))
        .collect();
    lines.sort();
    assert_eq!(lines, [("A-1".to_string(), 5), ("B-1".to_string(), 2)]);

    // Sent again: the same PO and order; other content is refused.
    assert!(!again.created);
    assert_eq!(again.outward_purchase_order.unwrap().order_id, po.order_id);
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    assert_eq!(orders_with_reference(&mut app, "B2B-1").await.len(), 1);

    app.stop().await;
}

async fn an_outward_upload_links_later_when_the_order_service_fails(db: TestDatabase) {
    let settings = Settings {
        redelivery_interval_ms: 50,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    let file = "po_number,customer,sku,quantity,fulfilment_type,qc_grade\n\
                B2B-1,CUST-1,A-1,2.00,PARTIAL,PASS\n\
                B2B-1,CUST-1,B-1,1,,\n\
                B2B-2,CUST-2,A-1,4,block complete,fail\n";

    // Act: the first bulk order is created but its answer is lost.
    app.order_faults.arm(Fault::AfterCall);
    let response = app
        .upload_outward(CLIENT, false, file.as_bytes())
        .await
        .unwrap();

    // Assert: everything stored; one PO waits and is linked in the background to the
    // order that was created, not to a second one.
    let report = response.report.unwrap();
    assert!(report.applied);
    assert_eq!(report.created, 3);
    assert_eq!(response.created_po_numbers, ["B2B-1", "B2B-2"]);
    // Bulk orders are created a few at a time, so either PO may be the one that waits.
    let pending: Vec<&str> = response
        .orders
        .iter()
        .filter(|summary| summary.order_link == i32::from(pb::OrderLink::Pending))
        .map(|summary| summary.po_number.as_str())
        .collect();
    assert_eq!(pending.len(), 1, "{:?}", response.orders);
    let waited = pending[0].to_string();

    let linked = app.wait_until_linked(&waited).await;
    assert!(linked.link_attempts >= 2);
    assert!(linked.last_link_error.is_empty());
    let orders = orders_with_reference(&mut app, &waited).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, linked.order_id);
    let second = app.wait_until_linked("B2B-2").await;
    let order = get_order(&mut app, &second.order_id).await;
    assert_eq!(
        order.fulfilment_type,
        i32::from(order_pb::FulfilmentType::BlockComplete)
    );
    assert_eq!(order.qc_grade, i32::from(QcGrade::Fail));

    // Uploading the same file again changes nothing.
    let again = app
        .upload_outward(CLIENT, false, file.as_bytes())
        .await
        .unwrap();
    assert_eq!(again.report.unwrap().unchanged, 3);
    assert_eq!(orders_with_reference(&mut app, &waited).await.len(), 1);

    app.stop().await;
}

async fn an_outward_po_stays_pending_while_the_order_service_is_down(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    app.order_faults.arm(Fault::BeforeCall);

    let response = app
        .po
        .create_outward_purchase_order(outward_request("B2B-9", &[("A-1", 1)]))
        .await
        .unwrap()
        .into_inner();
    let retried = app
        .po
        .create_outward_purchase_order(outward_request("B2B-9", &[("A-1", 1)]))
        .await
        .unwrap()
        .into_inner();

    let pending = response.outward_purchase_order.unwrap();
    assert_eq!(pending.order_link, i32::from(pb::OrderLink::Pending));
    assert!(pending.order_id.is_empty());
    assert!(
        pending.last_link_error.contains("injected"),
        "{}",
        pending.last_link_error
    );
    let linked = retried.outward_purchase_order.unwrap();
    assert_eq!(linked.order_link, i32::from(pb::OrderLink::Linked));
    assert_eq!(orders_with_reference(&mut app, "B2B-9").await.len(), 1);

    app.stop().await;
}

async fn bad_outward_files_are_refused_with_every_row_named(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    let file = "po_number,customer,sku,quantity,fulfilment_type,qc_grade\n\
                B2B-1,CUST-1,A-1,1,PARTIAL,PASS\n\
                B2B-1,CUST-2,B-1,1,BLOCK_COMPLETE,FAIL\n\
                B2B-2,CUST-1,A-1,1,SOMETIMES,GOOD\n\
                B2B-3,,A-1,1.5,,\n";
    let mut too_long = String::from("po_number,customer,sku,quantity\n");
    for index in 0..1001 {
        let sku = if index % 2 == 0 { "A-1" } else { "B-1" };
        too_long.push_str(&format!("B2B-4,CUST-1,{sku},1\n"));
    }

    let report = app
        .upload_outward(CLIENT, true, file.as_bytes())
        .await
        .unwrap()
        .report
        .unwrap();
    let long_report = app
        .upload_outward(CLIENT, true, too_long.as_bytes())
        .await
        .unwrap()
        .report
        .unwrap();
    let refused = app
        .upload_outward(CLIENT, false, file.as_bytes())
        .await
        .unwrap_err();

    let row = |row: i64, column: &str, reason: &str| (row, column.to_string(), reason.to_string());
    assert_eq!(
        report_problems(&report),
        [
            row(3, "customer", "CONFLICTING_VALUE"),
            row(3, "fulfilment_type", "CONFLICTING_VALUE"),
            row(3, "qc_grade", "CONFLICTING_VALUE"),
            row(4, "fulfilment_type", "INVALID_FULFILMENT_TYPE"),
            row(4, "qc_grade", "INVALID_QC_GRADE"),
            row(5, "customer", "REQUIRED"),
            row(5, "quantity", "NOT_A_QUANTITY"),
        ]
    );
    let long_problems = report_problems(&long_report);
    assert!(
        long_problems.contains(&row(1002, "po_number", "TOO_MANY_LINES")),
        "{long_problems:?}"
    );
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(app.count_outward_pos().await, 0);

    app.stop().await;
}

kosha_testkit::store_tests!(
    an_outward_po_becomes_one_bulk_order_linked_both_ways,
    an_outward_upload_links_later_when_the_order_service_fails,
    an_outward_po_stays_pending_while_the_order_service_is_down,
    bad_outward_files_are_refused_with_every_row_named,
);
