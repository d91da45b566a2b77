//! The execution loop under stress and failure: several replicas, a killed replica, a
//! handler that is down, and the per-owner bound on concurrent runs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_scheduler::Settings;
use kosha_scheduler::domain::{Clock, SystemClock};
use kosha_testkit::TestDatabase;

use crate::support::{
    OWNER, Proxy, SECOND, Scheduler, T0, TestHandler, eventually, fake_clock, let_loops_poll,
    micros, schedule_request, test_settings,
};

async fn two_replicas_run_each_of_a_thousand_due_jobs_exactly_once(db: TestDatabase) {
    // Arrange: two replicas on one database, real time.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let handler = TestHandler::new(clock.clone());
    let handler_server = handler.serve().await;
    let settings = test_settings(&handler_server.address_string());
    let first = Scheduler::start(&db.url, &settings, clock.clone()).await;
    let second = Scheduler::start(&db.url, &settings, clock.clone()).await;

    // Act: schedule 1,000 jobs due now, through both replicas.
    let now = clock.now_micros();
    let calls = (0..1_000).map(|index| {
        let mut client = if index % 2 == 0 {
            first.client.clone()
        } else {
            second.client.clone()
        };
        async move {
            client
                .schedule_job(schedule_request("flood", &format!("flood-{index}"), now))
                .await
        }
    });
    {
        let mut responses = futures::stream::iter(calls).buffer_unordered(16);
        while let Some(response) = responses.next().await {
            response.unwrap();
        }
    }
    let succeeded = |scheduler: &Scheduler| {
        let db = scheduler.db.clone();
        async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'SUCCEEDED'")
                .fetch_one(db.pool())
                .await
                .unwrap();
            sqlx::Row::try_get::<i64, _>(&row, "n").unwrap()
        }
    };
    eventually(
        "all 1,000 jobs to succeed",
        || succeeded(&first),
        |count| *count == 1_000,
    )
    .await;
    let_loops_poll().await;

    // Assert
    let per_job = handler.calls_per_job();
    assert_eq!(per_job.len(), 1_000);
    let repeated: Vec<(&String, &u32)> = per_job.iter().filter(|(_, count)| **count != 1).collect();
    assert!(repeated.is_empty(), "jobs run more than once: {repeated:?}");
    first.stop().await;
    second.stop().await;
    handler_server.stop().await;
}

async fn two_replicas_never_overlap_the_runs_of_a_recurring_job(db: TestDatabase) {
    // Arrange: a recurring job every second whose run takes (fake) seconds.
    let (clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    handler.hold_calls();
    let handler_server = handler.serve().await;
    let settings = test_settings(&handler_server.address_string());
    let first = Scheduler::start(&db.url, &settings, shared_clock.clone()).await;
    let second = Scheduler::start(&db.url, &settings, shared_clock.clone()).await;
    let request = pb::RegisterRecurringJobRequest {
        owner: OWNER.into(),
        kind: "sweep".into(),
        payload: Vec::new(),
        interval: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        cron: String::new(),
    };
    let recurring = first
        .client
        .clone()
        .register_recurring_job(request)
        .await
        .unwrap()
        .into_inner();
    let id = recurring.recurring_job.unwrap().recurring_job_id;
    let runs = || {
        let mut client = second.client.clone();
        let id = id.clone();
        async move {
            let request = pb::ListRunsRequest {
                recurring_job_id: id,
                ..Default::default()
            };
            client.list_runs(request).await.unwrap().into_inner().runs
        }
    };

    // Act: the first run starts and stays busy while five occurrences pass.
    clock.advance(Duration::from_secs(1));
    handler.wait_for_calls(1).await;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        let_loops_poll().await;
    }
    let while_busy = runs().await;
    let calls_while_busy = handler.calls().len();
    handler.release_calls();
    let after = eventually("the catch-up run to finish", runs, |runs| {
        runs.len() == 3 && runs[1].state == pb::JobState::Succeeded as i32
    })
    .await;

    // Assert
    assert_eq!(calls_while_busy, 1, "no run started while one was running");
    assert_eq!(
        while_busy.len(),
        1,
        "the next run waits for the running one"
    );
    assert_eq!(while_busy[0].state, pb::JobState::Running as i32);
    assert_eq!(handler.max_running("sweep"), 1);
    assert_eq!(handler.calls().len(), 2);
    assert_eq!(
        micros(&after[1].due_time),
        T0 + 6 * SECOND,
        "missed occurrences collapse into one"
    );
    assert_eq!(micros(&after[0].due_time), T0 + 7 * SECOND);
    assert_eq!(after[0].state, pb::JobState::Pending as i32);
    first.stop().await;
    second.stop().await;
    handler_server.stop().await;
}

