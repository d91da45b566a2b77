//! The first response of every keyed request, stored in the same transaction as the
//! request's effects.
//!
//! A key is scoped to its client (the empty client for calls across every client). The
//! request is stored whole, encoded, and compared byte for byte on a repeat: protobuf
//! encoding of a message without maps is deterministic, so the same request encodes the
//! same. Two concurrent first attempts with one key both reach the insert; the second one's
//! insert fails on the primary key and its transaction rolls back, and its retry finds the
//! first response.

use std::collections::HashMap;

use kosha_runtime::Error;
use sqlx::Row as _;

use crate::store::{self, MAX_ROWS_PER_STATEMENT, Statement, Tx, Value, values_placeholders};

/// A stored first response.
#[derive(Debug, Clone)]
pub struct Record {
    /// The call it answered, e.g. `Allocate`.
    pub method: String,
    /// The encoded request.
    pub request: Vec<u8>,
    /// The encoded response.
    pub response: Vec<u8>,
}

impl Record {
    /// The stored response when `method` and `request` repeat the first request, or
    /// `ALREADY_EXISTS` when the key was used for something else.
    pub fn replay(&self, key: &str, method: &str, request: &[u8]) -> Result<Vec<u8>, Error> {
        if self.method != method {
            return Err(Error::AlreadyExists(format!(
                "idempotency key `{key}` was already used for a {} request; use a new key for \
                 this {method} request",
                self.method
            )));
        }
        if self.request != request {
            return Err(Error::AlreadyExists(format!(
                "idempotency key `{key}` was already used for another {method} request with \
                 different contents; a retry must repeat the request exactly, a new request \
                 needs a new key"
            )));
        }
        Ok(self.response.clone())
    }
}

/// One record to write.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// Client scope.
    pub client: &'a str,
    /// The key.
    pub key: &'a str,
    /// The call.
    pub method: &'static str,
    /// Encoded request.
    pub request: &'a [u8],
    /// Encoded response.
    pub response: Vec<u8>,
}

/// Reads the record of one key.
pub async fn find(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    client: &str,
    key: &str,
) -> Result<Option<Record>, Error> {
    let row = sqlx::query(
        "SELECT method, request, response FROM idempotency WHERE client_id = $1 AND idem_key = $2",
    )
    .bind(client)
    .bind(key)
    .fetch_optional(executor)
    .await?;
    row.map(|row| record(&row)).transpose()
}

/// Reads the records of many keys, by (client, key).
pub async fn find_many(
    tx: &mut Tx<'_>,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), Record>, Error> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT client_id, idem_key, method, request, response FROM idempotency \
             WHERE (client_id, idem_key) IN (VALUES {})",
            values_placeholders(chunk.len(), 2, 1)
        );
        let mut query = sqlx::query(&sql);
        for (client, key) in chunk {
            query = query.bind(client.as_str()).bind(key.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let client: String = row.try_get("client_id")?;
            let key: String = row.try_get("idem_key")?;
            found.insert((client, key), record(&row)?);
        }
    }
    Ok(found)
}

/// Stores records; fails on a key stored concurrently (the caller retries).
pub async fn insert(tx: &mut Tx<'_>, records: &[NewRecord<'_>], now: i64) -> Result<(), Error> {
    store::run_each(tx, &insert_statements(records, now)).await
}

/// The statements of [`insert`], to run together with other writes.
pub(crate) fn insert_statements(records: &[NewRecord<'_>], now: i64) -> Vec<Statement> {
    let mut statements = Vec::new();
    for chunk in records.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO idempotency (client_id, idem_key, method, request, response, \
             created_at) VALUES {}",
            values_placeholders(chunk.len(), 6, 1)
        );
        let mut values = Vec::with_capacity(chunk.len() * 6);
        for record in chunk {
            values.extend([
                Value::Text(record.client.to_string()),
                Value::Text(record.key.to_string()),
                Value::Text(record.method.to_string()),
                Value::Bytes(record.request.to_vec()),
                Value::Bytes(record.response.clone()),
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

fn record(row: &sqlx::any::AnyRow) -> Result<Record, Error> {
    Ok(Record {
        method: row.try_get("method")?,
        request: row.try_get("request")?,
        response: row.try_get("response")?,
    })
}
