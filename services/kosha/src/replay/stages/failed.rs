//! Stage 4: the failed-order report, then the listings held back, then a retry of failed
//! orders. Orders of the late-listed category are taken in and allocated; orders naming
//! a SKU that is in no product master stay FAILED, and the replay checks that this is the
//! only reason left.

use std::collections::{BTreeMap, BTreeSet};

use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::kosha::order::v1 as ord;

use super::{
    ACTOR, MARKETPLACE, RejectedRows, Replay, SECOND_CLIENT, SELLER, allocated_units, status_name,
};
use crate::replay::connect::CallResult as _;
use crate::replay::input::{ChannelStatus, csv_cell};
use crate::replay::progress::Stage;
use crate::replay::report::{Table, thousands};

impl Replay<'_> {
    pub(super) async fn failed_orders(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary.section("4. Failed orders and late listings");

        // The failed-order report, each unknown SKU looked up in both product masters.
        let failed = self.failed_order_report().await?;
        let unknown: BTreeSet<String> = failed
            .iter()
            .flat_map(|order| order.unknown_marketplace_skus.iter().cloned())
            .collect();
        let in_master = self.known_skus(SELLER, &unknown).await?;
        let mut reasons: BTreeMap<&str, (usize, BTreeSet<String>)> = BTreeMap::new();
        for order in &failed {
            let listed_late = !order.unknown_marketplace_skus.is_empty()
                && order
                    .unknown_marketplace_skus
                    .iter()
                    .all(|sku| in_master.contains(sku));
            let reason = if listed_late {
                "no listing yet (product in the master, category listed late)"
            } else {
                "marketplace SKU names no product in the master"
            };
            let entry = reasons.entry(reason).or_default();
            entry.0 += 1;
            entry
                .1
                .extend(order.unknown_marketplace_skus.iter().cloned());
        }
        let mut table = Table::new(&["why FAILED", "orders", "SKUs"]);
        for (reason, (orders, skus)) in &reasons {
            table.row(vec![
                reason.to_string(),
                thousands(*orders as i64),
                thousands(skus.len() as i64),
            ]);
        }
        self.summary.line(format!(
            "failed-order report of `{SELLER}` on AMAZON: {} orders",
            failed.len()
        ));
        self.summary.table(&table);

        // The held-back listings: dry run, then for real.
        stage.note("late listings: dry run, then the upload");
        let mut file = String::from("channel,marketplace_sku,sku\n");
        for sku in &self.late_skus {
            let sku = csv_cell(sku);
            file.push_str(&format!("{MARKETPLACE},{sku},{sku}\n"));
        }
        let dry_run = self
            .upload_listings(SELLER, file.as_bytes().to_vec(), true)
            .await?;
        let rejected = RejectedRows::from_errors("late listings", &dry_run.errors)?;
        let stored = self
            .upload_listings(SELLER, file.into_bytes(), false)
            .await?;
        let late_count = self.late_skus.len();
        self.check_upload("late listings", &stored, late_count);
        self.summary.line(format!(
            "late listings of category {}: {} (dry run reported {})",
            self.options.late_category,
            thousands(stored.created + stored.updated),
            rejected.describe()
        ));

        // Retry the failed orders.
        stage.note("RetryFailedOrders");
        let request = ord::RetryFailedOrdersRequest {
            client_id: SELLER.to_string(),
            channel: MARKETPLACE.to_string(),
            marketplace_sku: String::new(),
            actor: ACTOR.to_string(),
        };
        let retried = self
            .clients
            .order
            .clone()
            .retry_failed_orders(request)
            .await
            .during("RetryFailedOrders AMAZON")?;
        let mut resolved_by_status: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for order in &retried.orders {
            let who = if order.marketplace_fulfilled {
                "marketplace"
            } else {
                "seller"
            };
            *resolved_by_status
                .entry((status_name(order.status), who))
                .or_insert(0) += 1;
        }
        self.summary.line(format!(
            "RetryFailedOrders: {} looked at, {} taken in, {} still FAILED",
            retried.retried,
            retried.resolved,
            retried.still_failed.len()
        ));
        let mut table = Table::new(&["taken in, now", "fulfilled by", "orders"]);
        for ((status, who), count) in &resolved_by_status {
            table.row(vec![
                status.clone(),
                who.to_string(),
                thousands(*count as i64),
            ]);
        }
        self.summary.table(&table);
        self.check_late_orders_allocated(&retried.orders);

        // What stays FAILED must name only SKUs that no product master has.
        let still_unknown: BTreeSet<String> = retried
            .still_failed
            .iter()
            .flat_map(|order| order.unknown_marketplace_skus.iter().cloned())
            .collect();
        let known_to_seller = self.known_skus(SELLER, &still_unknown).await?;
        let known_to_second = self.known_skus(SECOND_CLIENT, &still_unknown).await?;
        for order in &retried.still_failed {
            let names_sku = order
                .unknown_marketplace_skus
                .iter()
                .all(|sku| order.reason.contains(sku.as_str()));
            let in_some_master = order
                .unknown_marketplace_skus
                .iter()
                .any(|sku| known_to_seller.contains(sku) || known_to_second.contains(sku));
            if order.unknown_marketplace_skus.is_empty() || !names_sku || in_some_master {
                self.finding(format!(
                    "order {} stays FAILED with reason `{}` (unknown SKUs {:?})",
                    order.channel_order_id, order.reason, order.unknown_marketplace_skus
                ));
            }
        }
        self.summary.line(format!(
            "still FAILED: {} orders naming {} SKUs that are in neither product master",
            retried.still_failed.len(),
            still_unknown.len()
        ));

        // Channel cancellations among the orders just taken in are applied now.
        let synced = self.sync_channel_statuses().await?;
        self.summary
            .line(format!("statuses pulled again; {}", synced.describe()));
        self.settle(SELLER, "the cancellation of late-listed orders")
            .await?;
        Ok(failed.len() as u64)
    }

    /// Every failed order of the seller on the marketplace.
    async fn failed_order_report(&self) -> anyhow::Result<Vec<ord::FailedOrder>> {
        let mut failed = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ord::ListFailedOrdersRequest {
                client_id: SELLER.to_string(),
                channel: MARKETPLACE.to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .clients
                .order
                .clone()
                .list_failed_orders(request)
                .await
                .during("ListFailedOrders")?;
            failed.extend(page.failed_orders);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(failed)
    }

    /// Which of `skus` are in a client's product master.
    pub(super) async fn known_skus(
        &self,
        client_id: &str,
        skus: &BTreeSet<String>,
    ) -> anyhow::Result<BTreeSet<String>> {
        let mut known = BTreeSet::new();
        // A marketplace's text that is no SKU at all (a stray space, say) is in no master,
        // and the catalog refuses to look it up.
        let skus: Vec<String> = skus
            .iter()
            .filter(|sku| kosha_runtime::validate::sku_problem(sku).is_none())
            .cloned()
            .collect();
        for chunk in skus.chunks(10_000) {
            let request = cat::BatchGetProductsRequest {
                client_id: client_id.to_string(),
                skus: chunk.to_vec(),
            };
            let response = self
                .clients
                .catalog
                .clone()
                .batch_get_products(request)
                .await
                .during("BatchGetProducts")?;
            known.extend(response.products.into_iter().map(|product| product.sku));
        }
        Ok(known)
    }

    /// Seller-fulfilled late-listed orders the channel did not cancel must hold units now,
    /// unless their SKU has no stock at all.
    fn check_late_orders_allocated(&mut self, resolved: &[ord::Order]) {
        let mut not_allocated = Vec::new();
        for order in resolved {
            let channel_status = self
                .facts
                .marketplace_orders
                .iter()
                .find(|placed| placed.order_id == order.order_id)
                .map(|placed| placed.channel_status.clone());
            let cancelled_on_channel = channel_status == Some(ChannelStatus::Cancelled);
            if order.marketplace_fulfilled || cancelled_on_channel {
                continue;
            }
            if allocated_units(order) == 0 {
                not_allocated.push(format!(
                    "{} ({})",
                    order.channel_order_id,
                    status_name(order.status)
                ));
            }
        }
        self.summary.line(format!(
            "late-listed seller-fulfilled orders not cancelled on the channel holding no units: {}",
            not_allocated.len()
        ));
        for order in not_allocated {
            self.summary.line(format!("  {order}"));
        }
    }
}
