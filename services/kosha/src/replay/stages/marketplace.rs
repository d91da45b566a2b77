//! Stage 3: the day of marketplace orders, then what the channel said about them.
//!
//! Orders go in by CreateOrder in file order; each order's time is its date plus its
//! position in seconds, so the order service's priority (earliest order time first) is
//! the file's order and ties cannot arise. Then the channel's statuses are written where
//! the AMAZON file connector reads them and pulled with SyncOrderStatus: cancellations
//! cancel and release. Seller-fulfilled orders the channel shipped are picked, packed,
//! invoiced and dispatched; those that came back are received again by a GRN without a
//! PO. Orders the marketplace fulfilled itself are recorded and never touch stock, and
//! their returns go to the marketplace's warehouse, not this one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::kosha::purchase_order::v1 as po;
use kosha_runtime::time::to_timestamp;

use super::{ACTOR, COMMON, MARKETPLACE, Replay, SECOND_CLIENT, SELLER, order_ref, status_name};
use crate::replay::connect::CallResult as _;
use crate::replay::input::{ChannelStatus, MarketplaceOrder};
use crate::replay::progress::Stage;
use crate::replay::report::{CancellationCheck, PlacedOrder, ReturnCheck, Table, thousands};

/// The arrival status of an order the order service refused to take in.
pub const REFUSED: &str = "REFUSED";

/// The second client's one order, for the isolation check.
pub const SECOND_CLIENT_ORDER: &str = "OS-SAMPLE-ORDER-1";

/// Offset of the seller's local time (India Standard Time) from UTC, in seconds: the
/// export's dates are local days.
const LOCAL_OFFSET_SECONDS: i64 = 5 * 3600 + 30 * 60;

