//! Recurring jobs and their runs.
//!
//! A recurring job's `next_due_at` is the occurrence its open run stands for, or, when it
//! has no open run, the occurrence the next run will stand for. A run is created by
//! [`materialise_next_run`] only when no run of the same recurring job is open, and the
//! partial unique index `jobs_one_open_run` makes that hold even when two replicas try at
//! once. So the next occurrence of a slow run waits for it to finish.

use kosha_runtime::{Db, Error, page};
use sqlx::{Any, Row as _, Transaction};

use super::jobs::{JobPageKey, page_end};
use super::{JOB_COLUMNS, RECURRING_COLUMNS, Store, job_from_row, new_id, recurring_from_row};
use crate::domain::job::RECURRING_RUN_MAX_ATTEMPTS;
use crate::domain::{Job, JobState, RecurringJob, RecurringRegistration};

/// Where a page of recurring jobs (ordered by owner and kind) ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringPageKey {
    /// Owner of the last recurring job of the page.
    pub owner: String,
    /// Its kind.
    pub kind: String,
}

impl RecurringPageKey {
    /// The opaque token a response to the listing `query` describes carries.
    pub fn to_token(&self, query: &str) -> String {
        // Neither owners nor kinds may contain a space, so it separates them.
        page::encode_query_token(query, &format!("{} {}", self.owner, self.kind))
    }

    /// Reads a request's token for the listing `query` describes; empty is the first page.
    pub fn from_token(query: &str, token: &str) -> Result<Option<Self>, Error> {
        let Some(text) = page::decode_query_token(query, token)? else {
            return Ok(None);
        };
        let (owner, kind) = text.split_once(' ').ok_or_else(|| {
            Error::invalid("page_token", "not a token returned by this list call")
        })?;
        Ok(Some(Self {
            owner: owner.to_string(),
            kind: kind.to_string(),
        }))
    }
}

