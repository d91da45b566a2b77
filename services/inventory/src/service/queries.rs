//! Reads: stock, channel availability and safety buffers, allocations, the ledger, stock
//! as of a past time, explanations, the audit and the change feed.

use std::collections::BTreeSet;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::time::{from_timestamp, now_micros, to_timestamp};
use kosha_runtime::{Error, page, validate};

use crate::domain::explain;
use crate::domain::ids::{Actor, ChannelCode, ClientId, IdempotencyKey, OrderRef, PoolName, Sku};
use crate::domain::pool::serving_reason;
use crate::domain::stock::{Grade, Quantity, StockKey, Totals};
use crate::service::movements::level;
use crate::service::pools::serving_pool;
use crate::service::{Inventory, encoded, retrying};
use crate::store::{self, allocations, audit, feed, ledger, stock};

/// Most SKUs named in one read.
const MAX_SKUS: usize = 1000;

/// Distinct SKUs, 1 to [`MAX_SKUS`].
fn parse_skus(field: &str, texts: &[String]) -> Result<Vec<Sku>, Error> {
    if texts.is_empty() {
        return Err(Error::invalid(field, "at least one SKU is required"));
    }
    if texts.len() > MAX_SKUS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_SKUS} SKUs per request"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut skus = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let sku = Sku::parse(&format!("{field}[{index}]"), text)?;
        if seen.insert(sku.clone()) {
            skus.push(sku);
        }
    }
    Ok(skus)
}

impl Inventory {
    /// Stock of some SKUs.
    pub async fn get_stock(
        &self,
        request: pb::GetStockRequest,
    ) -> Result<pb::GetStockResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let skus = parse_skus("skus", &request.skus)?;
        let pool = PoolName::parse_opt("pool", &request.pool)?;
        let grade = Grade::parse_filter("grade", request.grade)?;