impl Replay<'_> {
    pub(super) async fn marketplace_orders(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary
            .section("3. Marketplace orders and channel statuses");

        // Orders, in file order.
        let orders = self.data.marketplace_orders.clone();
        stage.step("CreateOrder", orders.len() as u64);
        for order in &orders {
            let placed = self.create_marketplace_order(order).await?;
            self.facts.marketplace_orders.push(placed);
            stage.tick();
        }
        self.create_second_client_order().await?;
        self.summarise_arrivals();
        self.check_marketplace_fulfilled_took_nothing().await?;

        // The channel's statuses, through the file connector.
        stage.note("channel statuses through the file connector");
        self.write_channel_statuses(&orders)?;
        let synced = self.sync_channel_statuses().await?;
        self.summary.line(format!(
            "statuses pulled through the AMAZON file connector; {}",
            synced.describe()
        ));
        self.settle(SELLER, "the channel's cancellations").await?;

        // Seller-fulfilled orders the channel shipped leave the warehouse.
        let shipped: Vec<PlacedOrder> = self
            .facts
            .marketplace_orders
            .iter()
            .filter(|order| order.was_taken_in() && !order.marketplace_fulfilled)
            .filter(|order| order.channel_status.was_shipped())
            .cloned()
            .collect();
        stage.step("pick, pack, invoice, dispatch", shipped.len() as u64);
        let mut not_shipped_here: BTreeMap<String, usize> = BTreeMap::new();
        let mut dispatched: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
        for order in &shipped {
            let stored = self.get_order(&order.order_id).await?;
            let status = ord::OrderStatus::try_from(stored.status).unwrap_or_default();
            if matches!(
                status,
                ord::OrderStatus::Fulfillable | ord::OrderStatus::PartiallyFulfillable
            ) {
                let units = self.ship(&stored).await?;
                dispatched.insert(order.channel_order_id.clone(), units);
            } else {
                *not_shipped_here
                    .entry(status_name(stored.status))
                    .or_insert(0) += 1;
            }
            stage.tick();
        }
        let dispatched_units: i64 = dispatched.values().flatten().map(|(_, units)| units).sum();
        self.summary.line(format!(
            "seller-fulfilled orders the channel shipped: {}; picked, packed, invoiced and \
             dispatched here: {} ({} units)",
            shipped.len(),
            dispatched.len(),
            thousands(dispatched_units)
        ));
        for (status, count) in &not_shipped_here {
            let why = match status.as_str() {
                "FAILED" => "its SKU is not listed",
                "UNFULFILLABLE" => "no stock for it in these books",
                _ => "not ready for picking",
            };
            self.summary.line(format!(
                "  shipped on the channel but {status} here ({why}): {count}"
            ));
        }

        // Returns come back into COMMON through a GRN without a PO.
        let returned: Vec<PlacedOrder> = shipped
            .iter()
            .filter(|order| order.channel_status.came_back())
            .cloned()
            .collect();
        for order in &returned {
            match dispatched.get(&order.channel_order_id) {
                Some(units) => self.receive_return(order, units).await?,
                None => self.summary.line(format!(
                    "  {} came back on the channel but was never shipped from this stock: \
                     no re-GRN",
                    order.channel_order_id
                )),
            }
        }
        let returned_units: i64 = self
            .facts
            .returns
            .iter()
            .flat_map(|ret| ret.lines.iter())
            .map(|(_, units)| units)
            .sum();
        self.summary.line(format!(
            "seller-fulfilled orders returned or rejected: {}; received back by re-GRN into \
             COMMON: {} orders, {} units",
            returned.len(),
            self.facts.returns.len(),
            returned_units
        ));
        let marketplace_returns = self
            .facts
            .marketplace_orders
            .iter()
            .filter(|order| order.marketplace_fulfilled && order.channel_status.came_back())
            .count();
        self.summary.line(format!(
            "marketplace-fulfilled returns (to the marketplace's warehouse, not this stock): \
             {marketplace_returns}"
        ));
        self.settle(SELLER, "the re-GRN of returns").await?;
        Ok(orders.len() as u64)
    }

    async fn create_marketplace_order(
        &mut self,
        order: &MarketplaceOrder,
    ) -> anyhow::Result<PlacedOrder> {
        let order_time = local_midnight_micros(&order.date)
            .with_context(|| format!("order `{}`: date `{}`", order.order_id, order.date))?
            + order.index as i64 * 1_000_000;
        let request = ord::CreateOrderRequest {
            client_id: SELLER.to_string(),
            channel: MARKETPLACE.to_string(),
            channel_order_id: order.order_id.clone(),
            parent_order_id: order.order_id.clone(),
            order_time: Some(to_timestamp(order_time)),
            lines: order
                .lines
                .iter()
                .map(|line| ord::NewOrderLine {
                    marketplace_sku: line.sku.clone(),
                    sku: String::new(),
                    quantity: line.quantity,
                    price: line.price.clone(),
                })
                .collect(),
            marketplace_fulfilled: order.marketplace_fulfilled,
            actor: ACTOR.to_string(),
            ..Default::default()
        };
        let lines = order
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.quantity))
            .collect();
        let response = match self.clients.order.clone().create_order(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                // Refused outright: the order is in no list, not even the failed-order
                // report, so an operator would never see it.
                self.finding(format!(
                    "CreateOrder `{}` was refused, so the order is nowhere in the suite: {}",
                    order.order_id,
                    status.message()
                ));
                return Ok(PlacedOrder {
                    channel_order_id: order.order_id.clone(),
                    order_id: String::new(),
                    channel_status: order.status.clone(),
                    marketplace_fulfilled: order.marketplace_fulfilled,
                    lines,
                    arrival_status: REFUSED.to_string(),
                });
            }
            Err(status) => anyhow::bail!(
                "CreateOrder `{}` failed: {:?}: {}",
                order.order_id,
                status.code(),
                status.message()
            ),
        };
        let stored = response
            .order
            .ok_or_else(|| anyhow::anyhow!("CreateOrder returned no order"))?;
        Ok(PlacedOrder {
            channel_order_id: order.order_id.clone(),
            order_id: stored.order_id.clone(),
            channel_status: order.status.clone(),
            marketplace_fulfilled: order.marketplace_fulfilled,
            lines,
            arrival_status: status_name(stored.status),
        })
    }

    /// One order of the second client, so each client has orders the other must not see.
    async fn create_second_client_order(&mut self) -> anyhow::Result<()> {
        let Some(sku) = self.second_skus.first().cloned() else {
            return Ok(());
        };
        let request = ord::CreateOrderRequest {
            client_id: SECOND_CLIENT.to_string(),
            channel: MARKETPLACE.to_string(),
            channel_order_id: SECOND_CLIENT_ORDER.to_string(),
            lines: vec![ord::NewOrderLine {
                marketplace_sku: sku,
                quantity: 1,
                ..Default::default()
            }],
            actor: ACTOR.to_string(),
            ..Default::default()
        };
        let response = self
            .clients
            .order
            .clone()
            .create_order(request)
            .await
            .during(format!("CreateOrder `{SECOND_CLIENT_ORDER}`"))?;
        let status = response
            .order
            .map(|order| status_name(order.status))
            .unwrap_or_default();
        self.summary.line(format!(
            "`{SECOND_CLIENT}`: one AMAZON order {SECOND_CLIENT_ORDER} for its first SKU: {status}"
        ));
        Ok(())
    }

    fn summarise_arrivals(&mut self) {
        let mut counts: BTreeMap<(String, &str), (usize, i64)> = BTreeMap::new();
        for order in &self.facts.marketplace_orders {
            let who = if order.marketplace_fulfilled {
                "marketplace"
            } else {
                "seller"
            };
            let entry = counts
                .entry((order.arrival_status.clone(), who))
                .or_insert((0, 0));
            entry.0 += 1;
            entry.1 += order.lines.iter().map(|(_, units)| units).sum::<i64>();
        }
        let mut table = Table::new(&["status on arrival", "fulfilled by", "orders", "units"]);
        for ((status, who), (orders, units)) in counts {
            table.row(vec![
                status,
                who.to_string(),
                thousands(orders as i64),
                thousands(units),
            ]);
        }
        self.summary.line(format!(
            "`{SELLER}`: {} AMAZON orders taken in, in file order",
            thousands(self.facts.marketplace_orders.len() as i64)
        ));
        self.summary.table(&table);
    }

    /// Orders the marketplace fulfils must never hold the seller's units.
    async fn check_marketplace_fulfilled_took_nothing(&mut self) -> anyhow::Result<()> {
        let refs: BTreeSet<String> = self
            .allocations(SELLER, "", false)
            .await?
            .into_iter()
            .map(|allocation| allocation.order_ref)
            .collect();
        let offending: Vec<String> = self
            .facts
            .marketplace_orders
            .iter()
            .filter(|order| order.marketplace_fulfilled)
            .filter(|order| refs.contains(&order_ref(MARKETPLACE, &order.channel_order_id)))
            .map(|order| order.channel_order_id.clone())
            .collect();
        let marketplace_fulfilled = self
            .facts
            .marketplace_orders
            .iter()
            .filter(|order| order.marketplace_fulfilled)
            .count();
        self.summary.line(format!(
            "marketplace-fulfilled orders: {marketplace_fulfilled}, of which holding seller \
             stock: {}",
            offending.len()
        ));
        if !offending.is_empty() {
            self.finding(format!(
                "{} marketplace-fulfilled orders hold seller stock, e.g. {}",
                offending.len(),
                offending[0]
            ));
        }
        Ok(())
    }

    /// Writes what the channel says about each order where the file connector reads it.
    fn write_channel_statuses(&self, orders: &[MarketplaceOrder]) -> anyhow::Result<()> {
        let dir = self.options.connector_dir.join(SELLER);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut text = String::from("channel_order_id,state\n");
        for order in orders {
            text.push_str(&format!(
                "{},{}\n",
                order.order_id,
                connector_state(&order.status)
            ));
        }
        write_atomically(&dir.join("statuses.csv"), &text)
    }

    /// Pulls the channel's statuses and checks that every cancelled order gave back exactly
    /// what it held.
    pub(super) async fn sync_channel_statuses(&mut self) -> anyhow::Result<SyncOutcome> {
        // What each order the channel cancelled holds now, before the sync.
        let already_checked: BTreeSet<String> = self
            .facts
            .cancellations
            .iter()
            .map(|check| check.order_id.clone())
            .collect();
        let mut held_before = Vec::new();
        let cancelled_on_channel: Vec<PlacedOrder> = self
            .facts
            .marketplace_orders
            .iter()
            .filter(|order| {
                order.was_taken_in() && order.channel_status == ChannelStatus::Cancelled
            })
            .filter(|order| !already_checked.contains(&order.order_id))
            .cloned()
            .collect();
        for order in &cancelled_on_channel {
            let stored = self.get_order(&order.order_id).await?;
            if stored.status == ord::OrderStatus::Cancelled as i32 {
                continue;
            }
            held_before.push((
                order.clone(),
                open_units(
                    &self
                        .allocations(
                            SELLER,
                            &order_ref(MARKETPLACE, &order.channel_order_id),
                            true,
                        )
                        .await?,
                ),
            ));
        }

        let request = ord::SyncOrderStatusRequest {
            target: Some(ord::sync_order_status_request::Target::ChannelScope(
                ord::ChannelScope {
                    client_id: SELLER.to_string(),
                    channel: MARKETPLACE.to_string(),
                },
            )),
        };
        let response = self
            .clients
            .order
            .clone()
            .sync_order_status(request)
            .await
            .during("SyncOrderStatus AMAZON")?;
        if !response.conflict_order_ids.is_empty() {
            self.finding(format!(
                "the channel cancelled {} orders already invoiced here",
                response.conflict_order_ids.len()
            ));
        }

        // Each cancelled order released exactly what it held, according to the ledger.
        let mut outcome = SyncOutcome::default();
        for (order, held) in held_before {
            let stored = self.get_order(&order.order_id).await?;
            let transfers = self
                .ledger(SELLER, &order_ref(MARKETPLACE, &order.channel_order_id))
                .await?;
            let released: i64 = transfers
                .iter()
                .filter(|transfer| transfer.reason() == inv::TransferReason::Release)
                .map(|transfer| transfer.quantity)
                .sum();
            let still_open = open_units(
                &self
                    .allocations(
                        SELLER,
                        &order_ref(MARKETPLACE, &order.channel_order_id),
                        true,
                    )
                    .await?,
            );
            let check = CancellationCheck {
                order_id: order.order_id.clone(),
                channel_order_id: order.channel_order_id.clone(),
                held_before: held,
                released,
                status_after: status_name(stored.status),
            };
            let exact = check.status_after == "CANCELLED" && released == held && still_open == 0;
            outcome.checked += 1;
            if exact {
                outcome.released_exactly += 1;
                outcome.units_released += released;
            } else {
                self.finding(format!(
                    "channel-cancelled order {} ({}): status {}, held {held}, released {released}, \
                     still held {still_open}",
                    order.channel_order_id, order.order_id, check.status_after
                ));
            }
            self.facts.cancellations.push(check);
        }
        outcome.cancelled = response.cancelled_order_ids.len();
        Ok(outcome)
    }

    /// Picks, packs, invoices and dispatches an order; returns the units dispatched per SKU.
    pub(super) async fn ship(&mut self, order: &ord::Order) -> anyhow::Result<Vec<(String, i64)>> {
        self.pick(&order.order_id).await?;
        self.pack_invoice_dispatch(order).await
    }

    /// Picks every allocated unit of an order.
    pub(super) async fn pick(&mut self, order_id: &str) -> anyhow::Result<ord::Order> {
        self.pick_lines(order_id, &[]).await
    }

    /// Picks the units of a pick list (`(line number, units)`), or every allocated unit when
    /// the list is empty.
    pub(super) async fn pick_lines(
        &mut self,
        order_id: &str,
        pick_list: &[(i32, i64)],
    ) -> anyhow::Result<ord::Order> {
        let request = ord::PickOrderRequest {
            lines: pick_list
                .iter()
                .map(|(line_no, quantity)| ord::PickLine {
                    line_no: *line_no,
                    quantity: *quantity,
                })
                .collect(),
            order_id: order_id.to_string(),
            actor: ACTOR.to_string(),
        };
        let response = self
            .clients
            .order
            .clone()
            .pick_order(request)
            .await
            .during(format!("PickOrder `{order_id}`"))?;
        response
            .order
            .ok_or_else(|| anyhow::anyhow!("PickOrder returned no order"))
    }

    /// Packs the picked units of an order into a shipment, invoices and dispatches it;
    /// returns the units dispatched per SKU.
    pub(super) async fn pack_invoice_dispatch(
        &mut self,
        order: &ord::Order,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        let order_id = order.order_id.clone();
        let mut client = self.clients.order.clone();
        let packed = client
            .pack_order(ord::PackOrderRequest {
                order_id: order_id.clone(),
                actor: ACTOR.to_string(),
            })
            .await
            .during(format!("PackOrder `{order_id}`"))?;
        let shipment_id = packed
            .shipment
            .map(|shipment| shipment.shipment_id)
            .unwrap_or_default();
        client
            .invoice_order(ord::InvoiceOrderRequest {
                order_id: order_id.clone(),
                shipment_id: shipment_id.clone(),
                invoice_number: format!("INV-{}", order.channel_order_id),
                actor: ACTOR.to_string(),
            })
            .await
            .during(format!("InvoiceOrder `{order_id}`"))?;
        let dispatched = client
            .dispatch_order(ord::DispatchOrderRequest {
                order_id: order_id.clone(),
                shipment_id,
                actor: ACTOR.to_string(),
            })
            .await
            .during(format!("DispatchOrder `{order_id}`"))?;
        let stored = dispatched
            .order
            .ok_or_else(|| anyhow::anyhow!("DispatchOrder returned no order"))?;
        Ok(stored
            .lines
            .iter()
            .filter(|line| line.dispatched_quantity > 0)
            .map(|line| (line.sku.clone(), line.dispatched_quantity))
            .collect())
    }

    /// A re-GRN of what came back, and a check that COMMON holds it again.
    async fn receive_return(
        &mut self,
        order: &PlacedOrder,
        units: &[(String, i64)],
    ) -> anyhow::Result<()> {
        let grn_number = format!("RET-{}", order.channel_order_id);
        let skus: Vec<String> = units.iter().map(|(sku, _)| sku.clone()).collect();
        let before = self.held_in(SELLER, COMMON, &skus).await?;
        let lines = units
            .iter()
            .map(|(sku, quantity)| po::GrnLine {
                sku: sku.clone(),
                passed_quantity: *quantity,
                failed_quantity: 0,
            })
            .collect();
        let reason = format!(
            "{}: AMAZON order {}",
            order.channel_status.as_str(),
            order.channel_order_id
        );
        self.receive_grn(SELLER, &grn_number, "", &reason, lines)
            .await?;
        let after = self.held_in(SELLER, COMMON, &skus).await?;

        let mut before_after = Vec::new();
        for (sku, quantity) in units {
            let was = before.get(sku).copied().unwrap_or(0);
            let is = after.get(sku).copied().unwrap_or(0);
            if is != was + quantity {
                self.finding(format!(
                    "re-GRN {grn_number}: COMMON held {was} of `{sku}` before and {is} after \
                     receiving {quantity}"
                ));
            }
            before_after.push((was, is));
        }
        self.facts.returns.push(ReturnCheck {
            channel_order_id: order.channel_order_id.clone(),
            grn_number,
            lines: units.to_vec(),
            common_before_after: before_after,
        });
        Ok(())
    }
}

