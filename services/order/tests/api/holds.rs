//! Holds: released at their instant whatever the process's time zone, by their event, by
//! an operator; stacked; racing releases record one transition.

use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_testkit::TestDatabase;

use crate::harness::{CLIENT, Options, order, spawn_app};

/// An instant a few seconds ahead, written as a wall-clock time in India (UTC+05:30),
/// the way a marketplace in India sends it.
fn dispatch_after_in_india(seconds_ahead: i64) -> (prost_types::Timestamp, String) {
    let ist = time::UtcOffset::from_hms(5, 30, 0).unwrap();
    let instant =
        time::OffsetDateTime::now_utc().to_offset(ist) + time::Duration::seconds(seconds_ahead);
    let instant = instant.replace_nanosecond(0).unwrap();
    let text = instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let parsed =
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
    (
        prost_types::Timestamp {
            seconds: parsed.unix_timestamp(),
            nanos: 0,
        },
        text,
    )
}

async fn a_dispatch_after_hold_releases_at_its_instant(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 3, QcGrade::Pass).await;
    let (dispatch_after, text) = dispatch_after_in_india(3);
    assert!(text.ends_with("+05:30"), "{text}");
    let mut request = order("FLIPKART", "FK-HOLD-1", &[("FK-1", 1)]);
    request.parent_order_id = "OD111".into();
    request.dispatch_after_time = Some(dispatch_after);

    // Act
    let held = app.create(request).await;
    let early_pick = app
        .orders
        .clone()
        .pick_order(api::PickOrderRequest {
            lines: Vec::new(),
            order_id: held.order_id.clone(),
            actor: "picker".into(),
        })
        .await
        .unwrap_err();
    let early_sweep = app
        .orders
        .clone()
        .release_due_holds(api::ReleaseDueHoldsRequest { as_of_time: None })
        .await
        .unwrap()
        .into_inner();
    let ahead_of_time = app
        .orders
        .clone()
        .release_due_holds(api::ReleaseDueHoldsRequest {
            as_of_time: Some(prost_types::Timestamp {
                seconds: dispatch_after.seconds + 60,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    let released = app
        .wait_for_status(&held.order_id, api::OrderStatus::Fulfillable, 30)
        .await;

    // Assert
    assert_eq!(held.status(), api::OrderStatus::Onhold);
    assert_eq!(held.holds.len(), 1);
    assert_eq!(held.holds[0].kind(), api::HoldKind::Time);
    assert_eq!(
        held.holds[0].release_after_time,
        Some(dispatch_after),
        "stored as the same instant"
    );
    assert_eq!(early_pick.code(), tonic::Code::FailedPrecondition);
    assert!(
        early_pick.message().contains("on hold"),
        "{}",
        early_pick.message()
    );
    assert!(
        early_sweep.released.is_empty(),
        "nothing is due before its instant"
    );
    assert_eq!(ahead_of_time.code(), tonic::Code::InvalidArgument);
    let hold = &released.holds[0];
    assert!(!hold.open);
    let released_at = hold.released_time.unwrap();
    assert!(
        released_at.seconds >= dispatch_after.seconds,
        "released at {released_at:?}, due {dispatch_after:?}"
    );
    assert!(
        released_at.seconds <= dispatch_after.seconds + 5,
        "released late: {released_at:?}"
    );
    assert_eq!(hold.released_by, "scheduler");
}

/// The same release, with the process in India's time zone: nothing may shift it.
#[test]
fn a_hold_releases_at_its_instant_in_asia_kolkata_on_sqlite_or_postgres() {
    // Arrange
    let test_binary = std::env::current_exe().unwrap();
    let store = if kosha_testkit::store_enabled(kosha_testkit::Store::Sqlite) {
        "sqlite"
    } else {
        "postgres"
    };
    let test_name = format!("holds::a_dispatch_after_hold_releases_at_its_instant::{store}");

    // Act
    let output = std::process::Command::new(test_binary)
        .args([test_name.as_str(), "--exact", "--nocapture"])
        .env("TZ", "Asia/Kolkata")
        .output()
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "under TZ=Asia/Kolkata:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the test did not run under TZ=Asia/Kolkata:\n{stdout}"
    );
}

async fn racing_releases_of_one_hold_record_one_transition(db: TestDatabase) {
    // Arrange
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 3, QcGrade::Pass).await;
    let held = app.create(order("MYNTRA", "MY-RACE", &[("MY-1", 1)])).await;
    let hold_id = held.holds[0].hold_id.clone();

    // Act
    let mut tasks = Vec::new();
    for n in 0..6 {
        let mut orders = app.orders.clone();
        let request = api::ReleaseHoldRequest {
            target: Some(api::release_hold_request::Target::HoldId(hold_id.clone())),
            actor: format!("operator-{n}"),
            reason: "checked the order".into(),
        };
        tasks.push(tokio::spawn(
            async move { orders.release_hold(request).await },
        ));
    }
    let mut released = 0;
    let mut answered_statuses = Vec::new();
    for task in tasks {
        let response = task.await.unwrap().unwrap().into_inner();
        released += response.released.len();
        answered_statuses.extend(response.orders.iter().map(|order| order.status()));
    }

    // Assert
    assert_eq!(held.status(), api::OrderStatus::Onhold);
    assert_eq!(held.holds[0].kind(), api::HoldKind::Manual);
    assert_eq!(released, 1);
    assert_eq!(
        answered_statuses,
        [api::OrderStatus::Fulfillable; 6],
        "every call answers with the order, released by it or before it"
    );
    let transitions = app
        .history(&held.order_id)
        .await
        .iter()
        .filter(|entry| {
            entry.from_status() == api::OrderStatus::Onhold
                && entry.to_status() == api::OrderStatus::Fulfillable
        })
        .count();
    assert_eq!(transitions, 1);
    assert_eq!(
        app.get(&held.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
}

async fn a_replacement_order_waits_for_the_return_pickup_of_the_original(db: TestDatabase) {
    // Arrange
    let options = Options {
        test_connector_channels: vec!["PAYTM"],
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    app.receive("SKU-2", 3, QcGrade::Pass).await;
    app.create(order("PAYTM", "PT-ORIG-1", &[("PT-2", 1)]))
        .await;
    let mut request = order("PAYTM", "PT-REPL-1", &[("PT-2", 1)]);
    request.replacement_for_channel_order_id = "PT-ORIG-1".into();
    let replacement = app.create(request).await;

    // Act
    let explained = app.explain(&replacement.order_id).await;
    app.connector.set_state(
        "PAYTM",
        "PT-ORIG-1",
        channel::ChannelOrderState::ReturnPickedUp,
    );
    let sync = app.sync_channel_statuses("PAYTM").await;
    let direct = app
        .orders
        .clone()
        .release_hold(api::ReleaseHoldRequest {
            target: Some(api::release_hold_request::Target::ReturnPickup(
                api::ReturnPickup {
                    client_id: CLIENT.into(),
                    channel: "PAYTM".into(),
                    channel_order_id: "PT-ORIG-1".into(),
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(replacement.status(), api::OrderStatus::Onhold);
    assert_eq!(replacement.holds[0].kind(), api::HoldKind::Event);
    assert_eq!(replacement.holds[0].event_channel_order_id, "PT-ORIG-1");
    assert!(
        explained
            .order_blockers
            .contains(&(api::Blocker::Hold as i32))
    );
    assert!(
        explained
            .summary
            .contains("return of channel order `PT-ORIG-1`"),
        "{}",
        explained.summary
    );
    assert_eq!(sync.checked, 2);
    assert_eq!(sync.holds_released, 1);
    assert!(direct.released.is_empty(), "released once, by the sync");
    assert_eq!(
        app.get(&replacement.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
}

async fn holds_stack_and_an_order_with_nothing_allocated_is_unfulfillable_whatever_its_holds(
    db: TestDatabase,
) {
    // Arrange
    let mut options = Options {
        test_connector_channels: vec!["PAYTM"],
        ..Options::default()
    };
    options.settings.hold_rules = "PAYTM=return-pickup,PAYTM=manual".into();
    let app = spawn_app(db, options).await;
    let mut request = order("PAYTM", "PT-REPL-2", &[("PT-3", 2)]);
    request.replacement_for_channel_order_id = "PT-ORIG-2".into();
    let created = app.create(request).await;

    // Act
    app.receive("SKU-3", 2, QcGrade::Pass).await;
    let allocated = app
        .wait_for_status(&created.order_id, api::OrderStatus::Onhold, 20)
        .await;
    let manual = app
        .orders
        .clone()
        .release_hold(api::ReleaseHoldRequest {
            target: Some(api::release_hold_request::Target::OrderHolds(
                api::OrderHolds {
                    order_id: created.order_id.clone(),
                    kind: api::HoldKind::Manual as i32,
                },
            )),
            actor: "ops".into(),
            reason: "checked".into(),
        })
        .await
        .unwrap()
        .into_inner();
    app.connector.set_state(
        "PAYTM",
        "PT-ORIG-2",
        channel::ChannelOrderState::ReturnPickedUp,
    );
    app.connector
        .set_state("PAYTM", "PT-REPL-2", channel::ChannelOrderState::Open);
    let _ = app
        .app
        .release_return_pickup(CLIENT, "PAYTM", "PT-ORIG-2", "channel-sync")
        .await
        .unwrap();

    // Assert
    assert_eq!(created.status(), api::OrderStatus::Unfulfillable);
    assert_eq!(created.holds.len(), 2);
    assert_eq!(allocated.lines[0].allocated_quantity, 2);
    assert_eq!(
        manual.orders[0].status(),
        api::OrderStatus::Onhold,
        "one hold is still open"
    );
    assert_eq!(
        app.get(&created.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
}

async fn a_cancelled_order_closes_its_open_holds(db: TestDatabase) {
    // Arrange: an order on a manual hold.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 3, QcGrade::Pass).await;
    let held = app.create(order("MYNTRA", "MY-GONE", &[("MY-1", 1)])).await;
    let hold_id = held.holds[0].hold_id.clone();

    // Act
    app.orders
        .clone()
        .cancel_order(api::CancelOrderRequest {
            order_id: held.order_id.clone(),
            actor: "ops".into(),
            reason: "customer asked".into(),
        })
        .await
        .unwrap();
    let late_release = app
        .orders
        .clone()
        .release_hold(api::ReleaseHoldRequest {
            target: Some(api::release_hold_request::Target::HoldId(hold_id)),
            actor: "ops".into(),
            reason: "checked".into(),
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    let cancelled = app.get(&held.order_id).await;
    assert_eq!(cancelled.status(), api::OrderStatus::Cancelled);
    assert!(!cancelled.holds[0].open, "the hold closed with the order");
    assert_eq!(cancelled.holds[0].release_reason, "the order was cancelled");
    assert!(
        late_release.released.is_empty(),
        "nothing was left to release"
    );
    let after_cancel = app
        .history(&held.order_id)
        .await
        .iter()
        .filter(|entry| {
            entry.from_status() == api::OrderStatus::Cancelled && entry.reason.contains("hold H-")
        })
        .count();
    assert_eq!(
        after_cancel, 0,
        "the late release records nothing on the cancelled order"
    );
}

kosha_testkit::store_tests!(
    a_dispatch_after_hold_releases_at_its_instant,
    racing_releases_of_one_hold_record_one_transition,
    a_replacement_order_waits_for_the_return_pickup_of_the_original,
    a_channel_sync_releases_a_replacement_whose_original_is_not_open_here,
    holds_stack_and_an_order_with_nothing_allocated_is_unfulfillable_whatever_its_holds,
    a_cancelled_order_closes_its_open_holds,
);

async fn a_hold_release_that_could_not_be_scheduled_is_delivered_by_the_sweep(db: TestDatabase) {
    // Arrange: the scheduler is down when the order arrives.
    let app = spawn_app(db, Options::default()).await;
    app.receive("SKU-1", 2, QcGrade::Pass).await;
    let (dispatch_after, _) = dispatch_after_in_india(2);
    let mut request = order("FLIPKART", "FK-OUTBOX-1", &[("FK-1", 1)]);
    request.dispatch_after_time = Some(dispatch_after);
    app.faults.fail_schedules(1);
    let held = app.create(request).await;

    // Act: the sweep (the recurring job, or the in-process loop) delivers the outbox.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let still_held = app.get(&held.order_id).await;
    let delivered = app.app.deliver_outbox(&[]).await.unwrap();
    let released = app
        .wait_for_status(&held.order_id, api::OrderStatus::Fulfillable, 30)
        .await;

    // Assert
    assert_eq!(held.status(), api::OrderStatus::Onhold);
    assert_eq!(
        still_held.status(),
        api::OrderStatus::Onhold,
        "no job was scheduled yet"
    );
    assert_eq!(delivered, 1);
    assert!(!released.holds[0].open);
}

async fn a_channel_sync_releases_a_replacement_whose_original_is_not_open_here(db: TestDatabase) {
    // Arrange: the original was never taken in here (or is long dispatched), so it is not
    // among the channel's open orders.
    let options = Options {
        test_connector_channels: vec!["PAYTM"],
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    app.receive("SKU-2", 3, QcGrade::Pass).await;
    let mut request = order("PAYTM", "PT-REPL-9", &[("PT-2", 1)]);
    request.replacement_for_channel_order_id = "PT-OLD-9".into();
    let replacement = app.create(request).await;
    app.connector.set_state(
        "PAYTM",
        "PT-OLD-9",
        channel::ChannelOrderState::ReturnPickedUp,
    );

    // Act
    let sync = app.sync_channel_statuses("PAYTM").await;

    // Assert
    assert_eq!(replacement.status(), api::OrderStatus::Onhold);
    assert_eq!(sync.holds_released, 1);
    assert_eq!(
        app.get(&replacement.order_id).await.status(),
        api::OrderStatus::Fulfillable
    );
}

kosha_testkit::store_tests!(a_hold_release_that_could_not_be_scheduled_is_delivered_by_the_sweep);