async fn a_job_cut_off_by_a_killed_scheduler_runs_again_after_its_lease_expires(db: TestDatabase) {
    // Arrange: a short lease, and a handler that applies its effect and then hangs.
    let (clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    handler.hold_calls();
    let handler_server = handler.serve().await;
    let settings = Settings {
        lease_secs: 5,
        ..test_settings(&handler_server.address_string())
    };
    let doomed = Scheduler::start(&db.url, &settings, shared_clock.clone()).await;
    let job = doomed.schedule("release-hold", "order-9/hold", T0).await;
    handler.wait_for_calls(1).await;

    // Act: kill the replica mid-run, start another, and let the lease run out.
    doomed.kill().await;
    let restarted = Scheduler::start(&db.url, &settings, shared_clock.clone()).await;
    let_loops_poll().await;
    let before_expiry = restarted.job(&job.job_id).await;
    let calls_before_expiry = handler.calls().len();
    handler.release_calls();
    clock.advance(Duration::from_secs(6));
    let finished = eventually(
        "the job to run again",
        || restarted.job(&job.job_id),
        |job| job.state == pb::JobState::Succeeded as i32,
    )
    .await;

    // Assert
    assert_eq!(
        before_expiry.state,
        pb::JobState::Running as i32,
        "held under the dead lease"
    );
    assert_eq!(calls_before_expiry, 1);
    assert_eq!(handler.calls_of(&job.job_id).len(), 2, "delivered again");
    assert_eq!(
        handler.effects_of("order-9/hold"),
        1,
        "the idempotent effect happened once"
    );
    assert_eq!(finished.attempts, 2);
    assert!(
        finished.last_error.contains("attempt 1 was cut off"),
        "{}",
        finished.last_error
    );
    restarted.stop().await;
    handler_server.stop().await;
}

async fn a_job_whose_handler_is_down_retries_with_backoff_until_the_handler_returns(
    db: TestDatabase,
) {
    // Arrange: the scheduler reaches the handler through a proxy that starts down.
    let (clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let proxy = Proxy::start_down(handler_server.address_string()).await;
    let scheduler = Scheduler::start(&db.url, &test_settings(&proxy.address), shared_clock).await;
    let job = scheduler.schedule("sync-channel", "amazon/sync", T0).await;
    let failed_attempt = |attempts: i32| {
        move |job: &pb::Job| job.attempts == attempts && job.state == pb::JobState::Pending as i32
    };

    // Act: two attempts fail while the handler is down; the third finds it back.
    let first = eventually(
        "attempt 1 to fail",
        || scheduler.job(&job.job_id),
        failed_attempt(1),
    )
    .await;
    clock.set(micros(&first.due_time));
    let second = eventually(
        "attempt 2 to fail",
        || scheduler.job(&job.job_id),
        failed_attempt(2),
    )
    .await;
    proxy.bring_up();
    clock.set(micros(&second.due_time));
    let done = eventually(
        "the job to succeed",
        || scheduler.job(&job.job_id),
        |job| job.state == pb::JobState::Succeeded as i32,
    )
    .await;

    // Assert
    assert!(
        first.last_error.contains("calling the handler failed"),
        "{}",
        first.last_error
    );
    let first_wait = micros(&first.due_time) - T0;
    let second_wait = micros(&second.due_time) - micros(&first.due_time);
    assert!(
        (SECOND / 2..=SECOND).contains(&first_wait),
        "first backoff {first_wait}us"
    );
    assert!(
        (SECOND..=2 * SECOND).contains(&second_wait),
        "second backoff {second_wait}us"
    );
    assert_eq!(done.attempts, 3);
    assert_eq!(
        handler.calls_of(&job.job_id).len(),
        1,
        "only the third attempt got through"
    );
    scheduler.stop().await;
    drop(proxy);
    handler_server.stop().await;
}

async fn runs_of_one_owner_are_bounded_per_replica(db: TestDatabase) {
    // Arrange: at most two runs per owner; six jobs due, the handler holding each call.
    let (_clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    handler.hold_calls();
    let handler_server = handler.serve().await;
    let settings = Settings {
        max_runs_per_owner: 2,
        ..test_settings(&handler_server.address_string())
    };
    let scheduler = Scheduler::start(&db.url, &settings, shared_clock).await;
    for index in 0..6 {
        scheduler
            .schedule("reconcile", &format!("reconcile-{index}"), T0)
            .await;
    }

    // Act
    handler.wait_for_calls(2).await;
    let_loops_poll().await;
    let calls_while_held = handler.calls().len();
    handler.release_calls();
    handler.wait_for_calls(6).await;

    // Assert
    assert_eq!(calls_while_held, 2);
    assert_eq!(handler.max_running("reconcile"), 2);
    scheduler.stop().await;
    handler_server.stop().await;
}

kosha_testkit::store_tests!(
    two_replicas_run_each_of_a_thousand_due_jobs_exactly_once,
    two_replicas_never_overlap_the_runs_of_a_recurring_job,
    a_job_cut_off_by_a_killed_scheduler_runs_again_after_its_lease_expires,
    a_job_whose_handler_is_down_retries_with_backoff_until_the_handler_returns,
    runs_of_one_owner_are_bounded_per_replica,
);
