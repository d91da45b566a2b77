//! Stock rows and the one way they change: [`apply`] writes the row changes, their ledger
//! transfers and their change-feed entries in the caller's transaction.
//!
//! Concurrency: a caller first [`lock`]s every row it will read for a decision (rows are
//! locked in key order, so two transactions never wait on each other in a cycle over
//! stock rows), decides, then applies. Row updates add signed deltas (`available =
//! available + $d`), and CHECK constraints refuse a negative column, so even a wrong
//! decision can never make stock negative: the transaction fails instead. On SQLite the
//! write transaction (`BEGIN IMMEDIATE`) already excludes every other writer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::domain::ids::{ClientId, PoolName, Sku};
use crate::domain::stock::{Grade, Provenance, StockKey, Totals, TransferReason, TransferSpec};
use crate::store::{self, MAX_ROWS_PER_STATEMENT, Statement, Tx, Value, feed, values_placeholders};

/// Stock rows locked by the current transaction, with their current figures.
#[derive(Debug, Default)]
pub struct Locked {
    rows: BTreeMap<StockKey, Totals>,
    /// Keys looked up that have no stored row yet (their figures are zero).
    absent: BTreeSet<StockKey>,
}

impl Locked {
    /// Current figures of a locked row (zero when it has no stored row).
    pub fn totals(&self, key: &StockKey) -> Totals {
        self.rows.get(key).copied().unwrap_or_default()
    }

    /// The rows held, with their figures.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (&StockKey, &Totals)> {
        self.rows.iter()
    }

    /// Records a row locked by another query of the transaction.
    pub(crate) fn insert(&mut self, key: StockKey, totals: Totals) {
        self.absent.remove(&key);
        self.rows.insert(key, totals);
    }

    /// Records that a key was looked up under lock and has no stored row.
    pub(crate) fn note_absent(&mut self, key: &StockKey) {
        if !self.rows.contains_key(key) {
            self.absent.insert(key.clone());
        }
    }

    /// Whether `key` was locked (or found absent) in this transaction.
    pub fn contains(&self, key: &StockKey) -> bool {
        self.rows.contains_key(key) || self.absent.contains(key)
    }
}

/// Locks the stored rows of `keys` (those not locked yet) in key order and reads them.
pub async fn lock(
    connection: &mut sqlx::AnyConnection,
    db: &Db,
    locked: &mut Locked,
    keys: impl IntoIterator<Item = StockKey>,
) -> Result<(), Error> {
    let wanted: BTreeSet<StockKey> = keys
        .into_iter()
        .filter(|key| !locked.contains(key))
        .collect();
    let wanted: Vec<StockKey> = wanted.into_iter().collect();
    for chunk in wanted.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT client_id, sku, pool, grade, available, allocated, recycle FROM stock \
             WHERE (client_id, sku, pool, grade) IN (VALUES {}) \
             ORDER BY client_id, sku, pool, grade{}",
            values_placeholders(chunk.len(), 4, 1),
            db.for_update()
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query
                .bind(key.client.as_str())
                .bind(key.sku.as_str())
                .bind(key.pool.as_str())
                .bind(key.grade.code());
        }
        let rows = query.fetch_all(&mut *connection).await?;
        for row in rows {
            let (key, totals) = stock_row(&row)?;
            locked.rows.insert(key, totals);
        }
        for key in chunk {
            if !locked.rows.contains_key(key) {
                locked.absent.insert(key.clone());
            }
        }
    }
    Ok(())
}

/// Writes `transfers`: changes the locked rows, appends the ledger rows and the change-feed
/// entries. Every row a transfer touches must have been [`lock`]ed. Returns the changed
/// rows with their new figures, in key order.
///
/// A transfer that would take a row below zero fails the whole call with
/// `FAILED_PRECONDITION`; callers check availability first and word their own errors, so
/// this is the last guard, not the usual path.
pub async fn apply(
    tx: &mut Tx<'_>,
    db: &Db,
    locked: &mut Locked,
    transfers: &[TransferSpec],
    provenance: &Provenance,
    now: i64,
) -> Result<Vec<(StockKey, Totals)>, Error> {
    let provenances = vec![provenance; transfers.len()];
    let (changed, statements) = prepare(tx, db, locked, transfers, &provenances, now).await?;
    store::run_all(tx, db.backend(), &statements).await?;
    Ok(changed)
}

