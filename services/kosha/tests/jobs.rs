//! The runner's scheduler calls only the services of its process that own jobs, and any
//! owners its settings add: a job for any other service is refused when it is scheduled,
//! rather than accepted and retried until it gives up.

use kosha::suite::{Suite, SuiteOptions};
use kosha_proto::kosha::scheduler::v1::ScheduleJobRequest;
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::time::{now_micros, to_timestamp};

fn job_for(owner: &str) -> ScheduleJobRequest {
    ScheduleJobRequest {
        owner: owner.into(),
        kind: "probe".into(),
        // An hour ahead, so the accepted one never runs during the test.
        due_time: Some(to_timestamp(now_micros() + 3_600_000_000)),
        idempotency_key: format!("probe-{owner}"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_service_without_jobs_is_refused_when_scheduled() {
    // Arrange: the suite, serving on a free port of loopback.
    let data_dir = tempfile::tempdir().unwrap();
    let options = SuiteOptions::from_env(data_dir.path().to_path_buf()).unwrap();
    let suite = Suite::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let address = suite.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(suite.serve(async {
        let _ = stopped.await;
    }));
    let mut scheduler = SchedulerServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();

    // Act
    let mut refused = Vec::new();
    for owner in ["catalog", "purchase-order", "billing"] {
        refused.push(scheduler.schedule_job(job_for(owner)).await.unwrap_err());
    }
    let mut accepted = Vec::new();
    for owner in ["inventory", "order"] {
        accepted.push(scheduler.schedule_job(job_for(owner)).await);
    }

    // Assert
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("owner"), "{}", status.message());
    }
    for response in accepted {
        assert!(response.unwrap().into_inner().created);
    }
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
