use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Binder, CHUNK_ROWS, INSERT_ROWS};
use crate::domain::{ChannelCode, ClientId, Listing, Resolved, Sku};

const LISTING_COLUMNS: &str = "client_id, channel, marketplace_sku, sku, update_time";

/// Writes listings, replacing the client SKU of any that exist, [`INSERT_ROWS`] per
/// statement. Each entry is (channel, marketplace SKU, client SKU); no key may repeat.
pub async fn upsert(
    conn: &mut AnyConnection,
    client: &ClientId,
    listings: &[(&ChannelCode, &Sku, &Sku)],
    now: i64,
) -> sqlx::Result<()> {
    for chunk in listings.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO listings ({LISTING_COLUMNS}) VALUES {} \
             ON CONFLICT (client_id, channel, marketplace_sku) \
             DO UPDATE SET sku = excluded.sku, update_time = excluded.update_time",
            Binder::new(conn).rows(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (channel, marketplace_sku, sku) in chunk {
            query = query
                .bind(client.as_str())
                .bind(channel.as_str())
                .bind(marketplace_sku.as_str())
                .bind(sku.as_str())
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The client SKU each of one chunk of (channel, marketplace SKU) keys maps to now.
pub async fn current_skus(
    conn: &mut AnyConnection,
    client: &ClientId,
    keys: &[(&ChannelCode, &Sku)],
) -> sqlx::Result<HashMap<(String, String), String>> {
    debug_assert!(keys.len() <= CHUNK_ROWS);
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    // A row-value IN over a VALUES list: one query for the chunk, whatever its channels.
    let mut binder = Binder::new(conn);
    let sql = format!(
        "SELECT channel, marketplace_sku, sku FROM listings \
         WHERE client_id = {} AND (channel, marketplace_sku) IN (VALUES {})",
        binder.next(),
        binder.rows(keys.len(), 2)
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for (channel, marketplace_sku) in keys {
        query = query.bind(channel.as_str()).bind(marketplace_sku.as_str());
    }
    let mut found = HashMap::new();
    for row in query.fetch_all(conn).await? {
        let key = (row.try_get("channel")?, row.try_get("marketplace_sku")?);
        found.insert(key, row.try_get("sku")?);
    }
    Ok(found)
}

/// One listing.
pub async fn get(
    conn: &mut AnyConnection,
    client: &ClientId,
    channel: &ChannelCode,
    marketplace_sku: &Sku,
) -> sqlx::Result<Option<Listing>> {
    let sql = format!(
        "SELECT {LISTING_COLUMNS} FROM listings \
         WHERE client_id = $1 AND channel = $2 AND marketplace_sku = $3"
    );
    sqlx::query(&sql)
        .bind(client.as_str())
        .bind(channel.as_str())
        .bind(marketplace_sku.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| listing_of(&row))
        .transpose()
}

/// Removes one listing; false when there was none.
pub async fn delete(
    conn: &mut AnyConnection,
    client: &ClientId,
    channel: &ChannelCode,
    marketplace_sku: &Sku,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "DELETE FROM listings WHERE client_id = $1 AND channel = $2 AND marketplace_sku = $3",
    )
    .bind(client.as_str())
    .bind(channel.as_str())
    .bind(marketplace_sku.as_str())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Up to `limit` listings after the key `after_opt` (channel, marketplace SKU), in key
/// order, optionally of one channel or one client SKU.
pub async fn list(
    conn: &mut AnyConnection,
    client: &ClientId,
    channel_opt: Option<&ChannelCode>,
    sku_opt: Option<&Sku>,
    after_opt: Option<(&str, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<Listing>> {
    let (after_channel, after_marketplace_sku) = after_opt.unwrap_or(("", ""));
    // Empty filters match everything; written this way the statement text never varies.
    let sql = format!(
        "SELECT {LISTING_COLUMNS} FROM listings WHERE client_id = $1 \
         AND (channel > $2 OR (channel = $2 AND marketplace_sku > $3)) \
         AND ($4 = '' OR channel = $4) AND ($5 = '' OR sku = $5) \
         ORDER BY channel, marketplace_sku LIMIT $6"
    );
    sqlx::query(&sql)
        .bind(client.as_str())
        .bind(after_channel)
        .bind(after_marketplace_sku)
        .bind(channel_opt.map_or("", ChannelCode::as_str))
        .bind(sku_opt.map_or("", Sku::as_str))
        .bind(limit)
        .fetch_all(conn)
        .await?
        .iter()
        .map(listing_of)
        .collect()
}

/// What each of one chunk of marketplace SKUs of `channel` maps to; unknown ones are
/// absent.
pub async fn resolve(
    conn: &mut AnyConnection,
    client: &ClientId,
    channel: &ChannelCode,
    marketplace_skus: &[&str],
) -> sqlx::Result<Vec<Resolved>> {
    debug_assert!(marketplace_skus.len() <= CHUNK_ROWS);
    if marketplace_skus.is_empty() {
        return Ok(Vec::new());
    }
    // On PostgreSQL the keys travel as one JSON array and each is looked up through the
    // listing's key. With a list of parameters the planner scans a small client's whole
    // listing table instead, which costs more than the lookups, and the statement's text
    // differs with every count of keys. JSON rather than an array keeps one cached plan:
    // the planner knows an array constant's length and plans each call anew, which
    // costs more than running it. SKUs hold nothing JSON would escape; a key that does
    // takes the list.
    let as_one = conn.backend_name() == "PostgreSQL"
        && marketplace_skus.iter().all(|sku| {
            sku.chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        });
    let sql;
    let query = if as_one {
        sqlx::query(
            "SELECT k.m AS marketplace_sku, x.sku, COALESCE((SELECT p.active FROM products p \
             WHERE p.client_id = $1 AND p.sku = x.sku), -1) AS active \
             FROM json_array_elements_text(CAST($3 AS json)) AS k (m) CROSS JOIN LATERAL \
             (SELECT l.sku FROM listings l WHERE l.client_id = $1 AND l.channel = $2 \
             AND l.marketplace_sku = k.m LIMIT 1) AS x",
        )
        .bind(client.as_str())
        .bind(channel.as_str())
        .bind(format!("[\"{}\"]", marketplace_skus.join("\",\"")))
    } else {
        let mut binder = Binder::new(conn);
        // The product is looked up per listing through its key: a join may be planned as
        // a scan of the client's whole product master, which costs more with every
        // product. A listing whose product is gone reads -1 and counts as unknown.
        sql = format!(
            "SELECT l.marketplace_sku, l.sku, COALESCE((SELECT p.active FROM products p \
             WHERE p.client_id = l.client_id AND p.sku = l.sku), -1) AS active \
             FROM listings l WHERE l.client_id = {} AND l.channel = {} \
             AND l.marketplace_sku IN ({})",
            binder.next(),
            binder.next(),
            binder.list(marketplace_skus.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(client.as_str())
            .bind(channel.as_str());
        for marketplace_sku in marketplace_skus {
            query = query.bind(*marketplace_sku);
        }
        query
    };
    let mut resolved = Vec::new();
    for row in query.fetch_all(conn).await? {
        let active: i64 = row.try_get("active")?;
        if active < 0 {
            continue;
        }
        resolved.push(Resolved {
            marketplace_sku: Sku::from_stored(row.try_get("marketplace_sku")?),
            sku: Sku::from_stored(row.try_get("sku")?),
            active: active == 1,
        });
    }
    Ok(resolved)
}

fn listing_of(row: &AnyRow) -> sqlx::Result<Listing> {
    Ok(Listing {
        client_id: ClientId::from_stored(row.try_get("client_id")?),
        channel: ChannelCode::from_stored(row.try_get("channel")?),
        marketplace_sku: Sku::from_stored(row.try_get("marketplace_sku")?),
        sku: Sku::from_stored(row.try_get("sku")?),
        update_time: row.try_get("update_time")?,
    })
}
