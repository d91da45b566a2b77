//! The gRPC server every service runs: its own services plus health and reflection, with
//! request timeout, a concurrency limit, message size limits and graceful shutdown.
//!
//! Health follows the gRPC health protocol. Each service name (readiness) starts
//! `NOT_SERVING`, turns `SERVING` once the listener is up and every database answers, and
//! goes back to `NOT_SERVING` while a database is unreachable. The empty name (the process
//! itself: liveness) turns `SERVING` once the listener is up and stays so through database
//! outages, so an outage takes pods out of rotation without restarting them. On shutdown
//! every name reports `NOT_SERVING` before the listener closes.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::db::Db;
use crate::telemetry::GrpcTraceLayer;

/// How often readiness re-checks the databases.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// Server limits and shutdown timing.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// A call running longer than this is cancelled.
    pub request_timeout: Duration,
    /// Most calls served at once; the rest wait for a slot.
    pub concurrency_limit: usize,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Longest wait for in-flight calls after shutdown begins.
    pub drain_deadline: Duration,
    /// Pause between reporting `NOT_SERVING` and closing the listener.
    pub shutdown_delay: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(120),
            concurrency_limit: 256,
            max_message_bytes: 16 * 1024 * 1024,
            drain_deadline: Duration::from_secs(20),
            shutdown_delay: Duration::from_millis(500),
        }
    }
}

/// Builds and runs one gRPC server.
pub struct Server {
    options: ServerOptions,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    databases: Vec<Db>,
    health: HealthReporter,
    health_service:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

impl Server {
    /// An empty server with these limits.
    pub fn new(options: ServerOptions) -> Self {
        let health = HealthReporter::new();
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
        );
        Self {
            options,
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            databases: Vec::new(),
            health,
            health_service,
        }
    }

    /// The limits this server applies; services read the message size from here.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// A handle to report health, e.g. for tests.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Adds a generated gRPC service; its name gets its own health status.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Adds a service without a health status of its own (an internal callback contract).
    pub fn add_unlisted_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self
    }

    /// Makes readiness depend on this database answering.
    pub fn require_database(&mut self, db: Db) -> &mut Self {
        self.databases.push(db);
        self
    }

    /// Serves on `listener` until `shutdown` resolves, then drains and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self {
            options,
            routes,
            service_names,
            databases,
            health,
            health_service,
        } = self;
        let local_address = listener.local_addr()?;
        set_health(&health, &service_names, ServingStatus::NotServing).await;

        // Reflection in both versions: grpcurl 1.8 still asks v1alpha.
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kosha_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kosha_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        // One limit for network and in-process calls alike.
        let concurrency_limit =
            tower::limit::GlobalConcurrencyLimitLayer::new(options.concurrency_limit);
        let layers = tower::ServiceBuilder::new()
            .layer(GrpcTraceLayer)
            .layer(concurrency_limit.clone());
        let mut routes = routes;
        routes.add_service(health_service);
        routes.add_service(reflection_v1);
        routes.add_service(reflection_v1alpha);
        let routes = routes.routes();
        let in_process = tower::ServiceBuilder::new()
            .layer(GrpcTraceLayer)
            .layer(concurrency_limit)
            .service(routes.clone());
        let router = tonic::transport::Server::builder()
            .timeout(options.request_timeout)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(layers)
            .add_routes(routes);

        // Serve until told to stop; the stop signal is ours, sent after the health flip.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // gRPC sends small frames and waits for the answer: Nagle's algorithm would hold
        // each one back for the peer's delayed ACK (tens of milliseconds), so it is off on
        // every accepted connection, as it is on our clients.
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            accepted.inspect(|stream| {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
            })
        });
        let mut serving = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        }));
        // Clients in this process that name this address reach the routes directly.
        let in_process_registration = crate::client::register_local(
            local_address,
            tower::util::BoxCloneSyncService::new(in_process),
            options.request_timeout,
        );
        tracing::info!(address = %local_address, services = ?service_names, "serving gRPC");

        health.set_service_status("", ServingStatus::Serving).await;
        let readiness = tokio::spawn(track_readiness(
            health.clone(),
            service_names.clone(),
            databases,
        ));

        // Run until shutdown is asked for, or the server fails on its own.
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            result = &mut serving => {
                readiness.abort();
                return match result {
                    Ok(outcome) => outcome.map_err(Into::into),
                    Err(join_error) => Err(join_error.into()),
                };
            }
        }

        // Drain: NOT_SERVING first, then close the listener, then wait for in-flight calls.
        readiness.abort();
        tracing::info!(address = %local_address, "shutting down: reporting NOT_SERVING");
        set_health(&health, &service_names, ServingStatus::NotServing).await;
        tokio::time::sleep(options.shutdown_delay).await;
        drop(in_process_registration);
        let _ = stop_tx.send(());
        match tokio::time::timeout(options.drain_deadline, &mut serving).await {
            Ok(Ok(outcome)) => outcome?,
            Ok(Err(join_error)) => return Err(join_error.into()),
            Err(_) => {
                tracing::warn!(
                    deadline_secs = options.drain_deadline.as_secs(),
                    "drain deadline reached with calls still in flight; exiting anyway"
                );
                serving.abort();
            }
        }
        tracing::info!(address = %local_address, "stopped");
        Ok(())
    }
}

async fn set_health(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Flips health with the databases' reachability, logging only the changes.
async fn track_readiness(health: HealthReporter, names: Vec<&'static str>, databases: Vec<Db>) {
    let mut was_ready_opt: Option<bool> = None;
    loop {
        let mut ready = true;
        for db in &databases {
            ready &= db.ping().await;
        }
        if was_ready_opt != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in &names {
                health.set_service_status(*name, status).await;
            }
            if ready {
                tracing::info!("ready: reporting SERVING");
            } else {
                tracing::warn!("a database does not answer: reporting NOT_SERVING");
            }
            was_ready_opt = Some(ready);
        }
        tokio::time::sleep(READINESS_INTERVAL).await;
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
