//! Allocate, release, consume.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::AllocationMode::{AllOrNothing, Partial};
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::*;

async fn allocation_takes_available_units_and_a_retry_never_allocates_twice(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    let request = allocate_request(
        "AMAZON:404-1",
        "COMMON",
        Partial,
        &[("1", "SKU-1", 3), ("2", "SKU-2", 2)],
        false,
    );

    let first = app
        .client
        .allocate(request.clone())
        .await
        .unwrap()
        .into_inner();
    let resent = app
        .client
        .allocate(request.clone())
        .await
        .unwrap()
        .into_inner();
    let new_key = app
        .client
        .allocate(pb::AllocateRequest {
            idempotency_key: key(),
            ..request.clone()
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first.pool, "COMMON");
    assert_eq!(first.lines[0].outcome, pb::LineOutcome::Full as i32);
    assert_eq!(first.lines[0].available_after, 2);
    assert_eq!(first.lines[1].outcome, pb::LineOutcome::None as i32);
    assert!(!first.fully_allocated);
    assert_eq!(resent, first, "the same key returns the first response");
    assert!(new_key.lines[0].already_allocated);
    assert_eq!(new_key.lines[0].allocated_now, 0);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (2, 3, 0));
    app.assert_books_clean().await;
}

async fn all_or_nothing_allocates_nothing_when_a_line_is_short(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.receive("SKU-2", PASS, 1).await;

    let response = app
        .allocate(
            "B2B:PO-7",
            "COMMON",
            AllOrNothing,
            &[("1", "SKU-1", 3), ("2", "SKU-2", 2)],
        )
        .await
        .unwrap();
    let enough = app
        .allocate(
            "B2B:PO-8",
            "COMMON",
            AllOrNothing,
            &[("1", "SKU-1", 3), ("2", "SKU-2", 1)],
        )
        .await
        .unwrap();

    assert!(response.lines.iter().all(|line| line.held == 0));
    assert_eq!(response.lines[1].shortfall, 2);
    assert!(enough.fully_allocated);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (2, 3, 0));
    app.assert_books_clean().await;
}

async fn top_up_fills_a_partial_line_only_when_asked(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 2).await;
    app.allocate("AMAZON:9", "COMMON", Partial, &[("1", "SKU-1", 5)])
        .await
        .unwrap();
    app.receive("SKU-1", PASS, 10).await;

    let without = app
        .allocate("AMAZON:9", "COMMON", Partial, &[("1", "SKU-1", 5)])
        .await
        .unwrap();
    let with = app
        .client
        .allocate(allocate_request(
            "AMAZON:9",
            "COMMON",
            Partial,
            &[("1", "SKU-1", 5)],
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    let again = app
        .client
        .allocate(allocate_request(
            "AMAZON:9",
            "COMMON",
            Partial,
            &[("1", "SKU-1", 5)],
            true,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        (without.lines[0].held, without.lines[0].allocated_now),
        (2, 0)
    );
    assert_eq!((with.lines[0].held, with.lines[0].allocated_now), (5, 3));
    assert_eq!(
        again.lines[0].allocated_now, 0,
        "a full line is never topped up past its target"
    );
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (7, 5, 0));
    app.assert_books_clean().await;
}

async fn allocation_by_channel_uses_the_serving_pool(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.create_pool("FK", &["FLIPKART"]).await;
    app.move_stock("COMMON", "FK", "SKU-1", 2).await;
    let by_channel = |order: &str, channel: &str| pb::AllocateRequest {
        pool: String::new(),
        channel: channel.into(),
        ..allocate_request(order, "", Partial, &[("1", "SKU-1", 1)], false)
    };

    let flipkart = app
        .client
        .allocate(by_channel("FLIPKART:1", "FLIPKART"))
        .await
        .unwrap()
        .into_inner();
    let amazon = app
        .client
        .allocate(by_channel("AMAZON:1", "AMAZON"))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(flipkart.pool, "FK");
    assert_eq!(amazon.pool, "COMMON");
    assert_eq!(app.totals("SKU-1", "FK", PASS).await, (1, 1, 0));
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (2, 1, 0));
    app.assert_books_clean().await;
}

