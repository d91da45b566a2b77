//! Settings every service shares, from flags and `KOSHA_*` environment variables.
//!
//! Each service's `Config` flattens [`CommonArgs`] and adds its own settings. Values that
//! need more than clap's parsing (addresses, URLs, secret files) are checked in
//! [`CommonArgs::resolve`], which reports every bad setting in one run, so a broken
//! deployment is fixed in one edit rather than one restart per mistake.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::db::{Backend, DbOptions};
use crate::server::ServerOptions;
use crate::telemetry::LogFormat;

/// Exit code for a configuration error (`EX_USAGE` from sysexits).
pub const EXIT_USAGE: i32 = 64;

/// Default address every service listens on; the all-in-one runner serves all five here.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Settings shared by every service binary.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "KOSHA_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Database URL: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Defaults to a
    /// SQLite file named after the service under the data directory.
    #[arg(long, env = "KOSHA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// File holding the database URL (how Kubernetes mounts secrets); wins over the URL.
    #[arg(long, env = "KOSHA_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Directory for SQLite files when no database URL is given.
    #[arg(long, env = "KOSHA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Most database connections per service.
    #[arg(long, env = "KOSHA_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Log format: `text` or `json`.
    #[arg(long, env = "KOSHA_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Seconds a call may run before it fails with `DEADLINE_EXCEEDED`-like cancellation.
    #[arg(long, env = "KOSHA_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    pub request_timeout_secs: u64,

    /// Most calls served at once by one server; the rest wait.
    // Tune per deployment: roughly the database pool size times a few.
    #[arg(long, env = "KOSHA_CONCURRENCY_LIMIT", default_value_t = 256)]
    pub concurrency_limit: usize,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "KOSHA_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Seconds to keep answering in-flight calls after SIGTERM before exiting anyway. Keep
    /// it below the pod's termination grace period.
    #[arg(long, env = "KOSHA_DRAIN_DEADLINE_SECS", default_value_t = 20)]
    pub drain_deadline_secs: u64,

    /// Milliseconds between reporting NOT_SERVING and closing the listener on shutdown, so load
    /// balancers stop routing new calls here first.
    #[arg(long, env = "KOSHA_SHUTDOWN_DELAY_MS", default_value_t = 500)]
    pub shutdown_delay_ms: u64,
}

/// [`CommonArgs`] after checking.
#[derive(Debug, Clone)]
pub struct Common {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Database URL, kept secret (it may hold a password).
    pub database_url: SecretString,
    /// Pool settings.
    pub db: DbOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Server limits and shutdown timing.
    pub server: ServerOptions,
}

impl CommonArgs {
    /// Checks every setting; `service` names the default SQLite file. Returns all problems.
    pub fn resolve(&self, service: &str) -> Result<Common, Vec<String>> {
        let mut problems = Vec::new();

        let listen = match self.listen.parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(error) => {
                problems.push(format!("KOSHA_LISTEN `{}`: {error}", self.listen));
                None
            }
        };

        let database_url = match self.database_url_source(service) {
            Ok(url) if Backend::from_url(url.expose_secret()).is_some() => Some(url),
            Ok(_) => {
                problems.push(
                    "KOSHA_DATABASE_URL must start with `sqlite:` or `postgres://`".to_string(),
                );
                None
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        };

        let log_format = match self.log_format.parse::<LogFormat>() {
            Ok(format) => Some(format),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };

        if self.db_max_connections == 0 {
            problems.push("KOSHA_DB_MAX_CONNECTIONS must be at least 1".to_string());
        }
        if self.concurrency_limit == 0 {
            problems.push("KOSHA_CONCURRENCY_LIMIT must be at least 1".to_string());
        }
        if self.request_timeout_secs == 0 {
            problems.push("KOSHA_REQUEST_TIMEOUT_SECS must be at least 1".to_string());
        }
        if self.max_message_bytes < 64 * 1024 {
            problems.push("KOSHA_MAX_MESSAGE_BYTES must be at least 65536".to_string());
        }

        match (listen, database_url, log_format) {
            (Some(listen), Some(database_url), Some(log_format)) if problems.is_empty() => {
                Ok(Common {
                    listen,
                    database_url,
                    db: DbOptions {
                        max_connections: self.db_max_connections,
                        ..DbOptions::default()
                    },
                    log_format,
                    server: ServerOptions {
                        request_timeout: Duration::from_secs(self.request_timeout_secs),
                        concurrency_limit: self.concurrency_limit,
                        max_message_bytes: self.max_message_bytes,
                        drain_deadline: Duration::from_secs(self.drain_deadline_secs),
                        shutdown_delay: Duration::from_millis(self.shutdown_delay_ms),
                    },
                })
            }
            _ => Err(problems),
        }
    }

    fn database_url_source(&self, service: &str) -> Result<SecretString, String> {
        if let Some(path) = &self.database_url_file {
            return read_secret_file(path, "KOSHA_DATABASE_URL_FILE");
        }
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        Ok(sqlite_url_in(&self.data_dir, service).into())
    }
}

/// The SQLite URL of `service`'s file under `data_dir`.
pub fn sqlite_url_in(data_dir: &std::path::Path, service: &str) -> String {
    format!("sqlite://{}/{service}.db", data_dir.display())
}

/// Reads a secret from a mounted file, trimming the trailing newline editors add.
pub fn read_secret_file(path: &std::path::Path, setting: &str) -> Result<SecretString, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string().into()),
        Ok(_) => Err(format!("{setting} `{}` is empty", path.display())),
        Err(error) => Err(format!("{setting} `{}`: {error}", path.display())),
    }
}

/// Every problem on stderr, then exit with [`EXIT_USAGE`].
pub fn exit_with_problems(problems: &[String]) -> ! {
    eprintln!("kosha: {} configuration problem(s):", problems.len());
    for problem in problems {
        eprintln!("  - {problem}");
    }
    std::process::exit(EXIT_USAGE);
}

/// The address of another service from `KOSHA_<SERVICE>_ADDR`, as a URI tonic can dial.
/// A bare `host:port` gets `http://` in front.
pub fn service_uri(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestConfig {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let config = TestConfig::parse_from([
            "test",
            "--listen",
            "nowhere",
            "--database-url",
            "mysql://x",
            "--log-format",
            "yaml",
            "--db-max-connections",
            "0",
        ]);

        let problems = config.common.resolve("catalog").unwrap_err();

        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("KOSHA_LISTEN")));
        assert!(problems.iter().any(|p| p.contains("KOSHA_DATABASE_URL")));
        assert!(problems.iter().any(|p| p.contains("KOSHA_LOG_FORMAT")));
    }

    #[test]
    fn database_url_file_wins_and_is_trimmed() {
        let dir = tempfile_dir();
        let path = dir.join("url");
        std::fs::write(&path, "postgres://u:secret@h/db\n").unwrap();
        let config = TestConfig::parse_from([
            "test",
            "--database-url-file",
            path.to_str().unwrap(),
            "--database-url",
            "sqlite://ignored.db",
        ]);

        let common = config.common.resolve("catalog").unwrap();

        assert_eq!(
            common.database_url.expose_secret(),
            "postgres://u:secret@h/db"
        );
        assert!(
            !format!("{common:?}").contains("secret@"),
            "secrets never reach Debug"
        );
    }

    #[test]
    fn defaults_give_a_sqlite_file_per_service() {
        let config = TestConfig::parse_from(["test", "--data-dir", "/tmp/k"]);
        let common = config.common.resolve("inventory").unwrap();
        assert_eq!(
            common.database_url.expose_secret(),
            "sqlite:///tmp/k/inventory.db"
        );
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kosha-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
