//! Pools: create, read, schedule, delete, assign channels, find the serving pool, and the
//! expiry sweep.

use std::collections::{BTreeSet, HashMap};

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::db::Backend;
use kosha_runtime::time::{from_timestamp, now_micros, to_timestamp, to_timestamp_opt};
use kosha_runtime::{Error, page};
use prost::Message as _;

use crate::domain::ids::{Actor, ChannelCode, ClientId, IdempotencyKey, PoolName, free_text};
use crate::domain::pool::{PoolRecord, serving_reason};
use crate::domain::stock::{Provenance, Side, StockState, Totals, TransferReason, TransferSpec};
use crate::service::{Inventory, encoded, retrying};
use crate::store::{self, Tx, outbox, stock};

/// Job kind of a pool's expiry sweep.
pub const POOL_EXPIRY_JOB: &str = "pool-expiry";
/// Longest pool description.
const MAX_DESCRIPTION: usize = 500;

/// The scheduler idempotency key of a pool's expiry job: one job per pool and expiry time.
pub fn expiry_job_key(client: &ClientId, pool: &PoolName, expire_at: i64) -> String {
    format!("inventory:pool-expiry:{client}:{pool}:{expire_at}")
}

impl Inventory {
    /// Creates a reserve pool.
    pub async fn create_pool(
        &self,
        request: pb::CreatePoolRequest,
    ) -> Result<pb::CreatePoolResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let name = PoolName::parse("name", &request.name)?;
        if name.is_common() {
            return Err(Error::invalid(
                "name",
                "COMMON exists for every client; pick another name",
            ));
        }
        let description = free_text("description", &request.description, MAX_DESCRIPTION)?;
        let channels = parse_channels(&request.channels)?;
        let (activate_at, expire_at) =
            parse_schedule(&request.activate_time, &request.expire_time)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client, name, description, channels, key, request_bytes) = (
            &client,
            &name,
            &description,
            &channels,
            &key,
            &request_bytes,
        );
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "CreatePool", request_bytes)
                .await?
            {
                return Ok(response);
            }

            store::pools::ensure_common(&mut *tx, client, now).await?;
            let record = PoolRecord {
                client: client.clone(),
                name: name.clone(),
                description: description.clone(),
                activate_at,
                expire_at,
                created_at: now,
                updated_at: now,
            };
            store::pools::insert(&mut tx, &record).await?;
            for channel in channels {
                store::pools::assign(&mut tx, client, channel, name, now).await?;
            }
            if let Some(expire_at) = expire_at {
                queue_expiry_job(&mut tx, &record, expire_at, now).await?;
            }

            let pool = pool_views(&mut tx, client, vec![record], now)
                .await?
                .remove(0);
            let response = pb::CreatePoolResponse { pool: Some(pool) };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "CreatePool",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;

        if expire_at.is_some() {
            self.outbox_wake.notify_one();
        }
        tracing::info!(client = %client, pool = %name, channels = channels.len(), "pool created");
        Ok(response)
    }

    /// Reads one pool with its totals.
    pub async fn get_pool(
        &self,
        request: pb::GetPoolRequest,
    ) -> Result<pb::GetPoolResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let name = PoolName::parse("name", &request.name)?;
        let now = now_micros();
        if name.is_common() {
            store::pools::ensure_common(self.db().pool(), &client, now).await?;
        }

        let mut tx = self.db().pool().begin().await?;
        let record = store::pools::get(&mut *tx, &client, &name)
            .await?
            .ok_or_else(|| Error::not_found("pool", format!("{client}/{name}")))?;
        let pool = pool_views(&mut tx, &client, vec![record], now)
            .await?
            .remove(0);
        tx.commit().await?;
        Ok(pb::GetPoolResponse { pool: Some(pool) })
    }

    /// Lists a client's pools by name.
    pub async fn list_pools(
        &self,
        request: pb::ListPoolsRequest,
    ) -> Result<pb::ListPoolsResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after = page::decode_query_token(&query, &request.page_token)?;
        let now = now_micros();
        store::pools::ensure_common(self.db().pool(), &client, now).await?;

        let mut tx = self.db().pool().begin().await?;
        let records = store::pools::list(&mut *tx, &client, after.as_deref(), limit + 1).await?;
        let has_more = records.len() as i64 > limit;
        let records: Vec<PoolRecord> = records.into_iter().take(limit as usize).collect();
        let next_page_token = match (has_more, records.last()) {
            (true, Some(last)) => page::encode_query_token(&query, last.name.as_str()),
            _ => String::new(),
        };
        let pools = pool_views(&mut tx, &client, records, now).await?;
        tx.commit().await?;
        Ok(pb::ListPoolsResponse {
            pools,
            next_page_token,
        })
    }

    /// Sets or clears a reserve pool's activation and expiry times.
    pub async fn set_pool_schedule(
        &self,
        request: pb::SetPoolScheduleRequest,
    ) -> Result<pb::SetPoolScheduleResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let name = reserve_pool("name", &request.name, "have a schedule")?;
        let (activate_at, expire_at) =
            parse_schedule(&request.activate_time, &request.expire_time)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client, name, key, request_bytes) = (&client, &name, &key, &request_bytes);
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(
                    &mut tx,
                    client.as_str(),
                    key,
                    "SetPoolSchedule",
                    request_bytes,
                )
                .await?
            {
                return Ok(response);
            }

            let mut record = store::pools::lock(&mut tx, self.db().for_update(), client, name)
                .await?
                .ok_or_else(|| Error::not_found("pool", format!("{client}/{name}")))?;
            store::pools::set_schedule(&mut tx, client, name, activate_at, expire_at, now).await?;
            let expiry_changed = record.expire_at != expire_at;
            record.activate_at = activate_at;
            record.expire_at = expire_at;
            record.updated_at = now;
            if let (true, Some(expire_at)) = (expiry_changed, expire_at) {
                queue_expiry_job(&mut tx, &record, expire_at, now).await?;
            }

            let pool = pool_views(&mut tx, client, vec![record], now)
                .await?
                .remove(0);
            let response = pb::SetPoolScheduleResponse { pool: Some(pool) };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "SetPoolSchedule",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;

        if expire_at.is_some() {
            self.outbox_wake.notify_one();
        }
        tracing::info!(
            client = %client,
            pool = %name,
            ?activate_at,
            ?expire_at,
            "pool schedule set"
        );
        Ok(response)
    }

    /// Deletes an empty reserve pool.
    pub async fn delete_pool(
        &self,
        request: pb::DeletePoolRequest,
    ) -> Result<pb::DeletePoolResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let name = reserve_pool("name", &request.name, "be deleted")?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client, name, key, request_bytes) = (&client, &name, &key, &request_bytes);
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "DeletePool", request_bytes)
                .await?
            {
                return Ok(response);
            }

            store::pools::lock(&mut tx, self.db().for_update(), client, name)
                .await?
                .ok_or_else(|| Error::not_found("pool", format!("{client}/{name}")))?;
            let filter = stock::StockFilter {
                pool: Some(name.clone()),
                ..Default::default()
            };
            let holdings = stock::read(&mut *tx, client, &filter).await?;
            let mut held = Totals::default();
            for (_, totals) in &holdings {
                held.add(totals);
            }
            if !held.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "pool `{name}` still holds stock ({} available, {} allocated, {} in recycle \
                     across {} SKU rows); move, release or adjust it out first",
                    held.available,
                    held.allocated,
                    held.recycle,
                    holdings.len()
                )));
            }
            let channels = store::pools::delete(&mut tx, client, name).await?;
            let response = pb::DeletePoolResponse {
                unassigned_channels: channels.iter().map(ToString::to_string).collect(),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "DeletePool",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;
        tracing::info!(client = %client, pool = %name, "pool deleted");
        Ok(response)
    }

    /// Makes a pool serve a channel.
    pub async fn assign_channel(
        &self,
        request: pb::AssignChannelRequest,
    ) -> Result<pb::AssignChannelResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let name = PoolName::parse("pool", &request.pool)?;
        let channel = ChannelCode::parse("channel", &request.channel)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client, name, channel, key, request_bytes) =
            (&client, &name, &channel, &key, &request_bytes);
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(
                    &mut tx,
                    client.as_str(),
                    key,
                    "AssignChannel",
                    request_bytes,
                )
                .await?
            {
                return Ok(response);
            }

            let record = self
                .existing_pool(&mut tx, client, name, "pool", now)
                .await?;
            if record.is_expired(now) {
                return Err(Error::FailedPrecondition(format!(
                    "pool `{name}` has expired; it cannot serve channel `{channel}`"
                )));
            }
            let previous = store::pools::assignment(&mut *tx, client, channel).await?;
            if name.is_common() {
                store::pools::unassign(&mut tx, client, channel).await?;
            } else {
                store::pools::assign(&mut tx, client, channel, name, now).await?;
            }

            let pool = pool_views(&mut tx, client, vec![record], now)
                .await?
                .remove(0);
            let response = pb::AssignChannelResponse {
                pool: Some(pool),
                previous_pool: previous.unwrap_or_else(PoolName::common).to_string(),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "AssignChannel",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;
        tracing::info!(client = %client, pool = %name, channel = %channel, "channel assigned");
        Ok(response)
    }

    /// Removes a channel's assignment.
    pub async fn unassign_channel(
        &self,
        request: pb::UnassignChannelRequest,
    ) -> Result<pb::UnassignChannelResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let channel = ChannelCode::parse("channel", &request.channel)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client, channel, key, request_bytes) = (&client, &channel, &key, &request_bytes);
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(
                    &mut tx,
                    client.as_str(),
                    key,
                    "UnassignChannel",
                    request_bytes,
                )
                .await?
            {
                return Ok(response);
            }
            let previous = store::pools::assignment(&mut *tx, client, channel).await?;
            store::pools::unassign(&mut tx, client, channel).await?;
            let response = pb::UnassignChannelResponse {
                previous_pool: previous.unwrap_or_else(PoolName::common).to_string(),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "UnassignChannel",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;
        tracing::info!(client = %client, channel = %channel, "channel unassigned");
        Ok(response)
    }

    /// Which pool serves a channel now.
    pub async fn get_serving_pool(
        &self,
        request: pb::GetServingPoolRequest,
    ) -> Result<pb::GetServingPoolResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let channel = ChannelCode::parse("channel", &request.channel)?;
        let now = now_micros();
        store::pools::ensure_common(self.db().pool(), &client, now).await?;

        let mut tx = self.db().pool().begin().await?;
        let (serving, assigned) = serving_pool(&mut tx, &client, &channel, now).await?;
        let pool = pool_views(&mut tx, &client, vec![serving], now)
            .await?
            .remove(0);
        tx.commit().await?;
        Ok(pb::GetServingPoolResponse {
            pool: Some(pool),
            assigned_pool: assigned
                .map(|record| record.name.to_string())
                .unwrap_or_default(),
        })
    }

    /// Moves the AVAILABLE stock of expired pools back to COMMON.
    pub async fn sweep_expired_pools(
        &self,
        request: pb::SweepExpiredPoolsRequest,
    ) -> Result<pb::SweepExpiredPoolsResponse, Error> {
        let client_opt = if request.client_id.is_empty() {
            None
        } else {
            Some(ClientId::parse("client_id", &request.client_id)?)
        };
        let pool_opt = PoolName::parse_opt("pool", &request.pool)?;
        if pool_opt.is_some() && client_opt.is_none() {
            return Err(Error::invalid(
                "client_id",
                "a pool is named only together with its client",
            ));
        }
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;
        let scope = client_opt
            .as_ref()
            .map(ClientId::to_string)
            .unwrap_or_default();
        let request_bytes = encoded(&request);

        let (client_opt, pool_opt, key, actor, scope, request_bytes) =
            (&client_opt, &pool_opt, &key, &actor, &scope, &request_bytes);
        let response = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, scope, key, "SweepExpiredPools", request_bytes)
                .await?
            {
                return Ok(response);
            }

            let expired =
                store::pools::expired(&mut *tx, client_opt.as_ref(), pool_opt.as_ref(), now)
                    .await?;
            let provenance = Provenance {
                actor: actor.to_string(),
                reference: "pool expired".to_string(),
                idempotency_key: key.to_string(),
            };
            let mut swept = Vec::new();
            for pool in expired {
                if let Some(result) = self.sweep_one(&mut tx, &pool, &provenance, now).await? {
                    swept.push(result);
                }
            }
            let response = pb::SweepExpiredPoolsResponse { swept };
            self.remember(
                &mut tx,
                scope,
                key,
                "SweepExpiredPools",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            self.read_cache.forget_settings();
            Ok(response)
        })
        .await?;

        for pool in &response.swept {
            tracing::info!(
                client = %pool.client_id,
                pool = %pool.pool,
                units = pool.units_moved,
                "expired pool swept back to COMMON"
            );
        }
        Ok(response)
    }

    /// Moves one expired pool's AVAILABLE units to COMMON in `tx`.
    async fn sweep_one(
        &self,
        tx: &mut Tx<'_>,
        pool: &PoolRecord,
        provenance: &Provenance,
        now: i64,
    ) -> Result<Option<pb::SweptPool>, Error> {
        let mut locked = stock::Locked::default();
        let keys =
            stock::lock_available_in_pool(tx, self.db(), &mut locked, &pool.client, &pool.name)
                .await?;
        if keys.is_empty() {
            return Ok(None);
        }
        store::pools::ensure_common(&mut **tx, &pool.client, now).await?;
        let common = PoolName::common();
        stock::lock(
            tx,
            self.db(),
            &mut locked,
            keys.iter().map(|key| key.in_pool(&common)),
        )
        .await?;

        let mut transfers = Vec::with_capacity(keys.len());
        let mut units = 0;
        for key in &keys {
            let quantity = locked.totals(key).available;
            units += quantity;
            transfers.push(TransferSpec {
                client: key.client.clone(),
                sku: key.sku.clone(),
                grade: key.grade,
                from: Some(Side {
                    pool: key.pool.clone(),
                    state: StockState::Available,
                }),
                to: Some(Side {
                    pool: common.clone(),
                    state: StockState::Available,
                }),
                quantity,
                reason: TransferReason::PoolExpiry,
                order_line: None,
            });
        }
        stock::apply(tx, self.db(), &mut locked, &transfers, provenance, now).await?;
        Ok(Some(pb::SweptPool {
            client_id: pool.client.to_string(),
            pool: pool.name.to_string(),
            units_moved: units,
            buckets_moved: keys.len() as i64,
        }))
    }

    /// Runs the sweep a scheduled `pool-expiry` job asks for; see [`crate::jobs`].
    pub async fn run_expiry_job(
        &self,
        job_id: &str,
        payload: &[u8],
    ) -> Result<ExpiryJobOutcome, Error> {
        let job = pb::PoolExpiryJob::decode(payload).map_err(|error| {
            Error::invalid("job.payload", format!("not a PoolExpiryJob: {error}"))
        })?;
        let client = ClientId::parse("job.payload.client_id", &job.client_id)?;
        let name = reserve_pool("job.payload.pool", &job.pool, "expire")?;
        let scheduled_expiry = match &job.expire_time {
            Some(time) => from_timestamp(time, "job.payload.expire_time")?,
            None => {
                return Err(Error::invalid(
                    "job.payload.expire_time",
                    "expiry time is required",
                ));
            }
        };

        let Some(record) = store::pools::get(self.db().pool(), &client, &name).await? else {
            return Ok(ExpiryJobOutcome::Skipped(format!(
                "pool `{client}/{name}` no longer exists"
            )));
        };
        if record.expire_at != Some(scheduled_expiry) {
            return Ok(ExpiryJobOutcome::Skipped(format!(
                "pool `{client}/{name}` no longer expires at the scheduled time"
            )));
        }
        let now = now_micros();
        if scheduled_expiry > now {
            return Ok(ExpiryJobOutcome::TooEarly(scheduled_expiry - now));
        }

        let request = pb::SweepExpiredPoolsRequest {
            client_id: client.to_string(),
            pool: name.to_string(),
            idempotency_key: format!("job:{job_id}"),
            actor: "scheduler".to_string(),
        };
        let response = self.sweep_expired_pools(request).await?;
        let units: i64 = response.swept.iter().map(|pool| pool.units_moved).sum();
        Ok(ExpiryJobOutcome::Swept(units))
    }
}

