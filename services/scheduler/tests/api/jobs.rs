//! One-shot jobs through the API: idempotent scheduling, listing, cancel, run-now, and how
//! each outcome of the handler ends a job.

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_testkit::TestDatabase;

use crate::support::{
    SECOND, Scheduler, TestHandler, eventually, fake_clock, let_loops_poll, micros,
    schedule_request, test_settings,
};

async fn scheduling_the_same_key_again_returns_the_first_job_and_another_payload_is_refused(
    db: TestDatabase,
) {
    // Arrange
    let (_clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let scheduler = Scheduler::start(&db.url, &test_settings("127.0.0.1:1"), shared_clock).await;
    let mut client = scheduler.client.clone();
    let request = schedule_request("release-hold", "order-1/hold", now + 3_600 * SECOND);

    // Act
    let first = client
        .schedule_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = client
        .schedule_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    let reused = client
        .schedule_job(pb::ScheduleJobRequest {
            payload: b"other".to_vec(),
            ..request.clone()
        })
        .await
        .unwrap_err();
    let other_kind = client
        .schedule_job(pb::ScheduleJobRequest {
            kind: "sweep".into(),
            ..request
        })
        .await
        .unwrap_err();

    // Assert
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(again.job, first.job);
    for status in [&reused, &other_kind] {
        assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
        assert!(
            status
                .message()
                .contains("idempotency key `order-1/hold` was already used")
        );
    }
    assert_eq!(scheduler.count("jobs").await, 1);
    scheduler.stop().await;
}

async fn jobs_are_listed_by_due_time_with_filters_and_pages(db: TestDatabase) {
    // Arrange: 25 future jobs of two kinds, due a minute apart, in shuffled order.
    let (_clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let scheduler = Scheduler::start(&db.url, &test_settings("127.0.0.1:1"), shared_clock).await;
    let mut client = scheduler.client.clone();
    for index in [
        7, 3, 19, 0, 24, 11, 5, 16, 2, 21, 9, 14, 1, 23, 6, 18, 12, 4, 20, 8, 15, 10, 22, 13, 17,
    ] {
        let kind = if index % 2 == 0 { "even" } else { "odd" };
        scheduler
            .schedule(
                kind,
                &format!("job-{index}"),
                now + (index + 1) * 60 * SECOND,
            )
            .await;
    }

    // Act: every page of 10, then filtered lists.
    let mut listed = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListJobsRequest {
            page_size: 10,
            page_token,
            ..Default::default()
        };
        let page = client.list_jobs(request).await.unwrap().into_inner();
        pages += 1;
        listed.extend(page.jobs);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let odd = client
        .list_jobs(pb::ListJobsRequest {
            kind: "odd".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let window = client
        .list_jobs(pb::ListJobsRequest {
            due_after: Some(kosha_runtime::time::to_timestamp(now + 5 * 60 * SECOND)),
            due_before: Some(kosha_runtime::time::to_timestamp(now + 8 * 60 * SECOND)),
            state: pb::JobState::Pending as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let succeeded = client
        .list_jobs(pb::ListJobsRequest {
            state: pb::JobState::Succeeded as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let other_owner = client
        .list_jobs(pb::ListJobsRequest {
            owner: "order".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;

    // Assert
    let keys: Vec<String> = listed
        .iter()
        .map(|job| job.idempotency_key.clone())
        .collect();
    let expected: Vec<String> = (0..25).map(|index| format!("job-{index}")).collect();
    assert_eq!(keys, expected, "every job once, by due time");
    assert_eq!(pages, 3);
    assert_eq!(odd.len(), 12);
    assert!(odd.iter().all(|job| job.kind == "odd"));
    let window_keys: Vec<&str> = window
        .iter()
        .map(|job| job.idempotency_key.as_str())
        .collect();
    assert_eq!(window_keys, ["job-4", "job-5", "job-6"]);
    assert!(succeeded.is_empty());
    assert!(other_owner.is_empty());
    scheduler.stop().await;
}

async fn a_pending_job_is_cancelled_once_and_a_finished_one_cannot_be(db: TestDatabase) {
    // Arrange
    let (_clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let mut client = scheduler.client.clone();
    let future = scheduler
        .schedule("release-hold", "later", now + 60 * SECOND)
        .await;
    let done = scheduler.schedule("release-hold", "now", now).await;
    eventually(
        "the due job to succeed",
        || scheduler.job(&done.job_id),
        |job| job.state == pb::JobState::Succeeded as i32,
    )
    .await;

    // Act
    let cancel = |job_id: &str| pb::CancelJobRequest {
        job_id: job_id.to_string(),
    };
    let cancelled = client
        .cancel_job(cancel(&future.job_id))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let cancelled_again = client
        .cancel_job(cancel(&future.job_id))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let finished = client.cancel_job(cancel(&done.job_id)).await.unwrap_err();
    let unknown = client
        .cancel_job(cancel("0195f3c2-0000-7000-8000-000000000000"))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(cancelled.state, pb::JobState::Cancelled as i32);
    assert!(cancelled.finish_time.is_some());
    assert_eq!(cancelled_again, cancelled);
    assert_eq!(finished.code(), tonic::Code::FailedPrecondition);
    assert!(
        finished.message().contains("already succeeded"),
        "{finished:?}"
    );
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let_loops_poll().await;
    assert!(
        handler.calls_of(&future.job_id).is_empty(),
        "a cancelled job never runs"
    );
    scheduler.stop().await;
    handler_server.stop().await;
}

async fn run_now_makes_a_future_job_run_at_once(db: TestDatabase) {
    // Arrange
    let (_clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let mut client = scheduler.client.clone();
    let job = scheduler
        .schedule("retry-bulk-order", "b2b-7", now + 3_600 * SECOND)
        .await;
    let_loops_poll().await;
    assert!(handler.calls().is_empty());

    // Act
    let due_now = client
        .run_now(pb::RunNowRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let calls = handler.wait_for_calls(1).await;
    let finished = eventually(
        "the job to succeed",
        || scheduler.job(&job.job_id),
        |job| job.state == pb::JobState::Succeeded as i32,
    )
    .await;
    let again = client
        .run_now(pb::RunNowRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap_err();

    // Assert
    assert_eq!(micros(&due_now.due_time), now);
    assert_eq!(calls[0].job.job_id, job.job_id);
    assert_eq!(calls[0].at, now, "ran without the clock moving");
    assert_eq!(finished.attempts, 1);
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    scheduler.stop().await;
    handler_server.stop().await;
}

async fn a_permanent_failure_ends_a_job_and_retryable_ones_give_up_after_max_attempts(
    db: TestDatabase,
) {
    // Arrange
    let (clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let permanent = scheduler.schedule("fail-permanently", "p", now).await;
    let request = pb::ScheduleJobRequest {
        max_attempts: 2,
        ..schedule_request("fail-retryable", "r", now)
    };
    let retryable = scheduler
        .client
        .clone()
        .schedule_job(request)
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();

    // Act
    let failed = eventually(
        "the permanent failure",
        || scheduler.job(&permanent.job_id),
        |job| job.state == pb::JobState::Failed as i32,
    )
    .await;
    let waiting = eventually(
        "the first retryable failure",
        || scheduler.job(&retryable.job_id),
        |job| job.attempts == 1 && job.state == pb::JobState::Pending as i32,
    )
    .await;
    clock.advance(std::time::Duration::from_secs(5));
    let gave_up = eventually(
        "the job to give up",
        || scheduler.job(&retryable.job_id),
        |job| job.state == pb::JobState::Failed as i32,
    )
    .await;

    // Assert
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error, "no such order");
    assert_eq!(waiting.last_error, "stock busy");
    let wait = micros(&waiting.due_time) - now;
    assert!(
        (SECOND / 2..=SECOND).contains(&wait),
        "first backoff is 0.5-1s, was {wait}us"
    );
    assert_eq!(gave_up.attempts, 2);
    assert_eq!(gave_up.last_error, "gave up after 2 attempts: stock busy");
    assert!(gave_up.finish_time.is_some());
    assert_eq!(handler.calls_of(&retryable.job_id).len(), 2);
    scheduler.stop().await;
    handler_server.stop().await;
}

async fn cancelling_a_running_job_lets_its_attempt_finish_and_stops_its_retries(db: TestDatabase) {
    // Arrange
    let (_clock, shared_clock) = fake_clock();
    let now = shared_clock.now_micros();
    let handler = TestHandler::new(shared_clock.clone());
    handler.hold_calls();
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let job = scheduler
        .schedule("fail-retryable", "sync-channel", now)
        .await;
    handler.wait_for_calls(1).await;

    // Act
    let asked = scheduler
        .client
        .clone()
        .cancel_job(pb::CancelJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    handler.release_calls();
    let ended = eventually(
        "the job to be cancelled",
        || scheduler.job(&job.job_id),
        |job| job.state == pb::JobState::Cancelled as i32,
    )
    .await;

    // Assert
    assert_eq!(
        asked.state,
        pb::JobState::Running as i32,
        "the attempt runs on"
    );
    assert!(
        asked.cancel_requested,
        "the answer says the cancellation is taken"
    );
    assert_eq!(ended.attempts, 1);
    assert_eq!(ended.last_error, "cancelled after attempt 1: stock busy");
    scheduler.stop().await;
    handler_server.stop().await;
}

kosha_testkit::store_tests!(
    scheduling_the_same_key_again_returns_the_first_job_and_another_payload_is_refused,
    jobs_are_listed_by_due_time_with_filters_and_pages,
    a_pending_job_is_cancelled_once_and_a_finished_one_cannot_be,
    run_now_makes_a_future_job_run_at_once,
    a_permanent_failure_ends_a_job_and_retryable_ones_give_up_after_max_attempts,
    cancelling_a_running_job_lets_its_attempt_finish_and_stops_its_retries,
);
