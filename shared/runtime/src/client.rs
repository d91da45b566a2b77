//! Clients of other Kosha services.
//!
//! A call to a service this very process serves does not leave the process. When services
//! share one server (the all-in-one runner, tests), the caller still goes through the
//! generated client, protobuf encoding, trace propagation, the server's trace layer, its
//! concurrency limit and its request timeout, but the encoded request is handed to the
//! server's routes directly instead of through HTTP/2 on a loopback socket: two socket
//! writes, two reads and a wake-up of another task per call are what loopback gRPC costs
//! and what the in-process path saves. Separate processes (Kubernetes) still talk over the
//! network; nothing else differs.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt as _};

use crate::telemetry::TraceContextInterceptor;

/// A channel to another service that carries the caller's trace context.
pub type TracedChannel = InterceptedService<PeerChannel, TraceContextInterceptor>;

/// How long a connection attempt to another service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connected channel to `address` (`host:port` or a URI): the service starts even
/// when its dependencies are not up yet, and each call reports `UNAVAILABLE` until they are.
/// A call goes in-process while a server of this process listens on that address.
pub fn connect_lazy(address: &str) -> anyhow::Result<TracedChannel> {
    let uri = crate::config::service_uri(address);
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|error| anyhow::anyhow!("bad service address `{uri}`: {error}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let target_opt = socket_address(endpoint.uri());
    Ok(InterceptedService::new(
        PeerChannel {
            target_opt,
            network: endpoint.connect_lazy(),
            route: Route::Undecided,
        },
        TraceContextInterceptor,
    ))
}

/// Whether calls to a server of this process stay in-process (the default). Benchmarks
/// turn it off to measure what the network hops cost; nothing else should.
pub fn set_in_process_calls(enabled: bool) {
    IN_PROCESS_CALLS.store(enabled, Ordering::Relaxed);
}

static IN_PROCESS_CALLS: AtomicBool = AtomicBool::new(true);

/// A server's routes with its layers, as an in-process caller reaches them.
pub(crate) type LocalService =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

#[derive(Clone)]
struct LocalServer {
    address: SocketAddr,
    service: LocalService,
    request_timeout: Duration,
}

/// The servers of this process that are serving, by listening address.
static LOCAL_SERVERS: RwLock<Vec<Arc<LocalServer>>> = RwLock::new(Vec::new());

/// Keeps a server reachable in-process until dropped.
pub(crate) struct LocalRegistration {
    address: SocketAddr,
}

/// Makes the server listening on `address` reachable in-process.
pub(crate) fn register_local(
    address: SocketAddr,
    service: LocalService,
    request_timeout: Duration,
) -> LocalRegistration {
    let mut servers = LOCAL_SERVERS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    servers.retain(|server| server.address != address);
    servers.push(Arc::new(LocalServer {
        address,
        service,
        request_timeout,
    }));
    LocalRegistration { address }
}

impl Drop for LocalRegistration {
    fn drop(&mut self) {
        let mut servers = LOCAL_SERVERS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        servers.retain(|server| server.address != self.address);
    }
}

/// The server of this process a client of `target` would reach over the network: the one
/// bound to that address, or one bound to every interface on its port when the target is
/// a loopback address.
fn local_server(target: SocketAddr) -> Option<Arc<LocalServer>> {
    if !IN_PROCESS_CALLS.load(Ordering::Relaxed) {
        return None;
    }
    let servers = LOCAL_SERVERS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    servers
        .iter()
        .find(|server| {
            server.address == target
                || (server.address.ip().is_unspecified()
                    && target.ip().is_loopback()
                    && server.address.port() == target.port())
        })
        .cloned()
}

/// The socket address a URI names, when its host is an IP address or `localhost`.
fn socket_address(uri: &http::Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let port = uri.port_u16()?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// A channel to one peer: over the network, or in-process when this process serves it.
#[derive(Clone)]
pub struct PeerChannel {
    target_opt: Option<SocketAddr>,
    network: Channel,
    /// Where the next call goes, decided when the channel is made ready.
    route: Route,
}

#[derive(Clone)]
enum Route {
    Undecided,
    Local(Arc<LocalServer>),
    Network,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<http::Request<Body>> for PeerChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if matches!(self.route, Route::Undecided) {
            self.route = match self.target_opt.and_then(local_server) {
                Some(server) => Route::Local(server),
                None => Route::Network,
            };
        }
        match self.route {
            Route::Local(_) => Poll::Ready(Ok(())),
            _ => self.network.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match std::mem::replace(&mut self.route, Route::Undecided) {
            Route::Local(server) => Box::pin(async move {
                let answer = server.service.clone().oneshot(request);
                match tokio::time::timeout(server.request_timeout, answer).await {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(never)) => match never {},
                    // What the network server answers when its request timeout fires.
                    Err(_) => Ok(tonic::Status::cancelled("Timeout expired").into_http()),
                }
            }),
            _ => {
                let answer = self.network.call(request);
                Box::pin(async move { answer.await.map_err(Into::into) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_service_uris() {
        let uri: http::Uri = "http://127.0.0.1:5051".parse().unwrap();
        assert_eq!(
            socket_address(&uri),
            Some("127.0.0.1:5051".parse().unwrap())
        );
        let uri: http::Uri = "http://localhost:80".parse().unwrap();
        assert_eq!(socket_address(&uri), Some("127.0.0.1:80".parse().unwrap()));
        let uri: http::Uri = "http://[::1]:9".parse().unwrap();
        assert_eq!(socket_address(&uri), Some("[::1]:9".parse().unwrap()));
        let uri: http::Uri = "http://inventory.kosha.svc:5051".parse().unwrap();
        assert_eq!(socket_address(&uri), None);
    }
}