/// What a `pool-expiry` job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryJobOutcome {
    /// Units moved back to COMMON.
    Swept(i64),
    /// Nothing to do, and why.
    Skipped(String),
    /// The pool expires later, in this many microseconds.
    TooEarly(i64),
}

/// The pool serving a channel at `now`, and the assigned pool if any.
pub(crate) async fn serving_pool(
    tx: &mut Tx<'_>,
    client: &ClientId,
    channel: &ChannelCode,
    now: i64,
) -> Result<(PoolRecord, Option<PoolRecord>), Error> {
    let assigned = match store::pools::assignment(&mut **tx, client, channel).await? {
        Some(name) => store::pools::get(&mut **tx, client, &name).await?,
        None => None,
    };
    tracing::debug!(
        client = %client,
        channel = %channel,
        reason = serving_reason(assigned.as_ref(), now),
        "serving pool resolved"
    );
    if let Some(pool) = &assigned
        && pool.is_serving(now)
    {
        return Ok((pool.clone(), assigned));
    }
    let common = store::pools::get(&mut **tx, client, &PoolName::common())
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("COMMON of `{client}` is missing")))?;
    Ok((common, assigned))
}

/// Pools as the contract shows them: with channels, totals and status at `now`.
pub(crate) async fn pool_views(
    tx: &mut Tx<'_>,
    client: &ClientId,
    records: Vec<PoolRecord>,
    now: i64,
) -> Result<Vec<pb::Pool>, Error> {
    let names: Vec<PoolName> = records.iter().map(|record| record.name.clone()).collect();
    let mut channels = store::pools::channels_of(&mut **tx, client, &names).await?;
    let totals: HashMap<PoolName, (Totals, i64)> =
        stock::pool_totals(&mut **tx, client, &names).await?;
    Ok(records
        .into_iter()
        .map(|record| {
            let (figures, sku_count) = totals.get(&record.name).copied().unwrap_or_default();
            pb::Pool {
                client_id: record.client.to_string(),
                name: record.name.to_string(),
                description: record.description.clone(),
                channels: channels
                    .remove(&record.name)
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                activate_time: to_timestamp_opt(record.activate_at),
                expire_time: to_timestamp_opt(record.expire_at),
                status: record.status(now) as i32,
                totals: Some(figures.to_proto()),
                sku_count,
                create_time: Some(to_timestamp(record.created_at)),
                update_time: Some(to_timestamp(record.updated_at)),
            }
        })
        .collect())
}

