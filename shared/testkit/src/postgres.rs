//! A throwaway PostgreSQL cluster for tests and benchmarks.
//!
//! The cluster is made with the installed binaries (found through `pg_config --bindir`, or
//! Debian's `/usr/lib/postgresql/<version>/bin`), in a temporary directory, listening only
//! on a Unix socket in that directory under a free port number. As root the binaries run
//! as the `postgres` user, since `initdb` refuses root. A watchdog process stops the
//! cluster and removes the directory when the process that started it exits, since the
//! test harness runs no destructors at exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection as _;

/// Where the binaries are, if PostgreSQL is installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|dir| dir.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    /// The cluster's directory (data, socket, log).
    pub dir: PathBuf,
    /// Port number (the socket is `dir/.s.PGSQL.<port>`).
    pub port: u16,
    /// Binaries used.
    pub bin_dir: PathBuf,
}

impl PgCluster {
    /// Makes and starts a cluster that is removed when this process exits.
    pub fn start() -> Result<Self, String> {
        let bin_dir =
            bin_dir().ok_or("no PostgreSQL binaries (pg_config or /usr/lib/postgresql)")?;
        let dir =
            std::env::temp_dir().join(format!("kosha-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir))?;
        }
        let port = free_port()?;
        let data = dir.join("data");

        let initdb = format!(
            "{} -D {} -U postgres --auth=trust -E UTF8 --no-sync >{}/initdb.log 2>&1",
            bin_dir.join("initdb").display(),
            data.display(),
            dir.display()
        );
        run(&mut shell(&initdb, as_root))?;
        // Extra server settings, separated by `;`, for profiling a benchmark's cluster (say,
        // loading pg_stat_statements); the file is the cluster's own, so none leak out.
        if let Ok(settings) = std::env::var("KOSHA_TEST_PG_SETTINGS") {
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf)
                .map_err(|e| format!("read {}: {e}", conf.display()))?;
            text.push('\n');
            text.push_str(&settings.replace(';', "\n"));
            text.push('\n');
            std::fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;
        }
        let start = format!(
            "{} -D {} -l {}/server.log -w -o \"-p {port} -k {} -c listen_addresses='' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300 -c shared_buffers=128MB\" start",
            bin_dir.join("pg_ctl").display(),
            data.display(),
            dir.display(),
            dir.display()
        );
        run(&mut shell(&start, as_root))?;

        // The watchdog: stop and remove the cluster once this process is gone.
        let stop = format!(
            "{} -D {} -m immediate stop >/dev/null 2>&1",
            bin_dir.join("pg_ctl").display(),
            data.display()
        );
        let stop = if as_root {
            format!("runuser -u postgres -- sh -c '{stop}'")
        } else {
            stop
        };
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("start watchdog: {e}"))?;

        Ok(Self { dir, port, bin_dir })
    }

    /// URL of database `name` as the `postgres` superuser over the socket.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }
}

fn shell(script: &str, as_root: bool) -> Command {
    let mut command = if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", "sh", "-c", script]);
        command
    } else {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    };
    command.stdin(std::process::Stdio::null());
    command
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The admin URL of the test cluster: `KOSHA_TEST_POSTGRES_URL`, or a cluster this
/// process started. `None` when there is none (and not under CI).
fn admin_url() -> Option<String> {
    static ADMIN_URL: OnceLock<Result<String, String>> = OnceLock::new();
    let result = ADMIN_URL.get_or_init(|| {
        if let Ok(url) = std::env::var("KOSHA_TEST_POSTGRES_URL")
            && !url.is_empty()
        {
            return Ok(url);
        }
        // Keep the cluster's handle alive for the whole process.
        static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
        let cluster = PgCluster::start()?;
        let url = cluster.url("postgres");
        let _ = CLUSTER.set(cluster);
        Ok(url)
    });
    match result {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            crate::skip_or_fail("PostgreSQL", why);
            None
        }
    }
}

/// Creates a fresh database in the test cluster and returns its URL.
pub async fn fresh_database() -> Option<String> {
    let admin = admin_url()?;
    let name = format!("kosha_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|error| panic!("connect to the test cluster at {admin}: {error}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .expect("create test database");
    let _ = connection.close().await;
    Some(with_database(&admin, &name))
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Whether a path looks like a cluster directory (for tools that reuse one).
pub fn is_cluster_dir(path: &Path) -> bool {
    path.join("data").join("PG_VERSION").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_swapped_keeping_the_query() {
        assert_eq!(
            with_database(
                "postgres://postgres@localhost/postgres?host=/tmp/x&port=5",
                "t1"
            ),
            "postgres://postgres@localhost/t1?host=/tmp/x&port=5"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432", "t2"),
            "postgres://u:p@h:5432/t2"
        );
    }
}
