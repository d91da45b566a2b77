//! Goods receipt, pool moves, recycle, make live and adjustments.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::*;

fn receive_request(lines: Vec<pb::ReceiveLine>) -> pb::ReceiveRequest {
    pb::ReceiveRequest {
        client_id: CLIENT.into(),
        reference: "GRN-1".into(),
        lines,
        idempotency_key: key(),
        actor: "warehouse".into(),
    }
}

fn line(sku: &str, grade: i32, quantity: i64) -> pb::ReceiveLine {
    pb::ReceiveLine {
        sku: sku.into(),
        grade,
        quantity,
    }
}

async fn receipts_enter_common_and_a_repeated_grn_changes_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    let request = receive_request(vec![line("SKU-1", PASS, 7), line("SKU-1", FAIL, 2)]);

    let first = app
        .client
        .receive(request.clone())
        .await
        .unwrap()
        .into_inner();
    let repeat = app
        .client
        .receive(request.clone())
        .await
        .unwrap()
        .into_inner();
    let changed = app
        .client
        .receive(pb::ReceiveRequest {
            lines: vec![line("SKU-1", PASS, 8)],
            ..request.clone()
        })
        .await;

    assert_eq!(first, repeat);
    assert_eq!(first.levels.len(), 2);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (7, 0, 0));
    assert_eq!(app.totals("SKU-1", "COMMON", FAIL).await, (2, 0, 0));
    assert_error(changed, Code::AlreadyExists, "different contents");
    app.assert_books_clean().await;
}

async fn bad_receipts_name_the_field_and_write_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 1).await;
    let before = app.footprint().await;

    let cases: Vec<(pb::ReceiveRequest, &str)> = vec![
        (
            receive_request(vec![line("SKU-1", PASS, 0)]),
            "lines[0].quantity",
        ),
        (
            receive_request(vec![line("SKU-1", PASS, -4)]),
            "lines[0].quantity",
        ),
        (
            receive_request(vec![line("SKU-1", PASS, 1_000_000_001)]),
            "lines[0].quantity",
        ),
        (
            receive_request(vec![line("SKU-2", PASS, 1), line("SKU-1", PASS, i64::MAX)]),
            "lines[1].quantity",
        ),
        (
            receive_request(vec![line("#REF!", PASS, 1)]),
            "lines[0].sku",
        ),
        (
            receive_request(vec![line("HAS SPACE", PASS, 1)]),
            "lines[0].sku",
        ),
        (receive_request(vec![line("", PASS, 1)]), "lines[0].sku"),
        (receive_request(vec![line("SKU-1", 0, 1)]), "lines[0].grade"),
        (receive_request(vec![line("SKU-1", 9, 1)]), "lines[0].grade"),
        (
            receive_request(vec![line("SKU-1", PASS, 1), line("SKU-1", PASS, 2)]),
            "lines[1]",
        ),
        (receive_request(vec![]), "lines"),
        (
            pb::ReceiveRequest {
                reference: String::new(),
                ..receive_request(vec![line("A", PASS, 1)])
            },
            "reference",
        ),
        (
            pb::ReceiveRequest {
                idempotency_key: String::new(),
                ..receive_request(vec![line("A", PASS, 1)])
            },
            "idempotency_key",
        ),
        (
            pb::ReceiveRequest {
                idempotency_key: "has space".into(),
                ..receive_request(vec![line("A", PASS, 1)])
            },
            "idempotency_key",
        ),
        (
            pb::ReceiveRequest {
                client_id: String::new(),
                ..receive_request(vec![line("A", PASS, 1)])
            },
            "client_id",
        ),
    ];
    for (request, field) in cases {
        assert_error(
            app.client.receive(request).await,
            Code::InvalidArgument,
            field,
        );
    }

    assert_eq!(app.footprint().await, before);
}