/// The first half of [`apply`], for callers that add writes of their own to the same
/// round trip: checks the transfers against the locked rows and sets those rows to their
/// figures after the transfers, and returns the changed rows and the statements that make
/// the change (stock rows, ledger, feed) for [`store::run_all`]. `provenances[i]` is
/// written on `transfers[i]`. A row that has no stored row yet is created here at once.
pub(crate) async fn prepare(
    connection: &mut sqlx::AnyConnection,
    db: &Db,
    locked: &mut Locked,
    transfers: &[TransferSpec],
    provenances: &[&Provenance],
    now: i64,
) -> Result<Prepared, Error> {
    debug_assert_eq!(transfers.len(), provenances.len());
    let deltas = net_changes(transfers);
    let (present, missing) = checked_rows(locked, &deltas)?;

    // New rows are created now: a concurrent writer may create the same row, so their
    // figures come back from the database rather than from the lock.
    for chunk in missing.chunks(MAX_ROWS_PER_STATEMENT) {
        let rows_sql: Vec<String> = (0..chunk.len())
            .map(|index| {
                let base = 2 + index * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, $1)",
                    base,
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4,
                    base + 5,
                    base + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO stock (client_id, sku, pool, grade, available, allocated, recycle, \
             updated_at) VALUES {} \
             ON CONFLICT (client_id, sku, pool, grade) DO UPDATE SET \
             available = stock.available + excluded.available, \
             allocated = stock.allocated + excluded.allocated, \
             recycle = stock.recycle + excluded.recycle, updated_at = excluded.updated_at \
             RETURNING client_id, sku, pool, grade, available, allocated, recycle",
            rows_sql.join(", ")
        );
        let mut values = vec![Value::Int(now)];
        for (key, delta) in chunk {
            delta_values(&mut values, key, delta);
        }
        let rows = store::bind_values(sqlx::query(&sql), &values)
            .fetch_all(&mut *connection)
            .await?;
        for row in rows {
            let (key, totals) = stock_row(&row)?;
            locked.absent.remove(&key);
            locked.rows.insert(key, totals);
        }
    }

    // Stored rows change by their deltas (the CHECK constraints refuse a negative).
    let mut statements = Vec::new();
    for chunk in present.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE stock SET available = stock.available + d.column5, \
             allocated = stock.allocated + d.column6, recycle = stock.recycle + d.column7, \
             updated_at = $1 FROM (VALUES {}) AS d \
             WHERE stock.client_id = d.column1 AND stock.sku = d.column2 \
             AND stock.pool = d.column3 AND stock.grade = d.column4",
            values_placeholders(chunk.len(), 7, 2)
        );
        let mut values = vec![Value::Int(now)];
        for (key, delta, _) in chunk {
            delta_values(&mut values, key, delta);
        }
        statements.push(Statement {
            sql,
            values,
            expected_rows: Some(chunk.len() as u64),
        });
    }
    for (key, _, after) in &present {
        locked.rows.insert(key.clone(), *after);
    }
    let changed = trail(
        db.backend(),
        locked,
        &deltas,
        transfers,
        provenances,
        now,
        &mut statements,
    );
    Ok((changed, statements))
}

