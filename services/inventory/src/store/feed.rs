//! The change feed: one entry per changed stock row per transaction, in an order that
//! never lets a reader skip an entry committed late.
//!
//! The trap: on PostgreSQL, identity values are handed out when rows are inserted, not
//! when transactions commit. A reader that remembers the largest id it saw and asks for
//! `id > cursor` misses a row whose transaction took a smaller id but committed after the
//! read.
//!
//! The scheme: every entry records the id of the transaction that wrote it
//! (`pg_current_xact_id()`), and entries are read in (transaction id, entry id) order,
//! but only from transactions older than the reader's snapshot horizon
//! (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction below the horizon has
//! ended, so the set of entries below it is final and nothing can appear behind a cursor
//! later. Writers pay nothing for it (no shared counter row, no lock), which matters for
//! allocation throughput. The cost is latency: an entry shows once every transaction that
//! started before it has ended, so a long transaction anywhere in the cluster holds the
//! feed back (never loses from it).
//!
//! SQLite has one writer at a time and a transaction's ids are taken under its write
//! lock, so entry ids are already in commit order; the transaction id is written as zero.

use kosha_runtime::db::Backend;
use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::domain::ids::{ClientId, PoolName, Sku};
use crate::domain::stock::{Grade, StockKey, Totals, TransferReason};
use crate::store::{MAX_ROWS_PER_STATEMENT, Statement, Value};

/// A position in the feed: after this entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Transaction id of the entry (zero on SQLite).
    pub txid: i64,
    /// Entry id.
    pub id: i64,
}

impl Cursor {
    /// The opaque text form given to callers.
    pub fn encode(self) -> String {
        format!("{}.{}", self.txid, self.id)
    }

    /// Parses a cursor from a request; empty is the start.
    pub fn decode(field: &str, text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let bad = || Error::invalid(field, "not a cursor returned by ListStockChanges");
        let (txid, id) = text.split_once('.').ok_or_else(bad)?;
        let txid: i64 = txid.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        if txid < 0 || id < 0 {
            return Err(bad());
        }
        Ok(Self { txid, id })
    }
}

/// One entry.
#[derive(Debug, Clone)]
pub struct Change {
    /// Its position.
    pub cursor: Cursor,
    /// The row changed.
    pub key: StockKey,
    /// Figures right after the change.
    pub totals: Totals,
    /// First reason of the transaction's transfers on this row.
    pub reason: TransferReason,
    /// When it was written.
    pub created_at: i64,
}

/// Statements appending entries for changed rows; the transaction id is taken where the
/// statement runs, inside the writer's transaction.
pub(crate) fn statements(
    backend: Backend,
    entries: &[(&StockKey, &Totals, TransferReason)],
    now: i64,
) -> Vec<Statement> {
    let txid_sql = match backend {
        Backend::Postgres => "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)",
        Backend::Sqlite => "0",
    };
    let mut statements = Vec::new();
    for chunk in entries.chunks(MAX_ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|index| {
                let base = 2 + index * 8;
                format!(
                    "({txid_sql}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $1)",
                    base,
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4,
                    base + 5,
                    base + 6,
                    base + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO stock_changes (txid, client_id, sku, pool, grade, available, \
             allocated, recycle, reason, created_at) VALUES {}",
            rows.join(", ")
        );
        let mut values = vec![Value::Int(now)];
        for (key, totals, reason) in chunk {
            values.extend([
                Value::Text(key.client.to_string()),
                Value::Text(key.sku.to_string()),
                Value::Text(key.pool.to_string()),
                Value::Int(key.grade.code()),
                Value::Int(totals.available),
                Value::Int(totals.allocated),
                Value::Int(totals.recycle),
                Value::Int(reason.code()),
            ]);
        }
        statements.push(Statement {
            sql,
            values,
            expected_rows: None,
        });
    }
    statements
}

/// Reads up to `limit` entries after `after`, optionally of one client, that no running
/// transaction can precede any more.
pub async fn read(
    db: &Db,
    client_opt: Option<&ClientId>,
    after: Cursor,
    limit: i64,
) -> Result<Vec<Change>, Error> {
    let horizon = match db.backend() {
        Backend::Postgres => {
            " AND txid < CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
        }
        Backend::Sqlite => "",
    };
    let client_filter = if client_opt.is_some() {
        " AND client_id = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT id, txid, client_id, sku, pool, grade, available, allocated, recycle, reason, \
         created_at FROM stock_changes WHERE (txid, id) > ($1, $2){horizon}{client_filter} \
         ORDER BY txid, id LIMIT $3"
    );
    let mut query = sqlx::query(&sql)
        .bind(after.txid)
        .bind(after.id)
        .bind(limit);
    if let Some(client) = client_opt {
        query = query.bind(client.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.push(Change {
            cursor: Cursor {
                txid: row.try_get("txid")?,
                id: row.try_get("id")?,
            },
            key: StockKey {
                client: ClientId::from_stored(row.try_get("client_id")?),
                sku: Sku::from_stored(row.try_get("sku")?),
                pool: PoolName::from_stored(row.try_get("pool")?),
                grade: Grade::from_code(row.try_get("grade")?)?,
            },
            totals: Totals {
                available: row.try_get("available")?,
                allocated: row.try_get("allocated")?,
                recycle: row.try_get("recycle")?,
            },
            reason: TransferReason::from_code(row.try_get("reason")?)?,
            created_at: row.try_get("created_at")?,
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let cursor = Cursor { txid: 812, id: 4 };
        assert_eq!(
            Cursor::decode("after_cursor", &cursor.encode()).unwrap(),
            cursor
        );
        assert_eq!(
            Cursor::decode("after_cursor", "").unwrap(),
            Cursor::default()
        );
        for junk in ["x", "1", "1.x", "-1.2"] {
            assert!(Cursor::decode("after_cursor", junk).is_err(), "{junk}");
        }
    }
}
