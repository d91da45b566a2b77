//! Pools, channel assignments and safety buffers.

use std::collections::HashMap;

use kosha_runtime::Error;
use sqlx::Row as _;

use crate::domain::ids::{ChannelCode, ClientId, PoolName};
use crate::domain::pool::PoolRecord;
use crate::store::{MAX_ROWS_PER_STATEMENT, Tx, values_placeholders};

const POOL_COLUMNS: &str =
    "client_id, name, description, activate_at, expire_at, created_at, updated_at";

/// Creates the client's COMMON pool if it does not exist yet.
pub async fn ensure_common(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO pools (client_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, 'Default pool: serves every channel without a pool of its own', $3, $3) \
         ON CONFLICT (client_id, name) DO NOTHING",
    )
    .bind(client.as_str())
    .bind(PoolName::common().as_str())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Reads one pool.
pub async fn get(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    name: &PoolName,
) -> Result<Option<PoolRecord>, Error> {
    let sql = format!("SELECT {POOL_COLUMNS} FROM pools WHERE client_id = $1 AND name = $2");
    let row = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(name.as_str())
        .fetch_optional(executor)
        .await?;
    row.map(|row| pool_row(&row)).transpose()
}

/// Reads many pools by (client, name).
pub async fn get_many(
    tx: &mut Tx<'_>,
    keys: &[(ClientId, PoolName)],
) -> Result<HashMap<(ClientId, PoolName), PoolRecord>, Error> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM pools WHERE (client_id, name) IN (VALUES {})",
            values_placeholders(chunk.len(), 2, 1)
        );
        let mut query = sqlx::query(&sql);
        for (client, name) in chunk {
            query = query.bind(client.as_str()).bind(name.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let pool = pool_row(&row)?;
            found.insert((pool.client.clone(), pool.name.clone()), pool);
        }
    }
    Ok(found)
}