async fn stock_moves_between_pools_and_never_more_than_is_available(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 10).await;
    app.receive("SKU-2", PASS, 5).await;
    app.create_pool("RESERVE", &[]).await;

    let moved = app
        .client
        .move_stock(pb::MoveStockRequest {
            lines: vec![
                pb::MoveStockLine {
                    sku: "SKU-1".into(),
                    grade: PASS,
                    quantity: 4,
                },
                pb::MoveStockLine {
                    sku: "SKU-2".into(),
                    grade: PASS,
                    quantity: 5,
                },
            ],
            ..move_request("COMMON", "RESERVE", "SKU-1", 1)
        })
        .await
        .unwrap()
        .into_inner();
    app.move_stock("RESERVE", "COMMON", "SKU-1", 1).await;
    let before = app.footprint().await;
    let too_much = app
        .client
        .move_stock(pb::MoveStockRequest {
            lines: vec![
                pb::MoveStockLine {
                    sku: "SKU-1".into(),
                    grade: PASS,
                    quantity: 1,
                },
                pb::MoveStockLine {
                    sku: "SKU-2".into(),
                    grade: PASS,
                    quantity: 1,
                },
            ],
            ..move_request("COMMON", "RESERVE", "SKU-1", 1)
        })
        .await;

    assert!(moved.applied);
    assert_eq!(moved.lines[0].source_available_before, 10);
    assert_eq!(moved.lines[0].source_available_after, 6);
    assert_eq!(moved.lines[0].target_available_after, 4);
    assert_error(too_much, Code::FailedPrecondition, "lines[1]");
    assert_eq!(
        app.footprint().await,
        before,
        "a refused move moves nothing"
    );
    assert_eq!(app.totals("SKU-1", "RESERVE", PASS).await, (3, 0, 0));
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (7, 0, 0));
    app.assert_books_clean().await;
}

async fn a_dry_run_move_reports_every_line_and_stores_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 3).await;
    app.create_pool("RESERVE", &[]).await;
    let before = app.footprint().await;

    let report = app
        .client
        .move_stock(pb::MoveStockRequest {
            dry_run: true,
            lines: vec![
                pb::MoveStockLine {
                    sku: "SKU-1".into(),
                    grade: PASS,
                    quantity: 2,
                },
                pb::MoveStockLine {
                    sku: "SKU-9".into(),
                    grade: PASS,
                    quantity: 2,
                },
            ],
            ..move_request("COMMON", "RESERVE", "SKU-1", 1)
        })
        .await
        .unwrap()
        .into_inner();

    assert!(report.dry_run && !report.applied);
    assert_eq!(report.lines[0].shortfall, 0);
    assert_eq!(report.lines[0].target_available_after, 2);
    assert_eq!(report.lines[1].shortfall, 2);
    assert_eq!(app.footprint().await, before);
}

async fn bad_moves_name_the_field_and_write_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 3).await;
    app.create_pool("RESERVE", &[]).await;
    let before = app.footprint().await;

    let same = app
        .client
        .move_stock(move_request("COMMON", "COMMON", "SKU-1", 1))
        .await;
    let unknown_source = app
        .client
        .move_stock(move_request("NOPE", "COMMON", "SKU-1", 1))
        .await;
    let unknown_target = app
        .client
        .move_stock(move_request("COMMON", "NOPE", "SKU-1", 1))
        .await;
    let zero = app
        .client
        .move_stock(move_request("COMMON", "RESERVE", "SKU-1", 0))
        .await;
    let bad_sku = app
        .client
        .move_stock(move_request("COMMON", "RESERVE", "a b", 1))
        .await;
    let bad_pool = app
        .client
        .move_stock(move_request("common", "RESERVE", "SKU-1", 1))
        .await;

    assert_error(same, Code::InvalidArgument, "to_pool");
    assert_error(unknown_source, Code::NotFound, "from_pool");
    assert_error(unknown_target, Code::NotFound, "to_pool");
    assert_error(zero, Code::InvalidArgument, "lines[0].quantity");
    assert_error(bad_sku, Code::InvalidArgument, "lines[0].sku");
    assert_error(bad_pool, Code::InvalidArgument, "from_pool");
    assert_eq!(app.footprint().await, before);
}

