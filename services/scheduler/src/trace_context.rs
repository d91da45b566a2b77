//! Carrying a trace from the call that schedules a job to the runs of that job.
//!
//! The scheduling call's W3C `traceparent` is stored with the job; each attempt's span
//! continues that trace, and the call to the owner's handler carries it on. One trace
//! then shows the request that scheduled the job, every attempt, and what the owner did,
//! even when the job ran hours later. Runs of recurring jobs have no scheduling call and
//! start traces of their own.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header naming the trace and the parent span.
const TRACEPARENT: &str = "traceparent";

/// The current span's trace context as a `traceparent` value; empty when the current
/// span is not traced (no OpenTelemetry layer installed).
pub fn current_traceparent() -> String {
    let context = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    // Always W3C, whatever the process-wide propagator is: the value is stored and read
    // back later, perhaps by another build of the scheduler.
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT).unwrap_or_default()
}

/// Makes `span` a child of the span a stored `traceparent` names; does nothing for an
/// empty or malformed value.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}
