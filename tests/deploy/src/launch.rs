//! Running planned Deployments as local processes on loopback ports.
//!
//! Each process gets exactly the environment its manifest gives it, with three rewrites a
//! laptop needs: the listen address becomes `127.0.0.1:<free port>`, every Service
//! address becomes the local port of the process behind that Service, and the database URL
//! file becomes a local file holding the URL of a local database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::plan::{LISTEN, ServicePlan};

/// Where cargo put this test's binaries, and so the service binaries built beside them:
/// the test executable is `<target>/<profile>/deps/<name>`.
pub fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the test executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("cannot find the target directory from {}", exe.display()))
}

/// The built binary `name`, or an error saying how to build it. Another crate's binary is
/// out of reach of `CARGO_BIN_EXE_*`, so it must be built before the test runs.
pub fn locate_binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = binary_dir()?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{name} is not built in {}: run `cargo build -p {name} --bin {name}` (or \
             `cargo build --workspace --bins`) before this test",
            dir.display()
        )
    }
}

/// A free loopback port. The listener is closed before the service binds it; the window
/// in which another process could take it is tiny, and a clash fails loudly.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The environment `plan` runs with locally: `ports` maps each Deployment to its local
/// port, and `database_url_file` is the local file holding the database URL.
pub fn local_env(
    plan: &ServicePlan,
    ports: &BTreeMap<String, u16>,
    database_url_file: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = plan.env.clone();
    let own_port = ports
        .get(&plan.deployment)
        .ok_or_else(|| anyhow!("no local port for {}", plan.deployment))?;
    env.insert(LISTEN.to_string(), format!("127.0.0.1:{own_port}"));
    for endpoint in &plan.endpoints {
        let port = ports
            .get(&endpoint.deployment)
            .ok_or_else(|| anyhow!("no local port for {}", endpoint.deployment))?;
        let value = env
            .get_mut(&endpoint.setting)
            .ok_or_else(|| anyhow!("{} unset", endpoint.setting))?;
        *value = value.replace(&endpoint.text, &format!("127.0.0.1:{port}"));
    }
    env.insert(
        plan.database_url.setting.clone(),
        database_url_file.display().to_string(),
    );
    Ok(env)
}

/// One service process.
pub struct Process {
    /// The Deployment it stands for.
    pub deployment: String,
    /// Its local port.
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `binary` with `args` and exactly `env` (nothing inherited), logging to `log`.
    pub fn start(
        deployment: &str,
        binary: &Path,
        args: &[String],
        env: &BTreeMap<String, String>,
        port: u16,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Self {
            deployment: deployment.to_string(),
            port,
            log,
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}) while starting; its log ends:\n{}",
                self.deployment,
                self.log_tail()
            ),
        }
    }

    /// Waits until health reports `service` SERVING on the process's port, as the
    /// kubelet's gRPC probe asks. A name the server does not know fails at once.
    pub async fn wait_serving(&mut self, service: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let uri = format!("http://127.0.0.1:{}", self.port);
        let mut last = String::from("not yet connected");
        while Instant::now() < deadline {
            self.check_alive()?;
            match health_status(&uri, service).await {
                Ok(ServingStatus::Serving) => return Ok(()),
                Ok(status) => last = format!("status {status:?}"),
                Err(status) if status.code() == tonic::Code::NotFound => bail!(
                    "{}: the probe's service name `{service}` is unknown to the server",
                    self.deployment
                ),
                Err(status) => last = status.message().to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{}: `{service}` not SERVING within {timeout:?} ({last}); its log ends:\n{}",
            self.deployment,
            self.log_tail()
        )
    }

    /// Peak resident memory so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Sends SIGTERM, as the kubelet does when the pod is deleted.
    pub fn send_sigterm(&self) -> anyhow::Result<()> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("run kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        Ok(())
    }

    /// Waits for the process to exit until `deadline`, when the kubelet would kill it.
    pub async fn wait_exit(&mut self, deadline: Instant) -> anyhow::Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} still running at the end of its grace period; the kubelet would kill it",
                    self.deployment
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `grpc.health.v1.Health/Check` call.
pub async fn health_status(uri: &str, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(uri.to_string())
        .map_err(|error| tonic::Status::invalid_argument(error.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
}
