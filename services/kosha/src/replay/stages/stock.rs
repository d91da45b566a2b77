//! Stage 2: opening stock. One inward PO for every product with positive stock and one
//! GRN receiving all of it as QC pass; a small PO for the second client (its file has no
//! stock, but the isolation check needs stock on both sides); and a reserve pool for
//! MYNTRA, a channel with no orders in the data, holding a tenth of each SKU, so AMAZON
//! keeps being served from COMMON.

use std::time::Instant;

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::purchase_order::v1 as po;
use kosha_proto::types::QcGrade;

use super::{
    ACTOR, BATCH, COMMON, MARKETPLACE, RejectedRows, Replay, SECOND_CLIENT, SELLER, chunked,
};
use crate::replay::connect::CallResult as _;
use crate::replay::input::csv_cell;
use crate::replay::progress::Stage;
use crate::replay::report::thousands;

/// The opening stock's PO and GRN.
pub const OPENING_PO: &str = "PO-OPENING-STOCK";
/// The GRN of the opening stock.
pub const OPENING_GRN: &str = "GRN-OPENING-STOCK";
/// The reserve pool of MYNTRA.
pub const RESERVE_POOL: &str = "MYNTRA-RESERVE";
/// The channel the reserve pool serves.
const RESERVE_CHANNEL: &str = "MYNTRA";
/// Share of each SKU's stock moved to the reserve pool, in percent (rounded down).
const RESERVE_PERCENT: i64 = 10;
/// The second client's PO: a few units of its first SKUs.
const SECOND_PO: &str = "PO-OS-SAMPLE";
const SECOND_GRN: &str = "GRN-OS-SAMPLE";
const SECOND_PO_SKUS: usize = 5;
const SECOND_PO_UNITS: i64 = 3;