/// Queues the scheduler job that sweeps `pool` at `expire_at`.
async fn queue_expiry_job(
    tx: &mut Tx<'_>,
    pool: &PoolRecord,
    expire_at: i64,
    now: i64,
) -> Result<(), Error> {
    let payload = pb::PoolExpiryJob {
        client_id: pool.client.to_string(),
        pool: pool.name.to_string(),
        expire_time: Some(to_timestamp(expire_at)),
    }
    .encode_to_vec();
    let dedupe_key = expiry_job_key(&pool.client, &pool.name, expire_at);
    outbox::enqueue(tx, &dedupe_key, POOL_EXPIRY_JOB, &payload, expire_at, now).await
}

/// A pool name that must not be COMMON.
/// A reserve pool's name for `what` (`schedule`, `delete`): COMMON is refused, since it
/// always exists and never expires.
fn reserve_pool(field: &str, text: &str, what: &str) -> Result<PoolName, Error> {
    let name = PoolName::parse(field, text)?;
    if name.is_common() {
        return Err(Error::invalid(
            field,
            format!(
                "COMMON always exists and never expires: it cannot {what}; name a reserve pool"
            ),
        ));
    }
    Ok(name)
}

/// Distinct channel codes.
fn parse_channels(texts: &[String]) -> Result<Vec<ChannelCode>, Error> {
    let mut seen = BTreeSet::new();
    let mut channels = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let field = format!("channels[{index}]");
        let channel = ChannelCode::parse(&field, text)?;
        if !seen.insert(channel.clone()) {
            return Err(Error::invalid(
                field,
                format!("channel `{channel}` is listed twice"),
            ));
        }
        channels.push(channel);
    }
    Ok(channels)
}

