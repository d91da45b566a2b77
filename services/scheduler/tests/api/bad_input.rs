//! Every bad request is INVALID_ARGUMENT naming its field, and stores nothing.

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_testkit::TestDatabase;

use crate::support::{
    OWNER, SECOND, Scheduler, TestHandler, fake_clock, schedule_request, test_settings,
    violated_fields,
};

async fn bad_input_is_refused_naming_the_field_and_nothing_is_stored(db: TestDatabase) {
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

    let day = 24 * 3_600 * SECOND;
    let jobs: Vec<(&str, pb::ScheduleJobRequest)> = vec![
        (
            "owner",
            pb::ScheduleJobRequest {
                owner: "billing".into(),
                ..schedule_request("k", "a", now)
            },
        ),
        (
            "owner",
            pb::ScheduleJobRequest {
                owner: String::new(),
                ..schedule_request("k", "b", now)
            },
        ),
        ("due_time", schedule_request("k", "c", now - day - SECOND)),
        ("due_time", schedule_request("k", "d", now + 401 * day)),
        (
            "due_time",
            pb::ScheduleJobRequest {
                due_time: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..schedule_request("k", "e", now)
            },
        ),
        ("kind", schedule_request("", "f", now)),
        ("kind", schedule_request("release hold", "g", now)),
        (
            "payload",
            pb::ScheduleJobRequest {
                payload: vec![7; 64 * 1024 + 1],
                ..schedule_request("k", "h", now)
            },
        ),
        ("idempotency_key", schedule_request("k", "", now)),
        (
            "max_attempts",
            pb::ScheduleJobRequest {
                max_attempts: -3,
                ..schedule_request("k", "i", now)
            },
        ),
    ];
    let recurring =
        |interval: Option<prost_types::Duration>, cron: &str| pb::RegisterRecurringJobRequest {
            owner: OWNER.into(),
            kind: "sweep".into(),
            payload: Vec::new(),
            interval,
            cron: cron.into(),
        };
    let seconds = |seconds: i64, nanos: i32| Some(prost_types::Duration { seconds, nanos });
    let registrations: Vec<(&str, pb::RegisterRecurringJobRequest)> = vec![
        ("interval", recurring(seconds(0, 0), "")),
        ("interval", recurring(seconds(0, 500_000_000), "")),
        ("interval", recurring(None, "")),
        ("interval", recurring(seconds(-60, 0), "")),
        ("interval", recurring(seconds(5, -1), "")),
        ("cron", recurring(None, "every day at noon")),
        ("cron", recurring(None, "0 12 * * 9")),
        (
            "owner",
            pb::RegisterRecurringJobRequest {
                owner: "billing".into(),
                ..recurring(seconds(60, 0), "")
            },
        ),
        (
            "kind",
            pb::RegisterRecurringJobRequest {
                kind: String::new(),
                ..recurring(seconds(60, 0), "")
            },
        ),
        (
            "payload",
            pb::RegisterRecurringJobRequest {
                payload: vec![0; 64 * 1024 + 1],
                ..recurring(seconds(60, 0), "")
            },
        ),
    ];

    // Act
    let mut refusals = Vec::new();
    for (field, request) in jobs {
        refusals.push((field, client.schedule_job(request).await.unwrap_err()));
    }
    for (field, request) in registrations {
        refusals.push((
            field,
            client.register_recurring_job(request).await.unwrap_err(),
        ));
    }

    // Assert
    for (field, status) in &refusals {
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert_eq!(violated_fields(status), [*field], "{status:?}");
        assert!(
            status.message().contains(&format!("`{field}`")),
            "{status:?}"
        );
    }
    assert_eq!(scheduler.count("jobs").await, 0);
    assert_eq!(scheduler.count("recurring_jobs").await, 0);
    assert!(handler.calls().is_empty());
    scheduler.stop().await;
    handler_server.stop().await;
}

async fn bad_ids_filters_and_tokens_are_refused_naming_the_field(db: TestDatabase) {
    // Arrange
    let (_clock, shared_clock) = fake_clock();
    let scheduler = Scheduler::start(&db.url, &test_settings("127.0.0.1:1"), shared_clock).await;
    let mut client = scheduler.client.clone();

    // Act
    let refusals = vec![
        (
            "job_id",
            client
                .get_job(pb::GetJobRequest {
                    job_id: String::new(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "job_id",
            client
                .cancel_job(pb::CancelJobRequest {
                    job_id: "a b".into(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "job_id",
            client
                .run_now(pb::RunNowRequest {
                    job_id: String::new(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "state",
            client
                .list_jobs(pb::ListJobsRequest {
                    state: 42,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "page_token",
            client
                .list_jobs(pb::ListJobsRequest {
                    page_token: "zz".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "due_after",
            client
                .list_jobs(pb::ListJobsRequest {
                    due_after: Some(prost_types::Timestamp {
                        seconds: 2_000_000_000,
                        nanos: 0,
                    }),
                    due_before: Some(prost_types::Timestamp {
                        seconds: 1_900_000_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "page_size",
            client
                .list_jobs(pb::ListJobsRequest {
                    page_size: -1,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
        (
            "recurring_job_id",
            client
                .list_runs(pb::ListRunsRequest::default())
                .await
                .unwrap_err(),
        ),
    ];
    let missing = client
        .get_job(pb::GetJobRequest {
            job_id: "0195f3c2-0000-7000-8000-000000000000".into(),
        })
        .await
        .unwrap_err();

    // Assert
    for (field, status) in &refusals {
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert_eq!(violated_fields(status), [*field], "{status:?}");
    }
    assert_eq!(missing.code(), tonic::Code::NotFound);
    scheduler.stop().await;
}

kosha_testkit::store_tests!(
    bad_input_is_refused_naming_the_field_and_nothing_is_stored,
    bad_ids_filters_and_tokens_are_refused_naming_the_field,
);
