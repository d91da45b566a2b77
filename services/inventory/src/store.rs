//! SQL: the inventory schema and every query, on SQLite and PostgreSQL through the `Any`
//! driver (see `kosha_runtime::db` for the portable subset kept to).
//!
//! - [`stock`]: stock rows, locked and changed only together with their ledger transfers
//!   and change-feed entries;
//! - [`idempotency`]: the first response of every keyed request;
//! - [`pools`]: pools, channel assignments and safety buffers;
//! - [`allocations`]: what each order line holds;
//! - [`batch`]: what an allocation batch reads, in one round trip on PostgreSQL;
//! - [`ledger`]: reading transfers and stock at a past time;
//! - [`feed`]: the change feed and why it cannot skip a change;
//! - [`outbox`]: scheduler jobs waiting to be delivered;
//! - [`audit`]: recomputing everything from the ledger.

pub mod allocations;
pub mod audit;
pub mod batch;
pub mod feed;
pub mod idempotency;
pub mod ledger;
pub mod outbox;
pub mod pools;
pub mod read_cache;
pub mod stock;

use kosha_runtime::db::Migration;

/// A transaction that may write.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

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

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Text.
    Text(String),
    /// Nullable text.
    OptText(Option<String>),
    /// An integer.
    Int(i64),
    /// A nullable integer.
    OptInt(Option<i64>),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// One write statement with its values, placeholders numbered from `$1`; statements are
/// run one by one, or on PostgreSQL merged into one round trip (see [`run_all`]).
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// SQL with `$1…$n`.
    pub sql: String,
    /// The values of `$1…$n`, in order.
    pub values: Vec<Value>,
    /// Rows it must change; anything else fails the transaction.
    pub expected_rows: Option<u64>,
}

impl Statement {
    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        bind_values(sqlx::query(&self.sql), &self.values)
    }
}

/// Binds `values` in order.
pub(crate) fn bind_values<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: &[Value],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match value {
            Value::Text(text) => query.bind(text.clone()),
            Value::OptText(text) => query.bind(text.clone()),
            Value::Int(number) => query.bind(*number),
            Value::OptInt(number) => query.bind(*number),
            Value::Bytes(bytes) => query.bind(bytes.clone()),
        };
    }
    query
}

/// Most bind parameters in one merged statement (PostgreSQL allows 65535).
const MAX_MERGED_PARAMETERS: usize = 60_000;

/// Runs write statements in the caller's transaction. On PostgreSQL they go as one
/// statement (each a data-modifying `WITH` part), so a transaction's writes cost one round
/// trip however many tables they touch; SQLite runs in-process, where statements cost no
/// round trip, and runs them one by one.
pub(crate) async fn run_all(
    tx: &mut Tx<'_>,
    backend: kosha_runtime::db::Backend,
    statements: &[Statement],
) -> Result<(), kosha_runtime::Error> {
    let merge = backend == kosha_runtime::db::Backend::Postgres
        && statements.len() > 1
        && parameter_count(statements) <= MAX_MERGED_PARAMETERS;
    if !merge {
        return run_each(tx, statements).await;
    }

    let merged = Merged::new(statements);
    let mut sql = merged.sql;
    sql.push_str(" SELECT ");
    let counts: Vec<String> = merged
        .counted
        .iter()
        .map(|index| count_of(*index))
        .collect();
    sql.push_str(&if counts.is_empty() {
        "0".to_string()
    } else {
        counts.join(", ")
    });
    let row = bind_values(sqlx::query(&sql), &merged.values)
        .fetch_one(&mut **tx)
        .await?;
    for (position, index) in merged.counted.iter().enumerate() {
        use sqlx::Row as _;
        let rows: i64 = row.try_get(position)?;
        check_rows(&statements[*index], u64::try_from(rows).unwrap_or_default())?;
    }
    Ok(())
}

/// How a compared write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compared {
    /// Committed: every row still held what was read.
    Written,
    /// Nothing was written: a row had changed since it was read, a key was taken meanwhile,
    /// or the writes are too many for one statement.
    Conflict,
}

