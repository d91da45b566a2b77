//! Storage: one connection pool over SQLite (the embedded default) or PostgreSQL.
//!
//! Services run the same SQL on both through sqlx's `Any` driver. The portable subset
//! every service keeps to:
//!
//! - Placeholders are `$1, $2, …` (SQLite reads `$N` as parameter N). SQLite finds a
//!   `$N` parameter by a linear search on every bind, so a statement with thousands of
//!   parameters (a multi-row INSERT) binds in quadratic time there: such statements are
//!   written with plain `?` on SQLite, which binds by position, and `$N` on PostgreSQL.
//! - Column types are `BIGINT` and `TEXT` (a flag is a `BIGINT` 0 or 1: the `Any` driver
//!   cannot read SQLite booleans back); write `BLOB` for bytes and
//!   `BIGSERIAL_PK` for a generated integer key: migrations rewrite both per backend.
//! - Instants are `BIGINT` microseconds since the Unix epoch, UTC, so no time zone of a
//!   process or a database can shift them.
//! - Upserts use `INSERT … ON CONFLICT (…) DO …`; results come back with `RETURNING`.
//! - Row locks are written through [`Db::for_update`] and [`Db::skip_locked`], which are
//!   empty on SQLite, where a write transaction already holds the one database lock.
//! - Every transaction that may write begins with [`Db::begin`]: on SQLite that is
//!   `BEGIN IMMEDIATE`, which takes the write lock up front, so concurrent writers queue on
//!   the busy timeout instead of failing with "database is locked" when a read turns into
//!   a write.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor as _, Transaction};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` — one file, one writer at a time.
    Sqlite,
    /// `postgres://…` — the production store.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if any.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// How long a pooled connection may sit idle and still be used without a ping first.
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most open connections.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before `UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for the write lock before giving up.
    pub sqlite_busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(30),
        }
    }
}

/// One schema change, applied once, in version order, in its own transaction.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Increasing version number.
    pub version: i64,
    /// Short name for the log.
    pub name: &'static str,
    /// Portable DDL (see the module docs for the two rewritten tokens).
    pub sql: &'static str,
}

/// A service's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// For connections outside the pool, such as one that listens for notifications.
    url: Arc<SecretString>,
}

impl Db {
    /// Connects to `url`. For SQLite the file (and its directory) is created when missing.
    pub async fn connect(url: &str, options: &DbOptions) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)
            .with_context(|| "database URL must start with `sqlite:` or `postgres://`")?;

        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let connect_options = AnyConnectOptions::from_str(&url).context("parse database URL")?;

        let busy_ms = options.sqlite_busy_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // A connection is pinged before use only when it sat idle for a while: one
            // used moments ago is alive, and pinging it would add a round trip to every
            // statement. A server restart or a dropped link still shows in the ping of
            // the next idle connection, which is then replaced; one that breaks within the
            // window fails its statement, which reports UNAVAILABLE for a retry.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < TRUSTED_IDLE {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; NORMAL sync is safe
                        // with WAL (a power cut may lose the last commits, never corrupt).
                        let pragmas = format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON;"
                        );
                        conn.execute(sqlx::raw_sql(&pragmas)).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .with_context(|| format!("connect to the {backend:?} database"))?;
        Ok(Self {
            pool,
            backend,
            url: Arc::new(SecretString::from(url)),
        })
    }

    /// The URL the pool connects to.
    pub fn url(&self) -> &SecretString {
        &self.url
    }

    /// The pool, for reads and single-statement writes.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that may write (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// ` FOR UPDATE` on PostgreSQL, empty on SQLite.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, empty on SQLite.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Whether the database answers; used by readiness.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the migrations not yet applied, each in its own transaction.
    ///
    /// Safe with several replicas starting at once: on PostgreSQL an advisory lock keyed
    /// by the service name serialises them; on SQLite `BEGIN IMMEDIATE` does. A replica
    /// that waited finds the versions applied and skips them.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> anyhow::Result<()> {
        debug_assert!(
            migrations
                .windows(2)
                .all(|pair| pair[0].version < pair[1].version)
        );

        let mut tx = self.begin().await?;
        self.lock_migrations(&mut tx, service).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
               version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .context("create schema_migrations")?;
        tx.commit().await?;

        for migration in migrations {
            let mut tx = self.begin().await?;
            self.lock_migrations(&mut tx, service).await?;
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if applied.is_some() {
                continue;
            }

            let sql = self.rewrite_ddl(migration.sql);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .with_context(|| {
                    format!(
                        "apply migration {} `{}` of {service}",
                        migration.version, migration.name
                    )
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(crate::time::now_micros())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                service,
                version = migration.version,
                name = migration.name,
                "migration applied"
            );
        }
        Ok(())
    }

    /// Serialises migrating replicas on PostgreSQL until `tx` ends.
    async fn lock_migrations(
        &self,
        tx: &mut Transaction<'static, Any>,
        service: &str,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("kosha-migrate-{service}"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    fn rewrite_ddl(&self, sql: &str) -> String {
        match self.backend {
            Backend::Sqlite => sql.replace("BIGSERIAL_PK", "INTEGER PRIMARY KEY AUTOINCREMENT"),
            Backend::Postgres => sql
                .replace(
                    "BIGSERIAL_PK",
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                )
                .replace("BLOB", "BYTEA"),
        }
    }
}

/// Adds `mode=rwc` so a missing file is created, and creates its directory.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let path_part = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path_part.split('?').next().unwrap_or_default();
    let parent_opt = std::path::Path::new(path).parent();
    if !path.is_empty()
        && path != ":memory:"
        && let Some(parent) = parent_opt
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("create database directory {}", parent.display()))?;
    }
    if url.contains("mode=") {
        return Ok(url.to_string());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}mode=rwc"))
}

/// Whether a database error is a unique-key violation (the same row was inserted twice).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db_error) => db_error.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_gets_create_mode_once() {
        let dir = std::env::temp_dir().join(format!("kosha-db-url-{}", std::process::id()));
        let url = format!("sqlite://{}/x.db", dir.display());
        let prepared = prepare_sqlite_url(&url).unwrap();
        assert!(prepared.ends_with("x.db?mode=rwc"));
        assert!(dir.is_dir());
        assert_eq!(prepare_sqlite_url(&prepared).unwrap(), prepared);
    }

    #[test]
    fn backend_is_read_from_the_scheme() {
        assert_eq!(Backend::from_url("sqlite://a.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db"), None);
    }
}
