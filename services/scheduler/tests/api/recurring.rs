//! Recurring jobs: idempotent registration, one run per occurrence, run-now, cancel.

use std::time::Duration;

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_testkit::TestDatabase;

use crate::support::{
    OWNER, SECOND, Scheduler, T0, TestHandler, eventually, fake_clock, micros, test_settings,
};

fn every(seconds: i64, kind: &str, payload: &[u8]) -> pb::RegisterRecurringJobRequest {
    pb::RegisterRecurringJobRequest {
        owner: OWNER.into(),
        kind: kind.into(),
        payload: payload.to_vec(),
        interval: Some(prost_types::Duration { seconds, nanos: 0 }),
        cron: String::new(),
    }
}

async fn runs_of(scheduler: &Scheduler, recurring_job_id: &str) -> Vec<pb::Job> {
    let request = pb::ListRunsRequest {
        recurring_job_id: recurring_job_id.to_string(),
        ..Default::default()
    };
    scheduler
        .client
        .clone()
        .list_runs(request)
        .await
        .unwrap()
        .into_inner()
        .runs
}

async fn registering_again_keeps_the_schedule_and_a_new_interval_or_payload_updates_it(
    db: TestDatabase,
) {
    // Arrange
    let (clock, shared_clock) = fake_clock();
    let scheduler = Scheduler::start(&db.url, &test_settings("127.0.0.1:1"), shared_clock).await;
    let mut client = scheduler.client.clone();
    let register = |request| {
        let mut client = client.clone();
        async move {
            client
                .register_recurring_job(request)
                .await
                .unwrap()
                .into_inner()
                .recurring_job
                .unwrap()
        }
    };

    // Act
    let first = register(every(60, "sweep", b"a")).await;
    clock.advance(Duration::from_secs(10));
    let same = register(every(60, "sweep", b"a")).await;
    let new_payload = register(every(60, "sweep", b"b")).await;
    let runs_after_payload = runs_of(&scheduler, &first.recurring_job_id).await;
    let new_interval = register(every(120, "sweep", b"b")).await;
    let runs_after_interval = runs_of(&scheduler, &first.recurring_job_id).await;
    register(every(30, "reconcile", b"")).await;
    register(every(30, "sync", b"")).await;
    let first_page = client
        .list_recurring_jobs(pb::ListRecurringJobsRequest {
            owner: OWNER.into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let second_page = client
        .list_recurring_jobs(pb::ListRecurringJobsRequest {
            owner: OWNER.into(),
            page_size: 2,
            page_token: first_page.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let other_owner = client
        .list_recurring_jobs(pb::ListRecurringJobsRequest {
            owner: "order".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(micros(&first.next_due_time), T0 + 60 * SECOND);
    assert_eq!(
        same, first,
        "a restarting owner does not push its schedule back"
    );
    assert_eq!(new_payload.recurring_job_id, first.recurring_job_id);
    assert_eq!(micros(&new_payload.next_due_time), T0 + 60 * SECOND);
    assert_eq!(runs_after_payload.len(), 1);
    assert_eq!(runs_after_payload[0].payload, b"b");
    assert_eq!(
        micros(&new_interval.next_due_time),
        T0 + 130 * SECOND,
        "from now, new interval"
    );
    assert_eq!(
        runs_after_interval.len(),
        1,
        "the pending run moved, none added"
    );
    assert_eq!(micros(&runs_after_interval[0].due_time), T0 + 130 * SECOND);
    let kinds: Vec<&str> = first_page
        .recurring_jobs
        .iter()
        .chain(&second_page.recurring_jobs)
        .map(|recurring| recurring.kind.as_str())
        .collect();
    assert_eq!(kinds, ["reconcile", "sweep", "sync"]);
    assert!(second_page.next_page_token.is_empty());
    assert!(other_owner.recurring_jobs.is_empty());
    assert_eq!(scheduler.count("recurring_jobs").await, 3);
    scheduler.stop().await;
}

async fn each_occurrence_is_one_run_run_now_adds_one_and_cancel_skips_the_next_one(
    db: TestDatabase,
) {
    // Arrange
    let (clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let mut client = scheduler.client.clone();
    let recurring = client
        .register_recurring_job(every(60, "sweep", b"all"))
        .await
        .unwrap()
        .into_inner()
        .recurring_job
        .unwrap();
    let id = recurring.recurring_job_id.clone();
    let pending_count = |runs: &Vec<pb::Job>| {
        runs.iter()
            .filter(|run| run.state == pb::JobState::Pending as i32)
            .count()
    };

    // Act: the first occurrence comes due.
    clock.set(T0 + 60 * SECOND);
    let first_call = handler.wait_for_calls(1).await;
    let after_first = eventually(
        "the second run",
        || runs_of(&scheduler, &id),
        |runs| runs.len() == 2 && pending_count(runs) == 1,
    )
    .await;
    // Run it once now, between the first occurrence and the second.
    let pulled = client
        .run_now(pb::RunNowRequest { job_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    handler.wait_for_calls(2).await;
    let after_second = eventually(
        "the third run",
        || runs_of(&scheduler, &id),
        |runs| runs.len() == 3 && pending_count(runs) == 1,
    )
    .await;
    // Skip the third occurrence.
    client
        .cancel_job(pb::CancelJobRequest {
            job_id: after_second[0].job_id.clone(),
        })
        .await
        .unwrap();
    let after_cancel = runs_of(&scheduler, &id).await;

    // Assert
    assert_eq!(first_call[0].at, T0 + 60 * SECOND);
    assert_eq!(first_call[0].job.recurring_job_id, id);
    assert_eq!(first_call[0].job.payload, b"all");
    assert_eq!(after_first[0].state, pb::JobState::Pending as i32);
    assert_eq!(micros(&after_first[0].due_time), T0 + 120 * SECOND);
    assert_eq!(pulled.job.unwrap().job_id, after_first[0].job_id);
    assert_eq!(
        micros(&after_second[0].due_time),
        T0 + 120 * SECOND,
        "the second occurrence still has a run of its own"
    );
    assert_eq!(after_cancel.len(), 4);
    assert_eq!(after_cancel[1].state, pb::JobState::Cancelled as i32);
    assert_eq!(
        micros(&after_cancel[0].due_time),
        T0 + 180 * SECOND,
        "the schedule kept its beat"
    );
    assert!(after_cancel.iter().all(|run| run.recurring_job_id == id));
    assert_eq!(handler.calls().len(), 2);
    scheduler.stop().await;
    handler_server.stop().await;
}

kosha_testkit::store_tests!(
    registering_again_keeps_the_schedule_and_a_new_interval_or_payload_updates_it,
    each_occurrence_is_one_run_run_now_adds_one_and_cancel_skips_the_next_one,
);