async fn bad_allocations_name_the_field_and_write_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    let first = allocate_request("AMAZON:1", "COMMON", Partial, &[("1", "SKU-1", 1)], false);
    app.client.allocate(first.clone()).await.unwrap();
    let before = app.footprint().await;
    let good = allocate_request("AMAZON:2", "COMMON", Partial, &[("1", "SKU-1", 1)], false);

    let cases: Vec<(pb::AllocateRequest, Code, &str)> = vec![
        (
            pb::AllocateRequest {
                lines: vec![],
                ..good.clone()
            },
            Code::InvalidArgument,
            "lines",
        ),
        (
            allocate_request(
                "AMAZON:2",
                "COMMON",
                Partial,
                &[("1", "SKU-1", 1), ("1", "SKU-1", 1)],
                false,
            ),
            Code::InvalidArgument,
            "lines[1].line_id",
        ),
        (
            allocate_request("AMAZON:2", "COMMON", Partial, &[("1", "SKU-1", 0)], false),
            Code::InvalidArgument,
            "lines[0].quantity",
        ),
        (
            allocate_request("AMAZON:2", "COMMON", Partial, &[("1", "SKU-1", -1)], false),
            Code::InvalidArgument,
            "lines[0].quantity",
        ),
        (
            allocate_request("AMAZON:2", "COMMON", Partial, &[("", "SKU-1", 1)], false),
            Code::InvalidArgument,
            "lines[0].line_id",
        ),
        (
            allocate_request("AMAZON:2", "COMMON", Partial, &[("1", "S K U", 1)], false),
            Code::InvalidArgument,
            "lines[0].sku",
        ),
        (
            pb::AllocateRequest {
                grade: 0,
                ..good.clone()
            },
            Code::InvalidArgument,
            "grade",
        ),
        (
            pb::AllocateRequest {
                mode: 0,
                ..good.clone()
            },
            Code::InvalidArgument,
            "mode",
        ),
        (
            pb::AllocateRequest {
                order_ref: String::new(),
                ..good.clone()
            },
            Code::InvalidArgument,
            "order_ref",
        ),
        (
            pb::AllocateRequest {
                channel: "AMAZON".into(),
                ..good.clone()
            },
            Code::InvalidArgument,
            "channel",
        ),
        (
            pb::AllocateRequest {
                pool: String::new(),
                ..good.clone()
            },
            Code::InvalidArgument,
            "pool",
        ),
        (
            pb::AllocateRequest {
                pool: "NOPE".into(),
                ..good.clone()
            },
            Code::NotFound,
            "NOPE",
        ),
        (
            allocate_request("AMAZON:1", "COMMON", Partial, &[("1", "SKU-2", 1)], true),
            Code::FailedPrecondition,
            "SKU `SKU-1`",
        ),
        (
            pb::AllocateRequest {
                order_ref: "AMAZON:3".into(),
                ..first.clone()
            },
            Code::AlreadyExists,
            "idempotency key",
        ),
    ];
    for (request, code, needle) in cases {
        assert_error(app.client.allocate(request).await, code, needle);
    }

    assert_eq!(app.footprint().await, before);
    app.assert_books_clean().await;
}

