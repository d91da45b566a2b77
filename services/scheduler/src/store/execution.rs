//! What the execution loop does to jobs: claim, hold the lease, record how an attempt
//! ended, and take back jobs whose runner died.

use kosha_runtime::Error;
use sqlx::Row as _;

use super::jobs::lock_job;
use super::recurring::materialise_next_run;
use super::{JOB_COLUMNS, Store, clip_error, job_from_row};
use crate::domain::{Job, JobState};

/// How an attempt ended, as the loop reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The handler succeeded.
    Succeeded,
    /// Worth another attempt at `retry_at`, if attempts remain and no cancel was asked.
    Retryable { error: String, retry_at: i64 },
    /// Never worth another attempt.
    Permanent { error: String },
}

/// A running job whose lease has run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The job.
    pub job_id: String,
    /// The token of the lease that expired.
    pub lease_token: String,
}

impl Store {
    /// Whether `owner` has a job due by `now`: a cheap read, so that an idle loop does not
    /// take the write lock every cycle.
    pub async fn has_due_jobs(&self, owner: &str, now: i64) -> Result<bool, Error> {
        let row_opt = sqlx::query(
            "SELECT job_id FROM jobs WHERE owner = $1 AND state = 'PENDING' AND due_at <= $2 \
             LIMIT 1",
        )
        .bind(owner)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row_opt.is_some())
    }

    /// Claims up to `limit` due jobs of `owner`, oldest first, under `lease_token` until
    /// `lease_expires_at`, counting the attempt now starting.
    ///
    /// Two statements in one transaction: pick the ids, then update exactly those. On
    /// PostgreSQL the pick locks its rows with `SKIP LOCKED`, so replicas claim side by
    /// side without waiting on each other and never pick the same job. (One `UPDATE …
    /// WHERE job_id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` is not safe there: the
    /// planner may run the subquery more than once and update more than `n` rows.) On
    /// SQLite the write lock of `BEGIN IMMEDIATE` makes the pair atomic. The update repeats
    /// `state = 'PENDING'` so that a job cancelled in between is left alone.
    pub async fn claim_due_jobs(
        &self,
        owner: &str,
        now: i64,
        limit: i64,
        lease_token: &str,
        lease_expires_at: i64,
    ) -> Result<Vec<Job>, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let pick = format!(
            "SELECT job_id FROM jobs WHERE owner = $1 AND state = 'PENDING' AND due_at <= $2 \
             ORDER BY due_at LIMIT $3{}",
            self.db.skip_locked()
        );
        let picked_rows = sqlx::query(&pick)
            .bind(owner)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if picked_rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut picked_ids = Vec::with_capacity(picked_rows.len());
        for row in &picked_rows {
            picked_ids.push(row.try_get::<String, _>("job_id")?);
        }

        // Parameters $1-$3 are the lease and the time; the ids follow.
        let id_placeholders: Vec<String> = (0..picked_ids.len())
            .map(|index| format!("${}", index + 4))
            .collect();
        let claim = format!(
            "UPDATE jobs SET state = 'RUNNING', attempts = attempts + 1, lease_token = $1, \
               lease_expires_at = $2, updated_at = $3 \
             WHERE job_id IN ({}) AND state = 'PENDING' \
             RETURNING {JOB_COLUMNS}",
            id_placeholders.join(", ")
        );
        let mut query = sqlx::query(&claim)
            .bind(lease_token)
            .bind(lease_expires_at)
            .bind(now);
        for job_id in &picked_ids {
            query = query.bind(job_id);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;

        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert!(jobs.len() <= picked_ids.len());
        jobs.sort_by(|a, b| (a.due_at, &a.job_id).cmp(&(b.due_at, &b.job_id)));
        Ok(jobs)
    }

    /// Extends a lease still held; false when it was lost (expired and taken over).
    pub async fn renew_lease(
        &self,
        job_id: &str,
        lease_token: &str,
        lease_expires_at: i64,
    ) -> Result<bool, Error> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $3 \
             WHERE job_id = $1 AND lease_token = $2 AND state = 'RUNNING'",
        )
        .bind(job_id)
        .bind(lease_token)
        .bind(lease_expires_at)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records how an attempt under `lease_token` ended and returns the job as stored, or
    /// `None` when the lease was lost meanwhile (the replica that took the job over
    /// records its own attempt instead).
    ///
    /// A retryable failure waits for its next attempt, unless the attempts are used up
    /// (the job fails, keeping the error) or a cancel was asked (the job is cancelled). A
    /// finished run of a recurring job creates the next run in the same transaction.
    pub async fn finish_attempt(
        &self,
        job_id: &str,
        lease_token: &str,
        end: &AttemptEnd,
        now: i64,
    ) -> Result<Option<Job>, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let (job, held_token_opt) = lock_running_job(&mut tx, self.db.for_update(), job_id).await?;
        if held_token_opt.as_deref() != Some(lease_token) || job.state != JobState::Running {
            return Ok(None);
        }

        let (state, due_at, last_error) = match end {
            AttemptEnd::Succeeded => (JobState::Succeeded, job.due_at, job.last_error.clone()),
            AttemptEnd::Permanent { error } => (JobState::Failed, job.due_at, clip_error(error)),
            AttemptEnd::Retryable { error, .. } if job.cancel_requested => {
                let error = format!("cancelled after attempt {}: {error}", job.attempts);
                (JobState::Cancelled, job.due_at, clip_error(&error))
            }
            AttemptEnd::Retryable { error, .. } if job.attempts >= job.max_attempts => {
                let error = format!("gave up after {}: {error}", attempts_text(job.attempts));
                (JobState::Failed, job.due_at, clip_error(&error))
            }
            AttemptEnd::Retryable { error, retry_at } => {
                (JobState::Pending, *retry_at, clip_error(error))
            }
        };
        let finished = end_attempt(&mut tx, &job, state, due_at, &last_error, now).await?;
        if let (true, Some(recurring_job_id)) =
            (state.is_finished(), &finished.recurring_job_id_opt)
        {
            materialise_next_run(&mut tx, &self.db, recurring_job_id, now).await?;
        }
        tx.commit().await?;
        Ok(Some(finished))
    }

    /// Running jobs whose lease expired by `now` (their runner died or lost the database).
    pub async fn expired_leases(&self, now: i64, limit: i64) -> Result<Vec<ExpiredLease>, Error> {
        let rows = sqlx::query(
            "SELECT job_id, lease_token FROM jobs \
             WHERE state = 'RUNNING' AND lease_expires_at <= $1 \
             ORDER BY lease_expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let lease_token: Option<String> = row.try_get("lease_token")?;
            expired.push(ExpiredLease {
                job_id: row.try_get("job_id")?,
                lease_token: lease_token.unwrap_or_default(),
            });
        }
        Ok(expired)
    }

    /// Takes back a job whose lease expired: pending again (due at once) when attempts
    /// remain, failed when the cut-off attempt was its last, cancelled when a cancel was
    /// asked. `None` when another replica took it back first or the runner recorded its
    /// attempt after all.
    pub async fn reclaim_expired(
        &self,
        expired: &ExpiredLease,
        now: i64,
    ) -> Result<Option<Job>, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let job = lock_job(&mut tx, self.db.for_update(), &expired.job_id).await?;
        let still_expired = sqlx::query(
            "SELECT 1 AS expired FROM jobs \
             WHERE job_id = $1 AND lease_token = $2 AND state = 'RUNNING' \
               AND lease_expires_at <= $3",
        )
        .bind(&expired.job_id)
        .bind(&expired.lease_token)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !still_expired {
            return Ok(None);
        }

        let cut_off = format!(
            "attempt {} was cut off: the scheduler running it stopped before it finished \
             (its lease expired)",
            job.attempts
        );
        let (state, last_error) = if job.cancel_requested {
            (JobState::Cancelled, cut_off)
        } else if job.attempts >= job.max_attempts {
            (
                JobState::Failed,
                format!("gave up after {}: {cut_off}", attempts_text(job.attempts)),
            )
        } else {
            (JobState::Pending, cut_off)
        };
        let reclaimed = end_attempt(&mut tx, &job, state, job.due_at, &last_error, now).await?;
        if let (true, Some(recurring_job_id)) =
            (state.is_finished(), &reclaimed.recurring_job_id_opt)
        {
            materialise_next_run(&mut tx, &self.db, recurring_job_id, now).await?;
        }
        tx.commit().await?;
        Ok(Some(reclaimed))
    }

    /// Owners with jobs due by `now`, with how many; housekeeping warns about owners this
    /// replica cannot call.
    pub async fn owners_with_due_jobs(&self, now: i64) -> Result<Vec<(String, i64)>, Error> {
        let rows = sqlx::query(
            "SELECT owner, COUNT(*) AS due FROM jobs \
             WHERE state = 'PENDING' AND due_at <= $1 GROUP BY owner",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut owners = Vec::with_capacity(rows.len());
        for row in &rows {
            owners.push((row.try_get("owner")?, row.try_get("due")?));
        }
        Ok(owners)
    }
}

