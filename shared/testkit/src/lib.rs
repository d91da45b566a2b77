//! Test and benchmark support: fresh databases on SQLite and PostgreSQL, and servers
//! started in-process on `127.0.0.1:0`.
//!
//! PostgreSQL comes from `KOSHA_TEST_POSTGRES_URL` when set (CI starts one cluster and
//! exports it); otherwise one throwaway cluster is started per test process from the
//! installed binaries and removed when the process exits. Where neither is possible, tests
//! on PostgreSQL print a notice and skip, except under `CI=true`, where they fail: CI must
//! never pass by skipping. `KOSHA_TEST_STORES` narrows the stores on purpose (see
//! [`store_enabled`]).

pub mod postgres;

use std::net::SocketAddr;

use kosha_runtime::server::{Server, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use postgres::PgCluster;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A SQLite file in a fresh temporary directory.
    Sqlite,
    /// A fresh database in the test cluster.
    Postgres,
}

/// A database for one test, removed with it (SQLite) or with the cluster (PostgreSQL).
#[derive(Debug)]
pub struct TestDatabase {
    /// Which store this is.
    pub store: Store,
    /// URL to connect with.
    pub url: String,
    dir: tempfile::TempDir,
}

impl TestDatabase {
    /// A fresh database, or `None` (after a printed notice) when PostgreSQL is not
    /// available outside CI.
    pub async fn create(store: Store) -> Option<Self> {
        if !store_enabled(store) {
            eprintln!("notice: {store:?} tests not run: KOSHA_TEST_STORES leaves {store:?} out");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("kosha-test-")
            .tempdir()
            .expect("temp dir");
        let url = match store {
            Store::Sqlite => format!("sqlite://{}/test.db", dir.path().display()),
            Store::Postgres => postgres::fresh_database().await?,
        };
        Some(Self { store, url, dir })
    }

    /// Another database of the same store, e.g. for a second service in one test.
    pub async fn sibling(&self, name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kosha-test-")
            .tempdir()
            .expect("temp dir");
        let url = match self.store {
            Store::Sqlite => format!("sqlite://{}/{name}.db", self.dir.path().display()),
            Store::Postgres => postgres::fresh_database()
                .await
                .expect("cluster already up"),
        };
        Self {
            store: self.store,
            url,
            dir,
        }
    }

    /// A directory that lives as long as the database, for files a test writes.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Whether tests on `store` run. `KOSHA_TEST_STORES` (e.g. `sqlite` or `sqlite,postgres`)
/// narrows them on purpose, as CI does to run the PostgreSQL tests once against its own
/// cluster; unset, every store runs.
pub fn store_enabled(store: Store) -> bool {
    let Ok(stores) = std::env::var("KOSHA_TEST_STORES") else {
        return true;
    };
    let name = match store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    };
    stores
        .split(',')
        .any(|entry| entry.trim().eq_ignore_ascii_case(name))
}

/// Server options for tests: short shutdown delay, generous limits.
pub fn test_server_options() -> ServerOptions {
    ServerOptions {
        shutdown_delay: std::time::Duration::from_millis(50),
        drain_deadline: std::time::Duration::from_secs(10),
        ..ServerOptions::default()
    }
}

/// A server running in this process on `127.0.0.1:<free port>`.
pub struct TestServer {
    /// The bound address.
    pub address: SocketAddr,
    stop_tx_opt: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Binds a free loopback port and serves `server` there until stopped.
    pub async fn start(server: Server) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stop_rx.await;
        }));
        let started = Self {
            address,
            stop_tx_opt: Some(stop_tx),
            task,
        };
        started.wait_until_serving("").await;
        started
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn uri(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `127.0.0.1:PORT`, as a `KOSHA_<SERVICE>_ADDR` value.
    pub fn address_string(&self) -> String {
        self.address.to_string()
    }

    /// A plain channel to the server.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.uri())
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to test server")
    }

    /// Waits until health reports `service` (empty: the whole server) SERVING.
    pub async fn wait_until_serving(&self, service: &str) {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(self.uri())
                .unwrap()
                .connect()
                .await
            {
                let request = HealthCheckRequest {
                    service: service.to_string(),
                };
                if let Ok(response) = HealthClient::new(channel).check(request).await
                    && response.into_inner().status == ServingStatus::Serving as i32
                {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server never became SERVING"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Starts a graceful shutdown and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop_tx) = self.stop_tx_opt.take() {
            let _ = stop_tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Starts a graceful shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop_tx) = self.stop_tx_opt.take() {
            let _ = stop_tx.send(());
        }
    }

    /// Waits for a shutdown begun with [`TestServer::begin_stop`].
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Whether tests run under CI, where a missing tool fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Prints that a test is skipped for lack of `tool`, or panics under CI.
pub fn skip_or_fail(tool: &str, why: &str) {
    if in_ci() {
        panic!("{tool} is required under CI=true but {why}");
    }
    eprintln!("notice: skipping: {tool} is not available ({why})");
}

/// Declares, for each `async fn NAME(db: TestDatabase)`, a module `NAME` with two tests,
/// `sqlite` and `postgres`, that run it on a fresh database of each store.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::TestDatabase::create($crate::Store::Sqlite).await.unwrap();
                    super::$name(db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::TestDatabase::create($crate::Store::Postgres).await {
                        super::$name(db).await;
                    }
                }
            }
        )*
    };
}

/// The team's real input data: `KOSHA_SHARED_DATA` when set, else the `data` folder of the
/// team's `shared` directory, which developers and CI keep next to the checkout.
pub fn shared_data_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("KOSHA_SHARED_DATA") {
        return dir.into();
    }
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // From `shared/testkit` up to the checkout, then beside it.
    manifest_dir
        .join("..")
        .join("..")
        .join("..")
        .join("shared")
        .join("data")
}
