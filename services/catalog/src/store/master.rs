use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::domain::{Channel, ChannelCode, ChannelKind, Client, ClientId};

/// Inserts a client unless one with its id exists; true when inserted.
pub async fn insert_client(conn: &mut AnyConnection, client: &Client) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO clients (client_id, display_name, create_time) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id) DO NOTHING",
    )
    .bind(client.client_id.as_str())
    .bind(&client.display_name)
    .bind(client.create_time)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// One client.
pub async fn get_client(conn: &mut AnyConnection, id: &ClientId) -> sqlx::Result<Option<Client>> {
    sqlx::query("SELECT client_id, display_name, create_time FROM clients WHERE client_id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| client_of(&row))
        .transpose()
}

/// Whether a client exists.
pub async fn client_exists(conn: &mut AnyConnection, id: &ClientId) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM clients WHERE client_id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Up to `limit` clients after `after_opt`, by id.
pub async fn list_clients(
    conn: &mut AnyConnection,
    after_opt: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Client>> {
    sqlx::query(
        "SELECT client_id, display_name, create_time FROM clients \
         WHERE client_id > $1 ORDER BY client_id LIMIT $2",
    )
    .bind(after_opt.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(client_of)
    .collect()
}

fn client_of(row: &AnyRow) -> sqlx::Result<Client> {
    Ok(Client {
        client_id: ClientId::from_stored(row.try_get("client_id")?),
        display_name: row.try_get("display_name")?,
        create_time: row.try_get("create_time")?,
    })
}

// === channels ===

/// Inserts a channel unless one with its code exists; true when inserted.
pub async fn insert_channel(conn: &mut AnyConnection, channel: &Channel) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO channels (code, display_name, kind, create_time) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (code) DO NOTHING",
    )
    .bind(channel.code.as_str())
    .bind(&channel.display_name)
    .bind(channel.kind.to_stored())
    .bind(channel.create_time)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// One channel.
pub async fn get_channel(
    conn: &mut AnyConnection,
    code: &ChannelCode,
) -> sqlx::Result<Option<Channel>> {
    sqlx::query("SELECT code, display_name, kind, create_time FROM channels WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| channel_of(&row))
        .transpose()
}

/// Up to `limit` channels after `after_opt`, by code.
pub async fn list_channels(
    conn: &mut AnyConnection,
    after_opt: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Channel>> {
    sqlx::query(
        "SELECT code, display_name, kind, create_time FROM channels \
         WHERE code > $1 ORDER BY code LIMIT $2",
    )
    .bind(after_opt.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(channel_of)
    .collect()
}

/// Every channel, by code. Channels are a handful of marketplaces, never thousands.
pub async fn all_channels(conn: &mut AnyConnection) -> sqlx::Result<Vec<Channel>> {
    sqlx::query("SELECT code, display_name, kind, create_time FROM channels ORDER BY code")
        .fetch_all(conn)
        .await?
        .iter()
        .map(channel_of)
        .collect()
}

/// The codes of every marketplace channel, by code.
pub async fn marketplaces(conn: &mut AnyConnection) -> sqlx::Result<Vec<ChannelCode>> {
    let channels = all_channels(conn).await?;
    Ok(channels
        .into_iter()
        .filter(|channel| channel.kind == ChannelKind::Marketplace)
        .map(|channel| channel.code)
        .collect())
}

fn channel_of(row: &AnyRow) -> sqlx::Result<Channel> {
    let kind: i64 = row.try_get("kind")?;
    Ok(Channel {
        code: ChannelCode::from_stored(row.try_get("code")?),
        display_name: row.try_get("display_name")?,
        kind: ChannelKind::from_stored(kind).map_err(|error| sqlx::Error::Decode(error.into()))?,
        create_time: row.try_get("create_time")?,
    })
}
