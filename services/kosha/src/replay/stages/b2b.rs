//! Stage 6: wholesale. Outward POs from the B2B file (one per customer and date, pieces
//! summed per SKU; the dry run's rows left out) become bulk orders, which take stock only
//! when the operator retries them through the scheduler. One partly allocated order has
//! its pick list released. A second GRN then brings half the missing units of every SKU
//! that something waits for: waiting marketplace orders fill by themselves, earliest
//! first, while bulk orders stay as they were until the operator's next retry. Last, the
//! picked bulk order is completed (the customer takes no more of it), freeing what it
//! does not need, and its picked units ship.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::kosha::purchase_order::v1 as po;

use super::{
    ACTOR, COMMON, INTERNAL, RejectedRows, Replay, SELLER, allocated_units, chunked, order_number,
    order_ref, status_name,
};
use crate::replay::connect::CallResult as _;
use crate::replay::input::{B2bGroup, OutwardRow, b2b_fulfilment, outward_file, outward_rows};
use crate::replay::progress::Stage;
use crate::replay::report::{BulkOrderFact, Table, thousands};

/// The PO and GRN of the second delivery.
pub const RESTOCK_PO: &str = "PO-RESTOCK-1";
/// The second GRN.
pub const RESTOCK_GRN: &str = "GRN-RESTOCK-1";

/// A bulk order as this stage follows it.
#[derive(Debug, Clone)]
struct Bulk {
    po_number: String,
    order_id: String,
    fulfilment: String,
    ordered: i64,
    allocated_first: i64,
    allocated_after_grn: i64,
    allocated_second: i64,
    status: String,
}

/// A waiting marketplace order's line before the second GRN.
#[derive(Debug, Clone)]
struct WaitingLine {
    order_id: String,
    /// Priority flag first, then earliest dispatch-by, order time and order number.
    priority_key: (bool, i64, i64, u64),
    sku: String,
    allocated_before: i64,
}

