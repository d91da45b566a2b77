//! Stage 7: are the books right? Inventory's own audit; a reconciliation of every pool
//! from the ledger (received, moved, consumed) against what the pool holds now, to the
//! unit; receipts in the ledger against the GRNs of the purchase-order service; and a
//! check that neither client sees the other's products, listings, orders, POs or stock.
//! Then the end state: orders per status, the failed orders and why, stock per pool.

use std::collections::{BTreeMap, BTreeSet};

use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::kosha::purchase_order::v1 as po;
use tonic::Code;

use super::marketplace::SECOND_CLIENT_ORDER;
use super::stock::OPENING_PO;
use super::{BATCH, MARKETPLACE, Replay, SECOND_CLIENT, SELLER, status_name};
use crate::replay::connect::CallResult as _;
use crate::replay::progress::Stage;
use crate::replay::report::{Table, thousands};

/// Orders counted together: client, channel, kind and status.
type OrderGroup = (String, String, &'static str, String);

/// What the ledger says about one pool.
#[derive(Debug, Default, Clone, Copy)]
struct PoolBooks {
    received: i64,
    moved_in: i64,
    moved_out: i64,
    consumed: i64,
    adjusted: i64,
}

impl PoolBooks {
    fn expected_on_hand(&self) -> i64 {
        self.received + self.moved_in - self.moved_out - self.consumed + self.adjusted
    }
}

impl Replay<'_> {
    pub(super) async fn books(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary.section("7. Audit, reconciliation, isolation");

        // Inventory's audit of every client.
        stage.note("Audit");
        let audit = self
            .clients
            .inventory
            .clone()
            .audit(inv::AuditRequest {
                client_id: String::new(),
            })
            .await
            .during("Audit")?;
        self.facts.audit_clean = audit.clean;
        self.summary.line(format!(
            "audit: {} ({} buckets, {} transfers, {} allocations checked)",
            if audit.clean {
                "clean"
            } else {
                "DIFFERENCES FOUND"
            },
            thousands(audit.buckets_checked),
            thousands(audit.transfers_checked),
            thousands(audit.allocations_checked)
        ));
        for discrepancy in audit.discrepancies.iter().take(20) {
            self.summary.line(format!("  {}", discrepancy.description));
        }
        if !audit.clean {
            self.finding(format!(
                "the audit found {} differences",
                audit.discrepancies.len()
            ));
        }

        // Each pool reconciled from the ledger.
        stage.note("reconciliation from the ledger");
        let mut table = Table::new(&[
            "client",
            "pool",
            "received",
            "moved in",
            "moved out",
            "consumed",
            "available",
            "allocated",
            "recycle",
            "on hand",
            "balanced",
        ]);
        let mut transfers_read = 0;
        let mut balanced = true;
        for client_id in [SELLER, SECOND_CLIENT] {
            let transfers = self.ledger(client_id, "").await?;
            transfers_read += transfers.len();
            let books = pool_books(&transfers);
            let open = self.open_allocations_by_pool(client_id).await?;
            for pool in self.pools(client_id).await? {
                let totals = pool.totals.unwrap_or_default();
                let on_hand = totals.available + totals.allocated + totals.recycle;
                let pool_books = books.get(&pool.name).copied().unwrap_or_default();
                let open_units = open.get(&pool.name).copied().unwrap_or(0);
                let pool_balanced =
                    pool_books.expected_on_hand() == on_hand && open_units == totals.allocated;
                if !pool_balanced {
                    balanced = false;
                    self.finding(format!(
                        "pool {} of `{client_id}`: the ledger says {} units on hand, the pool \
                         holds \
                         {on_hand}; ALLOCATED {} against {open_units} in open allocations",
                        pool.name,
                        pool_books.expected_on_hand(),
                        totals.allocated
                    ));
                }
                table.row(vec![
                    client_id.to_string(),
                    pool.name.clone(),
                    thousands(pool_books.received),
                    thousands(pool_books.moved_in),
                    thousands(pool_books.moved_out),
                    thousands(pool_books.consumed),
                    thousands(totals.available),
                    thousands(totals.allocated),
                    thousands(totals.recycle),
                    thousands(on_hand),
                    if pool_balanced { "yes" } else { "NO" }.to_string(),
                ]);
            }
            self.check_receipts_match_grns(client_id, &transfers)
                .await?;
        }
        self.facts.reconciliation_balanced = balanced;
        self.summary.line(
            "per pool: received + moved in - moved out - consumed = on hand (available + allocated \
             + recycle), and ALLOCATED = open allocations of orders",
        );
        self.summary.table(&table);

        // Neither client sees the other's data.
        stage.note("isolation between the clients");
        let checks = self.check_isolation().await?;
        self.summary.line(format!(
            "isolation between `{SELLER}` and `{SECOND_CLIENT}`: {checks} checks"
        ));

        // The end state.
        self.summarise_orders().await?;
        self.summarise_still_failed().await?;
        Ok(transfers_read as u64)
    }

    /// Every pool of a client, COMMON first.
    async fn pools(&self, client_id: &str) -> anyhow::Result<Vec<inv::Pool>> {
        let mut pools = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListPoolsRequest {
                client_id: client_id.to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_pools(request)
                .await
                .during("ListPools")?;
            pools.extend(page.pools);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(pools)
    }

    async fn open_allocations_by_pool(
        &self,
        client_id: &str,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut by_pool = BTreeMap::new();
        for allocation in self.allocations(client_id, "", true).await? {
            *by_pool.entry(allocation.pool).or_insert(0) += allocation.quantity;
        }
        Ok(by_pool)
    }

    /// Units received in the ledger equal the units of the client's GRNs.
    async fn check_receipts_match_grns(
        &mut self,
        client_id: &str,
        transfers: &[inv::Transfer],
    ) -> anyhow::Result<()> {
        let in_ledger: i64 = transfers
            .iter()
            .filter(|transfer| transfer.reason() == inv::TransferReason::Receive)
            .map(|transfer| transfer.quantity)
            .sum();
        let mut in_grns = 0;
        let mut page_token = String::new();
        loop {
            let request = po::ListGrnsRequest {
                client_id: client_id.to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .clients
                .purchase_order
                .clone()
                .list_grns(request)
                .await
                .during("ListGrns")?;
            in_grns += page
                .grns
                .iter()
                .map(|grn| grn.received_quantity)
                .sum::<i64>();
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        self.summary.line(format!(
            "`{client_id}`: units received by GRNs {}, received in the ledger {}",
            thousands(in_grns),
            thousands(in_ledger)
        ));
        if in_grns != in_ledger {
            self.finding(format!(
                "`{client_id}`: GRNs received {in_grns} units but the ledger received {in_ledger}"
            ));
        }
        Ok(())
    }

    /// Asks each client about the other's data; returns how many questions were asked.
    async fn check_isolation(&mut self) -> anyhow::Result<usize> {
        let seller_skus: Vec<String> = self
            .seller_products
            .iter()
            .take(BATCH)
            .map(|product| product.sku.clone())
            .collect();
        let second_skus: Vec<String> = self.second_skus.iter().take(BATCH).cloned().collect();
        let seller_order = self
            .facts
            .marketplace_orders
            .first()
            .map(|order| order.channel_order_id.clone())
            .unwrap_or_default();
        let mut checks = 0;

        for (asker, others_skus) in [(SECOND_CLIENT, &seller_skus), (SELLER, &second_skus)] {
            if others_skus.is_empty() {
                continue;
            }
            // Products.
            let request = cat::BatchGetProductsRequest {
                client_id: asker.to_string(),
                skus: others_skus.clone(),
            };
            let products = self
                .clients
                .catalog
                .clone()
                .batch_get_products(request)
                .await
                .during("BatchGetProducts")?;
            checks += 1;
            if !products.products.is_empty() {
                self.finding(format!(
                    "`{asker}` reads {} products of the other client",
                    products.products.len()
                ));
            }
            // Listings.
            let request = cat::ResolveListingsRequest {
                client_id: asker.to_string(),
                channel: MARKETPLACE.to_string(),
                marketplace_skus: others_skus.clone(),
            };
            let resolved = self
                .clients
                .catalog
                .clone()
                .resolve_listings(request)
                .await
                .during("ResolveListings")?;
            checks += 1;
            if !resolved.resolved.is_empty() {
                self.finding(format!(
                    "`{asker}` resolves {} listings of the other client",
                    resolved.resolved.len()
                ));
            }
            // Stock.
            let request = inv::GetStockRequest {
                client_id: asker.to_string(),
                skus: others_skus.clone(),
                ..Default::default()
            };
            let stock = self
                .clients
                .inventory
                .clone()
                .get_stock(request)
                .await
                .during("GetStock")?;
            checks += 1;
            if !stock.levels.is_empty() {
                self.finding(format!(
                    "`{asker}` sees stock of {} of the other client's SKUs",
                    stock.levels.len()
                ));
            }
        }

        // Orders, by the other client's order ids and in full lists.
        for (asker, others_order) in [
            (SECOND_CLIENT, seller_order.as_str()),
            (SELLER, SECOND_CLIENT_ORDER),
        ] {
            let found = self.search_orders(asker, &[], "", others_order).await?;
            checks += 1;
            if !found.is_empty() {
                self.finding(format!(
                    "`{asker}` finds the other client's order {others_order}"
                ));
            }
            let all = self.search_orders(asker, &[], "", "").await?;
            checks += 1;
            if let Some(order) = all.iter().find(|order| order.client_id != asker) {
                self.finding(format!(
                    "`{asker}`'s order list shows {} of `{}`",
                    order.order_id, order.client_id
                ));
            }
        }

        // Inward POs.
        for (asker, others_po) in [(SECOND_CLIENT, OPENING_PO), (SELLER, "PO-OS-SAMPLE")] {
            let request = po::GetPurchaseOrderRequest {
                client_id: asker.to_string(),
                po_number: others_po.to_string(),
            };
            let outcome = self
                .clients
                .purchase_order
                .clone()
                .get_purchase_order(request)
                .await;
            checks += 1;
            match outcome {
                Err(status) if status.code() == Code::NotFound => {}
                Ok(_) => self.finding(format!("`{asker}` reads the other client's PO {others_po}")),
                Err(status) => anyhow::bail!(
                    "GetPurchaseOrder failed: {:?}: {}",
                    status.code(),
                    status.message()
                ),
            }
        }

        // Every stock level a client lists is of its own products.
        for (asker, own) in [
            (SELLER, self.seller_skus_set()),
            (SECOND_CLIENT, self.second_skus.iter().cloned().collect()),
        ] {
            let levels = self.all_stock(asker).await?;
            checks += 1;
            if let Some(level) = levels.iter().find(|level| !own.contains(&level.sku)) {
                self.finding(format!(
                    "`{asker}` lists stock of `{}`, not one of its products",
                    level.sku
                ));
            }
        }
        Ok(checks)
    }

    fn seller_skus_set(&self) -> BTreeSet<String> {
        self.seller_products
            .iter()
            .map(|product| product.sku.clone())
            .collect()
    }

    async fn all_stock(&self, client_id: &str) -> anyhow::Result<Vec<inv::StockLevel>> {
        let mut levels = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListStockRequest {
                client_id: client_id.to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_stock(request)
                .await
                .during("ListStock")?;
            levels.extend(page.levels);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(levels)
    }

    /// Orders per client, channel, kind and status, with their units.
    async fn summarise_orders(&mut self) -> anyhow::Result<()> {
        // (client, channel, kind, status) -> (orders, units, dispatched)
        let mut rows: BTreeMap<OrderGroup, (usize, i64, i64)> = BTreeMap::new();
        for client_id in [SELLER, SECOND_CLIENT] {
            for order in self.search_orders(client_id, &[], "", "").await? {
                let kind = match (order.kind(), order.marketplace_fulfilled) {
                    (ord::OrderKind::Bulk, _) => "bulk",
                    (_, true) => "marketplace-fulfilled",
                    (_, false) => "seller-fulfilled",
                };
                let key = (
                    client_id.to_string(),
                    order.channel.clone(),
                    kind,
                    status_name(order.status),
                );
                let entry = rows.entry(key).or_insert((0, 0, 0));
                entry.0 += 1;
                entry.1 += order
                    .lines
                    .iter()
                    .map(|line| line.quantity - line.cancelled_quantity)
                    .sum::<i64>();
                entry.2 += order
                    .lines
                    .iter()
                    .map(|line| line.dispatched_quantity)
                    .sum::<i64>();
            }
        }
        let mut table = Table::new(&[
            "client",
            "channel",
            "kind",
            "status",
            "orders",
            "units",
            "dispatched",
        ]);
        for ((client_id, channel, kind, status), (orders, units, dispatched)) in rows {
            table.row(vec![
                client_id,
                channel,
                kind.to_string(),
                status,
                thousands(orders as i64),
                thousands(units),
                thousands(dispatched),
            ]);
        }
        self.summary.section("Orders by status at the end");
        self.summary.line("units: ordered less cancelled");
        self.summary.table(&table);
        Ok(())
    }

    /// The failed orders left, each with the SKUs it names.
    async fn summarise_still_failed(&mut self) -> anyhow::Result<()> {
        let statuses = [ord::OrderStatus::Failed];
        let failed = self.search_orders(SELLER, &statuses, "", "").await?;
        let mut table = Table::new(&["channel order id", "unknown marketplace SKUs", "reason"]);
        let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for order in &failed {
            let unknown: Vec<&str> = order
                .lines
                .iter()
                .filter(|line| line.sku.is_empty())
                .map(|line| line.marketplace_sku.as_str())
                .collect();
            let reason = if unknown.is_empty() {
                "other"
            } else {
                "SKU in no product master"
            };
            *by_reason.entry(reason.to_string()).or_insert(0) += 1;
            table.row(vec![
                order.channel_order_id.clone(),
                unknown.join(" "),
                reason.to_string(),
            ]);
        }
        self.summary.section("Failed orders at the end, and why");
        for (reason, count) in &by_reason {
            self.summary.line(format!("{reason}: {count} orders"));
        }
        if !table.is_empty() {
            self.summary.table(&table);
        }
        Ok(())
    }
}

/// Units per pool by what the ledger did to them.
fn pool_books(transfers: &[inv::Transfer]) -> BTreeMap<String, PoolBooks> {
    let mut books: BTreeMap<String, PoolBooks> = BTreeMap::new();
    for transfer in transfers {
        let from_opt = transfer
            .from_bucket
            .as_ref()
            .map(|bucket| bucket.pool.clone());
        let to_opt = transfer
            .to_bucket
            .as_ref()
            .map(|bucket| bucket.pool.clone());
        let quantity = transfer.quantity;
        match (from_opt, to_opt) {
            (None, Some(to)) => {
                let entry = books.entry(to).or_default();
                if transfer.reason() == inv::TransferReason::Receive {
                    entry.received += quantity;
                } else {
                    entry.adjusted += quantity;
                }
            }
            (Some(from), None) => {
                let entry = books.entry(from).or_default();
                if transfer.reason() == inv::TransferReason::Consume {
                    entry.consumed += quantity;
                } else {
                    entry.adjusted -= quantity;
                }
            }
            (Some(from), Some(to)) if from != to => {
                books.entry(from).or_default().moved_out += quantity;
                books.entry(to).or_default().moved_in += quantity;
            }
            _ => {}
        }
    }
    books
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(
        from: Option<&str>,
        to: Option<&str>,
        quantity: i64,
        reason: inv::TransferReason,
    ) -> inv::Transfer {
        let bucket = |pool: &str| inv::BucketRef {
            pool: pool.to_string(),
            state: inv::StockState::Available as i32,
        };
        inv::Transfer {
            from_bucket: from.map(bucket),
            to_bucket: to.map(bucket),
            quantity,
            reason: reason as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_pool_is_what_it_received_and_was_moved_in_less_what_left() {
        use inv::TransferReason::{Allocate, Consume, PoolMove, Receive};
        let transfers = [
            transfer(None, Some("COMMON"), 10, Receive),
            transfer(Some("COMMON"), Some("RESERVE"), 3, PoolMove),
            transfer(Some("COMMON"), Some("COMMON"), 2, Allocate),
            transfer(Some("COMMON"), None, 2, Consume),
        ];

        let books = pool_books(&transfers);

        assert_eq!(books["COMMON"].expected_on_hand(), 5);
        assert_eq!(books["RESERVE"].expected_on_hand(), 3);
        assert_eq!(books["COMMON"].consumed, 2);
    }
}
