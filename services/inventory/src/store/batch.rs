//! What an allocation batch reads before it decides: the idempotency records of its keys,
//! the pools it may draw on, the channels' assignments, and the earlier allocations of its
//! order lines (locked).
//!
//! On PostgreSQL all of it is one statement (a `UNION ALL` of the four reads, rows tagged
//! by part), so a batch spends one round trip on it rather than four; round trips, not
//! work, are most of an allocation's cost there. SQLite runs in-process and reads them one
//! by one.

use std::collections::HashMap;

use kosha_runtime::db::Backend;
use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::domain::ids::{ChannelCode, ClientId, PoolName, Sku};
use crate::domain::pool::PoolRecord;
use crate::domain::stock::{Grade, StockKey, Totals};
use crate::store::allocations::{self, AllocationRow, LineKey};
use crate::store::idempotency::{self, Record};
use crate::store::{Tx, Value, bind_values, pools, stock};

/// The keys a batch reads.
#[derive(Debug, Default)]
pub struct Keys {
    /// Idempotency keys, by (client, key).
    pub idempotency: Vec<(String, String)>,
    /// Pools named, and COMMON of every client.
    pub pools: Vec<(ClientId, PoolName)>,
    /// Channels named.
    pub channels: Vec<(ClientId, ChannelCode)>,
    /// Order lines, to lock.
    pub lines: Vec<LineKey>,
    /// Stock rows of lines allocated from a named pool, to lock.
    pub stock: Vec<StockKey>,
    /// Lines allocated for a channel, as (client, SKU, grade, channel): the stock row of
    /// the channel's assigned pool (COMMON without one) is locked. A pool not serving yet
    /// (or any more) sends the line to COMMON instead, whose row the caller then locks.
    pub stock_by_channel: Vec<(ClientId, Sku, Grade, ChannelCode)>,
}

/// What a batch read.
#[derive(Debug, Default)]
pub struct Context {
    /// Stored first responses.
    pub records: HashMap<(String, String), Record>,
    /// Pools found: those named, COMMON, and those assigned to the channels.
    pub pools: HashMap<(ClientId, PoolName), PoolRecord>,
    /// The pool assigned to each channel that has one.
    pub assignments: HashMap<(ClientId, ChannelCode), PoolName>,
    /// Earlier allocations of the lines, locked until the transaction ends.
    pub lines: HashMap<LineKey, AllocationRow>,
    /// Stock rows locked so far (on PostgreSQL: those of [`Keys::stock`] and
    /// [`Keys::stock_by_channel`]; on SQLite none, the write lock covers everything).
    pub locked: stock::Locked,
}

/// Reads the context of a batch in its transaction, locking the order lines and stock rows.
pub async fn read(tx: &mut Tx<'_>, db: &Db, keys: &Keys) -> Result<Context, Error> {
    if db.backend() == Backend::Sqlite {
        return read_one_by_one(tx, db, keys).await;
    }
    read_union(tx, keys, " FOR UPDATE").await
}

/// PostgreSQL only: the same reads outside any transaction, locking nothing, for a batch
/// written by compare-and-set (see [`crate::store::run_compared`]). The stock figures in
/// [`Context::locked`] are then those read, not locked ones.
pub async fn read_unlocked(
    connection: &mut sqlx::AnyConnection,
    keys: &Keys,
) -> Result<Context, Error> {
    read_union(connection, keys, "").await
}