/// PostgreSQL only: runs write statements as one statement outside any transaction, so
/// they commit together in one round trip, and only if every statement with an expected
/// row count changes exactly that many rows. The statements compare what they change with
/// what was read (see [`stock::prepare_compared`]); a count that differs means something
/// changed in between, and the whole statement is undone.
///
/// The undoing is a deliberate division by zero in the statement's last part, the one way
/// a single statement can refuse to commit after its own writes; its SQLSTATE (22012), a
/// unique key taken meanwhile (23505) and a refused negative (23514) all come back as
/// [`Compared::Conflict`]. Any other failure is an error.
pub(crate) async fn run_compared(
    connection: &mut sqlx::AnyConnection,
    statements: &[Statement],
) -> Result<Compared, kosha_runtime::Error> {
    if statements.is_empty() {
        return Ok(Compared::Written);
    }
    if parameter_count(statements) > MAX_MERGED_PARAMETERS {
        return Ok(Compared::Conflict);
    }
    let merged = Merged::new(statements);
    let checks: Vec<String> = merged
        .counted
        .iter()
        .map(|index| {
            let expected = statements[*index].expected_rows.unwrap_or_default();
            format!("{} = {expected}", count_of(*index))
        })
        .collect();
    let mut sql = merged.sql;
    if checks.is_empty() {
        sql.push_str(" SELECT 1");
    } else {
        sql.push_str(&format!(
            " SELECT 1 / (CASE WHEN {} THEN 1 ELSE 0 END)",
            checks.join(" AND ")
        ));
    }
    match bind_values(sqlx::query(&sql), &merged.values)
        .fetch_one(&mut *connection)
        .await
    {
        Ok(_) => Ok(Compared::Written),
        Err(error) => {
            let code = error
                .as_database_error()
                .and_then(|database| database.code())
                .map(|code| code.into_owned());
            match code.as_deref() {
                Some("22012" | "23505" | "23514") => Ok(Compared::Conflict),
                _ => Err(error.into()),
            }
        }
    }
}

/// Statements joined as the parts `w0, w1, …` of one `WITH` (without its final `SELECT`),
/// placeholders renumbered to follow on.
struct Merged {
    sql: String,
    values: Vec<Value>,
    /// Parts with an expected row count; they return one row per changed row.
    counted: Vec<usize>,
}

impl Merged {
    fn new(statements: &[Statement]) -> Self {
        let mut sql = String::from("WITH ");
        let mut values = Vec::with_capacity(parameter_count(statements));
        let mut counted = Vec::new();
        for (index, statement) in statements.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            // A write returns a row per row it changed; a read part counts what it finds.
            let returning = if statement.expected_rows.is_some() {
                counted.push(index);
                if statement.sql.starts_with("SELECT") {
                    ""
                } else {
                    " RETURNING 1"
                }
            } else {
                ""
            };
            sql.push_str(&format!(
                "w{index} AS ({}{returning})",
                renumber(&statement.sql, values.len())
            ));
            values.extend(statement.values.iter().cloned());
        }
        Self {
            sql,
            values,
            counted,
        }
    }
}

fn parameter_count(statements: &[Statement]) -> usize {
    statements
        .iter()
        .map(|statement| statement.values.len())
        .sum()
}

fn count_of(index: usize) -> String {
    format!("(SELECT COUNT(*) FROM w{index})")
}

/// Runs write statements one by one.
pub(crate) async fn run_each(
    tx: &mut Tx<'_>,
    statements: &[Statement],
) -> Result<(), kosha_runtime::Error> {
    for statement in statements {
        let result = statement.query().execute(&mut **tx).await?;
        check_rows(statement, result.rows_affected())?;
    }
    Ok(())
}

fn check_rows(statement: &Statement, rows: u64) -> Result<(), kosha_runtime::Error> {
    match statement.expected_rows {
        Some(expected) if expected != rows => Err(kosha_runtime::Error::Internal(anyhow::anyhow!(
            "a write changed {rows} rows, expected {expected}"
        ))),
        _ => Ok(()),
    }
}