/// Lists a client's pools by name, after `after`.
pub async fn list(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PoolRecord>, Error> {
    let sql = format!(
        "SELECT {POOL_COLUMNS} FROM pools WHERE client_id = $1 AND name > $2 ORDER BY name \
         LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(pool_row).collect()
}

/// Pools past their expiry time, optionally of one client or one pool.
pub async fn expired(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client_opt: Option<&ClientId>,
    pool_opt: Option<&PoolName>,
    now: i64,
) -> Result<Vec<PoolRecord>, Error> {
    let sql = format!(
        "SELECT {POOL_COLUMNS} FROM pools WHERE expire_at IS NOT NULL AND expire_at <= $1 \
         AND name <> 'COMMON' AND ($2 = '' OR client_id = $2) AND ($3 = '' OR name = $3) \
         ORDER BY client_id, name"
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(client_opt.map(ClientId::to_string).unwrap_or_default())
        .bind(pool_opt.map(PoolName::to_string).unwrap_or_default())
        .fetch_all(executor)
        .await?;
    rows.iter().map(pool_row).collect()
}

/// Stores a new pool; `ALREADY_EXISTS` when the name is taken.
pub async fn insert(tx: &mut Tx<'_>, pool: &PoolRecord) -> Result<(), Error> {
    let result = sqlx::query(
        "INSERT INTO pools (client_id, name, description, activate_at, expire_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(pool.client.as_str())
    .bind(pool.name.as_str())
    .bind(pool.description.as_str())
    .bind(pool.activate_at)
    .bind(pool.expire_at)
    .bind(pool.created_at)
    .bind(pool.updated_at)
    .execute(&mut **tx)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if kosha_runtime::db::is_unique_violation(&error) => {
            Err(Error::AlreadyExists(format!(
                "pool `{}` of client `{}` already exists",
                pool.name, pool.client
            )))
        }
        Err(error) => Err(error.into()),
    }
}

/// Changes a pool's activation and expiry times.
pub async fn set_schedule(
    tx: &mut Tx<'_>,
    client: &ClientId,
    name: &PoolName,
    activate_at: Option<i64>,
    expire_at: Option<i64>,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE pools SET activate_at = $3, expire_at = $4, updated_at = $5 \
         WHERE client_id = $1 AND name = $2",
    )
    .bind(client.as_str())
    .bind(name.as_str())
    .bind(activate_at)
    .bind(expire_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes a pool and its channel assignments; returns the channels it served. The ledger
/// keeps the pool's name: a pool created later under the same name continues its (empty)
/// stock rows and shows the old transfers in its history.
pub async fn delete(
    tx: &mut Tx<'_>,
    client: &ClientId,
    name: &PoolName,
) -> Result<Vec<ChannelCode>, Error> {
    let channels = channels_of(&mut **tx, client, std::slice::from_ref(name))
        .await?
        .remove(name)
        .unwrap_or_default();
    sqlx::query("DELETE FROM channel_pools WHERE client_id = $1 AND pool = $2")
        .bind(client.as_str())
        .bind(name.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pools WHERE client_id = $1 AND name = $2")
        .bind(client.as_str())
        .bind(name.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(channels)
}

/// Locks a pool's row for the rest of the transaction (no-op lock on SQLite).
pub async fn lock(
    tx: &mut Tx<'_>,
    for_update: &str,
    client: &ClientId,
    name: &PoolName,
) -> Result<Option<PoolRecord>, Error> {
    let sql =
        format!("SELECT {POOL_COLUMNS} FROM pools WHERE client_id = $1 AND name = $2{for_update}");
    let row = sqlx::query(&sql)
        .bind(client.as_str())
        .bind(name.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| pool_row(&row)).transpose()
}

/// The channels assigned to each of `pools`, by code.
pub async fn channels_of(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    pools: &[PoolName],
) -> Result<HashMap<PoolName, Vec<ChannelCode>>, Error> {
    if pools.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (0..pools.len())
        .map(|index| format!("${}", index + 2))
        .collect();
    let sql = format!(
        "SELECT pool, channel FROM channel_pools WHERE client_id = $1 AND pool IN ({}) \
         ORDER BY pool, channel",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for pool in pools {
        query = query.bind(pool.as_str());
    }
    let mut channels: HashMap<PoolName, Vec<ChannelCode>> = HashMap::new();
    for row in query.fetch_all(executor).await? {
        let pool = PoolName::from_stored(row.try_get("pool")?);
        channels
            .entry(pool)
            .or_default()
            .push(ChannelCode::from_stored(row.try_get("channel")?));
    }
    Ok(channels)
}

/// The pool assigned to a channel, if any.
pub async fn assignment(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    channel: &ChannelCode,
) -> Result<Option<PoolName>, Error> {
    let pool: Option<String> =
        sqlx::query_scalar("SELECT pool FROM channel_pools WHERE client_id = $1 AND channel = $2")
            .bind(client.as_str())
            .bind(channel.as_str())
            .fetch_optional(executor)
            .await?;
    Ok(pool.map(PoolName::from_stored))
}

/// The pools assigned to many channels, by (client, channel).
pub async fn assignments_many(
    tx: &mut Tx<'_>,
    keys: &[(ClientId, ChannelCode)],
) -> Result<HashMap<(ClientId, ChannelCode), PoolName>, Error> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT client_id, channel, pool FROM channel_pools \
             WHERE (client_id, channel) IN (VALUES {})",
            values_placeholders(chunk.len(), 2, 1)
        );
        let mut query = sqlx::query(&sql);
        for (client, channel) in chunk {
            query = query.bind(client.as_str()).bind(channel.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert(
                (
                    ClientId::from_stored(row.try_get("client_id")?),
                    ChannelCode::from_stored(row.try_get("channel")?),
                ),
                PoolName::from_stored(row.try_get("pool")?),
            );
        }
    }
    Ok(found)
}

/// Assigns a channel to a pool, replacing any earlier assignment.
pub async fn assign(
    tx: &mut Tx<'_>,
    client: &ClientId,
    channel: &ChannelCode,
    pool: &PoolName,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO channel_pools (client_id, channel, pool, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, channel) DO UPDATE SET pool = excluded.pool, \
         updated_at = excluded.updated_at",
    )
    .bind(client.as_str())
    .bind(channel.as_str())
    .bind(pool.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes a channel's assignment.
pub async fn unassign(
    tx: &mut Tx<'_>,
    client: &ClientId,
    channel: &ChannelCode,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM channel_pools WHERE client_id = $1 AND channel = $2")
        .bind(client.as_str())
        .bind(channel.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A channel's safety buffer: (units, last change).
pub async fn safety_buffer(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    channel: &ChannelCode,
) -> Result<Option<(i64, i64)>, Error> {
    let row = sqlx::query(
        "SELECT quantity, updated_at FROM safety_buffers WHERE client_id = $1 AND channel = $2",
    )
    .bind(client.as_str())
    .bind(channel.as_str())
    .fetch_optional(executor)
    .await?;
    match row {
        Some(row) => Ok(Some((row.try_get("quantity")?, row.try_get("updated_at")?))),
        None => Ok(None),
    }
}

/// Sets a safety buffer (zero deletes it).
pub async fn set_safety_buffer(
    tx: &mut Tx<'_>,
    client: &ClientId,
    channel: &ChannelCode,
    quantity: i64,
    now: i64,
) -> Result<(), Error> {
    if quantity == 0 {
        sqlx::query("DELETE FROM safety_buffers WHERE client_id = $1 AND channel = $2")
            .bind(client.as_str())
            .bind(channel.as_str())
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO safety_buffers (client_id, channel, quantity, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, channel) DO UPDATE SET \
         quantity = excluded.quantity, updated_at = excluded.updated_at",
    )
    .bind(client.as_str())
    .bind(channel.as_str())
    .bind(quantity)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A client's safety buffers by channel, after `after`.
pub async fn list_safety_buffers(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &ClientId,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(ChannelCode, i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT channel, quantity, updated_at FROM safety_buffers \
         WHERE client_id = $1 AND channel > $2 ORDER BY channel LIMIT $3",
    )
    .bind(client.as_str())
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(executor)
    .await?;
    let mut buffers = Vec::with_capacity(rows.len());
    for row in rows {
        buffers.push((
            ChannelCode::from_stored(row.try_get("channel")?),
            row.try_get("quantity")?,
            row.try_get("updated_at")?,
        ));
    }
    Ok(buffers)
}

fn pool_row(row: &sqlx::any::AnyRow) -> Result<PoolRecord, Error> {
    Ok(PoolRecord {
        client: ClientId::from_stored(row.try_get("client_id")?),
        name: PoolName::from_stored(row.try_get("name")?),
        description: row.try_get("description")?,
        activate_at: row.try_get("activate_at")?,
        expire_at: row.try_get("expire_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
