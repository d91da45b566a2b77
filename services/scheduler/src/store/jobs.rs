//! Jobs as callers see them: schedule, read, list, cancel, make due now.

use kosha_runtime::{Error, page};
use sqlx::Row as _;

use super::recurring::materialise_next_run;
use super::{JOB_COLUMNS, Store, job_from_row, new_id};
use crate::domain::{Job, JobState, NewJob};

/// What `ListJobs` keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this owner.
    pub owner_opt: Option<String>,
    /// Only this kind.
    pub kind_opt: Option<String>,
    /// Only this state.
    pub state_opt: Option<JobState>,
    /// Only jobs due at or after this.
    pub due_from_opt: Option<i64>,
    /// Only jobs due before this.
    pub due_before_opt: Option<i64>,
}

/// Where a page of jobs ordered by due time (or, for runs, by occurrence) ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPageKey {
    /// Due time (occurrence, for runs) of the last job of the page.
    pub at: i64,
    /// Its id, which breaks ties.
    pub job_id: String,
}

impl JobPageKey {
    /// The opaque token a response to the listing `query` describes carries.
    pub fn to_token(&self, query: &str) -> String {
        page::encode_query_token(query, &format!("{}/{}", self.at, self.job_id))
    }

    /// Reads a request's token for the listing `query` describes; empty is the first page.
    pub fn from_token(query: &str, token: &str) -> Result<Option<Self>, Error> {
        let Some(text) = page::decode_query_token(query, token)? else {
            return Ok(None);
        };
        let bad = || Error::invalid("page_token", "not a token returned by this list call");
        let (at_text, job_id) = text.split_once('/').ok_or_else(bad)?;
        let at = at_text.parse::<i64>().map_err(|_| bad())?;
        Ok(Some(Self {
            at,
            job_id: job_id.to_string(),
        }))
    }
}

/// A value bound to a query built at run time.
enum Bind {
    Int(i64),
    Text(String),
}

