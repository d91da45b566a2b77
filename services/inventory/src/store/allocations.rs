//! What each order line holds: one row per (client, order ref, line id), unique, which is
//! what makes a retried allocation find the first one instead of allocating again.

use std::collections::HashMap;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::time::to_timestamp;
use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::domain::ids::{ClientId, LineId, OrderRef, PoolName, Sku};
use crate::domain::stock::Grade;
use crate::store::{self, MAX_ROWS_PER_STATEMENT, Statement, Tx, Value, values_placeholders};

const COLUMNS: &str = "id, client_id, order_ref, line_id, sku, pool, grade, quantity, consumed, \
                       released, created_at, updated_at";

/// One order line's allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRow {
    /// Stored id.
    pub id: i64,
    /// Owner.
    pub client: ClientId,
    /// The order.
    pub order_ref: OrderRef,
    /// The line.
    pub line_id: LineId,
    /// SKU.
    pub sku: Sku,
    /// Pool of the units held.
    pub pool: PoolName,
    /// Grade of the units held.
    pub grade: Grade,
    /// Units held open.
    pub quantity: i64,
    /// Units consumed so far.
    pub consumed: i64,
    /// Units released so far.
    pub released: i64,
    /// First allocated.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

impl AllocationRow {
    /// As the contract's message.
    pub fn to_proto(&self) -> pb::Allocation {
        pb::Allocation {
            allocation_id: self.id,
            client_id: self.client.to_string(),
            order_ref: self.order_ref.to_string(),
            line_id: self.line_id.to_string(),
            sku: self.sku.to_string(),
            pool: self.pool.to_string(),
            grade: self.grade.to_proto(),
            quantity: self.quantity,
            consumed: self.consumed,
            released: self.released,
            create_time: Some(to_timestamp(self.created_at)),
            update_time: Some(to_timestamp(self.updated_at)),
        }
    }
}

/// A line key.
pub type LineKey = (ClientId, OrderRef, LineId);

/// Locks the stored allocations of `lines` (those that exist).
pub async fn lock_lines(
    tx: &mut Tx<'_>,
    db: &Db,
    lines: &[LineKey],
) -> Result<HashMap<LineKey, AllocationRow>, Error> {
    let mut found = HashMap::new();
    for chunk in lines.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {COLUMNS} FROM allocations WHERE (client_id, order_ref, line_id) IN \
             (VALUES {}) ORDER BY id{}",
            values_placeholders(chunk.len(), 3, 1),
            db.for_update()
        );
        let mut query = sqlx::query(&sql);
        for (client, order_ref, line_id) in chunk {
            query = query
                .bind(client.as_str())
                .bind(order_ref.as_str())
                .bind(line_id.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let allocation = allocation_row(&row)?;
            let key = (
                allocation.client.clone(),
                allocation.order_ref.clone(),
                allocation.line_id.clone(),
            );
            found.insert(key, allocation);
        }
    }
    Ok(found)
}

/// Locks every stored allocation of an order, by line id.
pub async fn lock_order(
    tx: &mut Tx<'_>,
    db: &Db,
    client: &ClientId,
    order_ref: &OrderRef,
) -> Result<Vec<AllocationRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM allocations WHERE client_id = $1 AND order_ref = $2 \
         ORDER BY id{}",
        db.for_update()
    );
    let rows = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(order_ref.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let mut allocations: Vec<AllocationRow> =
        rows.iter().map(allocation_row).collect::<Result<_, _>>()?;
    allocations.sort_by(|a, b| a.line_id.cmp(&b.line_id));
    Ok(allocations)
}

/// A new allocation to store.
#[derive(Debug, Clone)]
pub struct NewAllocation<'a> {
    /// Owner.
    pub client: &'a ClientId,
    /// The order.
    pub order_ref: &'a OrderRef,
    /// The line.
    pub line_id: &'a LineId,
    /// SKU.
    pub sku: &'a Sku,
    /// Pool.
    pub pool: &'a PoolName,
    /// Grade.
    pub grade: Grade,
    /// Units.
    pub quantity: i64,
}

