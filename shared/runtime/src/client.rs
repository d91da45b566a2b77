//! Clients of other Kosha services.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::telemetry::TraceContextInterceptor;

/// A channel to another service that carries the caller's trace context.
pub type TracedChannel = InterceptedService<Channel, TraceContextInterceptor>;

/// How long a connection attempt to another service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connected channel to `address` (`host:port` or a URI): the service starts even
/// when its dependencies are not up yet, and each call reports `UNAVAILABLE` until they are.
pub fn connect_lazy(address: &str) -> anyhow::Result<TracedChannel> {
    let uri = crate::config::service_uri(address);
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|error| anyhow::anyhow!("bad service address `{uri}`: {error}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(InterceptedService::new(
        endpoint.connect_lazy(),
        TraceContextInterceptor,
    ))
}
