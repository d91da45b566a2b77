//! The five services as separate processes, each with its own database, on loopback.
//!
//! The services name each other at start (`KOSHA_<SERVICE>_ADDR`), and the names go both
//! ways (the scheduler calls back every service that schedules jobs with it), so each
//! process is given a free loopback port found beforehand: a port is reserved by binding
//! `127.0.0.1:0`, then released just before the process binds it. The window in which
//! something else could take the port is tiny, and a clash fails loudly at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kosha::replay::Endpoints;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The services, in the order they are started: the scheduler first, since the others
/// register jobs with it as they start.
pub const SERVICES: [&str; 5] = [
    "scheduler",
    "catalog",
    "inventory",
    "order",
    "purchase-order",
];

/// How long a service may take to report SERVING.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where cargo put the test executable's siblings: `<target>/<profile>`.
pub fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the test executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .with_context(|| format!("no target directory above {}", exe.display()))
}

/// The binary of `service` (`kosha-<service>`), or an error saying how to build it: a
/// test cannot ask cargo for another package's binaries, so they are built beforehand.
pub fn service_binary(service: &str) -> anyhow::Result<PathBuf> {
    let name = format!("kosha-{service}");
    let path = binary_dir()?.join(&name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the service binaries first with `cargo build -p \
             kosha-catalog -p kosha-inventory -p kosha-scheduler -p kosha-order -p \
             kosha-purchase-order` (or `cargo build --workspace --bins`)",
            path.display()
        );
    }
    Ok(path)
}

/// A free loopback port (see the module comment).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One running service.
struct ServiceProcess {
    service: &'static str,
    child: Child,
    address: String,
    log: PathBuf,
}

impl ServiceProcess {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let uri = format!("http://{}", self.address);
        loop {
            if let Some(exit) = self.child.try_wait()? {
                bail!(
                    "kosha-{} exited with {exit} at start:\n{}",
                    self.service,
                    self.log_tail()
                );
            }
            let channel = tonic::transport::Endpoint::from_shared(uri.clone())?
                .connect()
                .await;
            if let Ok(channel) = channel {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(response) = HealthClient::new(channel).check(request).await
                    && response.into_inner().status == ServingStatus::Serving as i32
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "kosha-{} did not become SERVING:\n{}",
                    self.service,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The five services running as separate processes.
pub struct SeparateServices {
    processes: Vec<ServiceProcess>,
    /// Where each service listens.
    pub endpoints: Endpoints,
    _logs: tempfile::TempDir,
}

impl SeparateServices {
    /// Starts every service with its database from `database_urls` (by service name), the
    /// order service's AMAZON connector on `connector_dir`, and waits until all serve.
    pub async fn start(
        database_urls: &BTreeMap<&str, String>,
        connector_dir: &Path,
    ) -> anyhow::Result<Self> {
        let binaries: Vec<PathBuf> = SERVICES
            .iter()
            .map(|service| service_binary(service))
            .collect::<anyhow::Result<_>>()?;
        let mut addresses = BTreeMap::new();
        for service in SERVICES {
            addresses.insert(service, format!("127.0.0.1:{}", free_port()?));
        }
        let address_env: Vec<(String, String)> = SERVICES
            .iter()
            .map(|service| {
                let variable = format!("KOSHA_{}_ADDR", service.replace('-', "_").to_uppercase());
                (variable, addresses[service].clone())
            })
            .collect();
        let logs = tempfile::Builder::new()
            .prefix("kosha-e2e-logs-")
            .tempdir()?;

        let mut started = Self {
            processes: Vec::new(),
            endpoints: Endpoints {
                catalog: addresses["catalog"].clone(),
                inventory: addresses["inventory"].clone(),
                order: addresses["order"].clone(),
                purchase_order: addresses["purchase-order"].clone(),
                scheduler: addresses["scheduler"].clone(),
            },
            _logs: logs,
        };
        for (service, binary) in SERVICES.iter().zip(&binaries) {
            let url = database_urls
                .get(service)
                .with_context(|| format!("no database for {service}"))?;
            let log = started._logs.path().join(format!("{service}.log"));
            let log_file = std::fs::File::create(&log)?;
            let mut command = Command::new(binary);
            command
                .env("KOSHA_LISTEN", &addresses[service])
                .env("KOSHA_DATABASE_URL", url)
                .env("KOSHA_SHUTDOWN_DELAY_MS", "50")
                .env(
                    "KOSHA_ORDER_CONNECTORS",
                    format!("AMAZON=dir:{}", connector_dir.display()),
                )
                .env("KOSHA_ORDER_FOLLOW_INTERVAL_SECS", "1")
                .env("RUST_LOG", "warn")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .envs(address_env.iter().map(|(name, value)| (name, value)))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file);
            let child = command
                .spawn()
                .with_context(|| format!("start {}", binary.display()))?;
            let mut process = ServiceProcess {
                service,
                child,
                address: addresses[service].clone(),
                log,
            };
            let serving = process.wait_serving().await;
            started.processes.push(process);
            serving?;
        }
        Ok(started)
    }

    /// The peak resident memory of each process so far (`VmHWM`), in KiB.
    pub fn peak_memory_kib(&self) -> Vec<(&'static str, Option<u64>)> {
        self.processes
            .iter()
            .map(|process| {
                let pid = process.child.id().to_string();
                (
                    process.service,
                    kosha::replay::progress::peak_memory_kib_of(&pid),
                )
            })
            .collect()
    }

    /// The last lines each service logged, for a failing test's output.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|process| format!("--- kosha-{} ---\n{}", process.service, process.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for SeparateServices {
    fn drop(&mut self) {
        // The services drain on SIGTERM; a test is done with them, so they are simply
        // stopped, the last started first.
        for process in self.processes.iter_mut().rev() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}