/// Longest an expiry time may lie ahead: the scheduler's default horizon, since the sweep
/// at expiry is a job scheduled as soon as the expiry is set.
const MOST_EXPIRY_AHEAD_DAYS: i64 = 400;

/// Longest an expiry time may lie behind: a pool set to expire a moment ago is swept at
/// once, while an older time is more likely a mistake.
const MOST_EXPIRY_BEHIND_MICROS: i64 = 3_600_000_000;

/// Earliest start a pool's schedule may name: 2000-01-01T00:00:00Z.
const EARLIEST_ACTIVATION_MICROS: i64 = 946_684_800_000_000;

/// Optional activation and expiry times; expiry must come after activation, not more than
/// an hour ago and at most [`MOST_EXPIRY_AHEAD_DAYS`] ahead.
fn parse_schedule(
    activate: &Option<prost_types::Timestamp>,
    expire: &Option<prost_types::Timestamp>,
) -> Result<(Option<i64>, Option<i64>), Error> {
    parse_schedule_at(activate, expire, now_micros())
}

fn parse_schedule_at(
    activate: &Option<prost_types::Timestamp>,
    expire: &Option<prost_types::Timestamp>,
    now: i64,
) -> Result<(Option<i64>, Option<i64>), Error> {
    let activate_at = activate
        .as_ref()
        .map(|t| from_timestamp(t, "activate_time"))
        .transpose()?;
    let expire_at = expire
        .as_ref()
        .map(|t| from_timestamp(t, "expire_time"))
        .transpose()?;
    if let Some(activate_at) = activate_at {
        // A start in the past only means the pool serves already; one before 2000 is a
        // default or a typo. A start further ahead than an expiry may be set is refused
        // for the same reason the expiry is.
        if activate_at < EARLIEST_ACTIVATION_MICROS {
            return Err(Error::invalid(
                "activate_time",
                "is before 2000-01-01T00:00:00Z; leave it unset for a pool that serves now",
            ));
        }
        if activate_at > now + MOST_EXPIRY_AHEAD_DAYS * 86_400_000_000 {
            return Err(Error::invalid(
                "activate_time",
                format!(
                    "is more than {MOST_EXPIRY_AHEAD_DAYS} days ahead; create the pool nearer \
                     the time"
                ),
            ));
        }
    }
    if let (Some(activate_at), Some(expire_at)) = (activate_at, expire_at)
        && expire_at <= activate_at
    {
        return Err(Error::invalid("expire_time", "must be after activate_time"));
    }
    if let Some(expire_at) = expire_at {
        if expire_at < now - MOST_EXPIRY_BEHIND_MICROS {
            return Err(Error::invalid(
                "expire_time",
                "is more than an hour in the past; to end a pool now, set its expiry to now",
            ));
        }
        if expire_at > now + MOST_EXPIRY_AHEAD_DAYS * 86_400_000_000 {
            return Err(Error::invalid(
                "expire_time",
                format!(
                    "is more than {MOST_EXPIRY_AHEAD_DAYS} days ahead; set a nearer expiry and \
                     move it later when the time comes"
                ),
            ));
        }
    }
    Ok((activate_at, expire_at))
}