/// Stores new allocations; a line stored concurrently fails the call (the caller retries).
pub(crate) fn insert_statements(rows: &[NewAllocation<'_>], now: i64) -> Vec<Statement> {
    let mut statements = Vec::new();
    for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO allocations (client_id, order_ref, line_id, sku, pool, grade, quantity, \
             consumed, released, created_at, updated_at) VALUES {}",
            (0..chunk.len())
                .map(|index| {
                    let base = 2 + index * 7;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 0, 0, $1, $1)",
                        base,
                        base + 1,
                        base + 2,
                        base + 3,
                        base + 4,
                        base + 5,
                        base + 6
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut values = vec![Value::Int(now)];
        for row in chunk {
            values.extend([
                Value::Text(row.client.to_string()),
                Value::Text(row.order_ref.to_string()),
                Value::Text(row.line_id.to_string()),
                Value::Text(row.sku.to_string()),
                Value::Text(row.pool.to_string()),
                Value::Int(row.grade.code()),
                Value::Int(row.quantity),
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

/// Writes an allocation's figures, pool and grade back.
pub async fn update(tx: &mut Tx<'_>, row: &AllocationRow, now: i64) -> Result<(), Error> {
    store::run_each(tx, &[update_statement(row, now)]).await
}

/// For a write by compare-and-set: a part that finds the stored allocations of `lines` and
/// expects none, so the write is undone when one of them already exists. (A line the write
/// inserts needs no such part: the insert itself collides.)
pub(crate) fn absent_statements(lines: &[LineKey]) -> Vec<Statement> {
    let mut statements = Vec::new();
    for chunk in lines.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT 1 FROM allocations WHERE (client_id, order_ref, line_id) IN (VALUES {})",
            values_placeholders(chunk.len(), 3, 1)
        );
        let values = chunk
            .iter()
            .flat_map(|(client, order_ref, line_id)| {
                [
                    Value::Text(client.to_string()),
                    Value::Text(order_ref.to_string()),
                    Value::Text(line_id.to_string()),
                ]
            })
            .collect();
        statements.push(Statement {
            sql,
            values,
            expected_rows: Some(0),
        });
    }
    statements
}

/// The statement of [`update`], to run together with other writes.
pub(crate) fn update_statement(row: &AllocationRow, now: i64) -> Statement {
    debug_assert!(row.quantity >= 0 && row.consumed >= 0 && row.released >= 0);
    Statement {
        sql: "UPDATE allocations SET pool = $2, grade = $3, quantity = $4, consumed = $5, \
              released = $6, updated_at = $7 WHERE id = $1"
            .to_string(),
        values: vec![
            Value::Int(row.id),
            Value::Text(row.pool.to_string()),
            Value::Int(row.grade.code()),
            Value::Int(row.quantity),
            Value::Int(row.consumed),
            Value::Int(row.released),
            Value::Int(now),
        ],
        expected_rows: Some(1),
    }
}

/// Filters of [`list`].
#[derive(Debug, Default, Clone)]
pub struct AllocationFilter {
    /// Only this order.
    pub order_ref: Option<OrderRef>,
    /// Only this SKU.
    pub sku: Option<Sku>,
    /// Only this pool.
    pub pool: Option<PoolName>,
    /// Only rows holding units.
    pub open_only: bool,
}

/// Lists a client's allocations by id, after `after_id`.
pub async fn list(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    filter: &AllocationFilter,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AllocationRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM allocations WHERE client_id = $1 AND id > $2 \
         AND ($3 = '' OR order_ref = $3) AND ($4 = '' OR sku = $4) AND ($5 = '' OR pool = $5) \
         AND ($6 = 0 OR quantity > 0) ORDER BY id LIMIT $7"
    );
    let rows = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(after_id)
        .bind(
            filter
                .order_ref
                .as_ref()
                .map(OrderRef::to_string)
                .unwrap_or_default(),
        )
        .bind(filter.sku.as_ref().map(Sku::to_string).unwrap_or_default())
        .bind(
            filter
                .pool
                .as_ref()
                .map(PoolName::to_string)
                .unwrap_or_default(),
        )
        .bind(i64::from(filter.open_only))
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(allocation_row).collect()
}

/// Reads an allocation row.
pub fn allocation_row(row: &sqlx::any::AnyRow) -> Result<AllocationRow, Error> {
    Ok(AllocationRow {
        id: row.try_get("id")?,
        client: ClientId::from_stored(row.try_get("client_id")?),
        order_ref: OrderRef::from_stored(row.try_get("order_ref")?),
        line_id: LineId::from_stored(row.try_get("line_id")?),
        sku: Sku::from_stored(row.try_get("sku")?),
        pool: PoolName::from_stored(row.try_get("pool")?),
        grade: Grade::from_code(row.try_get("grade")?)?,
        quantity: row.try_get("quantity")?,
        consumed: row.try_get("consumed")?,
        released: row.try_get("released")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