impl Store {
    /// Registers the recurring job of (owner, kind), or brings it up to date.
    ///
    /// Registering again with the same schedule keeps the next due time, so an owner that
    /// restarts often never pushes its own schedule back. A new schedule starts afresh
    /// from now, and moves a pending run to the new first occurrence; a new payload goes
    /// to the pending run too. A running run finishes as it started.
    pub async fn register_recurring(
        &self,
        registration: &RecurringRegistration,
        now: i64,
    ) -> Result<RecurringJob, Error> {
        let first_due_at = registration
            .schedule
            .next_after(now)
            .ok_or_else(|| Error::invalid("cron", "the schedule has no occurrence after now"))?;

        let (_turn, mut tx) = self.begin_write().await?;
        let candidate_id = new_id();
        sqlx::query(
            "INSERT INTO recurring_jobs (recurring_job_id, owner, kind, payload, \
               interval_micros, cron, next_due_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (owner, kind) DO NOTHING",
        )
        .bind(&candidate_id)
        .bind(&registration.owner)
        .bind(&registration.kind)
        .bind(&registration.payload)
        .bind(registration.interval_micros)
        .bind(&registration.cron)
        .bind(first_due_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let sql = format!(
            "SELECT {RECURRING_COLUMNS} FROM recurring_jobs WHERE owner = $1 AND kind = $2{}",
            self.db.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(&registration.owner)
            .bind(&registration.kind)
            .fetch_one(&mut *tx)
            .await?;
        let stored = recurring_from_row(&row)?;
        let is_new = stored.recurring_job_id == candidate_id;
        let schedule_changed = !is_new && !registration.has_schedule_of(&stored);
        let payload_changed = !is_new && stored.payload != registration.payload;

        if schedule_changed {
            sqlx::query(
                "UPDATE recurring_jobs SET interval_micros = $2, cron = $3, payload = $4, \
                   next_due_at = $5, updated_at = $6 \
                 WHERE recurring_job_id = $1",
            )
            .bind(&stored.recurring_job_id)
            .bind(registration.interval_micros)
            .bind(&registration.cron)
            .bind(&registration.payload)
            .bind(first_due_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE jobs SET due_at = $2, first_due_at = $2, payload = $3, updated_at = $4 \
                 WHERE recurring_job_id = $1 AND state = 'PENDING'",
            )
            .bind(&stored.recurring_job_id)
            .bind(first_due_at)
            .bind(&registration.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else if payload_changed {
            sqlx::query(
                "UPDATE recurring_jobs SET payload = $2, updated_at = $3 \
                 WHERE recurring_job_id = $1",
            )
            .bind(&stored.recurring_job_id)
            .bind(&registration.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE jobs SET payload = $2, updated_at = $3 \
                 WHERE recurring_job_id = $1 AND state = 'PENDING'",
            )
            .bind(&stored.recurring_job_id)
            .bind(&registration.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }

        // A new recurring job gets its first run here; an old one normally has its run
        // already, and this does nothing.
        materialise_next_run(&mut tx, &self.db, &stored.recurring_job_id, now).await?;
        let recurring = lock_recurring(&mut tx, &self.db, &stored.recurring_job_id)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("recurring job vanished")))?;
        tx.commit().await?;

        if is_new || schedule_changed || payload_changed {
            tracing::info!(
                recurring_job_id = %recurring.recurring_job_id,
                owner = %recurring.owner,
                kind = %recurring.kind,
                is_new,
                schedule_changed,
                "recurring job registered"
            );
        }
        Ok(recurring)
    }

    /// One recurring job.
    pub async fn recurring(&self, recurring_job_id: &str) -> Result<Option<RecurringJob>, Error> {
        let sql =
            format!("SELECT {RECURRING_COLUMNS} FROM recurring_jobs WHERE recurring_job_id = $1");
        let row_opt = sqlx::query(&sql)
            .bind(recurring_job_id)
            .fetch_optional(self.db.pool())
            .await?;
        row_opt.as_ref().map(recurring_from_row).transpose()
    }

    /// One page of recurring jobs by owner and kind.
    pub async fn list_recurring(
        &self,
        owner_opt: Option<&str>,
        after_opt: Option<&RecurringPageKey>,
        limit: i64,
    ) -> Result<(Vec<RecurringJob>, Option<RecurringPageKey>), Error> {
        // Empty strings stand for "no filter" and "first page" so one statement serves all.
        let sql = format!(
            "SELECT {RECURRING_COLUMNS} FROM recurring_jobs \
             WHERE ($1 = '' OR owner = $1) \
               AND ($2 = '' OR owner > $2 OR (owner = $2 AND kind > $3)) \
             ORDER BY owner, kind LIMIT $4"
        );
        let (after_owner, after_kind) = match after_opt {
            Some(key) => (key.owner.as_str(), key.kind.as_str()),
            None => ("", ""),
        };
        let rows = sqlx::query(&sql)
            .bind(owner_opt.unwrap_or(""))
            .bind(after_owner)
            .bind(after_kind)
            .bind(limit + 1)
            .fetch_all(self.db.pool())
            .await?;
        let mut recurring_jobs = rows
            .iter()
            .map(recurring_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if recurring_jobs.len() <= limit {
            return Ok((recurring_jobs, None));
        }
        recurring_jobs.truncate(limit);
        let next_opt = recurring_jobs.last().map(|last| RecurringPageKey {
            owner: last.owner.clone(),
            kind: last.kind.clone(),
        });
        Ok((recurring_jobs, next_opt))
    }

    /// One page of the runs of a recurring job, newest occurrence first.
    pub async fn list_runs(
        &self,
        recurring_job_id: &str,
        before_opt: Option<&JobPageKey>,
        limit: i64,
    ) -> Result<(Vec<Job>, Option<JobPageKey>), Error> {
        let (before_at, before_id) = match before_opt {
            Some(key) => (key.at, key.job_id.as_str()),
            None => (i64::MAX, ""),
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE recurring_job_id = $1 \
               AND (first_due_at < $2 OR (first_due_at = $2 AND ($3 = '' OR job_id < $3))) \
             ORDER BY first_due_at DESC, job_id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(recurring_job_id)
            .bind(before_at)
            .bind(before_id)
            .bind(limit + 1)
            .fetch_all(self.db.pool())
            .await?;
        let mut runs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_opt = page_end(&mut runs, limit, |run| run.first_due_at);
        Ok((runs, next_opt))
    }

    /// Runs a recurring job once now, besides its schedule: its pending run becomes a run
    /// due now that stands for no occurrence, so the occurrence it stood for gets a run of
    /// its own once this one ends. An operator who runs a weekly job now still gets this
    /// week's run. Refused while a run is running, since runs never overlap.
    pub async fn make_recurring_due_now(
        &self,
        recurring_job_id: &str,
        now: i64,
    ) -> Result<Job, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        if lock_recurring(&mut tx, &self.db, recurring_job_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found("job", recurring_job_id));
        }
        let open_opt = open_run(&mut tx, recurring_job_id).await?;
        let pending = match open_opt {
            Some(run) if run.state == JobState::Running => {
                return Err(Error::FailedPrecondition(format!(
                    "run `{}` of recurring job `{recurring_job_id}` is running; its next \
                     occurrence is created when it finishes",
                    run.job_id
                )));
            }
            Some(run) => run,
            None => materialise_next_run(&mut tx, &self.db, recurring_job_id, now)
                .await?
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("no run could be created")))?,
        };

        let sql = format!(
            "UPDATE jobs SET due_at = $2, first_due_at = $2, updated_at = $2 WHERE job_id = $1 \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&pending.job_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let run = job_from_row(&row)?;
        tx.commit().await?;
        Ok(run)
    }

    /// Recurring jobs with no open run (normally none: each finishing run creates the
    /// next in the same transaction). Housekeeping repairs them.
    pub async fn recurring_without_open_run(&self, limit: i64) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(
            "SELECT recurring_job_id FROM recurring_jobs r \
             WHERE NOT EXISTS (SELECT 1 FROM jobs j \
                 WHERE j.recurring_job_id = r.recurring_job_id \
                   AND (j.state = 'PENDING' OR j.state = 'RUNNING')) \
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| row.try_get("recurring_job_id").map_err(Error::from))
            .collect()
    }

    /// Creates the next run of a recurring job if it has no open one.
    pub async fn ensure_next_run(
        &self,
        recurring_job_id: &str,
        now: i64,
    ) -> Result<Option<Job>, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let created_opt = materialise_next_run(&mut tx, &self.db, recurring_job_id, now).await?;
        tx.commit().await?;
        Ok(created_opt)
    }
}

/// Creates the next run of a recurring job inside `tx`, unless a run of it is open.
///
/// The run stands for `next_due_at`, unless a run already stood for that occurrence (or a
/// later one): then for the occurrence after the latest run, or now if that has passed.
pub(super) async fn materialise_next_run(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    recurring_job_id: &str,
    now: i64,
) -> Result<Option<Job>, Error> {
    let Some(recurring) = lock_recurring(tx, db, recurring_job_id).await? else {
        return Ok(None);
    };
    if open_run(tx, recurring_job_id).await?.is_some() {
        return Ok(None);
    }

    let latest_row =
        sqlx::query("SELECT MAX(first_due_at) AS latest FROM jobs WHERE recurring_job_id = $1")
            .bind(recurring_job_id)
            .fetch_one(&mut **tx)
            .await?;
    let latest_opt: Option<i64> = latest_row.try_get("latest")?;

    let schedule = recurring.schedule().map_err(|why| {
        Error::Internal(anyhow::anyhow!("recurring job `{recurring_job_id}`: {why}"))
    })?;
    let mut due_at = recurring.next_due_at;
    if let Some(latest) = latest_opt.filter(|latest| due_at <= *latest) {
        let Some(following) = schedule.following(latest, now) else {
            tracing::warn!(%recurring_job_id, "recurring job has no further occurrence");
            return Ok(None);
        };
        due_at = following;
    }
    if due_at != recurring.next_due_at {
        sqlx::query("UPDATE recurring_jobs SET next_due_at = $2 WHERE recurring_job_id = $1")
            .bind(recurring_job_id)
            .bind(due_at)
            .execute(&mut **tx)
            .await?;
    }

    // DO NOTHING covers the one-open-run index: a concurrent replica that got there first
    // already made this run.
    let sql = format!(
        "INSERT INTO jobs (job_id, owner, kind, payload, due_at, first_due_at, attempts, \
           max_attempts, last_error, state, cancel_requested, traceparent, recurring_job_id, \
           created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5, 0, $6, '', 'PENDING', 0, '', $7, $8, $8) \
         ON CONFLICT DO NOTHING \
         RETURNING {JOB_COLUMNS}"
    );
    let row_opt = sqlx::query(&sql)
        .bind(new_id())
        .bind(&recurring.owner)
        .bind(&recurring.kind)
        .bind(&recurring.payload)
        .bind(due_at)
        .bind(i64::from(RECURRING_RUN_MAX_ATTEMPTS))
        .bind(recurring_job_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
    row_opt.as_ref().map(job_from_row).transpose()
}

async fn lock_recurring(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    recurring_job_id: &str,
) -> Result<Option<RecurringJob>, Error> {
    let sql = format!(
        "SELECT {RECURRING_COLUMNS} FROM recurring_jobs WHERE recurring_job_id = $1{}",
        db.for_update()
    );
    let row_opt = sqlx::query(&sql)
        .bind(recurring_job_id)
        .fetch_optional(&mut **tx)
        .await?;
    row_opt.as_ref().map(recurring_from_row).transpose()
}

async fn open_run(
    tx: &mut Transaction<'static, Any>,
    recurring_job_id: &str,
) -> Result<Option<Job>, Error> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE recurring_job_id = $1 AND (state = 'PENDING' OR state = 'RUNNING')"
    );
    let row_opt = sqlx::query(&sql)
        .bind(recurring_job_id)
        .fetch_optional(&mut **tx)
        .await?;
    row_opt.as_ref().map(job_from_row).transpose()
}
