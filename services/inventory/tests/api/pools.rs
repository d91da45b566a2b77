//! Pools: create, read, list, schedule, delete, channel assignment, expiry sweep.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::*;

async fn pools_are_created_listed_and_read_with_their_totals(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 10).await;

    let created = app
        .create_pool("FLIPKART-BBD", &["FLIPKART", "MYNTRA"])
        .await;
    app.move_stock("COMMON", "FLIPKART-BBD", "SKU-1", 4).await;
    let pool = app
        .client
        .get_pool(pb::GetPoolRequest {
            client_id: CLIENT.into(),
            name: "FLIPKART-BBD".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    let listed = app
        .client
        .list_pools(pb::ListPoolsRequest {
            client_id: CLIENT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(created.channels, vec!["FLIPKART", "MYNTRA"]);
    assert_eq!(created.status, pb::PoolStatus::Active as i32);
    assert_eq!(pool.totals.unwrap().available, 4);
    assert_eq!(pool.sku_count, 1);
    let names: Vec<&str> = listed.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["COMMON", "FLIPKART-BBD"]);
    assert_eq!(listed.pools[0].totals.unwrap().available, 6);
    app.assert_books_clean().await;
}

async fn pool_listing_is_paginated(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    for name in ["A1", "B1", "C1"] {
        app.create_pool(name, &[]).await;
    }

    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .list_pools(pb::ListPoolsRequest {
                client_id: CLIENT.into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.pools.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    assert_eq!(names, vec!["A1", "B1", "C1", "COMMON"]);
}

async fn creating_a_pool_twice_is_already_exists_unless_the_request_repeats(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    let request = pb::CreatePoolRequest {
        client_id: CLIENT.into(),
        name: "RESERVE".into(),
        idempotency_key: key(),
        actor: "ops".into(),
        ..Default::default()
    };

    let first = app
        .client
        .create_pool(request.clone())
        .await
        .unwrap()
        .into_inner();
    let repeat = app
        .client
        .create_pool(request.clone())
        .await
        .unwrap()
        .into_inner();
    let other_key = app
        .client
        .create_pool(pb::CreatePoolRequest {
            idempotency_key: key(),
            ..request.clone()
        })
        .await;
    let other_payload = app
        .client
        .create_pool(pb::CreatePoolRequest {
            description: "changed".into(),
            ..request.clone()
        })
        .await;

    assert_eq!(first, repeat);
    assert_error(other_key, Code::AlreadyExists, "pool `RESERVE`");
    assert_error(other_payload, Code::AlreadyExists, "idempotency key");
}

async fn bad_pool_requests_name_the_field_and_write_nothing(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.create_pool("RESERVE", &[]).await;
    let before = app.footprint().await;
    let good = pb::CreatePoolRequest {
        client_id: CLIENT.into(),
        name: "NEW".into(),
        idempotency_key: key(),
        actor: "ops".into(),
        ..Default::default()
    };

    let cases: Vec<(pb::CreatePoolRequest, &str)> = vec![
        (
            pb::CreatePoolRequest {
                name: "COMMON".into(),
                ..good.clone()
            },
            "name",
        ),
        (
            pb::CreatePoolRequest {
                name: "lower".into(),
                ..good.clone()
            },
            "name",
        ),
        (
            pb::CreatePoolRequest {
                name: String::new(),
                ..good.clone()
            },
            "name",
        ),
        (
            pb::CreatePoolRequest {
                client_id: "Bad Client".into(),
                ..good.clone()
            },
            "client_id",
        ),
        (
            pb::CreatePoolRequest {
                channels: vec!["flipkart".into()],
                ..good.clone()
            },
            "channels[0]",
        ),
        (
            pb::CreatePoolRequest {
                channels: vec!["AMAZON".into(), "AMAZON".into()],
                ..good.clone()
            },
            "channels[1]",
        ),
        (
            pb::CreatePoolRequest {
                activate_time: Some(to_timestamp(now_micros() + 2 * 86_400_000_000)),
                expire_time: Some(to_timestamp(now_micros() + 86_400_000_000)),
                ..good.clone()
            },
            "expire_time",
        ),
        (
            pb::CreatePoolRequest {
                activate_time: Some(to_timestamp(1_000_000)),
                ..good.clone()
            },
            "activate_time",
        ),
        (
            pb::CreatePoolRequest {
                idempotency_key: String::new(),
                ..good.clone()
            },
            "idempotency_key",
        ),
        (
            pb::CreatePoolRequest {
                actor: String::new(),
                ..good.clone()
            },
            "actor",
        ),
    ];
    for (request, field) in cases {
        assert_error(
            app.client.create_pool(request).await,
            Code::InvalidArgument,
            field,
        );
    }
    let unknown = app
        .client
        .get_pool(pb::GetPoolRequest {
            client_id: CLIENT.into(),
            name: "NOPE".into(),
        })
        .await;
    let schedule_common = app
        .client
        .set_pool_schedule(pb::SetPoolScheduleRequest {
            client_id: CLIENT.into(),
            name: "COMMON".into(),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await;
    let assign_unknown = app
        .client
        .assign_channel(pb::AssignChannelRequest {
            client_id: CLIENT.into(),
            pool: "NOPE".into(),
            channel: "AMAZON".into(),
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await;

    assert_error(unknown, Code::NotFound, "NOPE");
    assert_error(schedule_common, Code::InvalidArgument, "name");
    assert_error(assign_unknown, Code::NotFound, "NOPE");
    assert_eq!(app.footprint().await, before, "refused calls wrote nothing");
}

async fn a_channel_is_served_by_its_active_pool_and_otherwise_by_common(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.create_pool("FK", &[]).await;
    app.create_pool("LATER", &[]).await;
    let in_an_hour = now_micros() + 3_600_000_000;
    app.client
        .set_pool_schedule(pb::SetPoolScheduleRequest {
            client_id: CLIENT.into(),
            name: "LATER".into(),
            activate_time: Some(to_timestamp(in_an_hour)),
            expire_time: None,
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await
        .unwrap();
    let serving = |app: &mut TestApp| {
        let mut client = app.client.clone();
        async move {
            client
                .get_serving_pool(pb::GetServingPoolRequest {
                    client_id: CLIENT.into(),
                    channel: "FLIPKART".into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let assign = |app: &mut TestApp, pool: &str| {
        let mut client = app.client.clone();
        let request = pb::AssignChannelRequest {
            client_id: CLIENT.into(),
            pool: pool.into(),
            channel: "FLIPKART".into(),
            idempotency_key: key(),
            actor: "ops".into(),
        };
        async move { client.assign_channel(request).await.unwrap().into_inner() }
    };

    let unassigned = serving(&mut app).await;
    let first = assign(&mut app, "FK").await;
    let assigned = serving(&mut app).await;
    let moved = assign(&mut app, "LATER").await;
    let pending = serving(&mut app).await;
    let unassign = app
        .client
        .unassign_channel(pb::UnassignChannelRequest {
            client_id: CLIENT.into(),
            channel: "FLIPKART".into(),
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let after = serving(&mut app).await;

    assert_eq!(unassigned.pool.unwrap().name, "COMMON");
    assert_eq!(unassigned.assigned_pool, "");
    assert_eq!(first.previous_pool, "COMMON");
    assert_eq!(first.pool.unwrap().channels, vec!["FLIPKART"]);
    assert_eq!(assigned.pool.unwrap().name, "FK");
    assert_eq!(moved.previous_pool, "FK");
    assert_eq!(
        pending.pool.unwrap().name,
        "COMMON",
        "a pending pool does not serve yet"
    );
    assert_eq!(pending.assigned_pool, "LATER");
    assert_eq!(unassign.previous_pool, "LATER");
    assert_eq!(after.pool.unwrap().name, "COMMON");
}

async fn expired_pools_are_swept_back_to_common_through_the_ledger(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 10).await;
    app.create_pool("SALE", &["AMAZON"]).await;
    app.move_stock("COMMON", "SALE", "SKU-1", 6).await;
    app.allocate(
        "AMAZON:1",
        "SALE",
        pb::AllocationMode::Partial,
        &[("1", "SKU-1", 2)],
    )
    .await
    .unwrap();
    let a_second_ago = now_micros() - 1_000_000;
    app.client
        .set_pool_schedule(pb::SetPoolScheduleRequest {
            client_id: CLIENT.into(),
            name: "SALE".into(),
            activate_time: None,
            expire_time: Some(to_timestamp(a_second_ago)),
            idempotency_key: key(),
            actor: "ops".into(),
        })
        .await
        .unwrap();

    let sweep_key = key();
    let sweep = pb::SweepExpiredPoolsRequest {
        client_id: CLIENT.into(),
        pool: String::new(),
        idempotency_key: sweep_key.clone(),
        actor: "ops".into(),
    };
    let swept = app
        .client
        .sweep_expired_pools(sweep.clone())
        .await
        .unwrap()
        .into_inner();
    let repeated = app
        .client
        .sweep_expired_pools(sweep)
        .await
        .unwrap()
        .into_inner();
    let serving = app
        .client
        .get_serving_pool(pb::GetServingPoolRequest {
            client_id: CLIENT.into(),
            channel: "AMAZON".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let allocate_expired = app
        .allocate(
            "AMAZON:2",
            "SALE",
            pb::AllocationMode::Partial,
            &[("1", "SKU-1", 1)],
        )
        .await;
    let move_into_expired = app
        .client
        .move_stock(move_request("COMMON", "SALE", "SKU-1", 1))
        .await;
    let released = app
        .client
        .release(pb::ReleaseRequest {
            client_id: CLIENT.into(),
            order_ref: "AMAZON:1".into(),
            idempotency_key: key(),
            actor: "ops".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        released.released[0].pool, "COMMON",
        "the answer names where the released units went"
    );
    assert_eq!(swept.swept.len(), 1);
    assert_eq!(swept.swept[0].units_moved, 4);
    assert_eq!(
        repeated, swept,
        "a repeated sweep returns the first response"
    );
    assert_eq!(serving.pool.unwrap().name, "COMMON");
    assert_eq!(serving.assigned_pool, "SALE");
    assert_error(allocate_expired, Code::FailedPrecondition, "expired");
    assert_error(move_into_expired, Code::FailedPrecondition, "expired");
    assert_eq!(
        app.totals("SKU-1", "SALE", PASS).await,
        (0, 0, 0),
        "released units go on to COMMON"
    );
    assert_eq!(app.totals("SKU-1", "COMMON", PASS).await, (10, 0, 0));
    let ledger = app
        .client
        .list_ledger(pb::ListLedgerRequest {
            client_id: CLIENT.into(),
            pool: "SALE".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let expiry_units: i64 = ledger
        .transfers
        .iter()
        .filter(|t| t.reason == pb::TransferReason::PoolExpiry as i32)
        .map(|t| t.quantity)
        .sum();
    assert_eq!(expiry_units, 6);
    app.assert_books_clean().await;
}

async fn an_empty_reserve_pool_can_be_deleted_and_a_stocked_one_cannot(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.receive("SKU-1", PASS, 3).await;
    app.create_pool("EMPTY", &["AJIO"]).await;
    app.create_pool("FULL", &[]).await;
    app.move_stock("COMMON", "FULL", "SKU-1", 1).await;
    let delete = |name: &str| pb::DeletePoolRequest {
        client_id: CLIENT.into(),
        name: name.into(),
        idempotency_key: key(),
        actor: "ops".into(),
    };

    let deleted = app
        .client
        .delete_pool(delete("EMPTY"))
        .await
        .unwrap()
        .into_inner();
    let stocked = app.client.delete_pool(delete("FULL")).await;
    let common = app.client.delete_pool(delete("COMMON")).await;
    let gone = app.client.delete_pool(delete("EMPTY")).await;

    assert_eq!(deleted.unassigned_channels, vec!["AJIO"]);
    assert_error(stocked, Code::FailedPrecondition, "still holds stock");
    assert_error(common, Code::InvalidArgument, "name");
    assert_error(gone, Code::NotFound, "EMPTY");
    app.assert_books_clean().await;
}

kosha_testkit::store_tests!(
    pools_are_created_listed_and_read_with_their_totals,
    pool_listing_is_paginated,
    creating_a_pool_twice_is_already_exists_unless_the_request_repeats,
    bad_pool_requests_name_the_field_and_write_nothing,
    a_channel_is_served_by_its_active_pool_and_otherwise_by_common,
    expired_pools_are_swept_back_to_common_through_the_ledger,
    an_empty_reserve_pool_can_be_deleted_and_a_stocked_one_cannot,
);