async fn recycle_and_make_live_move_units_between_available_and_recycle(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    let recycle = |quantity: i64| pb::RecycleRequest {
        client_id: CLIENT.into(),
        pool: "COMMON".into(),
        sku: "SKU-1".into(),
        grade: PASS,
        quantity,
        reason: "stained".into(),
        idempotency_key: key(),
        actor: "qc".into(),
    };

    let recycled = app.client.recycle(recycle(3)).await.unwrap().into_inner();
    let live = app
        .client
        .make_live(pb::MakeLiveRequest {
            client_id: CLIENT.into(),
            pool: "COMMON".into(),
            sku: "SKU-1".into(),
            grade: PASS,
            quantity: 1,
            reason: "cleaned".into(),
            idempotency_key: key(),
            actor: "qc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let before = app.footprint().await;
    let too_much = app.client.recycle(recycle(4)).await;
    let zero = app.client.recycle(recycle(0)).await;
    let unknown_pool = app
        .client
        .recycle(pb::RecycleRequest {
            pool: "NOPE".into(),
            ..recycle(1)
        })
        .await;
    let too_much_live = app
        .client
        .make_live(pb::MakeLiveRequest {
            client_id: CLIENT.into(),
            pool: "COMMON".into(),
            sku: "SKU-1".into(),
            grade: PASS,
            quantity: 3,
            idempotency_key: key(),
            actor: "qc".into(),
            ..Default::default()
        })
        .await;

    assert_eq!(recycled.level.unwrap().totals.unwrap().recycle, 3);
    assert_eq!(live.levels[0].totals.unwrap().available, 3);
    assert_error(too_much, Code::FailedPrecondition, "AVAILABLE");
    assert_error(zero, Code::InvalidArgument, "quantity");
    assert_error(unknown_pool, Code::NotFound, "NOPE");
    assert_error(too_much_live, Code::FailedPrecondition, "RECYCLE");
    assert_eq!(app.footprint().await, before);
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (3, 0, 2));
    app.assert_books_clean().await;
}

async fn adjustments_correct_a_bucket_with_a_reason(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 5).await;
    let adjust = |delta: i64, reason: pb::AdjustReason| pb::AdjustRequest {
        client_id: CLIENT.into(),
        pool: "COMMON".into(),
        sku: "SKU-1".into(),
        grade: PASS,
        state: pb::StockState::Available as i32,
        delta,
        reason: reason as i32,
        note: "cycle count".into(),
        idempotency_key: key(),
        actor: "auditor".into(),
    };

    app.client
        .adjust(adjust(3, pb::AdjustReason::Found))
        .await
        .unwrap();
    let lost = app
        .client
        .adjust(adjust(-2, pb::AdjustReason::Lost))
        .await
        .unwrap()
        .into_inner();
    let before = app.footprint().await;
    let cases: Vec<(pb::AdjustRequest, Code, &str)> = vec![
        (
            adjust(2, pb::AdjustReason::Damaged),
            Code::InvalidArgument,
            "delta",
        ),
        (
            adjust(-2, pb::AdjustReason::Found),
            Code::InvalidArgument,
            "delta",
        ),
        (
            adjust(0, pb::AdjustReason::CountCorrection),
            Code::InvalidArgument,
            "delta",
        ),
        (
            adjust(i64::MIN, pb::AdjustReason::CountCorrection),
            Code::InvalidArgument,
            "delta",
        ),
        (
            adjust(1, pb::AdjustReason::Unspecified),
            Code::InvalidArgument,
            "reason",
        ),
        (
            pb::AdjustRequest {
                state: pb::StockState::Allocated as i32,
                ..adjust(1, pb::AdjustReason::Found)
            },
            Code::InvalidArgument,
            "state",
        ),
        (
            adjust(-7, pb::AdjustReason::CountCorrection),
            Code::FailedPrecondition,
            "cannot remove 7",
        ),
    ];
    for (request, code, needle) in cases {
        assert_error(app.client.adjust(request).await, code, needle);
    }

    assert_eq!(lost.level.unwrap().totals.unwrap().available, 6);
    assert_eq!(app.footprint().await, before);
    app.assert_books_clean().await;
}

kosha_testkit::store_tests!(
    receipts_enter_common_and_a_repeated_grn_changes_nothing,
    bad_receipts_name_the_field_and_write_nothing,
    stock_moves_between_pools_and_never_more_than_is_available,
    a_dry_run_move_reports_every_line_and_stores_nothing,
    bad_moves_name_the_field_and_write_nothing,
    recycle_and_make_live_move_units_between_available_and_recycle,
    adjustments_correct_a_bucket_with_a_reason,
);