/// What a pull of the channel's statuses did.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// Orders the order service cancelled.
    pub cancelled: usize,
    /// Channel-cancelled orders whose release was checked.
    pub checked: usize,
    /// Of those, orders that released exactly what they held.
    pub released_exactly: usize,
    /// Units those released.
    pub units_released: i64,
}

impl SyncOutcome {
    /// One line for the summary.
    pub fn describe(&self) -> String {
        format!(
            "orders cancelled by the channel: {}; of {} checked against the ledger, {} released \
             exactly what they held ({} units)",
            self.cancelled, self.checked, self.released_exactly, self.units_released
        )
    }
}

/// The state the file connector reports for a channel status.
fn connector_state(status: &ChannelStatus) -> &'static str {
    match status {
        ChannelStatus::Cancelled => "CANCELLED",
        ChannelStatus::ReturnedToSeller | ChannelStatus::RejectedByBuyer => "RETURN_PICKED_UP",
        ChannelStatus::Shipped | ChannelStatus::Delivered => "SHIPPED",
        ChannelStatus::Other(_) => "OPEN",
    }
}

/// Units held open by allocations.
fn open_units(allocations: &[inv::Allocation]) -> i64 {
    allocations
        .iter()
        .map(|allocation| allocation.quantity)
        .sum()
}

/// Writes a file so that a reader sees the old or the new content, never half of it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).with_context(|| format!("write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("write {}", path.display()))
}

/// Midnight of a local date (`YYYY-MM-DD`) in the seller's time zone, in microseconds.
fn local_midnight_micros(date: &str) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).context("not a YYYY-MM-DD date")?;
    let utc_midnight = day.midnight().assume_utc().unix_timestamp();
    Ok((utc_midnight - LOCAL_OFFSET_SECONDS) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_date_starts_at_midnight_india_time() {
        // 2022-04-30T00:00:00+05:30 is 2022-04-29T18:30:00Z.
        assert_eq!(
            local_midnight_micros("2022-04-30").unwrap(),
            1_651_257_000_000_000
        );
        assert!(local_midnight_micros("30/04/2022").is_err());
    }

    #[test]
    fn returns_tell_the_connector_that_the_return_was_picked_up() {
        assert_eq!(connector_state(&ChannelStatus::Cancelled), "CANCELLED");
        assert_eq!(
            connector_state(&ChannelStatus::RejectedByBuyer),
            "RETURN_PICKED_UP"
        );
        assert_eq!(connector_state(&ChannelStatus::Delivered), "SHIPPED");
    }
}
