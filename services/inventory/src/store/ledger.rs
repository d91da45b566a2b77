//! Reading the ledger: transfers, and stock recomputed as of a past time.
//!
//! Transfers are stamped with the time their transaction wrote them. Two transactions
//! running at once may commit in the other order than their stamps, so "as of" a time is
//! exact for any time at which no transaction was in flight, and otherwise counts a
//! transfer by its stamp, not by its commit.

use std::collections::BTreeMap;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::time::to_timestamp;
use sqlx::Row as _;

use crate::domain::ids::{ClientId, OrderRef, PoolName, Sku};
use crate::domain::stock::{Grade, StockState, Totals};

const COLUMNS: &str = "id, client_id, sku, grade, from_pool, from_state, to_pool, to_state, \
                       quantity, reason, actor, reference, idempotency_key, order_ref, line_id, \
                       created_at";

/// Filters of [`list`].
#[derive(Debug, Default, Clone)]
pub struct LedgerFilter {
    /// Only this SKU.
    pub sku: Option<Sku>,
    /// Only transfers from or to this pool.
    pub pool: Option<PoolName>,
    /// Only this order.
    pub order_ref: Option<OrderRef>,
    /// Written at or after.
    pub start: Option<i64>,
    /// Written before.
    pub end: Option<i64>,
}

/// Lists a client's transfers by id, after `after_id`.
pub async fn list(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    filter: &LedgerFilter,
    after_id: i64,
    limit: i64,
) -> Result<Vec<pb::Transfer>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ledger WHERE client_id = $1 AND id > $2 \
         AND ($3 = '' OR sku = $3) AND ($4 = '' OR from_pool = $4 OR to_pool = $4) \
         AND ($5 = '' OR order_ref = $5) AND created_at >= $6 AND created_at < $7 \
         ORDER BY id LIMIT $8"
    );
    let rows = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(after_id)
        .bind(filter.sku.as_ref().map(Sku::to_string).unwrap_or_default())
        .bind(
            filter
                .pool
                .as_ref()
                .map(PoolName::to_string)
                .unwrap_or_default(),
        )
        .bind(
            filter
                .order_ref
                .as_ref()
                .map(OrderRef::to_string)
                .unwrap_or_default(),
        )
        .bind(filter.start.unwrap_or(i64::MIN))
        .bind(filter.end.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(transfer_row).collect()
}

/// Ids of the latest transfers touching one stock row (at most `limit`), oldest first.
pub async fn latest_ids_for_row(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &str,
    sku: &str,
    pool: &str,
    grade: i64,
    limit: i64,
) -> Result<Vec<i64>, Error> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM ledger WHERE client_id = $1 AND sku = $2 AND grade = $4 \
         AND (from_pool = $3 OR to_pool = $3) ORDER BY id DESC LIMIT $5",
    )
    .bind(client)
    .bind(sku)
    .bind(pool)
    .bind(grade)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    ids.reverse();
    Ok(ids)
}

/// Stock of one SKU per (pool, grade) as of `as_of`, from the ledger, and the last
/// transfer counted (zero when none).
pub async fn stock_as_of(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    sku: &Sku,
    as_of: i64,
) -> Result<(BTreeMap<(PoolName, Grade), Totals>, i64), Error> {
    let rows = sqlx::query(
        "SELECT pool, grade, state, CAST(SUM(quantity) AS BIGINT) AS units, \
         CAST(MAX(id) AS BIGINT) AS last_id FROM ( \
           SELECT id, to_pool AS pool, grade, to_state AS state, quantity FROM ledger \
           WHERE client_id = $1 AND sku = $2 AND created_at <= $3 AND to_pool IS NOT NULL \
           UNION ALL \
           SELECT id, from_pool AS pool, grade, from_state AS state, -quantity AS quantity \
           FROM ledger \
           WHERE client_id = $1 AND sku = $2 AND created_at <= $3 AND from_pool IS NOT NULL \
         ) AS moves GROUP BY pool, grade, state",
    )
    .bind(client.as_str())
    .bind(sku.as_str())
    .bind(as_of)
    .fetch_all(executor)
    .await?;

    let mut levels: BTreeMap<(PoolName, Grade), Totals> = BTreeMap::new();
    let mut last_id = 0;
    for row in rows {
        let pool = PoolName::from_stored(row.try_get("pool")?);
        let grade = Grade::from_code(row.try_get("grade")?)?;
        let state = StockState::from_code(row.try_get("state")?)?;
        let units: i64 = row.try_get("units")?;
        *levels.entry((pool, grade)).or_default().get_mut(state) += units;
        last_id = last_id.max(row.try_get::<i64, _>("last_id")?);
    }
    levels.retain(|_, totals| !totals.is_empty());
    Ok((levels, last_id))
}

fn transfer_row(row: &sqlx::any::AnyRow) -> Result<pb::Transfer, Error> {
    let side = |pool: Option<String>, state: Option<i64>| -> Result<Option<pb::BucketRef>, Error> {
        match (pool, state) {
            (Some(pool), Some(state)) => Ok(Some(pb::BucketRef {
                pool,
                state: StockState::from_code(state)?.to_proto(),
            })),
            _ => Ok(None),
        }
    };
    Ok(pb::Transfer {
        transfer_id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        sku: row.try_get("sku")?,
        grade: Grade::from_code(row.try_get("grade")?)?.to_proto(),
        from_bucket: side(row.try_get("from_pool")?, row.try_get("from_state")?)?,
        to_bucket: side(row.try_get("to_pool")?, row.try_get("to_state")?)?,
        quantity: row.try_get("quantity")?,
        reason: i32::try_from(row.try_get::<i64, _>("reason")?).unwrap_or_default(),
        actor: row.try_get("actor")?,
        reference: row.try_get("reference")?,
        idempotency_key: row.try_get("idempotency_key")?,
        order_ref: row
            .try_get::<Option<String>, _>("order_ref")?
            .unwrap_or_default(),
        line_id: row
            .try_get::<Option<String>, _>("line_id")?
            .unwrap_or_default(),
        create_time: Some(to_timestamp(row.try_get("created_at")?)),
    })
}
