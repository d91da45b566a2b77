//! Scheduler jobs waiting to be delivered.
//!
//! A job is written here in the same transaction as the change that needs it (a pool
//! getting an expiry time), and delivered to the scheduler after commit, by the request
//! itself and by a background loop that retries until the scheduler has it. A crash
//! between commit and delivery therefore delays a job but never loses it. Delivery is at
//! least once; the scheduler deduplicates on the job's idempotency key, which is the row's
//! `dedupe_key`.

use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::store::Tx;

/// One pending job.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Stored id.
    pub id: i64,
    /// The scheduler idempotency key.
    pub dedupe_key: String,
    /// Job kind.
    pub kind: String,
    /// Job payload.
    pub payload: Vec<u8>,
    /// When the job is due, microseconds.
    pub due_at: i64,
    /// Delivery attempts so far (this one included once claimed).
    pub attempts: i64,
}

/// Queues a job unless one with the same key is queued already.
pub async fn enqueue(
    tx: &mut Tx<'_>,
    dedupe_key: &str,
    kind: &str,
    payload: &[u8],
    due_at: i64,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO outbox (dedupe_key, kind, payload, due_at, attempts, next_attempt_at, \
         last_error, created_at) VALUES ($1, $2, $3, $4, 0, $5, '', $5) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(dedupe_key)
    .bind(kind)
    .bind(payload.to_vec())
    .bind(due_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims up to `limit` jobs due for delivery: their next attempt moves `lease_micros`
/// ahead, so another replica does not deliver them at the same time unless this one
/// stops before it finishes.
pub async fn claim(
    db: &Db,
    now: i64,
    lease_micros: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, Error> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "SELECT id, dedupe_key, kind, payload, due_at, attempts FROM outbox \
         WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2{}",
        db.skip_locked()
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now + lease_micros)
        .execute(&mut *tx)
        .await?;
        claimed.push(OutboxRow {
            id,
            dedupe_key: row.try_get("dedupe_key")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            due_at: row.try_get("due_at")?,
            attempts: row.try_get::<i64, _>("attempts")? + 1,
        });
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Marks a job delivered.
pub async fn mark_delivered(db: &Db, id: i64, now: i64) -> Result<(), Error> {
    sqlx::query("UPDATE outbox SET delivered_at = $2, last_error = '' WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records a failed delivery and when to try again.
pub async fn mark_failed(db: &Db, id: i64, error: &str, next_attempt_at: i64) -> Result<(), Error> {
    sqlx::query("UPDATE outbox SET last_error = $2, next_attempt_at = $3 WHERE id = $1")
        .bind(id)
        .bind(error)
        .bind(next_attempt_at)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Jobs not delivered yet.
pub async fn pending(db: &Db) -> Result<i64, Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
        .fetch_one(db.pool())
        .await?;
    Ok(count)
}
