//! Pulling from channels: new orders, channel-side statuses, and pushing availability.
//!
//! The order service pulls; a channel never calls in. What a channel says wins for
//! cancellations before invoicing. A cancellation that arrives after invoicing cannot be
//! applied (the units left stock) and is recorded on the order as a conflict for a
//! person to resolve with a re-GRN of the returned units.

use std::collections::BTreeSet;

use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as api;
use kosha_runtime::Error;
use kosha_runtime::time::now_micros;

use super::App;
use crate::domain::{OrderId, OrderStatus};
use crate::store::orders;
use crate::store::work;

/// Actor recorded for changes a channel asked for.
pub const CHANNEL_ACTOR: &str = "channel-sync";

/// What a sync of orders did.
#[derive(Debug, Default)]
pub struct SyncOrdersReport {
    /// Orders fetched.
    pub fetched: i64,
    /// New orders taken in.
    pub created: i64,
    /// Orders known already.
    pub already_known: i64,
    /// Orders stored as FAILED, or refused as malformed.
    pub failed: i64,
    /// Cursor after the sync.
    pub cursor: String,
    /// Orders refused outright, as (channel order id, why): the first
    /// [`MOST_REFUSED_LISTED`], each cut to a readable length.
    pub refused: Vec<(String, String)>,
    /// Refused orders beyond those listed.
    pub refused_not_listed: i64,
    /// Whether the channel has more orders than this sync took in within its time budget.
    pub more: bool,
}

/// Longest a sync keeps pulling pages: well inside the default request timeout, so that a
/// large backlog is taken in over several calls that each answer, rather than one that times
/// out with its refusals unreported.
const SYNC_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// Most refused orders listed in one sync's answer. A file of bad rows would otherwise make
/// an answer too large to send, after the work is done; the log names every one.
pub const MOST_REFUSED_LISTED: usize = 100;

/// Longest channel order id and reason quoted for a refused order.
const MOST_REFUSED_CHARS: usize = 500;

impl SyncOrdersReport {
    /// Counts a refused order, listing it while there is room.
    fn refuse(&mut self, channel_order_id: &str, reason: String) {
        self.failed += 1;
        if self.refused.len() < MOST_REFUSED_LISTED {
            let cut =
                |text: &str| kosha_runtime::validate::cut_to(text, MOST_REFUSED_CHARS, "… (cut)");
            self.refused.push((cut(channel_order_id), cut(&reason)));
        } else {
            self.refused_not_listed += 1;
        }
    }
}

/// What a status sync did.
#[derive(Debug, Default)]
pub struct SyncStatusReport {
    /// Orders whose channel status was read.
    pub checked: i64,
    /// Orders cancelled because the channel cancelled them.
    pub cancelled_order_ids: Vec<OrderId>,
    /// Orders cancelled on the channel after invoicing here.
    pub conflict_order_ids: Vec<OrderId>,
    /// Holds released by return pickups.
    pub holds_released: i64,
    /// Channel order ids of orders stored here that the channel does not know.
    pub unknown_channel_order_ids: Vec<String>,
    /// Channel orders whose status the connector could not read, as (channel order id,
    /// why): nothing was done to them.
    pub unreadable_statuses: Vec<(String, String)>,
}

/// A channel order as a CreateOrder request.
pub fn create_request(
    client_id: &str,
    channel_code: &str,
    order: channel::ChannelOrder,
) -> api::CreateOrderRequest {
    let fulfilment = match order.fulfilment_type() {
        channel::ChannelFulfilmentType::BlockComplete => api::FulfilmentType::BlockComplete,
        channel::ChannelFulfilmentType::MultiShipmentPartial => {
            api::FulfilmentType::MultiShipmentPartial
        }
        channel::ChannelFulfilmentType::SingleShipmentPartial => {
            api::FulfilmentType::SingleShipmentPartial
        }
        channel::ChannelFulfilmentType::Unspecified => api::FulfilmentType::Unspecified,
    };
    api::CreateOrderRequest {
        client_id: client_id.to_string(),
        channel: channel_code.to_string(),
        channel_order_id: order.channel_order_id,
        parent_order_id: order.parent_order_id,
        order_time: order.order_time,
        lines: order
            .lines
            .into_iter()
            .map(|line| api::NewOrderLine {
                marketplace_sku: line.marketplace_sku,
                sku: String::new(),
                quantity: line.quantity,
                price: line.price,
            })
            .collect(),
        fulfilment_type: fulfilment as i32,
        qc_grade: 0,
        start_processing_time: None,
        dispatch_by_time: order.dispatch_by_time,
        priority: order.priority,
        dispatch_after_time: order.dispatch_after_time,
        replacement_for_channel_order_id: order.replacement_for_channel_order_id,
        marketplace_fulfilled: order.marketplace_fulfilled,
        actor: CHANNEL_ACTOR.to_string(),
    }
}

