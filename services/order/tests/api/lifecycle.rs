//! Picking, packing, invoicing, dispatch, cancellation and completion: every move allowed
//! and refused.

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_testkit::TestDatabase;

use crate::harness::{Options, TestApp, bulk_order, order, seconds_from_now, spawn_app};

async fn pick(app: &TestApp, order_id: &str) -> Result<api::Order, tonic::Status> {
    pick_list(app, order_id, &[]).await
}

async fn pick_list(
    app: &TestApp,
    order_id: &str,
    lines: &[(i32, i64)],
) -> Result<api::Order, tonic::Status> {
    let request = api::PickOrderRequest {
        order_id: order_id.into(),
        actor: "picker".into(),
        lines: lines
            .iter()
            .map(|(line_no, quantity)| api::PickLine {
                line_no: *line_no,
                quantity: *quantity,
            })
            .collect(),
    };
    app.orders
        .clone()
        .pick_order(request)
        .await
        .map(|r| r.into_inner().order.unwrap())
}

async fn pack(app: &TestApp, order_id: &str) -> Result<api::PackOrderResponse, tonic::Status> {
    let request = api::PackOrderRequest {
        order_id: order_id.into(),
        actor: "packer".into(),
    };
    app.orders
        .clone()
        .pack_order(request)
        .await
        .map(|r| r.into_inner())
}

async fn invoice(
    app: &TestApp,
    order_id: &str,
    shipment_id: &str,
) -> Result<api::InvoiceOrderResponse, tonic::Status> {
    let request = api::InvoiceOrderRequest {
        order_id: order_id.into(),
        shipment_id: shipment_id.into(),
        actor: "billing".into(),
        ..Default::default()
    };
    app.orders
        .clone()
        .invoice_order(request)
        .await
        .map(|r| r.into_inner())
}

async fn dispatch(
    app: &TestApp,
    order_id: &str,
    shipment_id: &str,
) -> Result<api::DispatchOrderResponse, tonic::Status> {
    let request = api::DispatchOrderRequest {
        order_id: order_id.into(),
        shipment_id: shipment_id.into(),
        actor: "dock".into(),
    };
    app.orders
        .clone()
        .dispatch_order(request)
        .await
        .map(|r| r.into_inner())
}

/// Cancels `quantity` units of line 1.
async fn cancel_units(
    app: &TestApp,
    order_id: &str,
    quantity: i64,
) -> Result<tonic::Response<api::CancelLinesResponse>, tonic::Status> {
    let request = api::CancelLinesRequest {
        order_id: order_id.into(),
        lines: vec![api::LineQuantity {
            line_number: 1,
            quantity,
        }],
        actor: "ops".into(),
        reason: "customer asked".into(),
    };
    app.orders.clone().cancel_lines(request).await
}

async fn cancel(app: &TestApp, order_id: &str) -> Result<api::CancelOrderResponse, tonic::Status> {
    let request = api::CancelOrderRequest {
        order_id: order_id.into(),
        actor: "ops".into(),
        reason: "customer asked".into(),
    };
    app.orders
        .clone()
        .cancel_order(request)
        .await
        .map(|r| r.into_inner())
}

/// A bulk order of `lines`, allocated as an operator's retry would allocate it.
async fn allocated_bulk(app: &TestApp, reference: &str, lines: &[(&str, i64)]) -> api::Order {
    let bulk = app
        .orders
        .clone()
        .create_bulk_order(bulk_order(reference, lines))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let id = kosha_order::domain::OrderId::try_parse(&bulk.order_id).unwrap();
    app.app.allocate_existing(id, "ops", "test").await.unwrap();
    bulk
}

fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, words: &[&str]) {
    let status = result.expect_err("the move should be refused");
    assert_eq!(
        status.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        status.message()
    );
    for word in words {
        assert!(
            status.message().contains(word),
            "`{}` does not mention `{word}`",
            status.message()
        );
    }
}

