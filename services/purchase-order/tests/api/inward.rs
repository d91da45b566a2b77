//! Inward POs: uploads, field-by-field creation and queries.

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::{CLIENT, spawn_app, violated_fields};

type PoClient =
    pb::purchase_order_service_client::PurchaseOrderServiceClient<tonic::transport::Channel>;

async fn a_valid_inward_file_creates_its_pos_once_and_again_changes_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "A-2", "B-1"]).await;
    let file = "\u{feff}PO_Number,Supplier,SKU,Quantity,Unit_Cost,Expected_Date\r\n\
                PO-1,\"Weaver, Sons\",A-2,2.00,499.5,2024-05-01\r\n\
                PO-1,\"Weaver, Sons\",A-1,10,0,\r\n\
                PO-2,Dyer,B-1,3,120,2024-06-30\r\n";

    // Arrange: a dry run stores nothing.
    let dry = app
        .upload_inward(CLIENT, true, file.as_bytes())
        .await
        .unwrap();
    let report = dry.report.unwrap();
    assert!(report.dry_run && !report.applied && report.errors.is_empty());
    assert_eq!((report.rows, report.created), (3, 3));
    assert_eq!(dry.created_po_numbers, ["PO-1", "PO-2"]);
    assert_eq!(app.count_pos().await, 0);

    // Act
    let real = app
        .upload_inward(CLIENT, false, file.as_bytes())
        .await
        .unwrap();
    let again = app
        .upload_inward(CLIENT, false, file.as_bytes())
        .await
        .unwrap();

    // Assert
    let report = real.report.unwrap();
    assert!(report.applied);
    assert_eq!(report.created, 3);
    let report = again.report.unwrap();
    assert_eq!((report.created, report.unchanged), (0, 3));
    assert!(again.created_po_numbers.is_empty());
    assert_eq!(app.count_pos().await, 2);

    let po = app.get_po("PO-1").await;
    assert_eq!(po.supplier, "Weaver, Sons");
    assert_eq!(po.status, i32::from(pb::PurchaseOrderStatus::Open));
    let lines: Vec<(&str, &str, &str, i64)> = po
        .lines
        .iter()
        .map(|line| {
            let totals = line.totals.unwrap();
            (
                line.sku.as_str(),
                line.unit_cost.as_str(),
                line.expected_date.as_str(),
                totals.ordered,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [("A-1", "0.00", "", 10), ("A-2", "499.50", "2024-05-01", 2)]
    );
    let totals = po.totals.unwrap();
    assert_eq!(
        (totals.ordered, totals.received, totals.outstanding),
        (12, 0, 12)
    );

    app.stop().await;
}

async fn an_upload_never_changes_a_stored_po(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1"]).await;
    let first = "po_number,supplier,sku,quantity,unit_cost\nPO-1,Dyer,A-1,3,10\n";
    app.upload_inward(CLIENT, false, first.as_bytes())
        .await
        .unwrap();

    let changed = "po_number,supplier,sku,quantity,unit_cost\nPO-1,Dyer,A-1,4,10\n";
    let status = app
        .upload_inward(CLIENT, false, changed.as_bytes())
        .await
        .unwrap_err();

    assert_eq!(violated_fields(&status), ["rows[2].po_number"]);
    assert!(
        status.message().contains("nothing stored"),
        "{}",
        status.message()
    );
    let po = app.get_po("PO-1").await;
    assert_eq!(po.lines[0].totals.unwrap().ordered, 3);

    app.stop().await;
}

async fn creating_a_po_field_by_field_checks_the_master_and_is_idempotent(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "A-2", "OLD"]).await;
    app.disable_product(CLIENT, "OLD").await;

    let first = app
        .create_po("PO-7", &[("A-2", 5), ("A-1", 2)])
        .await
        .unwrap();
    let again = app
        .create_po("PO-7", &[("A-1", 2), ("A-2", 5)])
        .await
        .unwrap();
    let conflict = app.create_po("PO-7", &[("A-1", 3)]).await.unwrap_err();
    let unknown = app
        .create_po("PO-8", &[("A-1", 1), ("NOPE", 1), ("OLD", 1)])
        .await
        .unwrap_err();
    let repeated = app
        .create_po("PO-9", &[("A-1", 1), ("A-1", 2)])
        .await
        .unwrap_err();
    let zero = app.create_po("PO-9", &[("A-1", 0)]).await.unwrap_err();

    assert_eq!(first.lines.len(), 2);
    assert_eq!(first.create_time, again.create_time);
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    assert_eq!(violated_fields(&unknown), ["lines[1].sku", "lines[2].sku"]);
    assert_eq!(violated_fields(&repeated), ["lines[1].sku"]);
    assert_eq!(violated_fields(&zero), ["lines[0].quantity"]);
    assert_eq!(app.count_pos().await, 1);

    app.stop().await;
}