/// ` FOR SHARE` on PostgreSQL (a write into a pool keeps it from being deleted meanwhile),
/// empty on SQLite.
pub(crate) fn for_share(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn at(micros: i64) -> Option<prost_types::Timestamp> {
        Some(to_timestamp(micros))
    }

    #[test]
    fn an_expiry_must_lie_between_an_hour_ago_and_the_schedulers_horizon() {
        let now = 1_800_000_000_000_000;

        let soon = parse_schedule_at(&None, &at(now + DAY), now);
        let moment_ago = parse_schedule_at(&None, &at(now - 60_000_000), now);
        let long_ago = parse_schedule_at(&None, &at(now - 2 * DAY), now);
        let too_far = parse_schedule_at(&None, &at(now + 401 * DAY), now);
        let before_activation = parse_schedule_at(&at(now + 2 * DAY), &at(now + DAY), now);

        assert_eq!(soon.unwrap(), (None, Some(now + DAY)));
        assert!(moment_ago.is_ok());
        for refused in [long_ago, too_far, before_activation] {
            let message = refused.unwrap_err().to_string();
            assert!(message.contains("expire_time"), "{message}");
        }
    }

    #[test]
    fn a_start_must_lie_after_2000_and_within_the_horizon() {
        let now = 1_800_000_000_000_000;
        let year_one = -62_135_596_800_000_000;

        let started = parse_schedule_at(&at(now - 30 * DAY), &None, now);
        let ancient = parse_schedule_at(&at(year_one), &None, now);
        let too_far = parse_schedule_at(&at(now + 401 * DAY), &None, now);

        assert_eq!(started.unwrap(), (Some(now - 30 * DAY), None));
        for refused in [ancient, too_far] {
            let message = refused.unwrap_err().to_string();
            assert!(message.contains("activate_time"), "{message}");
        }
    }
}