/// [`prepare`] for rows that were read without locks, outside any transaction, for
/// [`store::run_compared`]: every row read (changed by the transfers or only looked at)
/// is updated only if it still holds the figures read, so the statements change nothing
/// unless the decision made from those figures still stands when they run. A row only
/// looked at gets a zero change, which keeps it as it is but still compares and locks it.
///
/// `None` when a transfer touches a key with no stored row: creating rows is left to
/// [`prepare`] in a transaction.
pub(crate) fn prepare_compared(
    backend: kosha_runtime::db::Backend,
    read: &mut Locked,
    transfers: &[TransferSpec],
    provenances: &[&Provenance],
    now: i64,
) -> Result<Option<Prepared>, Error> {
    debug_assert_eq!(transfers.len(), provenances.len());
    let deltas = net_changes(transfers);
    let (_, missing) = checked_rows(read, &deltas)?;
    if !missing.is_empty() {
        return Ok(None);
    }

    // Every row read, in key order (the order the update takes their locks in).
    let rows: Vec<(StockKey, Totals, Totals)> = read
        .rows
        .iter()
        .map(|(key, before)| {
            let delta = deltas.get(key).map(|(delta, _)| *delta).unwrap_or_default();
            (key.clone(), *before, delta)
        })
        .collect();
    let mut statements = Vec::new();
    for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE stock SET available = stock.available + d.column5, \
             allocated = stock.allocated + d.column6, recycle = stock.recycle + d.column7, \
             updated_at = CASE WHEN d.column5 = 0 AND d.column6 = 0 AND d.column7 = 0 \
               THEN stock.updated_at ELSE $1 END \
             FROM (VALUES {}) AS d \
             WHERE stock.client_id = d.column1 AND stock.sku = d.column2 \
             AND stock.pool = d.column3 AND stock.grade = d.column4 \
             AND stock.available = d.column8 AND stock.allocated = d.column9 \
             AND stock.recycle = d.column10",
            values_placeholders(chunk.len(), 10, 2)
        );
        let mut values = vec![Value::Int(now)];
        for (key, before, delta) in chunk {
            delta_values(&mut values, key, delta);
            values.push(Value::Int(before.available));
            values.push(Value::Int(before.allocated));
            values.push(Value::Int(before.recycle));
        }
        statements.push(Statement {
            sql,
            values,
            expected_rows: Some(chunk.len() as u64),
        });
    }
    for (key, before, delta) in rows {
        let mut after = before;
        after.add(&delta);
        read.rows.insert(key, after);
    }
    let changed = trail(
        backend,
        read,
        &deltas,
        transfers,
        provenances,
        now,
        &mut statements,
    );
    Ok(Some((changed, statements)))
}

/// Net change per row, and the first reason that touched it (for the feed).
fn net_changes(transfers: &[TransferSpec]) -> BTreeMap<StockKey, (Totals, TransferReason)> {
    let mut deltas: BTreeMap<StockKey, (Totals, TransferReason)> = BTreeMap::new();
    for transfer in transfers {
        debug_assert!(transfer.quantity > 0, "transfers move a positive quantity");
        if let (Some(key), Some(side)) = (transfer.from_key(), &transfer.from) {
            let entry = deltas
                .entry(key)
                .or_insert((Totals::default(), transfer.reason));
            *entry.0.get_mut(side.state) -= transfer.quantity;
        }
        if let (Some(key), Some(side)) = (transfer.to_key(), &transfer.to) {
            let entry = deltas
                .entry(key)
                .or_insert((Totals::default(), transfer.reason));
            *entry.0.get_mut(side.state) += transfer.quantity;
        }
    }
    deltas
}

/// The rows a write changes, with their figures after it, and the statements that make it.
pub(crate) type Prepared = (Vec<(StockKey, Totals)>, Vec<Statement>);

/// A stored row with its change and its figures after it.
type PresentRow = (StockKey, Totals, Totals);
/// A key with no stored row yet, with its change.
type MissingRow = (StockKey, Totals);

/// Checks every changed row against its locked (or read) figures; splits the rows into
/// stored ones, with their figures after the change, and keys with no stored row yet.
fn checked_rows(
    locked: &Locked,
    deltas: &BTreeMap<StockKey, (Totals, TransferReason)>,
) -> Result<(Vec<PresentRow>, Vec<MissingRow>), Error> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for (key, (delta, _)) in deltas {
        if !locked.contains(key) {
            return Err(Error::Internal(anyhow::anyhow!(
                "stock row {key:?} changed without being locked first"
            )));
        }
        let before = locked.totals(key);
        let mut after = before;
        after.add(delta);
        if after.has_negative() {
            return Err(Error::FailedPrecondition(format!(
                "not enough stock of SKU `{}` grade {} in pool `{}`: it has {} available, {} \
                 allocated, {} in recycle",
                key.sku,
                key.grade.label(),
                key.pool,
                before.available,
                before.allocated,
                before.recycle
            )));
        }
        if locked.rows.contains_key(key) {
            present.push((key.clone(), *delta, after));
        } else {
            missing.push((key.clone(), *delta));
        }
    }
    Ok((present, missing))
}

