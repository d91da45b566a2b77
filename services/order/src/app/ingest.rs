//! Taking orders in: marketplace orders (resolved, allocated on arrival) and bulk orders.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_runtime::page::stable_hash;
use kosha_runtime::time::now_micros;
use kosha_runtime::{Error, time::format_micros};

use super::{App, OrderView};
use crate::domain::holds::NewHold;
use crate::domain::{FulfilmentType, Grade, Line, Order, OrderId, OrderKind, OrderStatus};
use crate::store::orders;

/// One line of an order being taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    /// The marketplace's SKU (empty when the client SKU is sent).
    pub marketplace_sku: String,
    /// The client SKU (empty when only the marketplace SKU is sent).
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit in paise.
    pub price_paise_opt: Option<i64>,
}

/// An order being taken in, checked field by field.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The seller.
    pub client_id: String,
    /// Channel code.
    pub channel: String,
    /// The channel's order id (or the bulk order's reference).
    pub channel_order_id: String,
    /// The channel's parent order id.
    pub parent_order_id: String,
    /// Marketplace or bulk.
    pub kind: OrderKind,
    /// How it may be served.
    pub fulfilment: FulfilmentType,
    /// QC grade to serve from.
    pub grade: Grade,
    /// Fulfilled by the marketplace.
    pub marketplace_fulfilled: bool,
    /// Served first among waiting orders.
    pub priority: bool,
    /// When placed (µs).
    pub order_time: i64,
    /// Ship-by promise (µs).
    pub dispatch_by_opt: Option<i64>,
    /// Not picked before (µs).
    pub start_processing_opt: Option<i64>,
    /// The channel's dispatch-after time (µs).
    pub dispatch_after_opt: Option<i64>,
    /// Channel order id this one replaces.
    pub replacement_for: String,
    /// The lines.
    pub lines: Vec<NewLine>,
    /// Who sends it.
    pub actor: String,
}

impl NewOrder {
    /// What makes two requests for one natural key the same order: the lines and how
    /// they are served. Times and priority may be restated by a channel and are left out.
    pub fn fingerprint(&self) -> String {
        let mut text = format!(
            "{}|{}|{}|{}|{}|",
            self.kind.as_str(),
            self.fulfilment.as_str(),
            self.grade.as_str(),
            self.marketplace_fulfilled,
            self.parent_order_id
        );
        for line in &self.lines {
            text.push_str(&format!(
                "{}/{}/{}/{:?};",
                line.marketplace_sku, line.sku, line.quantity, line.price_paise_opt
            ));
        }
        format!("{:016x}", stable_hash(text.as_bytes()))
    }
}

/// The outcome of resolving an order's SKUs.
pub(super) struct Resolution {
    /// Client SKU per line, in line order (empty where unresolved).
    pub(super) skus: Vec<String>,
    /// Marketplace SKUs with no listing.
    unknown_marketplace_skus: Vec<String>,
    /// Those of them that are no product of the client's master either.
    unknown_not_in_master: Vec<String>,
    /// Client SKUs not in the product master.
    unknown_skus: Vec<String>,
}

impl Resolution {
    fn failure_reason(&self, channel: &str) -> String {
        let mut reasons = Vec::new();
        let (not_in_master, only_unlisted): (Vec<String>, Vec<String>) = self
            .unknown_marketplace_skus
            .iter()
            .cloned()
            .partition(|sku| self.unknown_not_in_master.contains(sku));
        if !only_unlisted.is_empty() {
            reasons.push(format!(
                "marketplace SKU(s) {} have no listing on {channel}; add the listing (marketplace \
                 SKU -> client SKU) and retry failed orders",
                quoted(&only_unlisted)
            ));
        }
        if !not_in_master.is_empty() {
            reasons.push(format!(
                "marketplace SKU(s) {} have no listing on {channel} and are in no product \
                 master; add the product and its listing, then retry failed orders",
                quoted(&not_in_master)
            ));
        }
        if !self.unknown_skus.is_empty() {
            reasons.push(format!(
                "SKU(s) {} are not in the product master; add the products and retry failed orders",
                quoted(&self.unknown_skus)
            ));
        }
        reasons.join("; ")
    }

    pub(super) fn is_complete(&self) -> bool {
        self.unknown_marketplace_skus.is_empty() && self.unknown_skus.is_empty()
    }