        let filter = stock::StockFilter {
            skus,
            pool,
            grade,
            ..Default::default()
        };
        let rows = stock::read(self.db().pool(), &client, &filter).await?;
        Ok(pb::GetStockResponse {
            levels: rows
                .iter()
                .map(|(key, totals)| level(key, totals))
                .collect(),
        })
    }

    /// Stock of a client, paginated.
    pub async fn list_stock(
        &self,
        request: pb::ListStockRequest,
    ) -> Result<pb::ListStockResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let pool = PoolName::parse_opt("pool", &request.pool)?;
        let grade = Grade::parse_filter("grade", request.grade)?;
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after = match page::decode_query_token(&query, &request.page_token)? {
            None => None,
            Some(token) => Some(decode_stock_token(&token)?),
        };

        let filter = stock::StockFilter {
            skus: Vec::new(),
            pool,
            grade,
            after,
            limit: Some(limit + 1),
        };
        let mut rows = stock::read(self.db().pool(), &client, &filter).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_token = match (has_more, rows.last()) {
            (true, Some((key, _))) => {
                let key = format!("{}|{}|{}", key.sku, key.pool, key.grade.code());
                page::encode_query_token(&query, &key)
            }
            _ => String::new(),
        };
        Ok(pb::ListStockResponse {
            levels: rows
                .iter()
                .map(|(key, totals)| level(key, totals))
                .collect(),
            next_page_token,
        })
    }

    /// What a channel may sell.
    pub async fn get_channel_availability(
        &self,
        request: pb::GetChannelAvailabilityRequest,
    ) -> Result<pb::GetChannelAvailabilityResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let channel = ChannelCode::parse("channel", &request.channel)?;
        let skus = parse_skus("skus", &request.skus)?;
        let now = now_micros();
        store::pools::ensure_common(self.db().pool(), &client, now).await?;

        let mut tx = self.db().pool().begin().await?;
        let (serving, _) = serving_pool(&mut tx, &client, &channel, now).await?;
        let buffer = store::pools::safety_buffer(&mut *tx, &client, &channel)
            .await?
            .map(|(units, _)| units)
            .unwrap_or_default();
        let filter = stock::StockFilter {
            skus: skus.clone(),
            pool: Some(serving.name.clone()),
            grade: Some(Grade::Pass),
            ..Default::default()
        };
        let rows = stock::read(&mut *tx, &client, &filter).await?;
        tx.commit().await?;

        let availability = skus
            .iter()
            .map(|sku| {
                let key = StockKey::new(&client, sku, &serving.name, Grade::Pass);
                let available = rows
                    .iter()
                    .find(|(row, _)| *row == key)
                    .map(|(_, totals)| totals.available)
                    .unwrap_or_default();
                pb::ChannelAvailability {
                    sku: sku.to_string(),
                    available,
                    safety_buffer: buffer,
                    sellable: (available - buffer).max(0),
                }
            })
            .collect();
        Ok(pb::GetChannelAvailabilityResponse {
            pool: serving.name.to_string(),
            skus: availability,
        })
    }

    /// Sets a channel's safety buffer.
    pub async fn set_safety_buffer(
        &self,
        request: pb::SetSafetyBufferRequest,
    ) -> Result<pb::SetSafetyBufferResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let channel = ChannelCode::parse("channel", &request.channel)?;
        if request.quantity < 0 || request.quantity > validate::MAX_QUANTITY {
            return Err(Error::invalid(
                "quantity",
                format!(
                    "must be from 0 to {}, got {}",
                    validate::MAX_QUANTITY,
                    request.quantity
                ),
            ));
        }
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client_ref, channel_ref, key_ref, bytes_ref) =
            (&client, &channel, &key, &request_bytes);
        let quantity = request.quantity;
        let response = retrying(|| async move {
            let (client, channel, key) = (client_ref, channel_ref, key_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "SetSafetyBuffer", bytes_ref)
                .await?
            {
                return Ok(response);
            }
            store::pools::set_safety_buffer(&mut tx, client, channel, quantity, now).await?;
            let response = pb::SetSafetyBufferResponse {
                safety_buffer: Some(pb::SafetyBuffer {
                    channel: channel.to_string(),
                    quantity,
                    update_time: Some(to_timestamp(now)),
                }),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "SetSafetyBuffer",
                bytes_ref,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;
        tracing::info!(client = %client, channel = %channel, quantity, "safety buffer set");
        Ok(response)
    }

    /// A client's safety buffers.
    pub async fn list_safety_buffers(
        &self,
        request: pb::ListSafetyBuffersRequest,
    ) -> Result<pb::ListSafetyBuffersResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after = page::decode_query_token(&query, &request.page_token)?;

        let mut rows = store::pools::list_safety_buffers(
            self.db().pool(),
            &client,
            after.as_deref(),
            limit + 1,
        )
        .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_token = match (has_more, rows.last()) {
            (true, Some((channel, _, _))) => page::encode_query_token(&query, channel.as_str()),
            _ => String::new(),
        };
        Ok(pb::ListSafetyBuffersResponse {
            safety_buffers: rows
                .into_iter()
                .map(|(channel, quantity, updated_at)| pb::SafetyBuffer {
                    channel: channel.to_string(),
                    quantity,
                    update_time: Some(to_timestamp(updated_at)),
                })
                .collect(),
            next_page_token,
        })
    }

    /// Allocations by order, SKU, pool, or all open ones.
    pub async fn list_allocations(
        &self,
        request: pb::ListAllocationsRequest,
    ) -> Result<pb::ListAllocationsResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let filter = allocations::AllocationFilter {
            order_ref: optional(&request.order_ref, |text| {
                OrderRef::parse("order_ref", text)
            })?,
            sku: optional(&request.sku, |text| Sku::parse("sku", text))?,
            pool: PoolName::parse_opt("pool", &request.pool)?,
            open_only: request.open_only,
        };
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_id = page::decode_id_token(&query, &request.page_token)?;

        let mut rows =
            allocations::list(self.db().pool(), &client, &filter, after_id, limit + 1).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_token = match (has_more, rows.last()) {
            (true, Some(row)) => page::encode_query_token(&query, &row.id.to_string()),
            _ => String::new(),
        };
        Ok(pb::ListAllocationsResponse {
            allocations: rows
                .iter()
                .map(allocations::AllocationRow::to_proto)
                .collect(),
            next_page_token,
        })
    }

    /// Ledger transfers, oldest first.
    pub async fn list_ledger(
        &self,
        request: pb::ListLedgerRequest,
    ) -> Result<pb::ListLedgerResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let filter = ledger::LedgerFilter {
            sku: optional(&request.sku, |text| Sku::parse("sku", text))?,
            pool: PoolName::parse_opt("pool", &request.pool)?,
            order_ref: optional(&request.order_ref, |text| {
                OrderRef::parse("order_ref", text)
            })?,
            start: request
                .start_time
                .as_ref()
                .map(|t| from_timestamp(t, "start_time"))
                .transpose()?,
            end: request
                .end_time
                .as_ref()
                .map(|t| from_timestamp(t, "end_time"))
                .transpose()?,
        };
        if let (Some(start), Some(end)) = (filter.start, filter.end)
            && end <= start
        {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        let limit = page::page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_id = page::decode_id_token(&query, &request.page_token)?;

        let mut transfers =
            ledger::list(self.db().pool(), &client, &filter, after_id, limit + 1).await?;
        let has_more = transfers.len() as i64 > limit;
        transfers.truncate(limit as usize);
        let next_page_token = match (has_more, transfers.last()) {
            (true, Some(last)) => page::encode_query_token(&query, &last.transfer_id.to_string()),
            _ => String::new(),
        };
        Ok(pb::ListLedgerResponse {
            transfers,
            next_page_token,
        })
    }

    /// Stock of a SKU at a past time.
    pub async fn get_stock_as_of(
        &self,
        request: pb::GetStockAsOfRequest,
    ) -> Result<pb::GetStockAsOfResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let sku = Sku::parse("sku", &request.sku)?;
        let pool = PoolName::parse_opt("pool", &request.pool)?;
        let grade = Grade::parse_filter("grade", request.grade)?;
        let as_of = match &request.as_of_time {
            Some(time) => from_timestamp(time, "as_of_time")?,
            None => {
                return Err(Error::invalid(
                    "as_of_time",
                    "the time to look at is required",
                ));
            }
        };

        let (levels, last_transfer_id) =
            ledger::stock_as_of(self.db().pool(), &client, &sku, as_of).await?;
        let levels = levels
            .into_iter()
            .filter(|((row_pool, row_grade), _)| {
                pool.as_ref().is_none_or(|pool| pool == row_pool)
                    && grade.is_none_or(|grade| grade == *row_grade)
            })
            .map(|((row_pool, row_grade), totals)| {
                level(&StockKey::new(&client, &sku, &row_pool, row_grade), &totals)
            })
            .collect();
        Ok(pb::GetStockAsOfResponse {
            levels,
            last_transfer_id,
        })
    }

    /// Why a quantity is or is not available, and what would make it so.
    pub async fn explain_availability(
        &self,
        request: pb::ExplainAvailabilityRequest,
    ) -> Result<pb::ExplainAvailabilityResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let sku = Sku::parse("sku", &request.sku)?;
        let grade = Grade::parse("grade", request.grade)?;
        let quantity = Quantity::new("quantity", request.quantity)?.get();
        let pool_opt = PoolName::parse_opt("pool", &request.pool)?;
        let channel_opt = optional(&request.channel, |text| ChannelCode::parse("channel", text))?;
        let now = now_micros();
        store::pools::ensure_common(self.db().pool(), &client, now).await?;

        let mut tx = self.db().pool().begin().await?;
        let (target, pool_choice) = match (pool_opt, channel_opt) {
            (Some(pool), None) => {
                let record = store::pools::get(&mut *tx, &client, &pool)
                    .await?
                    .ok_or_else(|| Error::not_found("pool", format!("{client}/{pool}")))?;
                (record, String::new())
            }
            (None, Some(channel)) => {
                let (serving, assigned) = serving_pool(&mut tx, &client, &channel, now).await?;
                let reason = serving_reason(assigned.as_ref(), now).to_string();
                (serving, reason)
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "channel",
                    "set either `pool` or `channel`, not both",
                ));
            }
            (None, None) => return Err(Error::invalid("pool", "set `pool` or `channel`")),
        };
        let filter = stock::StockFilter {
            skus: vec![sku.clone()],
            ..Default::default()
        };
        let rows = stock::read(&mut *tx, &client, &filter).await?;
        tx.commit().await?;

        let target_totals = rows
            .iter()
            .find(|(key, _)| key.pool == target.name && key.grade == grade)
            .map(|(_, totals)| *totals)
            .unwrap_or_default();
        let others: Vec<(PoolName, Totals)> = rows
            .iter()
            .filter(|(key, _)| key.pool != target.name && key.grade == grade)
            .map(|(key, totals)| (key.pool.clone(), *totals))
            .collect();
        let other_grade: Vec<pb::StockLevel> = rows
            .iter()
            .filter(|(key, _)| key.grade == grade.other())
            .map(|(key, totals)| level(key, totals))
            .collect();
        let shortfall = (quantity - target_totals.available).max(0);
        let remedies = explain::remedies(&target.name, &target_totals, &others, shortfall);
        let mut summary = if shortfall == 0 {
            format!(
                "`{}` has {} AVAILABLE units of `{sku}` grade {}: enough for {quantity}",
                target.name,
                target_totals.available,
                grade.label()
            )
        } else {
            format!(
                "`{}` has {} AVAILABLE units of `{sku}` grade {}, {shortfall} short of {quantity}; \
                 {}",
                target.name,
                target_totals.available,
                grade.label(),
                remedies
                    .iter()
                    .map(|remedy| remedy.to_proto(&target.name).description)
                    .collect::<Vec<_>>()
                    .join(", then ")
            )
        };
        if rows.is_empty() {
            // Inventory takes any well-formed SKU and never asks the catalog, so a SKU it
            // has never held may as well be a typo.
            summary.push_str(&format!(
                "; inventory has never held `{sku}` for `{client}` in any pool or grade: check \
                 the SKU against the product master before receiving it"
            ));
        }
        Ok(pb::ExplainAvailabilityResponse {
            pool: target.name.to_string(),
            pool_choice,
            quantity,
            target: Some(target_totals.to_proto()),
            shortfall,
            other_pools: others
                .iter()
                .map(|(pool, totals)| level(&StockKey::new(&client, &sku, pool, grade), totals))
                .collect(),
            other_grade,
            remedies: remedies
                .iter()
                .map(|remedy| remedy.to_proto(&target.name))
                .collect(),
            summary,
        })
    }

    /// Recomputes everything from the ledger.
    pub async fn audit(&self, request: pb::AuditRequest) -> Result<pb::AuditResponse, Error> {
        if !request.client_id.is_empty() {
            ClientId::parse("client_id", &request.client_id)?;
        }
        let response = audit::run(self.db(), &request.client_id).await?;
        if !response.clean {
            tracing::warn!(
                client = %request.client_id,
                discrepancies = response.discrepancies.len(),
                "audit found differences"
            );
        }
        Ok(response)
    }

    /// The change feed.
    pub async fn list_stock_changes(
        &self,
        request: pb::ListStockChangesRequest,
    ) -> Result<pb::ListStockChangesResponse, Error> {
        let client_opt = optional(&request.client_id, |text| {
            ClientId::parse("client_id", text)
        })?;
        let after = feed::Cursor::decode("after_cursor", &request.after_cursor)?;
        let limit = page::page_size(request.page_size)?;

        let changes = feed::read(self.db(), client_opt.as_ref(), after, limit).await?;
        let next_cursor = changes
            .last()
            .map(|change| change.cursor)
            .unwrap_or(after)
            .encode();
        Ok(pb::ListStockChangesResponse {
            changes: changes
                .into_iter()
                .map(|change| pb::StockChange {
                    cursor: change.cursor.encode(),
                    client_id: change.key.client.to_string(),
                    sku: change.key.sku.to_string(),
                    pool: change.key.pool.to_string(),
                    grade: change.key.grade.to_proto(),
                    totals: Some(change.totals.to_proto()),
                    reason: change.reason.to_proto(),
                    change_time: Some(to_timestamp(change.created_at)),
                })
                .collect(),
            next_cursor,
        })
    }
}

/// Parses an optional field: empty means none.
fn optional<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

/// The (SKU, pool, grade) after which a stock page starts.
fn decode_stock_token(token: &str) -> Result<(String, String, i64), Error> {
    let bad = || Error::invalid("page_token", "not a token returned by this list call");
    let mut parts = token.split('|');
    let (Some(sku), Some(pool), Some(grade), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let grade: i64 = grade.parse().map_err(|_| bad())?;
    Ok((sku.to_string(), pool.to_string(), grade))
}
