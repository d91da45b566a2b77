//! Each attempt continues the trace of the call that scheduled its job, and the call to
//! the owner's handler carries it on.

use std::sync::OnceLock;

use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_testkit::TestDatabase;
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::support::{Scheduler, T0, TestHandler, fake_clock, schedule_request, test_settings};

/// The trace the scheduling call belongs to.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Installs, once per test process, what `telemetry::init` installs when exporting: the
/// W3C propagator and an OpenTelemetry layer (here exporting nowhere).
fn install_tracing() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let _ = tracing_subscriber::registry().with(layer).try_init();
    });
}

async fn an_attempt_continues_the_trace_that_scheduled_its_job(db: TestDatabase) {
    // Arrange
    install_tracing();
    let (_clock, shared_clock) = fake_clock();
    let handler = TestHandler::new(shared_clock.clone());
    let handler_server = handler.serve().await;
    let scheduler = Scheduler::start(
        &db.url,
        &test_settings(&handler_server.address_string()),
        shared_clock,
    )
    .await;
    let mut traced_client = SchedulerServiceClient::with_interceptor(
        scheduler.server.channel().await,
        |mut request: tonic::Request<()>| {
            let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
            request
                .metadata_mut()
                .insert("traceparent", traceparent.parse().unwrap());
            Ok(request)
        },
    );

    // Act
    let job = traced_client
        .schedule_job(schedule_request("release-hold", "traced", T0))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let calls = handler.wait_for_calls(1).await;
    let row = sqlx::query("SELECT traceparent FROM jobs WHERE job_id = $1")
        .bind(&job.job_id)
        .fetch_one(scheduler.db.pool())
        .await
        .unwrap();
    let stored: String = sqlx::Row::try_get(&row, "traceparent").unwrap();

    // Assert
    assert!(
        stored.starts_with(&format!("00-{TRACE_ID}-")),
        "stored `{stored}`"
    );
    let received = calls[0]
        .traceparent_opt
        .clone()
        .expect("the handler call is traced");
    assert!(
        received.starts_with(&format!("00-{TRACE_ID}-")),
        "received `{received}`"
    );
    assert_ne!(
        received, stored,
        "the handler's parent is the attempt's span, not the caller's"
    );
    scheduler.stop().await;
    handler_server.stop().await;
}

kosha_testkit::store_tests!(an_attempt_continues_the_trace_that_scheduled_its_job);