impl Replay<'_> {
    pub(super) async fn bulk_orders(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary.section("6. B2B bulk orders and a second GRN");

        // Outward POs: dry run, then the clean rows.
        let groups: Vec<B2bGroup> = self.b2b_groups().to_vec();
        let rows = outward_rows(&groups);
        let all_rows: Vec<&OutwardRow> = rows.iter().collect();
        stage.note("outward POs: dry run, then the upload");
        let dry_run = self.upload_outward(outward_file(&all_rows), true).await?;
        let rejected =
            RejectedRows::from_errors("outward POs", &dry_run.report.unwrap_or_default().errors)?;
        let kept: Vec<&OutwardRow> = rows
            .iter()
            .enumerate()
            .filter(|(index, _)| !rejected.rows.contains(&(*index as i64 + 2)))
            .map(|(_, row)| row)
            .collect();
        let kept_groups: BTreeSet<usize> = kept.iter().map(|row| row.group).collect();
        let uploaded = self.upload_outward(outward_file(&kept), false).await?;
        let report = uploaded.report.clone().unwrap_or_default();
        self.check_upload("outward POs", &report, kept.len());
        self.summary.line(format!(
            "outward PO file: {} rows (pieces summed per customer, date and SKU); dry run \
             reported {} rows ({}); {} POs created, {} groups had no clean row",
            thousands(rows.len() as i64),
            thousands(rejected.rows.len() as i64),
            rejected.describe(),
            uploaded.created_po_numbers.len(),
            groups.len() - kept_groups.len()
        ));

        // Each PO's bulk order.
        let mut bulks = self
            .linked_bulk_orders(&groups, &kept_groups, &kept)
            .await?;

        // The operator's first retry of each, through the scheduler, one at a time.
        stage.step("first operator retry", bulks.len() as u64);
        for bulk in &mut bulks {
            let order = self.retry_bulk(&bulk.order_id, "first").await?;
            bulk.allocated_first = allocated_units(&order);
            bulk.status = status_name(order.status);
            stage.tick();
        }
        self.summarise_bulk("after the first operator retry", &bulks, |bulk| {
            bulk.allocated_first
        });

        // One partly allocated order has a pick list released for about half of what it
        // holds: it is being processed, and the rest stays allocated to it.
        let partly = bulks.iter().position(|bulk| {
            bulk.fulfilment == "PARTIAL"
                && bulk.status == "PARTIALLY_FULFILLABLE"
                && bulk.allocated_first >= 2
        });
        if let Some(index) = partly {
            let order = self.get_order(&bulks[index].order_id).await?;
            let pick_list = half_of_each_allocated_line(&order);
            let order = self.pick_lines(&bulks[index].order_id, &pick_list).await?;
            let picked: i64 = order.lines.iter().map(|line| line.picked_quantity).sum();
            let held: i64 = order.lines.iter().map(|line| line.allocated_quantity).sum();
            bulks[index].status = status_name(order.status);
            self.summary.line(format!(
                "bulk order {} picked: {picked} of the {held} units it holds ({} ordered); now {}",
                bulks[index].po_number, bulks[index].ordered, bulks[index].status
            ));
        }

        // The second GRN: half of what waits, per SKU, rounded up.
        let waiting = self.waiting_marketplace_lines().await?;
        let mut missing: BTreeMap<String, i64> = BTreeMap::new();
        for (sku, pending) in self.waiting_pending_by_sku().await? {
            *missing.entry(sku).or_insert(0) += pending;
        }
        for (index, bulk) in bulks.iter().enumerate() {
            if Some(index) == partly {
                continue;
            }
            let order = self.get_order(&bulk.order_id).await?;
            for line in order.lines.iter().filter(|line| line.pending_quantity > 0) {
                *missing.entry(line.sku.clone()).or_insert(0) += line.pending_quantity;
            }
        }
        let restock: Vec<(String, i64)> = missing
            .into_iter()
            .map(|(sku, pending)| (sku, (pending + 1) / 2))
            .filter(|(_, units)| *units > 0)
            .collect();
        let bulk_before: Vec<i64> = bulks.iter().map(|bulk| bulk.allocated_first).collect();
        if restock.is_empty() {
            self.summary.line("nothing waits for stock: no second GRN");
        } else {
            stage.note("second PO and GRN");
            self.second_delivery(&restock).await?;
            self.settle(SELLER, "the second GRN").await?;
            self.check_waiting_filled_in_priority_order(&waiting)
                .await?;
        }

        // Bulk orders did not move without the operator.
        for (index, bulk) in bulks.iter_mut().enumerate() {
            let order = self.get_order(&bulk.order_id).await?;
            bulk.allocated_after_grn = allocated_units(&order);
            let before = bulk_before[index];
            if bulk.allocated_after_grn != before && Some(index) != partly {
                self.finding(format!(
                    "bulk order {} went from {before} to {} allocated units without an operator \
                     retry",
                    bulk.po_number, bulk.allocated_after_grn
                ));
            }
        }
        let moved_by_themselves = bulks
            .iter()
            .enumerate()
            .filter(|(index, bulk)| bulk.allocated_after_grn != bulk_before[*index])
            .count();
        self.summary.line(format!(
            "bulk orders whose allocation changed after the GRN, before the operator's retry: \
             {moved_by_themselves}"
        ));

        // The operator's second retry of every bulk order still short.
        let short: Vec<usize> = (0..bulks.len())
            .filter(|index| Some(*index) != partly)
            .filter(|index| {
                matches!(
                    bulks[*index].status.as_str(),
                    "CREATED" | "UNFULFILLABLE" | "PARTIALLY_FULFILLABLE"
                )
            })
            .collect();
        stage.step("second operator retry", short.len() as u64);
        for bulk in &mut bulks {
            bulk.allocated_second = bulk.allocated_after_grn;
        }
        for index in short {
            let order = self.retry_bulk(&bulks[index].order_id, "second").await?;
            bulks[index].allocated_second = allocated_units(&order);
            bulks[index].status = status_name(order.status);
            stage.tick();
        }
        self.summarise_bulk("after the second operator retry", &bulks, |bulk| {
            bulk.allocated_second
        });

        // The customer takes no more of the picked order: it is completed, what it does not
        // need any more is freed, and its picked units ship.
        if let Some(index) = partly {
            self.complete_partly_processed(&mut bulks[index]).await?;
            self.settle(SELLER, "completing a bulk order").await?;
            let order = self.get_order(&bulks[index].order_id).await?;
            let shipped = self.pack_invoice_dispatch(&order).await?;
            let units: i64 = shipped.iter().map(|(_, units)| units).sum();
            let order = self.get_order(&bulks[index].order_id).await?;
            self.summary.line(format!(
                "its {units} picked units packed, invoiced and dispatched: {}",
                status_name(order.status)
            ));
        }

        for bulk in &mut bulks {
            let order = self.get_order(&bulk.order_id).await?;
            bulk.status = status_name(order.status);
        }
        self.facts.bulk_orders = bulks
            .iter()
            .map(|bulk| BulkOrderFact {
                po_number: bulk.po_number.clone(),
                order_id: bulk.order_id.clone(),
                fulfilment: bulk.fulfilment.clone(),
                ordered: bulk.ordered,
                allocated_first: bulk.allocated_first,
                allocated_after_grn: bulk.allocated_after_grn,
                allocated_second: bulk.allocated_second,
                status: bulk.status.clone(),
            })
            .collect();
        Ok(bulks.len() as u64)
    }

    /// An outward PO upload; a dry run or the real one.
    async fn upload_outward(
        &self,
        file: Vec<u8>,
        dry_run: bool,
    ) -> anyhow::Result<po::UploadOutwardPurchaseOrdersResponse> {
        let messages = chunked(
            &file,
            |chunk| po::UploadOutwardPurchaseOrdersRequest {
                client_id: SELLER.to_string(),
                dry_run,
                chunk,
                actor: ACTOR.to_string(),
            },
            |chunk| po::UploadOutwardPurchaseOrdersRequest {
                chunk,
                ..Default::default()
            },
        );
        self.clients
            .purchase_order
            .clone()
            .upload_outward_purchase_orders(tokio_stream::iter(messages))
            .await
            .during("UploadOutwardPurchaseOrders")
    }

    /// Waits until every uploaded PO has its bulk order; returns them in file order.
    async fn linked_bulk_orders(
        &self,
        groups: &[B2bGroup],
        kept_groups: &BTreeSet<usize>,
        kept: &[&OutwardRow],
    ) -> anyhow::Result<Vec<Bulk>> {
        let mut bulks = Vec::new();
        for group in groups
            .iter()
            .filter(|group| kept_groups.contains(&group.index))
        {
            let po_number = group.po_number();
            let deadline = Instant::now() + self.options.settle_timeout;
            let outward = loop {
                let request = po::GetOutwardPurchaseOrderRequest {
                    client_id: SELLER.to_string(),
                    po_number: po_number.clone(),
                };
                let response = self
                    .clients
                    .purchase_order
                    .clone()
                    .get_outward_purchase_order(request)
                    .await
                    .during(format!("GetOutwardPurchaseOrder `{po_number}`"))?;
                let outward = response
                    .outward_purchase_order
                    .ok_or_else(|| anyhow::anyhow!("GetOutwardPurchaseOrder returned no PO"))?;
                if outward.order_link() == po::OrderLink::Linked {
                    break outward;
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "outward PO `{po_number}` has no bulk order after {} s: {}",
                        self.options.settle_timeout.as_secs(),
                        outward.last_link_error
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            };
            debug_assert!(kept.iter().any(|row| row.group == group.index));
            bulks.push(Bulk {
                po_number,
                order_id: outward.order_id.clone(),
                fulfilment: b2b_fulfilment(group).to_string(),
                ordered: outward.total_quantity,
                allocated_first: 0,
                allocated_after_grn: 0,
                allocated_second: 0,
                status: String::new(),
            });
        }
        Ok(bulks)
    }

    /// An operator's retry of a bulk order: the scheduler job it becomes is waited for.
    async fn retry_bulk(&mut self, order_id: &str, which: &str) -> anyhow::Result<ord::Order> {
        let request = ord::RetryAllocationRequest {
            order_id: order_id.to_string(),
            actor: ACTOR.to_string(),
            request_id: format!("replay-{which}-retry"),
        };
        let response = self
            .clients
            .order
            .clone()
            .retry_allocation(request)
            .await
            .during(format!("RetryAllocation `{order_id}`"))?;
        if response.job_id.is_empty() {
            self.finding(format!(
                "RetryAllocation of bulk order {order_id} scheduled no job"
            ));
        } else {
            let job = self.wait_for_job(&response.job_id).await?;
            if job.state() != kosha_proto::kosha::scheduler::v1::JobState::Succeeded {
                self.finding(format!(
                    "the {which} retry job of bulk order {order_id} ended {}: {}",
                    job.state().as_str_name(),
                    job.last_error
                ));
            }
        }
        self.get_order(order_id).await
    }

    fn summarise_bulk(&mut self, when: &str, bulks: &[Bulk], allocated: impl Fn(&Bulk) -> i64) {
        let mut rows: BTreeMap<(String, String), (usize, i64, i64)> = BTreeMap::new();
        for bulk in bulks {
            let entry = rows
                .entry((bulk.fulfilment.clone(), bulk.status.clone()))
                .or_insert((0, 0, 0));
            entry.0 += 1;
            entry.1 += bulk.ordered;
            entry.2 += allocated(bulk);
        }
        let mut table = Table::new(&[
            "fulfilment",
            "status",
            "orders",
            "units ordered",
            "allocated",
        ]);
        for ((fulfilment, status), (orders, ordered, allocated)) in rows {
            table.row(vec![
                fulfilment,
                status,
                thousands(orders as i64),
                thousands(ordered),
                thousands(allocated),
            ]);
        }
        self.summary.line(format!("bulk orders {when}:"));
        self.summary.table(&table);
    }

    /// Lines of waiting marketplace orders served by COMMON, before the second GRN.
    async fn waiting_marketplace_lines(&self) -> anyhow::Result<Vec<WaitingLine>> {
        let mut lines = Vec::new();
        for order in self.waiting_marketplace_orders().await? {
            let priority_key = (
                !order.priority,
                order.dispatch_by_time.map_or(i64::MAX, |time| time.seconds),
                order.order_time.map_or(0, |time| time.seconds),
                order_number(&order.order_id).0,
            );
            for line in order.lines.iter().filter(|line| line.pending_quantity > 0) {
                lines.push(WaitingLine {
                    order_id: order.order_id.clone(),
                    priority_key,
                    sku: line.sku.clone(),
                    allocated_before: line.allocated_quantity,
                });
            }
        }
        Ok(lines)
    }

    /// Waiting, seller-fulfilled marketplace orders served by COMMON.
    async fn waiting_marketplace_orders(&self) -> anyhow::Result<Vec<ord::Order>> {
        let statuses = [
            ord::OrderStatus::Unfulfillable,
            ord::OrderStatus::PartiallyFulfillable,
        ];
        let orders = self.search_orders(SELLER, &statuses, "", "").await?;
        Ok(orders
            .into_iter()
            .filter(|order| {
                order.kind() == ord::OrderKind::Marketplace && !order.marketplace_fulfilled
            })
            .filter(|order| order.pool.is_empty() || order.pool == COMMON)
            .collect())
    }

    /// Units waiting marketplace orders still need, per SKU.
    async fn waiting_pending_by_sku(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut pending = BTreeMap::new();
        for order in self.waiting_marketplace_orders().await? {
            for line in order.lines.iter().filter(|line| line.pending_quantity > 0) {
                *pending.entry(line.sku.clone()).or_insert(0) += line.pending_quantity;
            }
        }
        Ok(pending)
    }

    /// A PO for the restock and a GRN receiving all of it.
    async fn second_delivery(&mut self, restock: &[(String, i64)]) -> anyhow::Result<()> {
        let request = po::CreatePurchaseOrderRequest {
            client_id: SELLER.to_string(),
            po_number: RESTOCK_PO.to_string(),
            supplier: "restock".to_string(),
            lines: restock
                .iter()
                .map(|(sku, units)| po::NewPurchaseOrderLine {
                    sku: sku.clone(),
                    quantity: *units,
                    unit_cost: "0".to_string(),
                    expected_date: String::new(),
                })
                .collect(),
            actor: ACTOR.to_string(),
        };
        self.clients
            .purchase_order
            .clone()
            .create_purchase_order(request)
            .await
            .during(format!("CreatePurchaseOrder `{RESTOCK_PO}`"))?;
        let lines = restock
            .iter()
            .map(|(sku, units)| po::GrnLine {
                sku: sku.clone(),
                passed_quantity: *units,
                failed_quantity: 0,
            })
            .collect();
        let grn = self
            .receive_grn(SELLER, RESTOCK_GRN, RESTOCK_PO, "", lines)
            .await?;
        self.summary.line(format!(
            "second delivery: PO {RESTOCK_PO} and GRN {RESTOCK_GRN}, half the missing units of \
             each SKU something waits for: {} SKUs, {} units",
            thousands(restock.len() as i64),
            thousands(grn.passed_quantity)
        ));
        Ok(())
    }

    /// After the second GRN: waiting marketplace orders took the units by themselves, and
    /// per SKU no order got units while an earlier one still lacks some.
    async fn check_waiting_filled_in_priority_order(
        &mut self,
        before: &[WaitingLine],
    ) -> anyhow::Result<()> {
        let order_ids: BTreeSet<String> = before.iter().map(|line| line.order_id.clone()).collect();
        let mut after: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for order_id in &order_ids {
            let order = self.get_order(order_id).await?;
            for line in &order.lines {
                after.insert(
                    (order_id.clone(), line.sku.clone()),
                    (line.allocated_quantity, line.pending_quantity),
                );
            }
        }

        let mut by_sku: BTreeMap<&str, Vec<&WaitingLine>> = BTreeMap::new();
        for line in before {
            by_sku.entry(&line.sku).or_default().push(line);
        }
        let mut filled_orders = BTreeSet::new();
        let mut filled_units = 0;
        let mut out_of_order = Vec::new();
        for (sku, mut lines) in by_sku {
            lines.sort_by_key(|line| line.priority_key);
            let mut earlier_still_short: Option<&str> = None;
            for line in lines {
                let (allocated, pending) = after
                    .get(&(line.order_id.clone(), sku.to_string()))
                    .copied()
                    .unwrap_or((0, 0));
                let gained = allocated - line.allocated_before;
                if gained > 0 {
                    filled_orders.insert(line.order_id.clone());
                    filled_units += gained;
                    if let Some(earlier) = earlier_still_short {
                        out_of_order
                            .push(format!("{} took `{sku}` before {earlier}", line.order_id));
                    }
                }
                if pending > 0 && earlier_still_short.is_none() {
                    earlier_still_short = Some(&line.order_id);
                }
            }
        }
        self.summary.line(format!(
            "waiting marketplace orders before the GRN: {}; filled by themselves afterwards: {} \
             orders, {} units; out of priority order: {}",
            order_ids.len(),
            filled_orders.len(),
            filled_units,
            out_of_order.len()
        ));
        for problem in out_of_order {
            self.finding(format!(
                "waiting orders filled out of priority order: {problem}"
            ));
        }
        Ok(())
    }

    /// Completes the partly processed bulk order and checks that the ledger released what
    /// the response says and that it still holds exactly its picked units.
    async fn complete_partly_processed(&mut self, bulk: &mut Bulk) -> anyhow::Result<()> {
        let request = ord::CompleteOrderRequest {
            order_id: bulk.order_id.clone(),
            actor: ACTOR.to_string(),
            reason: "the customer takes no more of this PO".to_string(),
        };
        let response = self
            .clients
            .order
            .clone()
            .complete_order(request)
            .await
            .during(format!("CompleteOrder `{}`", bulk.order_id))?;
        let order = response
            .order
            .ok_or_else(|| anyhow::anyhow!("CompleteOrder returned no order"))?;
        bulk.status = status_name(order.status);
        self.facts.completed_bulk_order_opt = Some(bulk.order_id.clone());

        let transfers = self
            .ledger(SELLER, &order_ref(INTERNAL, &bulk.po_number))
            .await?;
        let released: i64 = transfers
            .iter()
            .filter(|transfer| transfer.reason() == inv::TransferReason::Release)
            .map(|transfer| transfer.quantity)
            .sum();
        let still_held: i64 = self
            .allocations(SELLER, &order_ref(INTERNAL, &bulk.po_number), true)
            .await?
            .iter()
            .map(|allocation| allocation.quantity)
            .sum();
        self.summary.line(format!(
            "bulk order {} completed: {}; {} units freed ({} released in the ledger), {} units \
             no longer wanted",
            bulk.po_number,
            bulk.status,
            response.released_quantity,
            released,
            order
                .lines
                .iter()
                .map(|line| line.cancelled_quantity)
                .sum::<i64>()
        ));
        let picked_open: i64 = order
            .lines
            .iter()
            .map(|line| line.picked_quantity - line.invoiced_quantity)
            .sum();
        if bulk.status != "COMPLETE"
            || released != response.released_quantity
            || still_held != picked_open
        {
            self.finding(format!(
                "completing bulk order {}: status {}, released {} by the response and \
                 {released} by \
                 the ledger, {still_held} units still held ({picked_open} picked and not invoiced)",
                bulk.po_number, bulk.status, response.released_quantity
            ));
        }
        Ok(())
    }
}

/// A pick list for about half of what an order holds: half of each allocated line, rounded
/// down, or the whole first line where halving leaves nothing (lines of one unit).
fn half_of_each_allocated_line(order: &ord::Order) -> Vec<(i32, i64)> {
    let allocated: Vec<(i32, i64)> = order
        .lines
        .iter()
        .filter(|line| line.allocated_quantity > 0)
        .map(|line| (line.line_number, line.allocated_quantity))
        .collect();
    let halves: Vec<(i32, i64)> = allocated
        .iter()
        .filter(|(_, units)| *units >= 2)
        .map(|(line, units)| (*line, units / 2))
        .collect();
    if halves.is_empty() {
        allocated.into_iter().take(1).collect()
    } else {
        halves
    }
}