impl Replay<'_> {
    pub(super) async fn opening_stock(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary.section("2. Opening stock and reserve pools");

        // One inward PO for every positive stock: dry run, then for real.
        let stocked: Vec<(String, i64)> = self
            .seller_products
            .iter()
            .filter_map(|product| product.stock_opt.map(|stock| (product.sku.clone(), stock)))
            .collect();
        let mut file = String::from("po_number,supplier,sku,quantity,unit_cost\n");
        for (sku, stock) in &stocked {
            file.push_str(&format!(
                "{OPENING_PO},opening stock,{},{stock},0\n",
                csv_cell(sku)
            ));
        }
        stage.note("inward PO: dry run, then the upload");
        let dry_run = self
            .upload_inward(SELLER, file.as_bytes().to_vec(), true)
            .await?;
        let rejected =
            RejectedRows::from_errors("inward PO", &dry_run.report.unwrap_or_default().errors)?;
        if !rejected.rows.is_empty() {
            self.finding(format!(
                "the opening-stock PO names only stored products, yet its dry run reported {} \
                 rows ({})",
                rejected.rows.len(),
                rejected.describe()
            ));
        }
        let uploaded = self.upload_inward(SELLER, file.into_bytes(), false).await?;
        let report = uploaded.report.unwrap_or_default();
        self.check_upload("inward PO", &report, stocked.len());

        // The GRN: everything passed QC.
        stage.note("GRN of the opening stock");
        let lines = stocked
            .iter()
            .map(|(sku, stock)| po::GrnLine {
                sku: sku.clone(),
                passed_quantity: *stock,
                failed_quantity: 0,
            })
            .collect();
        let grn = self
            .receive_grn(SELLER, OPENING_GRN, OPENING_PO, "", lines)
            .await?;
        let units: i64 = stocked.iter().map(|(_, stock)| stock).sum();
        self.summary.line(format!(
            "`{SELLER}`: inward PO {OPENING_PO} with {} lines, {} units; GRN {OPENING_GRN} \
             received {} units, all QC pass",
            thousands(stocked.len() as i64),
            thousands(units),
            thousands(grn.passed_quantity)
        ));
        if grn.passed_quantity != units {
            self.finding(format!(
                "GRN {OPENING_GRN} received {} units of {units}",
                grn.passed_quantity
            ));
        }

        // The second client: a few units of its first SKUs.
        let sample: Vec<String> = self
            .second_skus
            .iter()
            .take(SECOND_PO_SKUS)
            .cloned()
            .collect();
        if !sample.is_empty() {
            let request = po::CreatePurchaseOrderRequest {
                client_id: SECOND_CLIENT.to_string(),
                po_number: SECOND_PO.to_string(),
                supplier: "sample stock".to_string(),
                lines: sample
                    .iter()
                    .map(|sku| po::NewPurchaseOrderLine {
                        sku: sku.clone(),
                        quantity: SECOND_PO_UNITS,
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
                .during(format!("CreatePurchaseOrder `{SECOND_PO}`"))?;
            let lines = sample
                .iter()
                .map(|sku| po::GrnLine {
                    sku: sku.clone(),
                    passed_quantity: SECOND_PO_UNITS,
                    failed_quantity: 0,
                })
                .collect();
            let grn = self
                .receive_grn(SECOND_CLIENT, SECOND_GRN, SECOND_PO, "", lines)
                .await?;
            self.summary.line(format!(
                "`{SECOND_CLIENT}` (its file has no stock): PO {SECOND_PO}, \
                 {SECOND_PO_UNITS} units \
                 of each of its first {} SKUs; GRN received {} units",
                sample.len(),
                grn.passed_quantity
            ));
        }

        // A reserve pool for MYNTRA with a tenth of each SKU.
        stage.note("reserve pool for MYNTRA");
        let request = inv::CreatePoolRequest {
            client_id: SELLER.to_string(),
            name: RESERVE_POOL.to_string(),
            description: format!("{RESERVE_PERCENT}% of each SKU, kept for {RESERVE_CHANNEL}"),
            channels: vec![RESERVE_CHANNEL.to_string()],
            idempotency_key: format!("replay:create-pool:{RESERVE_POOL}"),
            actor: ACTOR.to_string(),
            ..Default::default()
        };
        self.clients
            .inventory
            .clone()
            .create_pool(request)
            .await
            .during(format!("CreatePool `{RESERVE_POOL}`"))?;
        let moves: Vec<inv::MoveStockLine> = stocked
            .iter()
            .map(|(sku, stock)| (sku, stock * RESERVE_PERCENT / 100))
            .filter(|(_, units)| *units > 0)
            .map(|(sku, units)| inv::MoveStockLine {
                sku: sku.clone(),
                grade: QcGrade::Pass as i32,
                quantity: units,
            })
            .collect();
        let moved_units: i64 = moves.iter().map(|line| line.quantity).sum();
        for (index, chunk) in moves.chunks(BATCH).enumerate() {
            self.move_stock(
                SELLER,
                COMMON,
                RESERVE_POOL,
                chunk.to_vec(),
                &format!("replay:reserve:{index}"),
            )
            .await?;
        }
        let amazon_pool = self.serving_pool(SELLER, MARKETPLACE).await?;
        let myntra_pool = self.serving_pool(SELLER, RESERVE_CHANNEL).await?;
        self.summary.line(format!(
            "pool {RESERVE_POOL} serves {RESERVE_CHANNEL}: {RESERVE_PERCENT}% of each SKU moved \
             from \
             COMMON ({} SKUs, {} units); {MARKETPLACE} is served by {amazon_pool}",
            thousands(moves.len() as i64),
            thousands(moved_units)
        ));
        if amazon_pool != COMMON || myntra_pool != RESERVE_POOL {
            self.finding(format!(
                "serving pools: {MARKETPLACE} -> {amazon_pool} (expected {COMMON}), \
                 {RESERVE_CHANNEL} -> {myntra_pool} (expected {RESERVE_POOL})"
            ));
        }
        Ok(stocked.len() as u64)
    }

    /// An inward PO upload; a dry run or the real one.
    async fn upload_inward(
        &self,
        client_id: &str,
        file: Vec<u8>,
        dry_run: bool,
    ) -> anyhow::Result<po::UploadPurchaseOrdersResponse> {
        let messages = chunked(
            &file,
            |chunk| po::UploadPurchaseOrdersRequest {
                client_id: client_id.to_string(),
                dry_run,
                chunk,
                actor: ACTOR.to_string(),
            },
            |chunk| po::UploadPurchaseOrdersRequest {
                chunk,
                ..Default::default()
            },
        );
        self.clients
            .purchase_order
            .clone()
            .upload_purchase_orders(tokio_stream::iter(messages))
            .await
            .during(format!("UploadPurchaseOrders of `{client_id}`"))
    }

    /// Records a GRN and waits until inventory holds its units.
    pub(super) async fn receive_grn(
        &mut self,
        client_id: &str,
        grn_number: &str,
        po_number: &str,
        reason: &str,
        lines: Vec<po::GrnLine>,
    ) -> anyhow::Result<po::Grn> {
        let request = po::ReceiveGrnRequest {
            client_id: client_id.to_string(),
            grn_number: grn_number.to_string(),
            po_number: po_number.to_string(),
            reason: reason.to_string(),
            lines,
            actor: ACTOR.to_string(),
        };
        let response = self
            .clients
            .purchase_order
            .clone()
            .receive_grn(request)
            .await
            .during(format!("ReceiveGrn `{grn_number}`"))?;
        let mut grn = response
            .grn
            .ok_or_else(|| anyhow::anyhow!("ReceiveGrn returned no GRN"))?;

        // A GRN whose units are still on their way to inventory is finished in the
        // background; wait for it rather than count units that are not there yet.
        let deadline = Instant::now() + self.options.settle_timeout;
        while grn.inventory_delivery() != po::InventoryDelivery::Delivered {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "GRN `{grn_number}` did not reach inventory within {} s: {}",
                    self.options.settle_timeout.as_secs(),
                    grn.last_delivery_error
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let request = po::GetGrnRequest {
                client_id: client_id.to_string(),
                grn_number: grn_number.to_string(),
            };
            let response = self
                .clients
                .purchase_order
                .clone()
                .get_grn(request)
                .await
                .during("GetGrn")?;
            grn = response
                .grn
                .ok_or_else(|| anyhow::anyhow!("GetGrn returned no GRN"))?;
        }
        Ok(grn)
    }

    /// Moves AVAILABLE units between pools (at most [`BATCH`] lines).
    pub(super) async fn move_stock(
        &self,
        client_id: &str,
        from_pool: &str,
        to_pool: &str,
        lines: Vec<inv::MoveStockLine>,
        idempotency_key: &str,
    ) -> anyhow::Result<inv::MoveStockResponse> {
        let request = inv::MoveStockRequest {
            client_id: client_id.to_string(),
            from_pool: from_pool.to_string(),
            to_pool: to_pool.to_string(),
            lines,
            dry_run: false,
            reason: format!("replay: {from_pool} -> {to_pool}"),
            idempotency_key: idempotency_key.to_string(),
            actor: ACTOR.to_string(),
        };
        self.clients
            .inventory
            .clone()
            .move_stock(request)
            .await
            .during(format!("MoveStock {from_pool} -> {to_pool}"))
    }
}