async fn an_order_goes_from_fulfillable_through_pick_pack_invoice_and_dispatch(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "L-1", &[("AM-1", 2)])).await;

    // Act
    let picked = pick(&app, &created.order_id).await.unwrap();
    let packed = pack(&app, &created.order_id).await.unwrap();
    let shipment_id = packed.shipment.as_ref().unwrap().shipment_id.clone();
    let invoiced = invoice(&app, &created.order_id, "").await.unwrap();
    let again = invoice(&app, &created.order_id, &shipment_id)
        .await
        .unwrap();
    let dispatched = dispatch(&app, &created.order_id, "").await.unwrap();

    // Assert
    assert_eq!(picked.status(), api::OrderStatus::Processing);
    assert_eq!(picked.lines[0].picked_quantity, 2);
    assert_eq!(packed.shipment.as_ref().unwrap().lines[0].quantity, 2);
    assert_eq!(
        invoiced.order.as_ref().unwrap().status(),
        api::OrderStatus::Invoiced
    );
    assert_eq!(
        invoiced.shipment.as_ref().unwrap().status(),
        api::ShipmentStatus::Invoiced
    );
    assert_eq!(
        again.order.unwrap().lines[0].invoiced_quantity,
        2,
        "a repeated invoice consumes once"
    );
    assert_eq!(
        dispatched.order.as_ref().unwrap().status(),
        api::OrderStatus::Dispatched
    );
    assert_eq!(app.available("SKU-1").await, 3);
    assert!(app.held("AMAZON:L-1").await.values().all(|held| *held == 0));
    let statuses: Vec<_> = app
        .history(&created.order_id)
        .await
        .iter()
        .map(|e| e.to_status())
        .collect();
    assert_eq!(
        statuses,
        vec![
            api::OrderStatus::Created,
            api::OrderStatus::Fulfillable,
            api::OrderStatus::Processing,
            api::OrderStatus::Processing,
            api::OrderStatus::Invoiced,
            api::OrderStatus::Dispatched,
        ]
    );
    app.assert_audit_clean().await;
}

