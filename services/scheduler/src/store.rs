//! Storage of jobs and recurring jobs, on SQLite or PostgreSQL.
//!
//! Two tables. `recurring_jobs` holds one row per (owner, kind) with its schedule and the
//! due time of its next run. `jobs` holds one-shot jobs and the runs of recurring jobs
//! alike: a run is a job row pointing at its recurring job. A partial unique index lets a
//! recurring job have at most one open (pending or running) run, so two runs of it can
//! never overlap, whichever replica tries to create the next one and however slow the
//! current one is: the next run is created only once the current one has finished.
//!
//! Correctness across replicas comes from the database alone: claims are conditional
//! updates (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the one write lock taken by
//! `BEGIN IMMEDIATE`), and every change to a running job is conditional on the lease
//! token its runner holds, so a runner whose lease expired cannot overwrite the work of
//! the replica that took the job over.

mod execution;
mod jobs;
mod recurring;

use std::sync::Arc;

use kosha_runtime::db::{Backend, Migration};
use kosha_runtime::{Db, Error};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::domain::{Job, JobState, RecurringJob};

pub use execution::{AttemptEnd, ExpiredLease};
pub use jobs::{JobFilter, JobPageKey};
pub use recurring::RecurringPageKey;

/// The scheduler's schema, applied at start.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "jobs and recurring jobs",
    sql: "
CREATE TABLE recurring_jobs (
    recurring_job_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    interval_micros BIGINT NOT NULL,
    cron TEXT NOT NULL,
    next_due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (owner, kind)
);

CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    due_at BIGINT NOT NULL,
    first_due_at BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_expires_at BIGINT,
    traceparent TEXT NOT NULL DEFAULT '',
    recurring_job_id TEXT REFERENCES recurring_jobs (recurring_job_id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);

-- Claiming: the due pending jobs of one owner, oldest first.
CREATE INDEX jobs_claim ON jobs (owner, state, due_at);
-- Reclaiming: running jobs whose lease has expired.
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at);
-- Listing by due time.
CREATE INDEX jobs_by_due ON jobs (due_at, job_id);
-- Runs of a recurring job, by occurrence.
CREATE INDEX jobs_runs ON jobs (recurring_job_id, first_due_at);
-- At most one open run per recurring job: runs never overlap.
CREATE UNIQUE INDEX jobs_one_open_run ON jobs (recurring_job_id)
    WHERE state = 'PENDING' OR state = 'RUNNING';
",
}];

/// Columns of a job, in the order [`job_from_row`] reads them by name.
const JOB_COLUMNS: &str = "job_id, owner, kind, payload, due_at, first_due_at, idempotency_key, \
     attempts, max_attempts, last_error, state, cancel_requested, traceparent, recurring_job_id, \
     created_at, updated_at, finished_at";

/// Columns of a recurring job.
const RECURRING_COLUMNS: &str = "recurring_job_id, owner, kind, payload, interval_micros, cron, \
     next_due_at, created_at, updated_at";

/// The scheduler's tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// On SQLite, queues this process's writers before they ask for the database lock.
    write_gate_opt: Option<Arc<Mutex<()>>>,
}

/// A turn at writing, held until the write commits (nothing on PostgreSQL).
pub(crate) type WriteTurn = Option<OwnedMutexGuard<()>>;

impl Store {
    /// The store over `db` (migrated by the caller).
    pub fn new(db: Db) -> Self {
        let write_gate_opt = (db.backend() == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Self { db, write_gate_opt }
    }

    /// Waits for this process's turn to write.
    ///
    /// SQLite has one writer at a time; a connection that finds the lock taken sleeps in
    /// growing steps (up to 100 ms) before it looks again, so a dozen attempts finishing
    /// together would mostly sleep. Queueing them here first, in order, leaves the lock
    /// to one of them at a time. Correctness does not depend on it: other processes on
    /// the same file still meet at the database lock.
    pub(crate) async fn write_turn(&self) -> WriteTurn {
        match &self.write_gate_opt {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Begins a write transaction in this process's turn; keep the turn until commit.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<(WriteTurn, sqlx::Transaction<'static, sqlx::Any>), Error> {
        let turn = self.write_turn().await;
        let tx = self.db.begin().await?;
        Ok((turn, tx))
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// A fresh id: a version 7 UUID, so ids sort roughly by creation.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn job_from_row(row: &AnyRow) -> Result<Job, Error> {
    let state_text: String = row.try_get("state")?;
    let state = JobState::parse(&state_text)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored job state `{state_text}`")))?;
    let attempts: i64 = row.try_get("attempts")?;
    let max_attempts: i64 = row.try_get("max_attempts")?;
    let cancel_requested: i64 = row.try_get("cancel_requested")?;
    Ok(Job {
        job_id: row.try_get("job_id")?,
        owner: row.try_get("owner")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        due_at: row.try_get("due_at")?,
        first_due_at: row.try_get("first_due_at")?,
        idempotency_key_opt: row.try_get("idempotency_key")?,
        attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
        max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
        last_error: row.try_get("last_error")?,
        state,
        cancel_requested: cancel_requested != 0,
        traceparent: row.try_get("traceparent")?,
        recurring_job_id_opt: row.try_get("recurring_job_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at_opt: row.try_get("finished_at")?,
    })
}

fn recurring_from_row(row: &AnyRow) -> Result<RecurringJob, Error> {
    Ok(RecurringJob {
        recurring_job_id: row.try_get("recurring_job_id")?,
        owner: row.try_get("owner")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        interval_micros: row.try_get("interval_micros")?,
        cron: row.try_get("cron")?,
        next_due_at: row.try_get("next_due_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Keeps an error text within what is worth storing and showing.
fn clip_error(text: &str) -> String {
    const MAX_ERROR_LEN: usize = 2_000;
    if text.len() <= MAX_ERROR_LEN {
        return text.to_string();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