/// Reads a job for change inside `tx` with the token of the lease it is under, if any.
async fn lock_running_job(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    for_update: &str,
    job_id: &str,
) -> Result<(Job, Option<String>), Error> {
    let sql = format!("SELECT {JOB_COLUMNS}, lease_token FROM jobs WHERE job_id = $1{for_update}");
    let row_opt = sqlx::query(&sql)
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row_opt else {
        return Err(Error::not_found("job", job_id));
    };
    Ok((job_from_row(&row)?, row.try_get("lease_token")?))
}

/// Ends the running attempt of `job`: the new state, releasing the lease.
async fn end_attempt(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    job: &Job,
    state: JobState,
    due_at: i64,
    last_error: &str,
    now: i64,
) -> Result<Job, Error> {
    let finished_at_opt = state.is_finished().then_some(now);
    let sql = format!(
        "UPDATE jobs SET state = $2, due_at = $3, last_error = $4, lease_token = NULL, \
           lease_expires_at = NULL, updated_at = $5, finished_at = $6 \
         WHERE job_id = $1 RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(&job.job_id)
        .bind(state.as_str())
        .bind(due_at)
        .bind(last_error)
        .bind(now)
        .bind(finished_at_opt)
        .fetch_one(&mut **tx)
        .await?;
    job_from_row(&row)
}

/// "1 attempt", "3 attempts".
fn attempts_text(attempts: i32) -> String {
    if attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{attempts} attempts")
    }
}