async fn single_shipment_orders_cancel_the_rest_at_invoicing_and_multi_shipment_orders_ship_twice(
    db: TestDatabase,
) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-2", 1, QcGrade::Pass).await;
    app.receive("SKU-4", 1, QcGrade::Pass).await;
    let single = app.create(order("AMAZON", "SS-1", &[("AM-2", 3)])).await;
    let mut multi_request = order("AMAZON", "MS-1", &[("AM-4", 2)]);
    multi_request.fulfilment_type = api::FulfilmentType::MultiShipmentPartial as i32;
    let multi = app.create(multi_request).await;

    // Act: the single-shipment order ships what it has.
    pick(&app, &single.order_id).await.unwrap();
    pack(&app, &single.order_id).await.unwrap();
    let second_pack = pack(&app, &single.order_id).await;
    let single_invoiced = invoice(&app, &single.order_id, "")
        .await
        .unwrap()
        .order
        .unwrap();

    // Act: the multi-shipment order ships one unit, then the next when it arrives.
    pick(&app, &multi.order_id).await.unwrap();
    let first = pack(&app, &multi.order_id).await.unwrap().shipment.unwrap();
    let after_first = invoice(&app, &multi.order_id, &first.shipment_id)
        .await
        .unwrap()
        .order
        .unwrap();
    app.receive("SKU-4", 1, QcGrade::Pass).await;
    let topped_up = async {
        for _ in 0..100 {
            let current = app.get(&multi.order_id).await;
            if current.lines[0].allocated_quantity == 2 {
                return current;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the multi-shipment order was not topped up when stock arrived");
    }
    .await;
    pick(&app, &multi.order_id).await.unwrap();
    let second = pack(&app, &multi.order_id).await.unwrap().shipment.unwrap();
    invoice(&app, &multi.order_id, &second.shipment_id)
        .await
        .unwrap();
    dispatch(&app, &multi.order_id, &first.shipment_id)
        .await
        .unwrap();
    let done = dispatch(&app, &multi.order_id, &second.shipment_id)
        .await
        .unwrap()
        .order
        .unwrap();

    // Assert
    refused(second_pack, &["one shipment"]);
    assert_eq!(single_invoiced.status(), api::OrderStatus::Invoiced);
    assert_eq!(single_invoiced.lines[0].cancelled_quantity, 2);
    assert_eq!(single_invoiced.lines[0].invoiced_quantity, 1);
    assert_eq!(after_first.status(), api::OrderStatus::Processing);
    assert_eq!(topped_up.status(), api::OrderStatus::Processing);
    assert_eq!(done.status(), api::OrderStatus::Dispatched);
    assert_eq!(done.shipments.len(), 2);
    assert_eq!(done.lines[0].dispatched_quantity, 2);
    app.assert_audit_clean().await;
}

async fn every_refused_move_names_the_status_and_changes_nothing(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 4, QcGrade::Pass).await;
    let waiting = app.create(order("AMAZON", "R-NONE", &[("AM-6", 1)])).await;
    let ready = app.create(order("AMAZON", "R-READY", &[("AM-1", 1)])).await;
    let mut later_request = order("AMAZON", "R-LATER", &[("AM-1", 1)]);
    later_request.start_processing_time = Some(seconds_from_now(3600));
    let later = app.create(later_request).await;
    let shipped = app
        .create(order("AMAZON", "R-SHIPPED", &[("AM-1", 1)]))
        .await;
    pick(&app, &shipped.order_id).await.unwrap();
    pack(&app, &shipped.order_id).await.unwrap();
    invoice(&app, &shipped.order_id, "").await.unwrap();

    // Act + Assert: each refusal names the order's status and the rule.
    refused(
        pick(&app, &waiting.order_id).await,
        &["UNFULFILLABLE", "nothing is allocated"],
    );
    refused(
        pack(&app, &ready.order_id).await,
        &["FULFILLABLE", "picked"],
    );
    refused(
        invoice(&app, &ready.order_id, "").await,
        &["no PACKED shipment"],
    );
    refused(
        dispatch(&app, &ready.order_id, "").await,
        &["FULFILLABLE", "invoiced"],
    );
    refused(pick(&app, &later.order_id).await, &["start-processing"]);
    refused(
        cancel(&app, &shipped.order_id).await,
        &["INVOICED", "re-GRN"],
    );
    let cancel_lines = cancel_units(&app, &shipped.order_id, 1).await;
    refused(cancel_lines, &["INVOICED", "re-GRN"]);
    let complete = app
        .orders
        .clone()
        .complete_order(api::CompleteOrderRequest {
            order_id: ready.order_id.clone(),
            ..Default::default()
        })
        .await;
    refused(complete, &["only bulk"]);
    let too_many = cancel_units(&app, &ready.order_id, 2).await;
    refused(too_many, &["neither picked nor cancelled"]);
    let unknown = app
        .orders
        .clone()
        .get_order(api::GetOrderRequest {
            order_id: "ORD-999999".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    let garbage = app
        .orders
        .clone()
        .get_order(api::GetOrderRequest {
            order_id: "12".into(),
        })
        .await;
    assert_eq!(garbage.unwrap_err().code(), tonic::Code::InvalidArgument);

    // Nothing changed on the refused orders.
    assert_eq!(
        app.get(&ready.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
    assert_eq!(
        app.get(&shipped.order_id).await.status(),
        api::OrderStatus::Invoiced
    );
    app.assert_audit_clean().await;
}

async fn cancelling_frees_the_allocation_exactly_once(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "X-1", &[("AM-1", 3)])).await;
    let picked = app.create(order("AMAZON", "X-2", &[("AM-1", 2)])).await;
    pick(&app, &picked.order_id).await.unwrap();

    // Act
    let lines = cancel_units(&app, &created.order_id, 1)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let available_after_lines = app.available("SKU-1").await;
    let first = cancel(&app, &created.order_id).await.unwrap();
    let second = cancel(&app, &created.order_id).await.unwrap();
    let processing = cancel(&app, &picked.order_id).await.unwrap();

    // Assert
    assert_eq!(lines.lines[0].cancelled_quantity, 1);
    assert_eq!(lines.lines[0].allocated_quantity, 2);
    assert_eq!(available_after_lines, 1);
    assert!(!first.already_cancelled);
    assert_eq!(first.order.unwrap().status(), api::OrderStatus::Cancelled);
    assert!(second.already_cancelled);
    assert!(second.message.contains("already"), "{}", second.message);
    assert_eq!(
        processing.order.unwrap().status(),
        api::OrderStatus::Cancelled
    );
    assert_eq!(app.available("SKU-1").await, 5);
    assert!(app.held("AMAZON:X-1").await.values().all(|held| *held == 0));
    let cancellations = app
        .history(&created.order_id)
        .await
        .iter()
        .filter(|entry| {
            entry.to_status() == api::OrderStatus::Cancelled
                && entry.from_status() != api::OrderStatus::Cancelled
        })
        .count();
    assert_eq!(cancellations, 1);
    app.assert_audit_clean().await;
}

async fn a_bulk_order_is_allocated_only_by_an_operators_retry_which_runs_as_a_job(
    db: TestDatabase,
) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-5", 6, QcGrade::Pass).await;
    let created = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-OUT-1", &[("SKU-5", 4)]))
        .await
        .unwrap();
    let created = created.into_inner().order.unwrap();

    // Act: stock is there and the follower runs, but nothing allocates a bulk order.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let untouched = app.get(&created.order_id).await;
    let spaced_key = app
        .orders
        .clone()
        .retry_allocation(api::RetryAllocationRequest {
            order_id: created.order_id.clone(),
            actor: "ops".into(),
            request_id: "retry 1".into(),
        })
        .await;
    let retry = app
        .orders
        .clone()
        .retry_allocation(api::RetryAllocationRequest {
            order_id: created.order_id.clone(),
            actor: "ops".into(),
            request_id: "retry-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let allocated = app
        .wait_for_status(&created.order_id, api::OrderStatus::Fulfillable, 60)
        .await;

    // Assert
    assert_eq!(created.channel, "INTERNAL");
    assert_eq!(created.kind(), api::OrderKind::Bulk);
    assert_eq!(created.fulfilment_type(), api::FulfilmentType::Partial);
    assert_eq!(untouched.status(), api::OrderStatus::Created);
    let refused = spaced_key.expect_err("a request id with a space");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("request_id"),
        "{}",
        refused.message()
    );
    assert!(!retry.job_id.is_empty());
    let due = retry.job_due_time.unwrap();
    let now = kosha_runtime::time::now_micros() / 1_000_000;
    assert!(
        due.seconds <= now + 60,
        "the retry job is due within a minute"
    );
    assert_eq!(allocated.lines[0].allocated_quantity, 4);
    assert_eq!(app.available("SKU-5").await, 2);
}

async fn a_partially_processed_bulk_order_completes_and_frees_what_is_not_picked(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-5", 7, QcGrade::Pass).await;
    let processed = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-A", &[("SKU-5", 10)]))
        .await
        .unwrap();
    let processed = processed.into_inner().order.unwrap();
    let direct = |id: &str| {
        let app = &app;
        let id = id.to_string();
        async move {
            app.app
                .allocate_existing(
                    kosha_order::domain::OrderId::try_parse(&id).unwrap(),
                    "ops",
                    "test",
                )
                .await
                .unwrap()
        }
    };
    direct(&processed.order_id).await;
    pick(&app, &processed.order_id).await.unwrap();
    let idle = app
        .orders
        .clone()
        .create_bulk_order(bulk_order("PO-B", &[("SKU-5", 3)]))
        .await
        .unwrap();
    let idle = idle.into_inner().order.unwrap();
    app.receive("SKU-5", 3, QcGrade::Pass).await;
    direct(&idle.order_id).await;

    // Act
    let completed = app
        .orders
        .clone()
        .complete_order(api::CompleteOrderRequest {
            order_id: processed.order_id.clone(),
            actor: "ops".into(),
            reason: "rest not needed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let completed_idle = app
        .orders
        .clone()
        .complete_order(api::CompleteOrderRequest {
            order_id: idle.order_id.clone(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    pack(&app, &processed.order_id).await.unwrap();
    let invoiced = invoice(&app, &processed.order_id, "")
        .await
        .unwrap()
        .order
        .unwrap();

    // Assert
    let order = completed.order.unwrap();
    assert_eq!(order.status(), api::OrderStatus::Complete);
    assert_eq!(
        completed.released_quantity, 0,
        "picked units are kept for shipping"
    );
    assert_eq!(order.lines[0].cancelled_quantity, 3);
    assert_eq!(
        completed_idle.code(),
        tonic::Code::FailedPrecondition,
        "an order nothing of which is picked is cancelled, not completed"
    );
    assert!(
        completed_idle.message().contains("cancel it instead"),
        "{}",
        completed_idle.message()
    );
    let idle_after = app.get(&idle.order_id).await;
    assert_eq!(idle_after.status(), api::OrderStatus::Fulfillable);
    assert_eq!(idle_after.lines[0].cancelled_quantity, 0);
    assert_eq!(
        idle_after.lines[0].allocated_quantity, 3,
        "the refusal frees nothing"
    );
    assert_eq!(invoiced.status(), api::OrderStatus::Complete);
    assert_eq!(invoiced.lines[0].invoiced_quantity, 7);
    assert_eq!(app.available("SKU-5").await, 0);
    app.assert_audit_clean().await;
}

async fn a_partial_pick_list_leaves_the_rest_allocated_until_complete_frees_it(db: TestDatabase) {
    // Arrange: a bulk order of 10 with 7 allocated.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-5", 7, QcGrade::Pass).await;
    let bulk = allocated_bulk(&app, "PO-P", &[("SKU-5", 10)]).await;

    // Act: bad pick lists first, then a pick list of 4, then complete.
    let unknown_line = pick_list(&app, &bulk.order_id, &[(9, 1)])
        .await
        .unwrap_err();
    let too_many = pick_list(&app, &bulk.order_id, &[(1, 8)])
        .await
        .unwrap_err();
    let picked = pick_list(&app, &bulk.order_id, &[(1, 4)]).await.unwrap();
    let completed = app
        .orders
        .clone()
        .complete_order(api::CompleteOrderRequest {
            order_id: bulk.order_id.clone(),
            actor: "ops".into(),
            reason: "rest not needed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    pack(&app, &bulk.order_id).await.unwrap();
    let invoiced = invoice(&app, &bulk.order_id, "")
        .await
        .unwrap()
        .order
        .unwrap();

    // Assert
    assert_eq!(unknown_line.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown_line.message().contains("lines[0].line_no"),
        "{}",
        unknown_line.message()
    );
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().contains("holds 7"),
        "{}",
        too_many.message()
    );
    assert_eq!(picked.status(), api::OrderStatus::Processing);
    assert_eq!(
        completed.released_quantity, 3,
        "allocated but not on the pick list"
    );
    assert_eq!(completed.order.unwrap().lines[0].cancelled_quantity, 6);
    assert_eq!(invoiced.lines[0].invoiced_quantity, 4);
    assert_eq!(app.available("SKU-5").await, 3);
    app.assert_audit_clean().await;
}

async fn units_cancelled_before_their_release_goes_through_are_never_picked(db: TestDatabase) {
    // Arrange: two of three units cancelled while inventory refuses the release, so
    // inventory still holds all three when the picker comes.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "CXP-1", &[("AM-1", 3)])).await;
    app.faults.fail_releases(1);
    cancel_units(&app, &created.order_id, 2).await.unwrap();
    let held_before_pick = app.held("AMAZON:CXP-1").await.get("1").copied();

    // Act
    let picked = pick(&app, &created.order_id).await.unwrap();
    let cancel_picked = cancel_units(&app, &created.order_id, 1).await;

    // Assert
    assert_eq!(held_before_pick, Some(3), "the release was meant to fail");
    assert_eq!(picked.lines[0].picked_quantity, 1);
    assert_eq!(picked.lines[0].cancelled_quantity, 2);
    assert!(
        cancel_picked.is_err(),
        "a picked unit cannot be cancelled line by line"
    );
}

async fn a_shipment_packed_before_a_cancellation_is_never_invoiced(db: TestDatabase) {
    // Arrange: picked and packed, then cancelled.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "PKC-1", &[("AM-1", 2)])).await;
    pick(&app, &created.order_id).await.unwrap();
    let packed = pack(&app, &created.order_id).await.unwrap();
    let shipment_id = packed.shipment.unwrap().shipment_id;
    cancel(&app, &created.order_id).await.unwrap();

    // Act
    let invoiced = invoice(&app, &created.order_id, &shipment_id).await;

    let dispatched = dispatch(&app, &created.order_id, &shipment_id).await;

    // Assert
    refused(invoiced, &["CANCELLED", "cannot invoice", "void"]);
    refused(dispatched, &["cancelled", "void", "never ships"]);
    assert_eq!(app.available("SKU-1").await, 5);
    app.assert_audit_clean().await;
}

async fn closed_and_all_or_nothing_orders_are_explained_with_what_comes_next(db: TestDatabase) {
    // Arrange: a cancelled order; a completed bulk order with picked units not yet
    // invoiced; a BLOCK_COMPLETE bulk order none of whose six lines has stock.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let cancelled = app.create(order("AMAZON", "EXP-C", &[("AM-1", 1)])).await;
    cancel(&app, &cancelled.order_id).await.unwrap();
    let completed = allocated_bulk(&app, "PO-EXP", &[("SKU-1", 6)]).await;
    pick(&app, &completed.order_id).await.unwrap();
    app.orders
        .clone()
        .complete_order(api::CompleteOrderRequest {
            order_id: completed.order_id.clone(),
            actor: "ops".into(),
            reason: "rest not needed".into(),
        })
        .await
        .unwrap();
    let all_lines: Vec<(String, i64)> = (1..=6).map(|n| (format!("SKU-{n}"), 10)).collect();
    let all_lines: Vec<(&str, i64)> = all_lines
        .iter()
        .map(|(sku, quantity)| (sku.as_str(), *quantity))
        .collect();
    let mut request = bulk_order("PO-ALL", &all_lines);
    request.fulfilment_type = api::FulfilmentType::BlockComplete as i32;
    let all_or_nothing = app
        .orders
        .clone()
        .create_bulk_order(request)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();

    // Act
    let cancelled_said = app.explain(&cancelled.order_id).await;
    let completed_said = app.explain(&completed.order_id).await;
    let waiting_said = app.explain(&all_or_nothing.order_id).await;

    // Assert
    assert!(
        cancelled_said.summary.contains("cancelled by ops at ")
            && cancelled_said.summary.contains("customer asked"),
        "{}",
        cancelled_said.summary
    );
    assert!(
        completed_said
            .summary
            .contains("its 5 picked units not yet invoiced still go through PackOrder"),
        "{}",
        completed_said.summary
    );
    let summary = &waiting_said.summary;
    assert!(summary.contains("line 5:"), "{summary}");
    assert!(!summary.contains("line 6:"), "{summary}");
    assert!(summary.contains("and 1 more blocked lines"), "{summary}");
    assert_eq!(waiting_said.lines.len(), 6, "every line is still explained");
    let retry = waiting_said
        .order_unblock
        .iter()
        .find(|step| step.action() == api::UnblockAction::RetryAllocation)
        .expect("a retry is still the last move");
    assert!(
        retry.description.contains("once line 1 (SKU-1)")
            && retry
                .description
                .contains("a retry before that allocates nothing"),
        "{}",
        retry.description
    );
}

/// What inventory holds for each line of an order, and what the order says it should.
async fn holdings(app: &TestApp, order_id: &str) -> Vec<(i64, i64)> {
    app.holdings(order_id)
        .await
        .iter()
        .map(|line| (line.held_quantity, line.expected_quantity))
        .collect()
}

async fn an_invoice_racing_a_cancellation_leaves_exactly_one_of_them(db: TestDatabase) {
    // Arrange: orders picked and packed, each waiting for its invoice.
    let app = spawn_app(db, Options::default()).await;
    const ROUNDS: usize = 8;
    app.receive("SKU-1", 2 * ROUNDS as i64, QcGrade::Pass).await;
    let mut packed = Vec::new();
    for round in 0..ROUNDS {
        let created = app
            .create(order("AMAZON", &format!("RACE-I-{round}"), &[("AM-1", 2)]))
            .await;
        pick(&app, &created.order_id).await.unwrap();
        pack(&app, &created.order_id).await.unwrap();
        packed.push(created.order_id);
    }

    // Act: each order's invoice and cancellation sent together.
    let mut outcomes = Vec::new();
    for order_id in &packed {
        let (invoiced, cancelled) =
            tokio::join!(invoice(&app, order_id, ""), cancel(&app, order_id));
        outcomes.push((invoiced.is_ok(), cancelled.is_ok()));
    }

    // Assert: one call wins each race, and the books agree with the order.
    let mut invoiced_orders = 0;
    for (order_id, (invoiced, cancelled)) in packed.iter().zip(outcomes) {
        assert!(
            invoiced != cancelled,
            "{order_id}: exactly one of them goes through"
        );
        let status = app.get(order_id).await.status();
        if invoiced {
            invoiced_orders += 1;
            assert_eq!(status, api::OrderStatus::Invoiced, "{order_id}");
        } else {
            assert_eq!(status, api::OrderStatus::Cancelled, "{order_id}");
        }
    }
    app.reconcile(false).await;
    let consumed = 2 * invoiced_orders;
    assert_eq!(
        app.available("SKU-1").await,
        2 * ROUNDS as i64 - consumed,
        "only the invoiced orders' units left stock"
    );
    app.assert_audit_clean().await;
}

async fn a_completion_racing_a_line_cancellation_never_frees_a_picked_unit(db: TestDatabase) {
    // Arrange: bulk orders of 5 with 1 picked.
    let app = spawn_app(db, Options::default()).await;
    const ROUNDS: usize = 8;
    app.receive("SKU-2", 5 * ROUNDS as i64, QcGrade::Pass).await;
    let mut started = Vec::new();
    for round in 0..ROUNDS {
        let bulk = allocated_bulk(&app, &format!("PO-RACE-{round}"), &[("SKU-2", 5)]).await;
        pick_list(&app, &bulk.order_id, &[(1, 1)]).await.unwrap();
        started.push(bulk.order_id);
    }

    // Act: each order's completion and a cancellation of one unpicked unit sent together.
    for order_id in &started {
        let mut orders = app.orders.clone();
        let complete = orders.complete_order(api::CompleteOrderRequest {
            order_id: order_id.clone(),
            actor: "ops".into(),
            reason: "rest not needed".into(),
        });
        let (_completed, _cancelled) = tokio::join!(complete, cancel_units(&app, order_id, 1));
    }

    // Assert: the picked unit stays held through the race, and once what is owed is
    // released every order holds exactly its picked unit and can be invoiced.
    for order_id in &started {
        for (held, _) in holdings(&app, order_id).await {
            assert!(held >= 1, "{order_id}: its picked unit was released");
        }
    }
    app.reconcile(false).await;
    for order_id in &started {
        assert_eq!(holdings(&app, order_id).await, vec![(1, 1)], "{order_id}");
        pack(&app, order_id).await.unwrap();
        invoice(&app, order_id, "").await.unwrap();
    }
    assert_eq!(app.available("SKU-2").await, 4 * ROUNDS as i64);
    app.assert_audit_clean().await;
}

async fn an_invoice_cut_short_after_inventory_consumed_is_finished_not_cancelled(db: TestDatabase) {
    // Arrange: a packed order whose invoice failed after inventory consumed its units.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let created = app.create(order("AMAZON", "CUT-1", &[("AM-1", 2)])).await;
    pick(&app, &created.order_id).await.unwrap();
    pack(&app, &created.order_id).await.unwrap();
    app.app.faults().fail_after_consume(1);
    let cut_short = invoice(&app, &created.order_id, "").await;

    // Act
    let cancelled = cancel(&app, &created.order_id).await;
    let finished = invoice(&app, &created.order_id, "").await.unwrap();

    // Assert
    assert_eq!(cut_short.unwrap_err().code(), tonic::Code::Unavailable);
    let refusal = cancelled.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::FailedPrecondition);
    assert!(
        refusal.message().contains("InvoiceOrder"),
        "{}",
        refusal.message()
    );
    let order = finished.order.unwrap();
    assert_eq!(order.status(), api::OrderStatus::Invoiced);
    assert_eq!(order.lines[0].invoiced_quantity, 2);
    assert_eq!(app.available("SKU-1").await, 3, "the units left stock once");
    app.assert_audit_clean().await;
}

async fn an_invoice_number_names_one_invoice_of_a_seller(db: TestDatabase) {
    // Arrange: two packed orders.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 4, QcGrade::Pass).await;
    let mut packed = Vec::new();
    for n in 0..2 {
        let created = app
            .create(order("AMAZON", &format!("INV-NUM-{n}"), &[("AM-1", 1)]))
            .await;
        pick(&app, &created.order_id).await.unwrap();
        pack(&app, &created.order_id).await.unwrap();
        packed.push(created.order_id);
    }
    let numbered = |order_id: &str, number: &str| {
        let request = api::InvoiceOrderRequest {
            order_id: order_id.into(),
            invoice_number: number.into(),
            actor: "billing".into(),
            ..Default::default()
        };
        let mut orders = app.orders.clone();
        async move { orders.invoice_order(request).await }
    };

    // Act
    numbered(&packed[0], "GST-2026-0007").await.unwrap();
    let again = numbered(&packed[1], "GST-2026-0007").await;
    let in_other_case = numbered(&packed[1], "gst-2026-0007").await;
    let after_refusal = app.get(&packed[1]).await;
    let held_after_refusal = holdings(&app, &packed[1]).await;
    let other = numbered(&packed[1], "GST-2026-0008").await.unwrap();

    // Assert
    let refusal = again.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::AlreadyExists);
    assert!(
        refusal.message().contains(&format!("{}-S1", packed[0])),
        "{}",
        refusal.message()
    );
    assert_eq!(
        in_other_case.unwrap_err().code(),
        tonic::Code::AlreadyExists,
        "letter case does not make another invoice number"
    );
    assert_eq!(after_refusal.status(), api::OrderStatus::Processing);
    assert_eq!(after_refusal.lines[0].invoiced_quantity, 0);
    assert_eq!(
        held_after_refusal,
        vec![(1, 1)],
        "the refused invoice consumed nothing"
    );
    assert_eq!(
        other.into_inner().shipment.unwrap().invoice_number,
        "GST-2026-0008"
    );
    assert_eq!(holdings(&app, &packed[1]).await, vec![(0, 0)]);
    app.assert_audit_clean().await;
}

kosha_testkit::store_tests!(
    an_order_goes_from_fulfillable_through_pick_pack_invoice_and_dispatch,
    single_shipment_orders_cancel_the_rest_at_invoicing_and_multi_shipment_orders_ship_twice,
    every_refused_move_names_the_status_and_changes_nothing,
    cancelling_frees_the_allocation_exactly_once,
    a_bulk_order_is_allocated_only_by_an_operators_retry_which_runs_as_a_job,
    a_partially_processed_bulk_order_completes_and_frees_what_is_not_picked,
    a_partial_pick_list_leaves_the_rest_allocated_until_complete_frees_it,
    units_cancelled_before_their_release_goes_through_are_never_picked,
    a_shipment_packed_before_a_cancellation_is_never_invoiced,
    closed_and_all_or_nothing_orders_are_explained_with_what_comes_next,
    an_invoice_racing_a_cancellation_leaves_exactly_one_of_them,
    a_completion_racing_a_line_cancellation_never_frees_a_picked_unit,
    an_invoice_cut_short_after_inventory_consumed_is_finished_not_cancelled,
    an_invoice_number_names_one_invoice_of_a_seller,
);