/// The reads as one `UNION ALL` statement; `for_update` locks the lines and stock rows.
async fn read_union(
    connection: &mut sqlx::AnyConnection,
    keys: &Keys,
    for_update: &str,
) -> Result<Context, Error> {
    // One statement: each part a branch of the union, the same columns in every branch
    // (t* text, n* integers, b* bytes, named in every branch since any may come first),
    // tagged by `part`.
    const ALLOCATION: &str = "id, client_id, order_ref, line_id, sku, pool, grade, quantity, \
                              consumed, released, created_at, updated_at";
    let mut values: Vec<Value> = Vec::new();
    let mut in_list = |keys: &mut dyn Iterator<Item = Vec<String>>, width: usize| -> String {
        let mut rows = Vec::new();
        for key in keys {
            debug_assert_eq!(key.len(), width);
            let placeholders: Vec<String> = key
                .into_iter()
                .map(|part| {
                    values.push(Value::Text(part));
                    format!("${}", values.len())
                })
                .collect();
            rows.push(format!("({})", placeholders.join(", ")));
        }
        if rows.is_empty() {
            // No keys: a list nothing matches.
            let nulls = vec!["CAST(NULL AS TEXT)"; width].join(", ");
            format!("(VALUES ({nulls}))")
        } else {
            format!("(VALUES {})", rows.join(", "))
        }
    };
    let lines = in_list(
        &mut keys.lines.iter().map(|(client, order, line)| {
            vec![client.to_string(), order.to_string(), line.to_string()]
        }),
        3,
    );
    let records = in_list(
        &mut keys
            .idempotency
            .iter()
            .map(|(c, k)| vec![c.clone(), k.clone()]),
        2,
    );
    let named_pools = in_list(
        &mut keys
            .pools
            .iter()
            .map(|(c, p)| vec![c.to_string(), p.to_string()]),
        2,
    );
    let channels = in_list(
        &mut keys
            .channels
            .iter()
            .map(|(c, ch)| vec![c.to_string(), ch.to_string()]),
        2,
    );
    let stock_named = in_list(
        &mut keys.stock.iter().map(|key| {
            vec![
                key.client.to_string(),
                key.sku.to_string(),
                key.pool.to_string(),
                grade_text(key.grade),
            ]
        }),
        4,
    );
    let stock_by_channel = in_list(
        &mut keys
            .stock_by_channel
            .iter()
            .map(|(client, sku, grade, channel)| {
                vec![
                    client.to_string(),
                    sku.to_string(),
                    grade_text(*grade),
                    channel.to_string(),
                ]
            }),
        4,
    );
    let text = "CAST(NULL AS TEXT)";
    let int = "CAST(NULL AS BIGINT)";
    let bytes = "CAST(NULL AS BYTEA)";
    // Parts with no keys are left out rather than matched against an empty list: a
    // statement's cost on the server grows with its plan, not only with its rows.
    let mut ctes = Vec::new();
    if !keys.lines.is_empty() {
        ctes.push(format!(
            "locked AS (SELECT {ALLOCATION} FROM allocations \
               WHERE (client_id, order_ref, line_id) IN {lines} ORDER BY id{for_update})"
        ));
    }
    let mut stock_sources = Vec::new();
    if !keys.stock.is_empty() {
        stock_sources.push(format!(
            "SELECT column1, column2, column3, CAST(column4 AS BIGINT) FROM {stock_named} AS n"
        ));
    }
    if !keys.stock_by_channel.is_empty() {
        stock_sources.push(format!(
            "SELECT v.column1, v.column2, COALESCE(cp.pool, 'COMMON'), CAST(v.column3 AS BIGINT) \
             FROM {stock_by_channel} AS v LEFT JOIN channel_pools cp \
               ON cp.client_id = v.column1 AND cp.channel = v.column4"
        ));
    }
    if !stock_sources.is_empty() {
        ctes.push(format!(
            "stock_locked AS (SELECT client_id, sku, pool, grade, available, allocated, \
               recycle FROM stock WHERE (client_id, sku, pool, grade) IN ({}) \
             ORDER BY client_id, sku, pool, grade{for_update})",
            stock_sources.join(" UNION ALL ")
        ));
    }
    let mut parts = Vec::new();
    if !keys.idempotency.is_empty() {
        parts.push(format!(
            "SELECT 1 AS part, client_id AS t1, idem_key AS t2, method AS t3, {text} AS t4, \
               {text} AS t5, {int} AS n1, {int} AS n2, {int} AS n3, {int} AS n4, {int} AS n5, \
               {int} AS n6, {int} AS n7, request AS b1, response AS b2 \
             FROM idempotency WHERE (client_id, idem_key) IN {records}"
        ));
    }
    let assigned_pools = if keys.channels.is_empty() {
        String::new()
    } else {
        format!(
            " OR (p.client_id, p.name) IN (SELECT client_id, pool FROM channel_pools \
               WHERE (client_id, channel) IN {channels})"
        )
    };
    parts.push(format!(
        "SELECT 2 AS part, p.client_id AS t1, p.name AS t2, p.description AS t3, {text} AS t4, \
           {text} AS t5, p.activate_at AS n1, p.expire_at AS n2, p.created_at AS n3, \
           p.updated_at AS n4, {int} AS n5, {int} AS n6, {int} AS n7, {bytes} AS b1, \
           {bytes} AS b2 \
         FROM pools p WHERE (p.client_id, p.name) IN {named_pools}{assigned_pools}"
    ));
    if !keys.channels.is_empty() {
        parts.push(format!(
            "SELECT 3 AS part, client_id AS t1, channel AS t2, pool AS t3, {text} AS t4, \
               {text} AS t5, {int} AS n1, {int} AS n2, {int} AS n3, {int} AS n4, {int} AS n5, \
               {int} AS n6, {int} AS n7, {bytes} AS b1, {bytes} AS b2 \
             FROM channel_pools WHERE (client_id, channel) IN {channels}"
        ));
    }
    if !keys.lines.is_empty() {
        parts.push(format!(
            "SELECT 4 AS part, client_id AS t1, order_ref AS t2, line_id AS t3, sku AS t4, \
           pool AS t5, id AS n1, grade AS n2, quantity AS n3, consumed AS n4, released AS n5, \
           created_at AS n6, updated_at AS n7, {bytes} AS b1, {bytes} AS b2 FROM locked"
        ));
    }
    if !stock_sources.is_empty() {
        parts.push(format!(
            "SELECT 5 AS part, client_id AS t1, sku AS t2, pool AS t3, {text} AS t4, \
               {text} AS t5, grade AS n1, available AS n2, allocated AS n3, recycle AS n4, \
               {int} AS n5, {int} AS n6, {int} AS n7, {bytes} AS b1, {bytes} AS b2 \
             FROM stock_locked"
        ));
    }
    let with = if ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", ctes.join(", "))
    };
    let sql = format!("{with}{}", parts.join(" UNION ALL "));
    let rows = bind_values(sqlx::query(&sql), &values)
        .fetch_all(&mut *connection)
        .await?;

    let mut context = Context::default();
    for row in rows {
        let part: i32 = row.try_get("part")?;
        let t = |name: &str| -> Result<String, Error> {
            Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
        };
        let n = |name: &str| -> Result<Option<i64>, Error> { Ok(row.try_get(name)?) };
        let required = |name: &str| -> Result<i64, Error> {
            n(name)?.ok_or_else(|| Error::Internal(anyhow::anyhow!("`{name}` is missing")))
        };
        match part {
            1 => {
                let record = Record {
                    method: t("t3")?,
                    request: row.try_get::<Option<Vec<u8>>, _>("b1")?.unwrap_or_default(),
                    response: row.try_get::<Option<Vec<u8>>, _>("b2")?.unwrap_or_default(),
                };
                context.records.insert((t("t1")?, t("t2")?), record);
            }
            2 => {
                let pool = PoolRecord {
                    client: ClientId::from_stored(t("t1")?),
                    name: PoolName::from_stored(t("t2")?),
                    description: t("t3")?,
                    activate_at: n("n1")?,
                    expire_at: n("n2")?,
                    created_at: required("n3")?,
                    updated_at: required("n4")?,
                };
                context
                    .pools
                    .insert((pool.client.clone(), pool.name.clone()), pool);
            }
            3 => {
                context.assignments.insert(
                    (
                        ClientId::from_stored(t("t1")?),
                        ChannelCode::from_stored(t("t2")?),
                    ),
                    PoolName::from_stored(t("t3")?),
                );
            }
            5 => {
                let key = StockKey {
                    client: ClientId::from_stored(t("t1")?),
                    sku: Sku::from_stored(t("t2")?),
                    pool: PoolName::from_stored(t("t3")?),
                    grade: Grade::from_code(required("n1")?)?,
                };
                let totals = Totals {
                    available: required("n2")?,
                    allocated: required("n3")?,
                    recycle: required("n4")?,
                };
                context.locked.insert(key, totals);
            }
            _ => {
                let allocation = AllocationRow {
                    id: required("n1")?,
                    client: ClientId::from_stored(t("t1")?),
                    order_ref: crate::domain::ids::OrderRef::from_stored(t("t2")?),
                    line_id: crate::domain::ids::LineId::from_stored(t("t3")?),
                    sku: Sku::from_stored(t("t4")?),
                    pool: PoolName::from_stored(t("t5")?),
                    grade: Grade::from_code(required("n2")?)?,
                    quantity: required("n3")?,
                    consumed: required("n4")?,
                    released: required("n5")?,
                    created_at: required("n6")?,
                    updated_at: required("n7")?,
                };
                let key = (
                    allocation.client.clone(),
                    allocation.order_ref.clone(),
                    allocation.line_id.clone(),
                );
                context.lines.insert(key, allocation);
            }
        }
    }
    for key in &keys.stock {
        context.locked.note_absent(key);
    }
    Ok(context)
}

/// The same reads as separate statements.
async fn read_one_by_one(tx: &mut Tx<'_>, db: &Db, keys: &Keys) -> Result<Context, Error> {
    let records = idempotency::find_many(tx, &keys.idempotency).await?;
    let assignments = pools::assignments_many(tx, &keys.channels).await?;
    let mut pool_keys = keys.pools.clone();
    pool_keys.extend(
        assignments
            .iter()
            .map(|((client, _), pool)| (client.clone(), pool.clone())),
    );
    let pools = pools::get_many(tx, &pool_keys).await?;
    let lines = allocations::lock_lines(tx, db, &keys.lines).await?;
    Ok(Context {
        records,
        pools,
        assignments,
        lines,
        locked: stock::Locked::default(),
    })
}

/// A grade as text, for a key list of text columns (cast back in the query).
fn grade_text(grade: Grade) -> String {
    grade.code().to_string()
}