async fn pos_and_grns_are_listed_by_page_and_found_by_search(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    let file = "po_number,supplier,sku,quantity,unit_cost\n\
                PO-01,Weaver,A-1,5,1\nPO-02,Weaver,B-1,5,1\nPO-03,Dyer_Co,A-1,5,1\n\
                PO-04,Dyer_Co,B-1,5,1\nPO-05,Tailor,A-1,5,1\nX-06,Tailor,B-1,5,1\n";
    app.upload_inward(CLIENT, false, file.as_bytes())
        .await
        .unwrap();
    app.receive("GRN-1", "PO-01", "", &[("A-1", 2, 0)])
        .await
        .unwrap();
    app.receive("GRN-2", "PO-04", "", &[("B-1", 5, 0)])
        .await
        .unwrap();
    app.receive("GRN-3", "", "customer return", &[("B-1", 1, 0)])
        .await
        .unwrap();

    // Pages of two, in PO number order, with nothing repeated or skipped.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListPurchaseOrdersRequest {
            client_id: CLIENT.to_string(),
            page_size: 2,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = app
            .po
            .list_purchase_orders(request)
            .await
            .unwrap()
            .into_inner();
        assert!(page.purchase_orders.len() <= 2);
        seen.extend(page.purchase_orders.into_iter().map(|po| po.po_number));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["PO-01", "PO-02", "PO-03", "PO-04", "PO-05", "X-06"]);

    // Filters and searches.
    let by_status = list_numbers(&mut app, &[pb::PurchaseOrderStatus::PartiallyReceived], "").await;
    assert_eq!(by_status, ["PO-01"]);
    let by_supplier = list_numbers(&mut app, &[], "Tailor").await;
    assert_eq!(by_supplier, ["PO-05", "X-06"]);
    assert_eq!(
        search_numbers(&mut app, "po-0").await,
        ["PO-01", "PO-02", "PO-03", "PO-04", "PO-05"]
    );
    assert_eq!(search_numbers(&mut app, "er_c").await, ["PO-03", "PO-04"]);
    assert_eq!(
        search_numbers(&mut app, "B-1").await,
        ["PO-02", "PO-04", "X-06"]
    );
    assert!(search_numbers(&mut app, "%").await.is_empty());

    let request = pb::ListGrnsRequest {
        client_id: CLIENT.to_string(),
        without_po_only: true,
        ..Default::default()
    };
    let without_po = app.po.list_grns(request).await.unwrap().into_inner().grns;
    assert_eq!(
        without_po
            .iter()
            .map(|grn| grn.grn_number.as_str())
            .collect::<Vec<_>>(),
        ["GRN-3"]
    );
    let request = pb::SearchGrnsRequest {
        client_id: CLIENT.to_string(),
        query: "B-1".to_string(),
        ..Default::default()
    };
    let with_sku = app.po.search_grns(request).await.unwrap().into_inner().grns;
    let numbers: Vec<&str> = with_sku.iter().map(|grn| grn.grn_number.as_str()).collect();
    assert_eq!(numbers, ["GRN-2", "GRN-3"]);
    let request = pb::SearchGrnsRequest {
        client_id: CLIENT.to_string(),
        query: "PO-01".to_string(),
        ..Default::default()
    };
    let of_po = app.po.search_grns(request).await.unwrap().into_inner().grns;
    assert_eq!(of_po.len(), 1);
    assert_eq!(of_po[0].passed_quantity, 2);

    let bad_token = pb::ListPurchaseOrdersRequest {
        client_id: CLIENT.to_string(),
        page_token: "zz".to_string(),
        ..Default::default()
    };
    let status = app.po.list_purchase_orders(bad_token).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);

    app.stop().await;
}

async fn list_numbers(
    app: &mut crate::support::TestApp,
    statuses: &[pb::PurchaseOrderStatus],
    supplier: &str,
) -> Vec<String> {
    let request = pb::ListPurchaseOrdersRequest {
        client_id: CLIENT.to_string(),
        statuses: statuses.iter().map(|status| i32::from(*status)).collect(),
        supplier: supplier.to_string(),
        ..Default::default()
    };
    let page = app
        .po
        .list_purchase_orders(request)
        .await
        .unwrap()
        .into_inner();
    page.purchase_orders
        .into_iter()
        .map(|po| po.po_number)
        .collect()
}

async fn search_numbers(app: &mut crate::support::TestApp, query: &str) -> Vec<String> {
    let request = pb::SearchPurchaseOrdersRequest {
        client_id: CLIENT.to_string(),
        query: query.to_string(),
        ..Default::default()
    };
    let page = app
        .po
        .search_purchase_orders(request)
        .await
        .unwrap()
        .into_inner();
    page.purchase_orders
        .into_iter()
        .map(|po| po.po_number)
        .collect()
}

async fn the_same_file_uploaded_twice_at_once_creates_its_pos_once(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.add_products(CLIENT, &["A-1", "B-1"]).await;
    let mut file = String::from("po_number,supplier,sku,quantity,unit_cost\n");
    for n in 0..300 {
        file.push_str(&format!("PO-{n:03},Dyer,A-1,1,1\nPO-{n:03},Dyer,B-1,2,1\n"));
    }
    let upload = |mut client: PoClient, file: String| async move {
        let message = pb::UploadPurchaseOrdersRequest {
            client_id: CLIENT.to_string(),
            dry_run: false,
            chunk: file.into_bytes(),
            actor: String::new(),
        };
        client
            .upload_purchase_orders(tokio_stream::iter(vec![message]))
            .await
    };

    let (one, two) = tokio::join!(
        upload(app.po.clone(), file.clone()),
        upload(app.po.clone(), file.clone())
    );

    // Assert: one upload created everything; the other found it all (unchanged) or was
    // aborted before storing anything.
    let mut created = 0;
    for outcome in [one, two] {
        match outcome {
            Ok(response) => {
                let report = response.into_inner().report.unwrap();
                assert!(
                    report.created == 600 || report.unchanged == 600,
                    "{report:?}"
                );
                created += report.created;
            }
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert_eq!(created, 600);
    assert_eq!(app.count_pos().await, 300);

    app.stop().await;
}

kosha_testkit::store_tests!(
    the_same_file_uploaded_twice_at_once_creates_its_pos_once,
    a_valid_inward_file_creates_its_pos_once_and_again_changes_nothing,
    an_upload_never_changes_a_stored_po,
    creating_a_po_field_by_field_checks_the_master_and_is_idempotent,
    pos_and_grns_are_listed_by_page_and_found_by_search,
);
