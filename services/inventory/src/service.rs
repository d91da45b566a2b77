//! The inventory operations: each checks its request, runs in one database transaction,
//! and records its response under the request's idempotency key in that transaction.
//!
//! - [`pools`]: pools, channel assignments, expiry;
//! - [`movements`]: receive, move, recycle, make live, adjust;
//! - [`orders`]: allocate (in batches), release, consume;
//! - [`queries`]: stock, availability, allocations, ledger, explain, audit, change feed.

pub mod movements;
pub mod orders;
pub mod pools;
pub mod queries;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kosha_runtime::{Db, Error};
use prost::Message;
use tokio::sync::Notify;

use crate::domain::ids::{ClientId, IdempotencyKey, PoolName};
use crate::domain::pool::PoolRecord;
use crate::domain::stock::{Side, StockState, TransferReason, TransferSpec};
use crate::store::{self, Tx, idempotency};

/// Attempts of a transaction that lost a race (a unique key, a deadlock) before the error
/// reaches the caller.
const MAX_ATTEMPTS: u32 = 5;

/// The inventory of every client in one database.
#[derive(Debug, Clone)]
pub struct Inventory {
    db: Db,
    /// Wakes the outbox delivery loop after a commit that queued a scheduler job.
    outbox_wake: Arc<Notify>,
    /// What compared allocation batches read, kept between batches.
    read_cache: Arc<crate::store::read_cache::ReadCache>,
}

impl Inventory {
    /// Inventory over `db` (migrated).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            outbox_wake: Arc::new(Notify::new()),
            read_cache: Arc::default(),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Notified whenever a committed change queued a scheduler job.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// The stored response of a repeated request, decoded; `ALREADY_EXISTS` when the key
    /// was used for another request.
    async fn replay<R: Message + Default>(
        &self,
        tx: &mut Tx<'_>,
        scope: &str,
        key: &IdempotencyKey,
        method: &'static str,
        request: &[u8],
    ) -> Result<Option<R>, Error> {
        let Some(record) = idempotency::find(&mut **tx, scope, key.as_str()).await? else {
            return Ok(None);
        };
        let bytes = record.replay(key.as_str(), method, request)?;
        let response = R::decode(bytes.as_slice())
            .map_err(|error| Error::Internal(anyhow::anyhow!("stored response: {error}")))?;
        tracing::debug!(method, key = %key, "repeated request answered from its first response");
        Ok(Some(response))
    }

    /// Records the response of a keyed request in its transaction.
    // The record's parts are passed apart, as `replay` takes them, so every operation
    // reads the same way.
    #[allow(clippy::too_many_arguments)]
    async fn remember<R: Message>(
        &self,
        tx: &mut Tx<'_>,
        scope: &str,
        key: &IdempotencyKey,
        method: &'static str,
        request: &[u8],
        response: &R,
        now: i64,
    ) -> Result<(), Error> {
        let record = idempotency::NewRecord {
            client: scope,
            key: key.as_str(),
            method,
            request,
            response: response.encode_to_vec(),
        };
        idempotency::insert(tx, &[record], now).await
    }

    /// A pool that must exist, for a write; COMMON is created on first use.
    async fn existing_pool(
        &self,
        tx: &mut Tx<'_>,
        client: &ClientId,
        name: &PoolName,
        field: &str,
        now: i64,
    ) -> Result<PoolRecord, Error> {
        if name.is_common() {
            store::pools::ensure_common(&mut **tx, client, now).await?;
        }
        store::pools::get(&mut **tx, client, name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "pool `{name}` of client `{client}` not found ({field})"
                ))
            })
    }
}

/// Runs `attempt` again when it lost a race to a concurrent transaction; each attempt is
/// its own transaction, so a retry sees what the winner committed (for a repeated
/// idempotency key: the first response).
pub async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(error) if tries < MAX_ATTEMPTS && store::is_retryable(&error) => {
                tracing::debug!(tries, error = %error, "transaction lost a race; retrying");
                tokio::time::sleep(Duration::from_millis(2 * u64::from(tries))).await;
            }
            outcome => return outcome,
        }
    }
}

/// Adds, for every transfer into the AVAILABLE bucket of an expired pool, a transfer on
/// to COMMON: an expired pool never holds sellable stock.
fn forward_out_of_expired(
    transfers: &mut Vec<TransferSpec>,
    pools: &HashMap<PoolName, PoolRecord>,
    now: i64,
) {
    let mut forwards = Vec::new();
    for transfer in transfers.iter() {
        let Some(to) = &transfer.to else { continue };
        let expired = pools.get(&to.pool).is_some_and(|pool| pool.is_expired(now));
        if to.state == StockState::Available && expired {
            forwards.push(TransferSpec {
                from: Some(to.clone()),
                to: Some(Side {
                    pool: PoolName::common(),
                    state: StockState::Available,
                }),
                reason: TransferReason::PoolExpiry,
                order_line: None,
                ..transfer.clone()
            });
        }
    }
    transfers.extend(forwards);
}

/// Encodes a request for the idempotency record.
fn encoded<M: Message>(request: &M) -> Vec<u8> {
    request.encode_to_vec()
}
