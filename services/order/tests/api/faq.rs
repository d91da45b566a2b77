//! One test per order question of the help-desk FAQ: each reproduces the situation and
//! checks that ExplainOrder, SearchOrders or ListFailedOrders gives the answer.

use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::TestDatabase;

use crate::harness::{CLIENT, Options, TestApp, bulk_order, order, seconds_from_now, spawn_app};

fn has_step(steps: &[api::UnblockStep], action: api::UnblockAction, quantity: i64) -> bool {
    steps
        .iter()
        .any(|step| step.action() == action && step.quantity == quantity)
}

async fn search(app: &TestApp, request: api::SearchOrdersRequest) -> api::SearchOrdersResponse {
    app.orders
        .clone()
        .search_orders(request)
        .await
        .unwrap()
        .into_inner()
}

/// "Why is the order in processing though it got cancelled on the seller panel?"
async fn faq_an_order_cancelled_on_the_seller_panel_is_caught_when_packing(db: TestDatabase) {
    // Arrange
    let options = Options {
        test_connector_channels: vec!["AMAZON"],
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let processing = app
        .create(order("AMAZON", "404-CANCEL-1", &[("AM-1", 2)]))
        .await;
    let invoiced = app
        .create(order("AMAZON", "404-CANCEL-2", &[("AM-1", 1)]))
        .await;
    for id in [&processing.order_id, &invoiced.order_id] {
        let pick = api::PickOrderRequest {
            order_id: id.clone(),
            ..Default::default()
        };
        app.orders.clone().pick_order(pick).await.unwrap();
    }
    let pack = api::PackOrderRequest {
        order_id: invoiced.order_id.clone(),
        ..Default::default()
    };
    app.orders.clone().pack_order(pack).await.unwrap();
    let invoice = api::InvoiceOrderRequest {
        order_id: invoiced.order_id.clone(),
        ..Default::default()
    };
    app.orders.clone().invoice_order(invoice).await.unwrap();
    app.connector.set_state(
        "AMAZON",
        "404-CANCEL-1",
        channel::ChannelOrderState::Cancelled,
    );
    app.connector.set_state(
        "AMAZON",
        "404-CANCEL-2",
        channel::ChannelOrderState::Cancelled,
    );

    // Act
    let pack = api::PackOrderRequest {
        order_id: processing.order_id.clone(),
        ..Default::default()
    };
    let packing = app.orders.clone().pack_order(pack).await.unwrap_err();
    let sync = app
        .orders
        .clone()
        .sync_order_status(api::SyncOrderStatusRequest {
            target: Some(api::sync_order_status_request::Target::OrderId(
                invoiced.order_id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let cancel = api::CancelOrderRequest {
        order_id: invoiced.order_id.clone(),
        ..Default::default()
    };
    let refused = app.orders.clone().cancel_order(cancel).await.unwrap_err();
    let conflict_explained = app.explain(&invoiced.order_id).await;
    let dispatch = api::DispatchOrderRequest {
        order_id: invoiced.order_id.clone(),
        ..Default::default()
    };
    let not_shipped = app
        .orders
        .clone()
        .dispatch_order(dispatch)
        .await
        .unwrap_err();

    // Assert: the sync at packing caught the cancellation and freed the stock.
    assert_eq!(packing.code(), tonic::Code::FailedPrecondition);
    assert!(
        packing.message().contains("cancelled on AMAZON"),
        "{}",
        packing.message()
    );
    assert_eq!(
        app.get(&processing.order_id).await.status(),
        api::OrderStatus::Cancelled
    );
    assert_eq!(app.available("SKU-1").await, 4);
    // Once invoiced, the order cannot be cancelled: a re-GRN brings the units back.
    assert_eq!(sync.conflict_order_ids, vec![invoiced.order_id.clone()]);
    let conflicted = app.get(&invoiced.order_id).await;
    assert_eq!(conflicted.status(), api::OrderStatus::Invoiced);
    assert!(
        conflicted.channel_conflict.contains("re-GRN"),
        "{}",
        conflicted.channel_conflict
    );
    assert!(
        refused.message().contains("re-GRN"),
        "{}",
        refused.message()
    );
    assert_eq!(not_shipped.code(), tonic::Code::FailedPrecondition);
    assert!(
        not_shipped.message().contains("must not ship"),
        "{}",
        not_shipped.message()
    );
    assert!(
        conflict_explained
            .order_blockers()
            .any(|blocker| blocker == api::Blocker::ChannelConflict),
        "{conflict_explained:?}"
    );
    assert!(
        has_step(
            &conflict_explained.order_unblock,
            api::UnblockAction::ReceiveStock,
            1
        ),
        "{conflict_explained:?}"
    );
    app.assert_audit_clean().await;
}

/// "What is INTERNAL channel in OMS?"
async fn faq_internal_channel_orders_are_partially_fulfillable_bulk_orders(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    let mut wholesale = bulk_order("PO-WS-1", &[("SKU-2", 5)]);
    wholesale.channel = "WHOLESALE".into();
    let mut on_marketplace = bulk_order("PO-AM-1", &[("SKU-2", 5)]);
    on_marketplace.channel = "AMAZON".into();

    // Act
    let internal = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-INT-1", &[("SKU-1", 5)]))
        .await
        .unwrap();
    let wholesale = app
        .orders
        .clone()
        .create_bulk_order(wholesale)
        .await
        .unwrap();
    let refused = app
        .orders
        .clone()
        .create_bulk_order(on_marketplace)
        .await
        .unwrap_err();
    let unknown_sku = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-X", &[("SKU-404", 1)]))
        .await
        .unwrap_err();
    let found = search(
        &app,
        api::SearchOrdersRequest {
            client_id: CLIENT.into(),
            channel: "INTERNAL".into(),
            ..Default::default()
        },
    )
    .await;

    // Assert
    let internal = internal.into_inner().order.unwrap();
    assert_eq!(internal.channel, "INTERNAL");
    assert_eq!(internal.kind(), api::OrderKind::Bulk);
    assert_eq!(internal.fulfilment_type(), api::FulfilmentType::Partial);
    assert_eq!(
        wholesale.into_inner().order.unwrap().kind(),
        api::OrderKind::Bulk
    );
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown_sku.message().contains("product master"),
        "{}",
        unknown_sku.message()
    );
    assert_eq!(found.orders.len(), 1);
    assert_eq!(found.orders[0].channel_order_id, "PO-INT-1");
}

/// "Is it possible to make an UNFULFILLABLE order FULFILLABLE?"
async fn faq_explain_shows_how_to_make_an_unfulfillable_order_fulfillable(db: TestDatabase) {
    // Arrange: 2 units in RECYCLE in COMMON, 3 in a reserve pool, none AVAILABLE in COMMON.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let mut inventory = app.inventory.clone();
    inventory
        .recycle(inv::RecycleRequest {
            client_id: CLIENT.into(),
            pool: "COMMON".into(),
            sku: "SKU-1".into(),
            grade: QcGrade::Pass as i32,
            quantity: 2,
            reason: "stained".into(),
            idempotency_key: "recycle-1".into(),
            actor: "test".into(),
        })
        .await
        .unwrap();
    inventory
        .create_pool(inv::CreatePoolRequest {
            client_id: CLIENT.into(),
            name: "SALE".into(),
            idempotency_key: "pool-1".into(),
            actor: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    inventory
        .move_stock(inv::MoveStockRequest {
            client_id: CLIENT.into(),
            from_pool: "COMMON".into(),
            to_pool: "SALE".into(),
            lines: vec![inv::MoveStockLine {
                sku: "SKU-1".into(),
                grade: QcGrade::Pass as i32,
                quantity: 3,
            }],
            idempotency_key: "move-1".into(),
            actor: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stuck = app
        .create(order("AMAZON", "404-STUCK", &[("AM-1", 6)]))
        .await;

    // Act
    let explained = app.explain(&stuck.order_id).await;
    inventory
        .make_live(inv::MakeLiveRequest {
            client_id: CLIENT.into(),
            pool: "COMMON".into(),
            sku: "SKU-1".into(),
            grade: QcGrade::Pass as i32,
            quantity: 2,
            reason: "cleaned".into(),
            idempotency_key: "live-1".into(),
            actor: "test".into(),
        })
        .await
        .unwrap();
    let after = app
        .wait_for_status(&stuck.order_id, api::OrderStatus::PartiallyFulfillable, 20)
        .await;

    // Assert
    assert_eq!(stuck.status(), api::OrderStatus::Unfulfillable);
    let line = &explained.lines[0];
    assert_eq!(line.blocker(), api::Blocker::NoStock);
    assert_eq!((line.missing_quantity, line.available_in_pool), (6, 0));
    assert!(
        line.elsewhere
            .iter()
            .any(|e| e.pool == "COMMON" && e.state == "RECYCLE" && e.quantity == 2)
    );
    assert!(
        line.elsewhere
            .iter()
            .any(|e| e.pool == "SALE" && e.state == "AVAILABLE" && e.quantity == 3)
    );
    assert!(
        has_step(&line.unblock, api::UnblockAction::MakeLive, 2),
        "{:?}",
        line.unblock
    );
    assert!(
        has_step(&line.unblock, api::UnblockAction::MoveStock, 3),
        "{:?}",
        line.unblock
    );
    assert!(
        has_step(&line.unblock, api::UnblockAction::ReceiveStock, 1),
        "{:?}",
        line.unblock
    );
    assert!(
        explained.summary.contains("UNFULFILLABLE"),
        "{}",
        explained.summary
    );
    assert_eq!(
        after.lines[0].allocated_quantity, 2,
        "making RECYCLE units live served the order"
    );
}

/// "Why does a bulk order remain UNFULFILLABLE though stock is in the warehouse?"
async fn faq_a_bulk_order_stays_unfulfillable_for_block_complete_or_its_qc_grade(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    app.receive("SKU-2", 1, QcGrade::Pass).await;
    app.receive("SKU-3", 4, QcGrade::Pass).await;
    let mut block = bulk_order("PO-BC", &[("SKU-1", 2), ("SKU-2", 3)]);
    block.fulfilment_type = api::FulfilmentType::BlockComplete as i32;
    let block = app
        .orders
        .clone()
        .create_bulk_order(block)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let mut failed_grade = bulk_order("PO-QC", &[("SKU-3", 2)]);
    failed_grade.qc_grade = QcGrade::Fail as i32;
    let failed_grade = app
        .orders
        .clone()
        .create_bulk_order(failed_grade)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    for id in [&block.order_id, &failed_grade.order_id] {
        let order_id = kosha_order::domain::OrderId::try_parse(id).unwrap();
        app.app
            .allocate_existing(order_id, "ops", "operator's retry")
            .await
            .unwrap();
    }

    // Act
    let block_explained = app.explain(&block.order_id).await;
    let grade_explained = app.explain(&failed_grade.order_id).await;

    // Assert: block-complete holds the line that could be served.
    assert_eq!(
        app.get(&block.order_id).await.status(),
        api::OrderStatus::Unfulfillable
    );
    assert!(
        block_explained
            .order_blockers
            .contains(&(api::Blocker::BlockComplete as i32))
    );
    assert_eq!(
        block_explained.lines[0].blocker(),
        api::Blocker::BlockComplete
    );
    assert_eq!(block_explained.lines[1].blocker(), api::Blocker::NoStock);
    assert!(
        block_explained.summary.contains("BLOCK_COMPLETE"),
        "{}",
        block_explained.summary
    );
    // Served from QC FAIL, where there is nothing; the PASS units are named.
    assert_eq!(
        app.get(&failed_grade.order_id).await.status(),
        api::OrderStatus::Unfulfillable
    );
    let line = &grade_explained.lines[0];
    assert_eq!(line.qc_grade(), QcGrade::Fail);
    assert_eq!(line.blocker(), api::Blocker::NoStock);
    assert!(
        has_step(&line.unblock, api::UnblockAction::UseOtherGrade, 4),
        "{:?}",
        line.unblock
    );
    assert!(
        line.elsewhere
            .iter()
            .any(|e| e.qc_grade() == QcGrade::Pass && e.quantity == 4)
    );
    // A retry ran and found nothing: the answer no longer points at another retry.
    assert!(
        !grade_explained
            .order_blockers
            .contains(&(api::Blocker::BulkAwaitsRetry as i32)),
        "{grade_explained:?}"
    );
    assert!(
        grade_explained
            .summary
            .contains("a retry now allocates nothing"),
        "{}",
        grade_explained.summary
    );
}

/// "An order is ONHOLD": which hold, and when it ends.
async fn faq_an_onhold_order_says_which_hold_and_when_it_is_released(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-2", 2, QcGrade::Pass).await;
    let mut request = order("FLIPKART", "FK-LATER", &[("FK-2", 1)]);
    request.dispatch_after_time = Some(seconds_from_now(3600));
    let held = app.create(request).await;

    // Act
    let explained = app.explain(&held.order_id).await;

    // Assert
    assert_eq!(held.status(), api::OrderStatus::Onhold);
    assert!(
        explained
            .order_blockers
            .contains(&(api::Blocker::Hold as i32))
    );
    assert!(
        explained.summary.contains("dispatch-after"),
        "{}",
        explained.summary
    );
    assert!(
        explained.summary.contains("released automatically at"),
        "{}",
        explained.summary
    );
    assert!(has_step(
        &explained.order_unblock,
        api::UnblockAction::ReleaseHold,
        0
    ));
    assert_eq!(
        explained.lines[0].blocker(),
        api::Blocker::Unspecified,
        "its stock is allocated"
    );
}

/// "Marketplace order not searchable": by channel order id, parent order id, internal id,
/// and the failed-order report for orders that could not be taken in.
async fn faq_a_marketplace_order_is_found_by_any_of_its_ids_or_in_the_failed_report(
    db: TestDatabase,
) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    let mut flipkart = order("FLIPKART", "FK-ITEM-77", &[("FK-1", 1)]);
    flipkart.parent_order_id = "OD5763245723423".into();
    let flipkart = app.create(flipkart).await;
    let mut amazon = order("AMAZON", "AMZ-LINE-1", &[("AM-1", 1)]);
    amazon.parent_order_id = "404-748384-3467836".into();
    amazon.order_time = Some(to_timestamp(now_micros() - 86_400_000_000));
    let amazon = app.create(amazon).await;
    let failed = app
        .create(order("AMAZON", "AMZ-NEW-SKU", &[("AM-UNLISTED", 1)]))
        .await;
    let by_id = |id: &str| api::SearchOrdersRequest {
        client_id: CLIENT.into(),
        id: id.into(),
        ..Default::default()
    };

    // Act
    let by_parent = search(&app, by_id("od5763245723423")).await;
    let by_item = search(&app, by_id("fk-item-77")).await;
    let by_amazon_parent = search(&app, by_id("404-748384-3467836")).await;
    let by_internal = search(&app, by_id(&amazon.order_id.to_lowercase())).await;
    let last_hour = api::SearchOrdersRequest {
        client_id: CLIENT.into(),
        order_time_from: Some(to_timestamp(now_micros() - 3_600_000_000)),
        statuses: vec![
            api::OrderStatus::Unfulfillable as i32,
            api::OrderStatus::Failed as i32,
        ],
        page_size: 1,
        ..Default::default()
    };
    let recent = search(&app, last_hour.clone()).await;
    let next_page = search(
        &app,
        api::SearchOrdersRequest {
            page_token: recent.next_page_token.clone(),
            ..last_hour.clone()
        },
    )
    .await;
    let other_filters = app
        .orders
        .clone()
        .search_orders(api::SearchOrdersRequest {
            page_token: recent.next_page_token.clone(),
            statuses: vec![api::OrderStatus::Failed as i32],
            ..last_hour
        })
        .await
        .unwrap_err();
    let report = app
        .orders
        .clone()
        .list_failed_orders(api::ListFailedOrdersRequest {
            client_id: CLIENT.into(),
            channel: "AMAZON".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(by_parent.orders[0].order_id, flipkart.order_id);
    assert_eq!(by_item.orders[0].order_id, flipkart.order_id);
    assert_eq!(by_amazon_parent.orders[0].order_id, amazon.order_id);
    assert_eq!(by_internal.orders[0].order_id, amazon.order_id);
    assert_eq!(recent.orders[0].order_id, failed.order_id, "newest first");
    assert_eq!(next_page.orders[0].order_id, flipkart.order_id);
    assert_eq!(other_filters.code(), tonic::Code::InvalidArgument);
    assert!(
        other_filters.message().contains("other filters"),
        "{}",
        other_filters.message()
    );
    assert_eq!(report.failed_orders.len(), 1);
    assert_eq!(report.failed_orders[0].channel_order_id, "AMZ-NEW-SKU");
    assert!(
        report.failed_orders[0].reason.contains("AM-UNLISTED"),
        "{}",
        report.failed_orders[0].reason
    );
}

/// A FULFILLABLE order that sits idle: the start time, or nothing at all.
async fn faq_a_fulfillable_order_that_sits_idle_is_explained(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 3, QcGrade::Pass).await;
    let mut later = order("AMAZON", "IDLE-LATER", &[("AM-1", 1)]);
    later.start_processing_time = Some(seconds_from_now(7200));
    let later = app.create(later).await;
    let ready = app
        .create(order("AMAZON", "IDLE-READY", &[("AM-1", 1)]))
        .await;
    // One unit left for an order of three that ships once.
    let mut once = order("AMAZON", "IDLE-ONCE", &[("AM-1", 3)]);
    once.fulfilment_type = api::FulfilmentType::SingleShipmentPartial as i32;
    let once = app.create(once).await;

    // Act
    let later_explained = app.explain(&later.order_id).await;
    let ready_explained = app.explain(&ready.order_id).await;
    let once_explained = app.explain(&once.order_id).await;

    // Assert
    assert_eq!(later.status(), api::OrderStatus::Fulfillable);
    assert!(
        later_explained
            .order_blockers
            .contains(&(api::Blocker::StartProcessingTime as i32))
    );
    assert!(
        later_explained
            .summary
            .contains("not released for picking before"),
        "{}",
        later_explained.summary
    );
    assert!(ready_explained.order_blockers.is_empty());
    assert!(
        ready_explained.summary.contains("ready for picking"),
        "{}",
        ready_explained.summary
    );
    assert!(has_step(
        &ready_explained.order_unblock,
        api::UnblockAction::Pick,
        1
    ));
    assert_eq!(once.status(), api::OrderStatus::PartiallyFulfillable);
    assert!(
        once_explained
            .summary
            .contains("its 2 units not allocated by then are cancelled"),
        "{}",
        once_explained.summary
    );
}

kosha_testkit::store_tests!(
    faq_an_order_cancelled_on_the_seller_panel_is_caught_when_packing,
    faq_internal_channel_orders_are_partially_fulfillable_bulk_orders,
    faq_explain_shows_how_to_make_an_unfulfillable_order_fulfillable,
    faq_a_bulk_order_stays_unfulfillable_for_block_complete_or_its_qc_grade,
    faq_an_onhold_order_says_which_hold_and_when_it_is_released,
    faq_a_marketplace_order_is_found_by_any_of_its_ids_or_in_the_failed_report,
    faq_a_fulfillable_order_that_sits_idle_is_explained,
);