/// `sql` with every placeholder `$n` moved up by `offset`.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_string();
    }
    let mut text = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        text.push(c);
        if c != '$' {
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(number) => text.push_str(&(number + offset).to_string()),
            Err(_) => text.push_str(&digits),
        }
    }
    text
}

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

    #[test]
    fn merged_statements_get_their_placeholders_moved_up() {
        assert_eq!(
            renumber("VALUES ($1, $2), ($10)", 5),
            "VALUES ($6, $7), ($15)"
        );
        assert_eq!(renumber("x = $1", 0), "x = $1");
    }

    /// A compared write commits whole while every row holds what was read, and writes
    /// nothing at all (no stock change, no ledger row, no feed entry) once one has changed.
    #[tokio::test]
    async fn a_compared_write_commits_whole_or_not_at_all_on_postgres() {
        use crate::domain::ids::{ClientId, PoolName, Sku};
        use crate::domain::stock::{
            Grade, Provenance, Side, StockKey, StockState, Totals, TransferReason, TransferSpec,
        };
        use sqlx::Row as _;

        let Some(test_db) =
            kosha_testkit::TestDatabase::create(kosha_testkit::Store::Postgres).await
        else {
            return;
        };
        let db = kosha_runtime::Db::connect(&test_db.url, &Default::default())
            .await
            .unwrap();
        db.migrate(crate::NAME, MIGRATIONS).await.unwrap();
        sqlx::query(
            "INSERT INTO stock (client_id, sku, pool, grade, available, allocated, recycle, \
             updated_at) VALUES ('acme', 'A', 'COMMON', 1, 5, 0, 0, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let client = ClientId::from_stored("acme".to_string());
        let sku = Sku::from_stored("A".to_string());
        let pool = PoolName::common();
        let grade = Grade::from_code(1).unwrap();
        let key = StockKey::new(&client, &sku, &pool, grade);
        let side = |state| {
            Some(Side {
                pool: pool.clone(),
                state,
            })
        };
        let transfer = TransferSpec {
            client: client.clone(),
            sku: sku.clone(),
            grade,
            from: side(StockState::Available),
            to: side(StockState::Allocated),
            quantity: 2,
            reason: TransferReason::Allocate,
            order_line: None,
        };
        let provenance = Provenance {
            actor: "test".to_string(),
            reference: String::new(),
            idempotency_key: "k".to_string(),
        };
        let write_after_reading = |available: i64| {
            let mut read = stock::Locked::default();
            read.insert(
                key.clone(),
                Totals {
                    available,
                    allocated: 0,
                    recycle: 0,
                },
            );
            let (_, statements) = stock::prepare_compared(
                db.backend(),
                &mut read,
                std::slice::from_ref(&transfer),
                &[&provenance],
                1,
            )
            .unwrap()
            .unwrap();
            statements
        };
        let figures = || async {
            let row = sqlx::query(
                "SELECT (SELECT available FROM stock), (SELECT allocated FROM stock), \
                 (SELECT COUNT(*) FROM ledger), (SELECT COUNT(*) FROM stock_changes)",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            (0..4).map(|i| row.get::<i64, _>(i)).collect::<Vec<i64>>()
        };
        let mut connection = db.pool().acquire().await.unwrap();

        // Read at 5; another writer takes one unit before the write runs.
        let stale = write_after_reading(5);
        sqlx::query("UPDATE stock SET available = 4")
            .execute(db.pool())
            .await
            .unwrap();
        let outcome = run_compared(&mut connection, &stale).await.unwrap();

        assert_eq!(outcome, Compared::Conflict);
        assert_eq!(figures().await, vec![4, 0, 0, 0], "nothing written");

        // Read again at 4: the same write now commits, all of it.
        let fresh = write_after_reading(4);
        let outcome = run_compared(&mut connection, &fresh).await.unwrap();

        assert_eq!(outcome, Compared::Written);
        assert_eq!(figures().await, vec![2, 2, 1, 1]);
    }
}
