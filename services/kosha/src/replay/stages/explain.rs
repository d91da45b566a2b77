//! Stage 5: an order made UNFULFILLABLE on purpose, and the one move that fixes it.
//!
//! FLIPKART gets a reserve pool with nothing in it, so an order on FLIPKART for a SKU that
//! COMMON has cannot be served. ExplainOrder must say which pool move unblocks it; the
//! replay makes exactly that move and then only waits: the order service sees the stock
//! arrive in the pool through inventory's change feed and allocates the order by itself.

use std::time::Instant;

use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::types::QcGrade;

use super::{ACTOR, BATCH, COMMON, Replay, SELLER, status_name};
use crate::replay::connect::CallResult as _;
use crate::replay::progress::Stage;

/// The channel made to wait.
const CHANNEL: &str = "FLIPKART";
/// Its empty reserve pool.
pub const EMPTY_POOL: &str = "FLIPKART-RESERVE";
/// The order's channel order id: made up, the data has no FLIPKART orders.
pub const UNBLOCKED_ORDER: &str = "OD-REPLAY-0001";

impl Replay<'_> {
    pub(super) async fn unblock_by_pool_move(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary.section("5. An order unblocked by a pool move");

        // A SKU COMMON has, listed on FLIPKART, and an empty pool serving FLIPKART.
        let Some(sku) = self.first_sku_available_in_common().await? else {
            self.summary
                .line("no SKU has AVAILABLE units in COMMON: stage skipped");
            return Ok(0);
        };
        let listing = cat::Listing {
            client_id: SELLER.to_string(),
            channel: CHANNEL.to_string(),
            marketplace_sku: sku.clone(),
            sku: sku.clone(),
            update_time: None,
        };
        self.clients
            .catalog
            .clone()
            .create_listing(cat::CreateListingRequest {
                listing: Some(listing),
            })
            .await
            .during(format!("CreateListing {CHANNEL} `{sku}`"))?;
        let request = inv::CreatePoolRequest {
            client_id: SELLER.to_string(),
            name: EMPTY_POOL.to_string(),
            description: "empty on purpose: its channel's orders wait until stock is moved in"
                .into(),
            channels: vec![CHANNEL.to_string()],
            idempotency_key: format!("replay:create-pool:{EMPTY_POOL}"),
            actor: ACTOR.to_string(),
            ..Default::default()
        };
        self.clients
            .inventory
            .clone()
            .create_pool(request)
            .await
            .during(format!("CreatePool `{EMPTY_POOL}`"))?;

        // The order, UNFULFILLABLE on arrival.
        let request = ord::CreateOrderRequest {
            client_id: SELLER.to_string(),
            channel: CHANNEL.to_string(),
            channel_order_id: UNBLOCKED_ORDER.to_string(),
            lines: vec![ord::NewOrderLine {
                marketplace_sku: sku.clone(),
                quantity: 1,
                ..Default::default()
            }],
            actor: ACTOR.to_string(),
            ..Default::default()
        };
        let created = self
            .clients
            .order
            .clone()
            .create_order(request)
            .await
            .during(format!("CreateOrder `{UNBLOCKED_ORDER}`"))?;
        let order = created
            .order
            .ok_or_else(|| anyhow::anyhow!("CreateOrder returned no order"))?;
        let order_id = order.order_id.clone();
        self.facts.unblocked_order_opt = Some(order_id.clone());
        self.summary.line(format!(
            "{CHANNEL} order {UNBLOCKED_ORDER} for 1 x `{sku}`, served by the empty pool \
             {EMPTY_POOL}: {}",
            status_name(order.status)
        ));
        if order.status != ord::OrderStatus::Unfulfillable as i32 {
            self.finding(format!(
                "order {UNBLOCKED_ORDER} is {} on arrival, expected UNFULFILLABLE",
                status_name(order.status)
            ));
            return Ok(1);
        }

        // ExplainOrder names the move; the replay makes it.
        stage.note("ExplainOrder, then the move it names");
        let explained = self
            .clients
            .order
            .clone()
            .explain_order(ord::ExplainOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .during(format!("ExplainOrder `{order_id}`"))?;
        let steps = explained
            .order_unblock
            .iter()
            .chain(explained.lines.iter().flat_map(|line| line.unblock.iter()));
        let Some(step) = steps
            .into_iter()
            .find(|step| step.action() == ord::UnblockAction::MoveStock)
            .cloned()
        else {
            let actions: Vec<&str> = explained
                .lines
                .iter()
                .flat_map(|line| line.unblock.iter())
                .map(|step| step.action().as_str_name())
                .collect();
            self.finding(format!(
                "ExplainOrder of {UNBLOCKED_ORDER} names no pool move (steps: {actions:?}; \
                 summary: {})",
                explained.summary
            ));
            return Ok(1);
        };
        let blockers: Vec<&str> = explained
            .lines
            .iter()
            .map(|line| line.blocker().as_str_name())
            .collect();
        self.summary.line(format!(
            "ExplainOrder: line blockers {blockers:?}; unblock: move {} x `{sku}` from {} to {}",
            step.quantity, step.from_pool, step.to_pool
        ));
        if step.from_pool != COMMON || step.to_pool != EMPTY_POOL || step.quantity != 1 {
            self.finding(format!(
                "ExplainOrder of {UNBLOCKED_ORDER} suggests moving {} from `{}` to `{}`; expected \
                 1 from COMMON to {EMPTY_POOL}",
                step.quantity, step.from_pool, step.to_pool
            ));
        }
        let line = inv::MoveStockLine {
            sku: sku.clone(),
            grade: QcGrade::Pass as i32,
            quantity: step.quantity,
        };
        self.move_stock(
            SELLER,
            &step.from_pool,
            &step.to_pool,
            vec![line],
            "replay:unblock:1",
        )
        .await?;

        // No retry by hand: the order fills from the change feed.
        let deadline = Instant::now() + self.options.settle_timeout;
        let final_status = loop {
            let order = self.get_order(&order_id).await?;
            if order.status == ord::OrderStatus::Fulfillable as i32 || Instant::now() >= deadline {
                break status_name(order.status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        self.summary.line(format!(
            "after the move, without a retry by hand: {final_status}"
        ));
        if final_status != "FULFILLABLE" {
            self.finding(format!(
                "order {UNBLOCKED_ORDER} is {final_status} {} s after the move that \
                 ExplainOrder named",
                self.options.settle_timeout.as_secs()
            ));
        }
        Ok(1)
    }

    /// The first stocked product, in file order, with AVAILABLE units in COMMON.
    async fn first_sku_available_in_common(&self) -> anyhow::Result<Option<String>> {
        let stocked: Vec<String> = self
            .seller_products
            .iter()
            .filter(|product| product.stock_opt.is_some())
            .map(|product| product.sku.clone())
            .collect();
        for chunk in stocked.chunks(BATCH) {
            let skus = chunk.iter().cloned().collect();
            let available = self.available_in(SELLER, COMMON, &skus).await?;
            if let Some(sku) = chunk
                .iter()
                .find(|sku| available.get(*sku).copied().unwrap_or(0) > 0)
            {
                return Ok(Some(sku.clone()));
            }
        }
        Ok(None)
    }
}
