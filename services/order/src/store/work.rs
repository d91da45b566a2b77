//! Work to do after a commit (the outbox) and positions in feeds (cursors).
//!
//! The outbox makes a side effect in another service as durable as the change that
//! needs it: the row is written in the same transaction as the change, delivered after
//! commit, and delivered again by a later sweep if the first delivery failed or the
//! process died. Deliveries are idempotent on the other side (a scheduler job keyed by
//! the hold, a release sized from what inventory holds), so delivering twice is harmless.

use sqlx::{AnyConnection, Row as _};

type Result<T> = std::result::Result<T, sqlx::Error>;

/// What an outbox row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Schedule the release job of a time hold (subject: hold id).
    ScheduleHoldRelease,
    /// Bring what inventory holds for an order down to what it should hold (subject:
    /// order id).
    SettleOrder,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::ScheduleHoldRelease => "schedule-hold-release",
            Self::SettleOrder => "settle-order",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "schedule-hold-release" => Some(Self::ScheduleHoldRelease),
            "settle-order" => Some(Self::SettleOrder),
            _ => None,
        }
    }
}

/// One undelivered outbox row.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// What to do.
    pub kind: OutboxKind,
    /// The hold or order id.
    pub subject: i64,
    /// For a hold release, when the job is due (µs).
    pub due_at: i64,
    /// Deliveries tried so far.
    pub attempts: i64,
}

/// Adds a row; call inside the transaction of the change that needs it.
pub async fn enqueue(
    conn: &mut AnyConnection,
    kind: OutboxKind,
    subject: i64,
    due_at: i64,
    now: i64,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO outbox (kind, subject, due_at, created_at, delivered_at, attempts, \
         last_error) VALUES ($1, $2, $3, $4, NULL, 0, '') RETURNING id",
    )
    .bind(kind.as_str())
    .bind(subject.to_string())
    .bind(due_at)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
}

/// Undelivered rows, oldest first (`only_ids` narrows to some).
pub async fn pending(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OutboxItem>> {
    let rows = sqlx::query(
        "SELECT id, kind, subject, due_at, attempts FROM outbox WHERE delivered_at IS NULL \
         ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let subject: String = row.try_get("subject")?;
        let (Some(kind), Ok(subject)) = (OutboxKind::parse(&kind), subject.parse::<i64>()) else {
            tracing::warn!(kind, subject, "outbox row of an unknown kind is skipped");
            continue;
        };
        items.push(OutboxItem {
            id: row.try_get("id")?,
            kind,
            subject,
            due_at: row.try_get("due_at")?,
            attempts: row.try_get("attempts")?,
        });
    }
    Ok(items)
}

/// One row by id, if still undelivered.
pub async fn pending_one(conn: &mut AnyConnection, id: i64) -> Result<Option<OutboxItem>> {
    let row = sqlx::query(
        "SELECT id, kind, subject, due_at, attempts FROM outbox \
         WHERE id = $1 AND delivered_at IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let kind: String = row.try_get("kind")?;
    let subject: String = row.try_get("subject")?;
    let (Some(kind), Ok(subject)) = (OutboxKind::parse(&kind), subject.parse::<i64>()) else {
        return Ok(None);
    };
    Ok(Some(OutboxItem {
        id: row.try_get("id")?,
        kind,
        subject,
        due_at: row.try_get("due_at")?,
        attempts: row.try_get("attempts")?,
    }))
}

/// Marks a row delivered.
pub async fn mark_delivered(conn: &mut AnyConnection, id: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE outbox SET delivered_at = $2, attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a failed delivery; the row stays pending.
pub async fn mark_failed(conn: &mut AnyConnection, id: i64, error: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A feed position by name.
pub async fn cursor(conn: &mut AnyConnection, name: &str) -> Result<String> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT cursor FROM feed_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(value.unwrap_or_default())
}

/// Stores a feed position.
pub async fn set_cursor(conn: &mut AnyConnection, name: &str, value: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO feed_cursors (name, cursor, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE \
         SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
