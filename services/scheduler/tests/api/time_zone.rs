//! A job due at 12:30Z runs at 12:30Z whatever the process time zone.
//!
//! The time zone of a process is read from `TZ` by the C library, and changing the
//! environment of a running multi-threaded test is unsound, so the scenario runs in a
//! child process of this test binary, started once per zone with `TZ` set. The day is
//! 2025-03-09, when New York moves its clocks forward at 07:00Z.

use std::process::Command;

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_testkit::{Store, TestDatabase};

use crate::support::{
    OWNER, SECOND, Scheduler, T0, TestHandler, fake_clock, let_loops_poll, micros, test_settings,
};

/// The variable telling the child which zone its parent set.
const CHILD_ZONE: &str = "KOSHA_SCHEDULER_TEST_ZONE";
/// The child test's full name.
const CHILD_TEST: &str = "time_zone::the_1230z_scenario_in_this_process_time_zone";

/// 12:30Z on the day of the test.
const HALF_PAST_NOON: i64 = T0 + 30 * 60 * SECOND;
/// 12:30Z the next day: 24 hours later, though New York's clocks moved meanwhile.
const NEXT_HALF_PAST_NOON: i64 = HALF_PAST_NOON + 24 * 3_600 * SECOND;

#[test]
fn a_job_due_at_1230z_runs_at_1230z_in_every_process_time_zone() {
    for (zone, offset) in [
        ("UTC", "+0000"),
        ("Asia/Kolkata", "+0530"),
        ("America/New_York", "-0400"),
    ] {
        // Arrange
        let mut child = Command::new(std::env::current_exe().expect("test binary"));
        child
            .args([CHILD_TEST, "--exact", "--ignored", "--test-threads=1"])
            .env("TZ", zone)
            .env(CHILD_ZONE, format!("{zone} {offset}"));

        // Act
        let output = child.output().expect("run the child test");

        // Assert
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "TZ={zone}:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "TZ={zone}: the scenario did not run:\n{stdout}"
        );
    }
}

/// The scenario, run by the test above in a child process with `TZ` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as a child process of a_job_due_at_1230z_runs_at_1230z_in_every_process_time_zone"]
async fn the_1230z_scenario_in_this_process_time_zone() {
    let expected = std::env::var(CHILD_ZONE).expect("started by the time zone test");
    let (zone, offset) = expected.split_once(' ').expect("zone and offset");
    assert_eq!(std::env::var("TZ").as_deref(), Ok(zone));
    assert_process_offset(offset);

    for store in [Store::Sqlite, Store::Postgres] {
        if let Some(db) = TestDatabase::create(store).await {
            runs_at_half_past_noon_utc(db).await;
        }
    }
}

/// Checks, through `date`, that the C library of this process really is in the zone.
fn assert_process_offset(offset: &str) {
    let epoch = format!("@{}", HALF_PAST_NOON / SECOND);
    match Command::new("date").args(["-d", &epoch, "+%z"]).output() {
        Ok(output) if output.status.success() => {
            let printed = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                printed.trim(),
                offset,
                "the process is not in the expected zone"
            );
        }
        _ => kosha_testkit::skip_or_fail("date", "cannot confirm the process time zone"),
    }
}

async fn runs_at_half_past_noon_utc(db: TestDatabase) {
    // Arrange: 12:00Z; a one-shot job and a daily cron job, both for 12:30Z.
    let (clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let job = scheduler
        .schedule("release-hold", "dispatch-after", HALF_PAST_NOON)
        .await;
    let registration = pb::RegisterRecurringJobRequest {
        owner: OWNER.into(),
        kind: "daily-reconcile".into(),
        payload: Vec::new(),
        interval: None,
        cron: "30 12 * * *".into(),
    };
    let recurring = scheduler
        .client
        .clone()
        .register_recurring_job(registration)
        .await
        .unwrap()
        .into_inner()
        .recurring_job
        .unwrap();

    // Act: a microsecond early, then on time.
    clock.set(HALF_PAST_NOON - 1);
    let_loops_poll().await;
    let calls_early = handler.calls().len();
    clock.set(HALF_PAST_NOON);
    let calls = handler.wait_for_calls(2).await;
    let next = crate::support::eventually(
        "the next daily run",
        || {
            let mut client = scheduler.client.clone();
            let request = pb::ListRecurringJobsRequest {
                owner: OWNER.into(),
                ..Default::default()
            };
            async move {
                client
                    .list_recurring_jobs(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .recurring_jobs
            }
        },
        |recurring_jobs| {
            recurring_jobs
                .iter()
                .any(|r| micros(&r.next_due_time) != HALF_PAST_NOON)
        },
    )
    .await;

    // Assert
    assert_eq!(micros(&recurring.next_due_time), HALF_PAST_NOON);
    assert_eq!(calls_early, 0, "nothing runs before 12:30Z");
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|call| call.at == HALF_PAST_NOON),
        "both ran at 12:30Z"
    );
    assert!(calls.iter().any(|call| call.job.job_id == job.job_id));
    assert_eq!(micros(&next[0].next_due_time), NEXT_HALF_PAST_NOON);
    scheduler.stop().await;
    handler_server.stop().await;
}