/// Appends the ledger rows of `transfers` and the change-feed entries of the changed rows
/// to `statements`; returns the changed rows with their figures after the change.
fn trail(
    backend: kosha_runtime::db::Backend,
    locked: &Locked,
    deltas: &BTreeMap<StockKey, (Totals, TransferReason)>,
    transfers: &[TransferSpec],
    provenances: &[&Provenance],
    now: i64,
    statements: &mut Vec<Statement>,
) -> Vec<(StockKey, Totals)> {
    statements.extend(ledger_statements(transfers, provenances, now));
    let changed: Vec<(StockKey, Totals)> = deltas
        .keys()
        .map(|key| (key.clone(), locked.totals(key)))
        .collect();
    let entries: Vec<(&StockKey, &Totals, TransferReason)> = changed
        .iter()
        .map(|(key, totals)| (key, totals, deltas[key].1))
        .collect();
    statements.extend(feed::statements(backend, &entries, now));
    changed
}

fn delta_values(values: &mut Vec<Value>, key: &StockKey, delta: &Totals) {
    values.push(Value::Text(key.client.to_string()));
    values.push(Value::Text(key.sku.to_string()));
    values.push(Value::Text(key.pool.to_string()));
    values.push(Value::Int(key.grade.code()));
    values.push(Value::Int(delta.available));
    values.push(Value::Int(delta.allocated));
    values.push(Value::Int(delta.recycle));
}