impl Store {
    /// The job scheduled under `key`, if any.
    pub async fn job_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, Error> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1");
        let row_opt = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?;
        row_opt.as_ref().map(job_from_row).transpose()
    }

    /// Stores a new job; `None` when its idempotency key is taken (a concurrent twin won).
    pub async fn insert_job(
        &self,
        new_job: &NewJob,
        traceparent: &str,
        now: i64,
    ) -> Result<Option<Job>, Error> {
        let sql = format!(
            "INSERT INTO jobs (job_id, owner, kind, payload, due_at, first_due_at, \
               idempotency_key, attempts, max_attempts, last_error, state, cancel_requested, \
               traceparent, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, 0, $7, '', 'PENDING', 0, $8, $9, $9) \
             ON CONFLICT (idempotency_key) DO NOTHING \
             RETURNING {JOB_COLUMNS}"
        );
        let _turn = self.write_turn().await;
        let row_opt = sqlx::query(&sql)
            .bind(new_id())
            .bind(&new_job.owner)
            .bind(&new_job.kind)
            .bind(&new_job.payload)
            .bind(new_job.due_at)
            .bind(&new_job.idempotency_key)
            .bind(i64::from(new_job.max_attempts))
            .bind(traceparent)
            .bind(now)
            .fetch_optional(self.db.pool())
            .await?;
        row_opt.as_ref().map(job_from_row).transpose()
    }

    /// One job.
    pub async fn job(&self, job_id: &str) -> Result<Option<Job>, Error> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1");
        let row_opt = sqlx::query(&sql)
            .bind(job_id)
            .fetch_optional(self.db.pool())
            .await?;
        row_opt.as_ref().map(job_from_row).transpose()
    }

    /// One page of jobs by due time, and the key of the next page if there is one.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        after_opt: Option<&JobPageKey>,
        limit: i64,
    ) -> Result<(Vec<Job>, Option<JobPageKey>), Error> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut push = |condition: &str, values: Vec<Bind>| {
            let mut text = condition.to_string();
            for value in values {
                binds.push(value);
                text = text.replacen('?', &format!("${}", binds.len()), 1);
            }
            conditions.push(text);
        };

        if let Some(owner) = &filter.owner_opt {
            push("owner = ?", vec![Bind::Text(owner.clone())]);
        }
        if let Some(kind) = &filter.kind_opt {
            push("kind = ?", vec![Bind::Text(kind.clone())]);
        }
        if let Some(state) = filter.state_opt {
            push("state = ?", vec![Bind::Text(state.as_str().to_string())]);
        }
        if let Some(from) = filter.due_from_opt {
            push("due_at >= ?", vec![Bind::Int(from)]);
        }
        if let Some(before) = filter.due_before_opt {
            push("due_at < ?", vec![Bind::Int(before)]);
        }
        if let Some(after) = after_opt {
            push(
                "(due_at > ? OR (due_at = ? AND job_id > ?))",
                vec![
                    Bind::Int(after.at),
                    Bind::Int(after.at),
                    Bind::Text(after.job_id.clone()),
                ],
            );
        }

        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs {where_clause} ORDER BY due_at, job_id LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = match value {
                Bind::Int(number) => query.bind(number),
                Bind::Text(text) => query.bind(text),
            };
        }
        let rows = query.bind(limit + 1).fetch_all(self.db.pool()).await?;

        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_opt = page_end(&mut jobs, limit, |job| job.due_at);
        Ok((jobs, next_opt))
    }

    /// Cancels a pending job. A running one is marked so that it gets no further attempt
    /// (its current attempt finishes first); a cancelled one is returned as it is, so a
    /// retried cancel succeeds. A job that succeeded or failed cannot be cancelled.
    pub async fn cancel_job(&self, job_id: &str, now: i64) -> Result<Job, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let job = lock_job(&mut tx, self.db.for_update(), job_id).await?;

        let cancelled = match job.state {
            JobState::Cancelled => job,
            JobState::Succeeded | JobState::Failed => {
                return Err(Error::FailedPrecondition(format!(
                    "job `{job_id}` has already {}; only a pending job can be cancelled",
                    if job.state == JobState::Succeeded {
                        "succeeded"
                    } else {
                        "failed"
                    }
                )));
            }
            JobState::Running => {
                let sql = format!(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = $2 WHERE job_id = $1 \
                     RETURNING {JOB_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(job_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                job_from_row(&row)?
            }
            JobState::Pending => {
                let sql = format!(
                    "UPDATE jobs SET state = 'CANCELLED', updated_at = $2, finished_at = $2 \
                     WHERE job_id = $1 RETURNING {JOB_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(job_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                let cancelled = job_from_row(&row)?;
                // A cancelled run of a recurring job skips one occurrence, not the rest.
                if let Some(recurring_job_id) = &cancelled.recurring_job_id_opt {
                    materialise_next_run(&mut tx, &self.db, recurring_job_id, now).await?;
                }
                cancelled
            }
        };
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Makes a pending job due now; attempts made so far still count.
    pub async fn make_job_due_now(&self, job_id: &str, now: i64) -> Result<Job, Error> {
        let (_turn, mut tx) = self.begin_write().await?;
        let job = lock_job(&mut tx, self.db.for_update(), job_id).await?;
        if job.state != JobState::Pending {
            return Err(Error::FailedPrecondition(format!(
                "job `{job_id}` is {}; only a pending job can be made due now",
                job.state.as_str()
            )));
        }
        let sql = format!(
            "UPDATE jobs SET due_at = $2, updated_at = $2 WHERE job_id = $1 \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(job_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(job)
    }

    /// Whether a job with this id exists.
    pub async fn job_exists(&self, job_id: &str) -> Result<bool, Error> {
        let row_opt = sqlx::query("SELECT 1 AS found FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row_opt.is_some())
    }

    /// How many jobs are stored (all states); used by tests and the benchmark.
    pub async fn count_jobs(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// Reads a job for change inside `tx`, locking its row on PostgreSQL.
pub(super) async fn lock_job(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    for_update: &str,
    job_id: &str,
) -> Result<Job, Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1{for_update}");
    let row_opt = sqlx::query(&sql)
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    match row_opt {
        Some(row) => job_from_row(&row),
        None => Err(Error::not_found("job", job_id)),
    }
}

/// Cuts the extra row fetched to learn whether another page follows, and returns the key
/// of the next page. `at` is the ordering instant of a job.
pub(super) fn page_end(
    jobs: &mut Vec<Job>,
    limit: i64,
    at: impl Fn(&Job) -> i64,
) -> Option<JobPageKey> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if jobs.len() <= limit {
        return None;
    }
    jobs.truncate(limit);
    jobs.last().map(|last| JobPageKey {
        at: at(last),
        job_id: last.job_id.clone(),
    })
}
