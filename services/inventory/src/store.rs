//! SQL: the inventory schema and every query, on SQLite and PostgreSQL through the `Any`
//! driver (see `kosha_runtime::db` for the portable subset kept to).
//!
//! - [`stock`]: stock rows, locked and changed only together with their ledger transfers
//!   and change-feed entries;
//! - [`idempotency`]: the first response of every keyed request;
//! - [`pools`]: pools, channel assignments and safety buffers;
//! - [`allocations`]: what each order line holds;
//! - [`ledger`]: reading transfers and stock at a past time;
//! - [`feed`]: the change feed and why it cannot skip a change;
//! - [`outbox`]: scheduler jobs waiting to be delivered;
//! - [`audit`]: recomputing everything from the ledger.

pub mod allocations;
pub mod audit;
pub mod feed;
pub mod idempotency;
pub mod ledger;
pub mod outbox;
pub mod pools;
pub mod stock;

use kosha_runtime::db::Migration;

/// A transaction that may write.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Most rows in one multi-row statement; keeps every statement well under the bind
/// parameter limits of both databases.
const MAX_ROWS_PER_STATEMENT: usize = 400;

/// The schema, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "pools stock ledger allocations feed outbox",
    sql: r#"
CREATE TABLE pools (
    client_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    activate_at BIGINT,
    expire_at   BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, name)
);

CREATE TABLE channel_pools (
    client_id  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    pool       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, channel)
);
CREATE INDEX channel_pools_by_pool ON channel_pools (client_id, pool);

CREATE TABLE safety_buffers (
    client_id  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, channel)
);

CREATE TABLE stock (
    client_id  TEXT NOT NULL,
    sku        TEXT NOT NULL,
    pool       TEXT NOT NULL,
    grade      BIGINT NOT NULL,
    available  BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),
    allocated  BIGINT NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    recycle    BIGINT NOT NULL DEFAULT 0 CHECK (recycle >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, sku, pool, grade)
);
CREATE INDEX stock_by_pool ON stock (client_id, pool, sku);

CREATE TABLE ledger (
    id              BIGSERIAL_PK,
    client_id       TEXT NOT NULL,
    sku             TEXT NOT NULL,
    grade           BIGINT NOT NULL,
    from_pool       TEXT,
    from_state      BIGINT,
    to_pool         TEXT,
    to_state        BIGINT,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    reason          BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    reference       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    order_ref       TEXT,
    line_id         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ledger_by_sku ON ledger (client_id, sku, id);
CREATE INDEX ledger_by_time ON ledger (client_id, created_at, id);
CREATE INDEX ledger_by_order ON ledger (client_id, order_ref, id);

CREATE TABLE allocations (
    id         BIGSERIAL_PK,
    client_id  TEXT NOT NULL,
    order_ref  TEXT NOT NULL,
    line_id    TEXT NOT NULL,
    sku        TEXT NOT NULL,
    pool       TEXT NOT NULL,
    grade      BIGINT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity >= 0),
    consumed   BIGINT NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    released   BIGINT NOT NULL DEFAULT 0 CHECK (released >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (client_id, order_ref, line_id)
);
CREATE INDEX allocations_by_sku ON allocations (client_id, sku, pool, id);

CREATE TABLE idempotency (
    client_id  TEXT NOT NULL,
    idem_key   TEXT NOT NULL,
    method     TEXT NOT NULL,
    request    BLOB NOT NULL,
    response   BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, idem_key)
);

CREATE TABLE stock_changes (
    id         BIGSERIAL_PK,
    txid       BIGINT NOT NULL,
    client_id  TEXT NOT NULL,
    sku        TEXT NOT NULL,
    pool       TEXT NOT NULL,
    grade      BIGINT NOT NULL,
    available  BIGINT NOT NULL,
    allocated  BIGINT NOT NULL,
    recycle    BIGINT NOT NULL,
    reason     BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX stock_changes_feed ON stock_changes (txid, id);

CREATE TABLE outbox (
    id              BIGSERIAL_PK,
    dedupe_key      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    payload         BLOB NOT NULL,
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, next_attempt_at);
"#,
}];

/// `($start, $start+1, …), (…)`: placeholders for `rows` rows of `columns` values,
/// numbered from `start`.
pub(crate) fn values_placeholders(rows: usize, columns: usize, start: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    let mut next = start;
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('$');
            text.push_str(&next.to_string());
            next += 1;
        }
        text.push(')');
    }
    text
}

/// Whether a database error is worth retrying the whole transaction for: a unique key
/// taken by a concurrent request, a deadlock, or a serialization failure.
pub fn is_retryable(error: &kosha_runtime::Error) -> bool {
    let kosha_runtime::Error::Internal(cause) = error else {
        return false;
    };
    let Some(sqlx::Error::Database(db_error)) = cause.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    if db_error.is_unique_violation() {
        return true;
    }
    // PostgreSQL: deadlock_detected, serialization_failure. SQLite: SQLITE_BUSY (5) when the
    // busy timeout ran out.
    matches!(
        db_error.code().as_deref(),
        Some("40P01" | "40001" | "5" | "517")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_and_columns_in_order() {
        assert_eq!(values_placeholders(2, 3, 2), "($2, $3, $4), ($5, $6, $7)");
        assert_eq!(values_placeholders(1, 1, 1), "($1)");
    }
}