async fn release_gives_units_back_to_the_pool_they_came_from(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.create_pool("FK", &["FLIPKART"]).await;
    app.move_stock("COMMON", "FK", "SKU-1", 3).await;
    app.client
        .allocate(pb::AllocateRequest {
            pool: String::new(),
            channel: "FLIPKART".into(),
            ..allocate_request("FLIPKART:1", "", Partial, &[("1", "SKU-1", 2)], false)
        })
        .await
        .unwrap();
    app.client
        .unassign_channel(pb::UnassignChannelRequest {
            client_id: CLIENT.into(),
            channel: "FLIPKART".into(),
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await
        .unwrap();

    let released = app
        .client
        .release(pb::ReleaseRequest {
            client_id: CLIENT.into(),
            order_ref: "FLIPKART:1".into(),
            reason: "cancelled".into(),
            idempotency_key: key(),
            actor: "order".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let nothing_left = app
        .client
        .release(pb::ReleaseRequest {
            client_id: CLIENT.into(),
            order_ref: "FLIPKART:1".into(),
            idempotency_key: key(),
            actor: "order".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(released.released.len(), 1);
    assert_eq!(released.released[0].pool, "FK");
    assert_eq!(
        (
            released.released[0].quantity,
            released.released[0].held_after
        ),
        (2, 0)
    );
    assert!(nothing_left.released.is_empty());
    assert_eq!(app.totals("SKU-1", "FK", PASS).await, (3, 0, 0));
    app.assert_books_clean().await;
}

async fn release_of_some_units_of_one_line(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.allocate(
        "B2B:1",
        "COMMON",
        Partial,
        &[("1", "SKU-1", 4), ("2", "SKU-1", 1)],
    )
    .await
    .unwrap();
    let release = |line_ids: Vec<&str>, quantity: i64| pb::ReleaseRequest {
        client_id: CLIENT.into(),
        order_ref: "B2B:1".into(),
        line_ids: line_ids.into_iter().map(String::from).collect(),
        quantity,
        reason: "reconcile".into(),
        idempotency_key: key(),
        actor: "order".into(),
    };

    let some = app
        .client
        .release(release(vec!["1"], 3))
        .await
        .unwrap()
        .into_inner();
    let before = app.footprint().await;
    let two_lines = app.client.release(release(vec!["1", "2"], 1)).await;
    let too_many = app.client.release(release(vec!["1"], 2)).await;
    let negative = app.client.release(release(vec!["1"], -1)).await;
    let repeated_line = app.client.release(release(vec!["1", "1"], 0)).await;

    assert_eq!(
        (some.released[0].quantity, some.released[0].held_after),
        (3, 1)
    );
    assert_error(two_lines, Code::InvalidArgument, "quantity");
    assert_error(too_many, Code::FailedPrecondition, "holds 1 units");
    assert_error(negative, Code::InvalidArgument, "quantity");
    assert_error(repeated_line, Code::InvalidArgument, "line_ids[1]");
    assert_eq!(app.footprint().await, before);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (3, 2, 0));
    app.assert_books_clean().await;
}

async fn consumption_takes_allocated_units_out_of_the_system(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    app.allocate("AMAZON:5", "COMMON", Partial, &[("1", "SKU-1", 3)])
        .await
        .unwrap();
    let consume = |line: &str, quantity: i64| pb::ConsumeRequest {
        client_id: CLIENT.into(),
        order_ref: "AMAZON:5".into(),
        lines: vec![pb::ConsumeLine {
            line_id: line.into(),
            quantity,
        }],
        reference: "INV-1".into(),
        idempotency_key: key(),
        actor: "billing".into(),
    };

    let allocated_at = app.client.list_allocations(pb::ListAllocationsRequest {
        client_id: CLIENT.into(),
        order_ref: "AMAZON:5".into(),
        page_size: 10,
        ..Default::default()
    });
    let allocated_at = allocated_at.await.unwrap().into_inner().allocations[0]
        .update_time
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let consumed = app
        .client
        .consume(consume("1", 2))
        .await
        .unwrap()
        .into_inner();
    let before = app.footprint().await;
    let too_many = app.client.consume(consume("1", 2)).await;
    let unknown_line = app.client.consume(consume("9", 1)).await;
    let zero = app.client.consume(consume("1", 0)).await;

    assert_eq!(consumed.allocations[0].quantity, 1);
    assert_eq!(consumed.allocations[0].consumed, 2);
    let updated_at = consumed.allocations[0].update_time.unwrap();
    assert!(
        (updated_at.seconds, updated_at.nanos) > (allocated_at.seconds, allocated_at.nanos),
        "the answer shows the update the consumption made"
    );
    assert_error(too_many, Code::FailedPrecondition, "lines[0].quantity");
    assert_error(unknown_line, Code::FailedPrecondition, "lines[0]");
    assert_error(zero, Code::InvalidArgument, "lines[0].quantity");
    assert_eq!(app.footprint().await, before);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (2, 1, 0));
    app.assert_books_clean().await;
}

async fn an_allocation_of_a_thousand_lines_is_served_whole(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.client
        .receive(pb::ReceiveRequest {
            client_id: CLIENT.into(),
            reference: "GRN-BIG".into(),
            lines: (0..1000)
                .map(|n| pb::ReceiveLine {
                    sku: format!("BIG-{n}"),
                    grade: PASS,
                    quantity: 2,
                })
                .collect(),
            idempotency_key: key(),
            actor: "test".into(),
        })
        .await
        .unwrap();
    let line_ids: Vec<String> = (0..1000).map(|n| n.to_string()).collect();
    let skus: Vec<String> = (0..1000).map(|n| format!("BIG-{n}")).collect();
    let lines: Vec<(&str, &str, i64)> = line_ids
        .iter()
        .zip(&skus)
        .map(|(line, sku)| (line.as_str(), sku.as_str(), 1))
        .collect();

    let response = app
        .allocate("B2B:BIG", "COMMON", AllOrNothing, &lines)
        .await
        .unwrap();

    assert!(response.fully_allocated);
    assert_eq!(response.lines.len(), 1000);
    assert_eq!(app.totals("BIG-999", "COMMON", PASS).await, (1, 1, 0));
    app.assert_books_clean().await;
}

kosha_testkit::store_tests!(
    an_allocation_of_a_thousand_lines_is_served_whole,
    allocation_takes_available_units_and_a_retry_never_allocates_twice,
    all_or_nothing_allocates_nothing_when_a_line_is_short,
    top_up_fills_a_partial_line_only_when_asked,
    allocation_by_channel_uses_the_serving_pool,
    bad_allocations_name_the_field_and_write_nothing,
    release_gives_units_back_to_the_pool_they_came_from,
    release_of_some_units_of_one_line,
    consumption_takes_allocated_units_out_of_the_system,
);