/// Ledger rows for `transfers`.
fn ledger_statements(
    transfers: &[TransferSpec],
    provenances: &[&Provenance],
    now: i64,
) -> Vec<Statement> {
    const COLUMNS: usize = 15;
    let pairs: Vec<(&TransferSpec, &Provenance)> =
        transfers.iter().zip(provenances.iter().copied()).collect();
    let mut statements = Vec::new();
    for chunk in pairs.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO ledger (client_id, sku, grade, from_pool, from_state, to_pool, \
             to_state, quantity, reason, actor, reference, idempotency_key, order_ref, line_id, \
             created_at) VALUES {}",
            values_placeholders(chunk.len(), COLUMNS, 1)
        );
        let mut values = Vec::with_capacity(chunk.len() * COLUMNS);
        for (transfer, provenance) in chunk {
            let (order_ref, line_id) = match &transfer.order_line {
                Some((order_ref, line_id)) => {
                    (Some(order_ref.to_string()), Some(line_id.to_string()))
                }
                None => (None, None),
            };
            values.extend([
                Value::Text(transfer.client.to_string()),
                Value::Text(transfer.sku.to_string()),
                Value::Int(transfer.grade.code()),
                Value::OptText(transfer.from.as_ref().map(|side| side.pool.to_string())),
                Value::OptInt(transfer.from.as_ref().map(|side| side.state.code())),
                Value::OptText(transfer.to.as_ref().map(|side| side.pool.to_string())),
                Value::OptInt(transfer.to.as_ref().map(|side| side.state.code())),
                Value::Int(transfer.quantity),
                Value::Int(transfer.reason.code()),
                Value::Text(provenance.actor.clone()),
                Value::Text(provenance.reference.clone()),
                Value::Text(provenance.idempotency_key.clone()),
                Value::OptText(order_ref),
                Value::OptText(line_id),
                Value::Int(now),
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

/// Reads a stock row's key and figures.
pub fn stock_row(row: &sqlx::any::AnyRow) -> Result<(StockKey, Totals), Error> {
    let key = StockKey {
        client: ClientId::from_stored(row.try_get("client_id")?),
        sku: Sku::from_stored(row.try_get("sku")?),
        pool: PoolName::from_stored(row.try_get("pool")?),
        grade: Grade::from_code(row.try_get("grade")?)?,
    };
    let totals = Totals {
        available: row.try_get("available")?,
        allocated: row.try_get("allocated")?,
        recycle: row.try_get("recycle")?,
    };
    Ok((key, totals))
}

/// Filters of a stock read.
#[derive(Debug, Default, Clone)]
pub struct StockFilter {
    /// Only these SKUs (empty: all).
    pub skus: Vec<Sku>,
    /// Only this pool.
    pub pool: Option<PoolName>,
    /// Only this grade.
    pub grade: Option<Grade>,
    /// Only rows after this (sku, pool, grade), for pagination.
    pub after: Option<(String, String, i64)>,
    /// At most this many rows.
    pub limit: Option<i64>,
}

/// Reads a client's stock rows with any units, by SKU, pool, grade.
pub async fn read(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    filter: &StockFilter,
) -> Result<Vec<(StockKey, Totals)>, Error> {
    let mut sql = String::from(
        "SELECT client_id, sku, pool, grade, available, allocated, recycle FROM stock \
         WHERE client_id = $1 AND (available <> 0 OR allocated <> 0 OR recycle <> 0)",
    );
    let mut next = 2;
    if !filter.skus.is_empty() {
        let placeholders: Vec<String> = (0..filter.skus.len())
            .map(|index| format!("${}", next + index))
            .collect();
        sql.push_str(&format!(" AND sku IN ({})", placeholders.join(", ")));
        next += filter.skus.len();
    }
    if filter.pool.is_some() {
        sql.push_str(&format!(" AND pool = ${next}"));
        next += 1;
    }
    if filter.grade.is_some() {
        sql.push_str(&format!(" AND grade = ${next}"));
        next += 1;
    }
    if filter.after.is_some() {
        sql.push_str(&format!(
            " AND (sku, pool, grade) > (${}, ${}, ${})",
            next,
            next + 1,
            next + 2
        ));
        next += 3;
    }
    sql.push_str(" ORDER BY sku, pool, grade");
    if filter.limit.is_some() {
        sql.push_str(&format!(" LIMIT ${next}"));
    }

    let mut query = sqlx::query(&sql).bind(client.as_str());
    for sku in &filter.skus {
        query = query.bind(sku.as_str());
    }
    if let Some(pool) = &filter.pool {
        query = query.bind(pool.as_str());
    }
    if let Some(grade) = filter.grade {
        query = query.bind(grade.code());
    }
    if let Some((sku, pool, grade)) = &filter.after {
        query = query.bind(sku.as_str()).bind(pool.as_str()).bind(*grade);
    }
    if let Some(limit) = filter.limit {
        query = query.bind(limit);
    }
    let rows = query.fetch_all(executor).await?;
    rows.iter().map(stock_row).collect()
}

/// Per pool of a client: summed figures and the number of SKUs with any units.
pub async fn pool_totals(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    pools: &[PoolName],
) -> Result<HashMap<PoolName, (Totals, i64)>, Error> {
    if pools.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (0..pools.len())
        .map(|index| format!("${}", index + 2))
        .collect();
    let sql = format!(
        "SELECT pool, CAST(COALESCE(SUM(available), 0) AS BIGINT) AS available, \
         CAST(COALESCE(SUM(allocated), 0) AS BIGINT) AS allocated, \
         CAST(COALESCE(SUM(recycle), 0) AS BIGINT) AS recycle, \
         COUNT(DISTINCT CASE WHEN available + allocated + recycle > 0 THEN sku END) AS skus \
         FROM stock WHERE client_id = $1 AND pool IN ({}) GROUP BY pool",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for pool in pools {
        query = query.bind(pool.as_str());
    }
    let mut totals = HashMap::new();
    for row in query.fetch_all(executor).await? {
        let pool = PoolName::from_stored(row.try_get("pool")?);
        let figures = Totals {
            available: row.try_get("available")?,
            allocated: row.try_get("allocated")?,
            recycle: row.try_get("recycle")?,
        };
        totals.insert(pool, (figures, row.try_get::<i64, _>("skus")?));
    }
    Ok(totals)
}

/// Locks every row of `pool` with AVAILABLE units (for the expiry sweep).
pub async fn lock_available_in_pool(
    tx: &mut Tx<'_>,
    db: &Db,
    locked: &mut Locked,
    client: &ClientId,
    pool: &PoolName,
) -> Result<Vec<StockKey>, Error> {
    let sql = format!(
        "SELECT client_id, sku, pool, grade, available, allocated, recycle FROM stock \
         WHERE client_id = $1 AND pool = $2 AND available > 0 ORDER BY sku, grade{}",
        db.for_update()
    );
    let rows = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(pool.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let (key, totals) = stock_row(&row)?;
        locked.rows.insert(key.clone(), totals);
        keys.push(key);
    }
    Ok(keys)
}