// === impl App: channel sync ===

impl App {
    /// Pulls new orders of a client's channel and takes them in.
    #[tracing::instrument(
        name = "order.sync_orders",
        skip_all,
        fields(client = client_id, channel = channel_code)
    )]
    pub async fn sync_orders(
        &self,
        client_id: &str,
        channel_code: &str,
    ) -> Result<SyncOrdersReport, Error> {
        // An unknown channel is named as such before its missing connector is.
        self.clients.channel_kind(channel_code, "channel").await?;
        let connector = self.clients.connector(channel_code)?.clone();
        self.clients.require_client(client_id).await?;
        let cursor_name = format!("channel-orders:{client_id}:{channel_code}");
        let cursor = {
            let mut conn = self.db.pool().acquire().await?;
            work::cursor(&mut conn, &cursor_name).await?
        };
        let mut report = SyncOrdersReport {
            cursor,
            ..SyncOrdersReport::default()
        };
        let started = std::time::Instant::now();
        loop {
            let request = channel::FetchOrdersRequest {
                client_id: client_id.to_string(),
                channel: channel_code.to_string(),
                cursor: report.cursor.clone(),
                // Large pages: a connector may read its whole source for each one.
                page_size: 1000,
            };
            let page = connector.fetch_orders(request).await?;
            report.fetched += page.orders.len() as i64;
            for order in page.orders {
                let channel_order_id = order.channel_order_id.clone();
                // Where the channel holds the order, for the operator to find it there.
                let origin = if order.origin.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", order.origin)
                };
                if !order.unreadable_reason.is_empty() {
                    tracing::warn!(
                        %channel_order_id,
                        reason = %order.unreadable_reason,
                        "channel connector could not read an order"
                    );
                    report.refuse(
                        &channel_order_id,
                        format!("{origin}{}", order.unreadable_reason),
                    );
                    continue;
                }
                let request = create_request(client_id, channel_code, order);
                let new = match crate::grpc::parse::create_order(request) {
                    Ok(new) => new,
                    Err(error) => {
                        // A malformed order cannot be stored; the caller is told which and
                        // why, besides the log.
                        tracing::warn!(%channel_order_id, %error, "channel sent a malformed order");
                        report.refuse(&channel_order_id, format!("{origin}{error}"));
                        continue;
                    }
                };
                match self.create_order(new).await {
                    Ok((_, false)) => report.already_known += 1,
                    Ok((view, true)) if view.order.status == OrderStatus::Failed => {
                        report.failed += 1
                    }
                    Ok((_, true)) => report.created += 1,
                    Err(error @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(error),
                    Err(error) => {
                        tracing::warn!(%channel_order_id, %error, "channel order refused");
                        report.refuse(&channel_order_id, format!("{origin}{error}"));
                    }
                }
            }
            let advanced = !page.next_cursor.is_empty() && page.next_cursor != report.cursor;
            if advanced {
                report.cursor = page.next_cursor;
                let mut conn = self.db.pool().acquire().await?;
                work::set_cursor(&mut conn, &cursor_name, &report.cursor, now_micros()).await?;
            }
            if !page.more || !advanced {
                break;
            }
            if started.elapsed() > SYNC_BUDGET {
                report.more = true;
                break;
            }
        }
        if report.created + report.failed > 0 {
            tracing::info!(
                fetched = report.fetched,
                created = report.created,
                failed = report.failed,
                "channel orders synced"
            );
        }
        Ok(report)
    }

    /// Syncs the channel status of one order.
    pub async fn sync_order_status(&self, id: OrderId) -> Result<SyncStatusReport, Error> {
        let order = self.load(id).await?;
        self.sync_statuses_of(
            &order.client_id,
            &order.channel,
            &[(Some(id), order.channel_order_id.clone())],
        )
        .await
    }

    /// Syncs the channel status of every open order of a client's channel.
    pub async fn sync_channel_statuses(
        &self,
        client_id: &str,
        channel_code: &str,
    ) -> Result<SyncStatusReport, Error> {
        self.clients.channel_kind(channel_code, "channel").await?;
        self.clients.connector(channel_code)?;
        self.clients.require_client(client_id).await?;
        let mut total = SyncStatusReport::default();
        let mut after_id = 0;
        loop {
            let batch = {
                let mut conn = self.db.pool().acquire().await?;
                orders::open_of_channel(&mut conn, client_id, channel_code, after_id, 500).await?
            };
            let Some((last, _)) = batch.last() else { break };
            after_id = last.0;
            let targets: Vec<_> = batch
                .into_iter()
                .map(|(id, channel_order_id)| (Some(id), channel_order_id))
                .collect();
            let report = self
                .sync_statuses_of(client_id, channel_code, &targets)
                .await?;
            total.checked += report.checked;
            total.cancelled_order_ids.extend(report.cancelled_order_ids);
            total.conflict_order_ids.extend(report.conflict_order_ids);
            total.holds_released += report.holds_released;
            total
                .unknown_channel_order_ids
                .extend(report.unknown_channel_order_ids);
            total.unreadable_statuses.extend(report.unreadable_statuses);
        }

        // The originals that open return-pickup holds wait for: usually dispatched long
        // ago (so not open above), or never taken in here; the channel reports their
        // return all the same.
        let mut after_ref = String::new();
        loop {
            let refs = {
                let mut conn = self.db.pool().acquire().await?;
                orders::awaited_returns(&mut conn, client_id, channel_code, &after_ref, 500).await?
            };
            let Some(last) = refs.last() else { break };
            after_ref = last.clone();
            let targets: Vec<_> = refs.into_iter().map(|r| (None, r)).collect();
            let report = self
                .sync_statuses_of(client_id, channel_code, &targets)
                .await?;
            total.checked += report.checked;
            total.holds_released += report.holds_released;
        }
        Ok(total)
    }

    /// Reads the channel status of some channel orders and applies it: a cancellation to
    /// the order stored here (the id beside it; none for an order only awaited by a
    /// return-pickup hold), a return pickup to the holds waiting for it.
    pub(crate) async fn sync_statuses_of(
        &self,
        client_id: &str,
        channel_code: &str,
        targets: &[(Option<OrderId>, String)],
    ) -> Result<SyncStatusReport, Error> {
        let connector = self.clients.connector(channel_code)?.clone();
        let request = channel::FetchOrderStatusesRequest {
            client_id: client_id.to_string(),
            channel: channel_code.to_string(),
            channel_order_ids: targets
                .iter()
                .map(|(_, channel_order_id)| channel_order_id.clone())
                .collect(),
        };
        let response = connector.fetch_order_statuses(request).await?;

        let mut report = SyncStatusReport {
            checked: response.statuses.len() as i64,
            // Originals awaited by return-pickup holds may be unknown to the channel for
            // reasons of its own; only orders stored here are worth an operator's look.
            unknown_channel_order_ids: response
                .unknown_channel_order_ids
                .into_iter()
                .filter(|unknown| {
                    targets
                        .iter()
                        .any(|(id, channel_order_id)| id.is_some() && channel_order_id == unknown)
                })
                .collect(),
            unreadable_statuses: response
                .unreadable
                .into_iter()
                .map(|unreadable| (unreadable.channel_order_id, unreadable.reason))
                .collect(),
            ..Default::default()
        };
        for (channel_order_id, reason) in &report.unreadable_statuses {
            tracing::warn!(%channel_order_id, %reason, "channel status unreadable");
        }
        for status in response.statuses {
            match status.state() {
                channel::ChannelOrderState::Cancelled => {
                    let Some((Some(id), _)) =
                        targets.iter().find(|(_, c)| *c == status.channel_order_id)
                    else {
                        continue;
                    };
                    self.apply_channel_cancellation(*id, channel_code, &mut report)
                        .await?;
                }
                channel::ChannelOrderState::ReturnPickedUp => {
                    let released = self
                        .release_return_pickup(
                            client_id,
                            channel_code,
                            &status.channel_order_id,
                            CHANNEL_ACTOR,
                        )
                        .await?;
                    report.holds_released += released.released.len() as i64;
                }
                _ => {}
            }
        }
        Ok(report)
    }

    async fn apply_channel_cancellation(
        &self,
        id: OrderId,
        channel_code: &str,
        report: &mut SyncStatusReport,
    ) -> Result<(), Error> {
        let order = self.load(id).await?;
        if order.status == OrderStatus::Cancelled {
            return Ok(());
        }
        let invoiced_already = order.invoiced() > 0
            || matches!(
                order.status,
                OrderStatus::Invoiced | OrderStatus::Dispatched
            );
        if !invoiced_already {
            let reason = format!("cancelled on {channel_code}");
            match self.cancel(id, CHANNEL_ACTOR, &reason).await {
                Ok(_) => report.cancelled_order_ids.push(id),
                Err(Error::FailedPrecondition(message)) => {
                    tracing::warn!(order_id = %id, %message, "channel cancellation not applied");
                }
                Err(error) => return Err(error),
            }
            return Ok(());
        }

        // Invoiced here: the units left stock. Record the conflict once.
        let conflict = format!(
            "cancelled on {channel_code} after it was invoiced here; the invoiced units left \
             stock and come back only through a re-GRN of the returned units"
        );
        let mut tx = self.db.begin().await?;
        let Some(mut locked) = orders::lock(&mut tx, self.db.for_update(), id).await? else {
            return Ok(());
        };
        let now = now_micros();
        if locked.channel_conflict != conflict {
            locked.channel_conflict = conflict.clone();
            orders::save(&mut tx, &locked, now).await?;
            orders::add_history(
                &mut tx,
                id,
                now,
                CHANNEL_ACTOR,
                Some(locked.status),
                locked.status,
                &conflict,
            )
            .await?;
            tracing::warn!(order_id = %id, "channel cancelled an invoiced order");
        }
        tx.commit().await?;
        report.conflict_order_ids.push(id);
        Ok(())
    }

    /// Pushes what a client's channel may sell, per listing, to the channel's connector.
    pub async fn push_availability(
        &self,
        client_id: &str,
        channel_code: &str,
    ) -> Result<(i64, Vec<String>), Error> {
        let connector = self.clients.connector(channel_code)?.clone();

        // Every listing of the channel, from catalog.
        let mut listings = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = catalog::ListListingsRequest {
                client_id: client_id.to_string(),
                channel: channel_code.to_string(),
                sku: String::new(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .clients
                .catalog
                .clone()
                .list_listings(request)
                .await?
                .into_inner();
            listings.extend(page.listings);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if listings.is_empty() {
            return Ok((0, Vec::new()));
        }

        // What the channel may sell of each SKU, from inventory, 1000 SKUs a call.
        let skus: Vec<String> = listings
            .iter()
            .map(|l| l.sku.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut sellable = std::collections::BTreeMap::new();
        for chunk in skus.chunks(1000) {
            let request = inv::GetChannelAvailabilityRequest {
                client_id: client_id.to_string(),
                channel: channel_code.to_string(),
                skus: chunk.to_vec(),
            };
            let response = self
                .clients
                .inventory
                .clone()
                .get_channel_availability(request)
                .await?
                .into_inner();
            for sku in response.skus {
                sellable.insert(sku.sku, sku.sellable);
            }
        }

        let request = channel::PushAvailabilityRequest {
            client_id: client_id.to_string(),
            channel: channel_code.to_string(),
            listings: listings
                .iter()
                .map(|listing| channel::ListingAvailability {
                    marketplace_sku: listing.marketplace_sku.clone(),
                    sku: listing.sku.clone(),
                    quantity: sellable.get(&listing.sku).copied().unwrap_or(0).max(0),
                })
                .collect(),
        };
        let response = connector.push_availability(request).await?;
        Ok((response.accepted, response.rejected_marketplace_skus))
    }
}