    /// The part of a resolution of several orders' lines (concatenated) that belongs to
    /// `new`, whose lines start at `offset`.
    pub(super) fn part(&self, new: &NewOrder, offset: usize) -> Resolution {
        let marketplace_skus: HashSet<&str> = new
            .lines
            .iter()
            .filter(|line| !line.marketplace_sku.is_empty())
            .map(|line| line.marketplace_sku.as_str())
            .collect();
        let client_skus: HashSet<&str> = new
            .lines
            .iter()
            .filter(|line| line.marketplace_sku.is_empty())
            .map(|line| line.sku.as_str())
            .collect();
        let within = |skus: &[String], own: &HashSet<&str>| -> Vec<String> {
            skus.iter()
                .filter(|sku| own.contains(sku.as_str()))
                .cloned()
                .collect()
        };
        Resolution {
            skus: self.skus[offset..offset + new.lines.len()].to_vec(),
            unknown_marketplace_skus: within(&self.unknown_marketplace_skus, &marketplace_skus),
            unknown_not_in_master: within(&self.unknown_not_in_master, &marketplace_skus),
            unknown_skus: within(&self.unknown_skus, &client_skus),
        }
    }

    /// The refusal of a bulk order that names SKUs outside the product master.
    pub(super) fn unknown_skus_error(&self, new: &NewOrder) -> Error {
        let violations = new
            .lines
            .iter()
            .enumerate()
            .filter(|(_, line)| self.unknown_skus.contains(&line.sku))
            .map(|(index, line)| {
                kosha_runtime::error::FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!(
                        "SKU `{}` is not in the product master of `{}`",
                        line.sku, new.client_id
                    ),
                )
            })
            .collect();
        Error::invalid_many("some SKUs are not in the product master", violations)
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

// === impl App: ingest ===

impl App {
    /// Takes in a marketplace or bulk order; returns it and whether it is new.
    #[tracing::instrument(
        name = "order.create",
        skip_all,
        fields(
            client = %new.client_id,
            channel = %new.channel,
            channel_order_id = %new.channel_order_id
        )
    )]
    pub async fn create_order(&self, new: NewOrder) -> Result<(OrderView, bool), Error> {
        self.take_in(new).await
    }

    /// The stored order with this natural key, if the request matches it.
    pub(super) async fn existing(
        &self,
        new: &NewOrder,
        fingerprint: &str,
    ) -> Result<Option<OrderView>, Error> {
        let found = {
            let mut conn = self.db.pool().acquire().await?;
            orders::find_by_natural_key(
                &mut conn,
                &new.client_id,
                &new.channel,
                &new.channel_order_id,
            )
            .await?
        };
        match found {
            Some((id, stored_fingerprint)) => Ok(Some(
                self.known(new, fingerprint, id, &stored_fingerprint)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// The stored order a request names by its natural key, when the request matches it;
    /// a different request under the same key is refused.
    pub(super) async fn known(
        &self,
        new: &NewOrder,
        fingerprint: &str,
        id: OrderId,
        stored_fingerprint: &str,
    ) -> Result<OrderView, Error> {
        if stored_fingerprint != fingerprint {
            return Err(Error::AlreadyExists(format!(
                "order `{}` of {} for client `{}` exists as {id} with different lines or \
                 fulfilment; a channel order id names one order",
                new.channel_order_id, new.channel, new.client_id
            )));
        }
        self.view(id).await
    }

    pub(super) async fn check_channel_kind(&self, new: &NewOrder) -> Result<(), Error> {
        let kind = self.clients.channel_kind(&new.channel, "channel").await?;
        match (new.kind, kind) {
            (OrderKind::Marketplace, catalog::ChannelKind::B2b) => Err(Error::invalid(
                "channel",
                format!(
                    "`{}` is a B2B channel; send its orders with CreateBulkOrder",
                    new.channel
                ),
            )),
            (OrderKind::Bulk, catalog::ChannelKind::Marketplace) => Err(Error::invalid(
                "channel",
                format!(
                    "`{}` is a marketplace; send its orders with CreateOrder",
                    new.channel
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Resolves marketplace SKUs through the channel's listings (one call) and checks
    /// client SKUs against the product master (one call).
    pub(super) async fn resolve(
        &self,
        client_id: &str,
        channel: &str,
        lines: &[NewLine],
    ) -> Result<Resolution, Error> {
        // A marketplace SKU is the channel's text, not ours: one that no listing could ever
        // hold (a stray space, say) is unknown like any other, so the order is kept as
        // FAILED with its raw line rather than lost to a refusal.
        let (marketplace_skus, unlistable): (BTreeSet<&str>, BTreeSet<&str>) = lines
            .iter()
            .filter(|line| !line.marketplace_sku.is_empty())
            .map(|line| line.marketplace_sku.as_str())
            .partition(|sku| kosha_runtime::validate::sku_problem(sku).is_none());
        let client_skus: BTreeSet<&str> = lines
            .iter()
            .filter(|line| line.marketplace_sku.is_empty())
            .map(|line| line.sku.as_str())
            .collect();

        let mut resolved: BTreeMap<String, String> = BTreeMap::new();
        let mut unknown_marketplace_skus = Vec::new();
        let mut unknown_not_in_master: Vec<String> =
            unlistable.iter().map(|sku| sku.to_string()).collect();
        if !marketplace_skus.is_empty() {
            let request = catalog::ResolveListingsRequest {
                client_id: client_id.to_string(),
                channel: channel.to_string(),
                marketplace_skus: marketplace_skus.iter().map(|sku| sku.to_string()).collect(),
            };
            let response = self
                .clients
                .catalog
                .clone()
                .resolve_listings(request)
                .await?
                .into_inner();
            for listing in response.resolved {
                resolved.insert(listing.marketplace_sku, listing.sku);
            }
            unknown_marketplace_skus = response.unknown_marketplace_skus;
            unknown_not_in_master.extend(response.unknown_not_in_master);
        }
        unknown_marketplace_skus.extend(unlistable.iter().map(|sku| sku.to_string()));

        let mut unknown_skus = Vec::new();
        if !client_skus.is_empty() {
            let request = catalog::BatchGetProductsRequest {
                client_id: client_id.to_string(),
                skus: client_skus.iter().map(|sku| sku.to_string()).collect(),
            };
            let response = self
                .clients
                .catalog
                .clone()
                .batch_get_products(request)
                .await?
                .into_inner();
            unknown_skus = response.missing_skus;
        }

        // A client SKU is kept as sent even when the product master lacks it: the order is
        // FAILED then and the reason names it.
        let skus = lines
            .iter()
            .map(|line| {
                if line.marketplace_sku.is_empty() {
                    line.sku.clone()
                } else {
                    resolved
                        .get(&line.marketplace_sku)
                        .cloned()
                        .unwrap_or_default()
                }
            })
            .collect();
        Ok(Resolution {
            skus,
            unknown_marketplace_skus,
            unknown_not_in_master,
            unknown_skus,
        })
    }

    pub(super) fn new_order(&self, new: &NewOrder, resolution: &Resolution, now: i64) -> Order {
        let lines = new
            .lines
            .iter()
            .zip(&resolution.skus)
            .enumerate()
            .map(|(index, (line, sku))| {
                let mut stored =
                    Line::new(index as i32 + 1, &line.marketplace_sku, sku, line.quantity);
                stored.price_paise_opt = line.price_paise_opt;
                stored
            })
            .collect::<Vec<_>>();
        let failed = !resolution.is_complete();
        let mut unknown = resolution.unknown_marketplace_skus.clone();
        unknown.extend(resolution.unknown_skus.iter().cloned());
        Order {
            id: OrderId(0),
            client_id: new.client_id.clone(),
            channel: new.channel.clone(),
            channel_order_id: new.channel_order_id.clone(),
            parent_order_id: new.parent_order_id.clone(),
            kind: new.kind,
            status: if failed {
                OrderStatus::Failed
            } else {
                OrderStatus::Created
            },
            fulfilment: new.fulfilment,
            grade: new.grade,
            marketplace_fulfilled: new.marketplace_fulfilled,
            priority: new.priority,
            order_time: new.order_time,
            dispatch_by_opt: new.dispatch_by_opt,
            start_processing_opt: new.start_processing_opt,
            dispatch_after_opt: new.dispatch_after_opt,
            replacement_for: new.replacement_for.clone(),
            pool: String::new(),
            failure_reason: if failed {
                resolution.failure_reason(&new.channel)
            } else {
                String::new()
            },
            unknown_skus: unknown,
            channel_conflict: String::new(),
            created_at: now,
            updated_at: now,
            lines,
        }
    }

    /// Retries FAILED orders of a client after listings were added; returns how many were
    /// looked at, the orders now taken in, and those still failing.
    pub async fn retry_failed(
        &self,
        client_id: &str,
        channel: &str,
        marketplace_sku: &str,
        actor: &str,
    ) -> Result<(i64, Vec<OrderView>, Vec<Order>), Error> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            orders::failed_to_retry(&mut conn, client_id, channel, marketplace_sku).await?
        };
        let mut resolved_views = Vec::new();
        let mut still_failed = Vec::new();
        for id in &ids {
            let order = self.load(*id).await?;
            let sent: Vec<NewLine> = order
                .lines
                .iter()
                .map(|line| NewLine {
                    marketplace_sku: line.marketplace_sku.clone(),
                    sku: if line.marketplace_sku.is_empty() {
                        line.sku.clone()
                    } else {
                        String::new()
                    },
                    quantity: line.quantity,
                    price_paise_opt: line.price_paise_opt,
                })
                .collect();
            let resolution = self
                .resolve(&order.client_id, &order.channel, &sent)
                .await?;

            let mut tx = self.db.begin().await?;
            let Some(mut locked) = orders::lock(&mut tx, self.db.for_update(), *id).await? else {
                continue;
            };
            let now = now_micros();
            if locked.status != OrderStatus::Failed {
                continue;
            }
            if !resolution.is_complete() {
                locked.failure_reason = resolution.failure_reason(&locked.channel);
                let mut unknown = resolution.unknown_marketplace_skus.clone();
                unknown.extend(resolution.unknown_skus.iter().cloned());
                locked.unknown_skus = unknown;
                orders::save(&mut tx, &locked, now).await?;
                tx.commit().await?;
                still_failed.push(locked);
                continue;
            }
            for (line, sku) in locked.lines.iter_mut().zip(&resolution.skus) {
                line.sku = sku.clone();
            }
            locked.status = OrderStatus::Created;
            locked.failure_reason.clear();
            locked.unknown_skus.clear();
            orders::save(&mut tx, &locked, now).await?;
            orders::add_history(
                &mut tx,
                *id,
                now,
                actor,
                Some(OrderStatus::Failed),
                OrderStatus::Created,
                "every SKU resolves now (retry of failed orders)",
            )
            .await?;
            tx.commit().await?;
            tracing::info!(order_id = %id, "failed order resolved");

            if locked.allocates_automatically()
                && let Err(error) = self
                    .allocate_existing(*id, actor, "allocated after the retry of failed orders")
                    .await
            {
                tracing::warn!(order_id = %id, %error, "allocation after resolving failed");
            }
            resolved_views.push(self.view(*id).await?);
        }
        Ok((ids.len() as i64, resolved_views, still_failed))
    }
}

/// The history reason of the first allocation, naming any holds placed.
pub(super) fn describe_holds(allocation_note: &str, holds: &[NewHold]) -> String {
    if holds.is_empty() {
        return allocation_note.to_string();
    }
    let held: Vec<String> = holds
        .iter()
        .map(|hold| match hold.release_after_opt {
            Some(at) => format!("{} hold until {}", hold.kind.as_str(), format_micros(at)),
            None => format!("{} hold ({})", hold.kind.as_str(), hold.reason),
        })
        .collect();
    format!("{allocation_note}; {}", held.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_order(lines: Vec<NewLine>) -> NewOrder {
        NewOrder {
            client_id: "acme".into(),
            channel: "AMAZON".into(),
            channel_order_id: "A-1".into(),
            parent_order_id: String::new(),
            kind: OrderKind::Marketplace,
            fulfilment: FulfilmentType::SingleShipmentPartial,
            grade: Grade::Pass,
            marketplace_fulfilled: false,
            priority: false,
            order_time: 1,
            dispatch_by_opt: None,
            start_processing_opt: None,
            dispatch_after_opt: None,
            replacement_for: String::new(),
            lines,
            actor: "test".into(),
        }
    }

    #[test]
    fn fingerprints_tell_different_lines_apart_but_not_restated_times() {
        let line = NewLine {
            marketplace_sku: "M-1".into(),
            sku: String::new(),
            quantity: 1,
            price_paise_opt: None,
        };
        let first = new_order(vec![line.clone()]);
        let mut later = first.clone();
        later.order_time = 99;
        let mut other = first.clone();
        other.lines[0].quantity = 2;

        assert_eq!(first.fingerprint(), later.fingerprint());
        assert_ne!(first.fingerprint(), other.fingerprint());
    }
}
