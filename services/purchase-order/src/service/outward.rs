//! Outward (B2B) POs: uploads, field-by-field creation, their bulk orders, queries.

use futures::{StreamExt as _, TryStreamExt as _};
use kosha_proto::kosha::order::v1::{self as order_v1, CreateBulkOrderRequest, NewOrderLine};
use kosha_proto::types::UploadReport;
use kosha_runtime::Error;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_runtime::upload::reject_or_report;
use tracing::{debug, info, instrument, warn};

use super::{PurchaseOrders, describe_failure};
use crate::domain::ids::{Actor, PoNumber};
use crate::domain::outward::{
    INTERNAL_CHANNEL, NewOutwardLine, NewOutwardOrder, OrderLink, OutwardOrder, OutwardTerms,
};
use crate::domain::upload::{self, OutwardFormat};
use crate::domain::values::FulfilmentType;
use crate::store::outward::{self as store, OutwardSelection};

/// Bulk orders created at once after an upload: enough to overlap the order service's
/// round trips, few enough not to crowd out its other callers.
const LINK_CONCURRENCY: usize = 8;

/// What an outward upload did (or would do).
#[derive(Debug, Clone)]
pub struct OutwardUploadOutcome {
    /// The per-row report.
    pub report: UploadReport,
    /// PO numbers created, or that a dry run would create, in file order.
    pub created_po_numbers: Vec<String>,
    /// Every PO of the file as stored after the upload, with its bulk order (empty for a
    /// dry run or a rejected file).
    pub orders: Vec<OutwardOrder>,
}

impl PurchaseOrders {
    /// Validates a whole outward PO file and, unless `dry_run`, stores its new POs in one
    /// transaction, then creates the bulk order of every PO of the file still without one.
    #[instrument(
        name = "purchase_order.upload_outward",
        skip_all,
        fields(client_id, dry_run, bytes = bytes.len())
    )]
    pub async fn upload_outward_purchase_orders(
        &self,
        client_id: &str,
        dry_run: bool,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<OutwardUploadOutcome, Error> {
        // 1. Every cell, then every SKU against the product master in one lookup.
        let mut draft = upload::read_file::<OutwardFormat>(bytes)?;
        let skus = draft.skus_to_look_up();
        if !skus.is_empty() {
            let products = self.dependencies.products.lookup(client_id, &skus).await?;
            draft.check_products(client_id, &products);
        }

        // 2. POs stored before: the same content is unchanged, other content an error.
        let mut report = UploadReport {
            dry_run,
            rows: draft.rows,
            ..UploadReport::default()
        };
        let mut new_pos = Vec::new();
        let mut file_numbers = Vec::new();
        if draft.is_clean() {
            let ready = upload::ready_pos::<OutwardFormat>(&draft)?;
            let numbers: Vec<&str> = ready.iter().map(|po| po.order.po_number.as_str()).collect();
            let stored =
                store::get_many(&mut *self.connection().await?, client_id, &numbers).await?;
            for po in ready {
                file_numbers.push(po.order.po_number.to_string());
                match stored.get(po.order.po_number.as_str()) {
                    Some(existing) if po.order.matches(existing) => {
                        report.unchanged += po.row_count
                    }
                    Some(_) => draft.reject_existing(po.first_row, po.order.po_number.as_str()),
                    None => {
                        report.created += po.row_count;
                        new_pos.push(po.order);
                    }
                }
            }
        }
        report.errors = std::mem::take(&mut draft.errors);
        if !report.errors.is_empty() {
            report.created = 0;
            report.unchanged = 0;
            debug!(
                problems = report.errors.len(),
                "outward upload has problems"
            );
            return reject_or_report(report).map(|report| OutwardUploadOutcome {
                report,
                created_po_numbers: Vec::new(),
                orders: Vec::new(),
            });
        }
        let created_po_numbers: Vec<String> =
            new_pos.iter().map(|po| po.po_number.to_string()).collect();
        if dry_run {
            return Ok(OutwardUploadOutcome {
                report,
                created_po_numbers,
                orders: Vec::new(),
            });
        }

        // 3. All new POs in one transaction, their bulk orders pending.
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let lease_end = Self::lease_end(now);
        let all_new =
            store::insert_many(&mut tx, client_id, &new_pos, actor.as_str(), now, lease_end)
                .await?;
        if !all_new {
            tx.rollback().await?;
            return Err(Error::Aborted(
                "an outward PO of this file was created by another request while the file was \
                 checked; nothing was stored: upload the file again (POs stored with the same \
                 content count as unchanged)"
                    .into(),
            ));
        }
        tx.commit().await?;
        report.applied = true;
        info!(
            client_id,
            pos = new_pos.len(),
            rows = report.created,
            "outward purchase orders uploaded"
        );

        // 4. A bulk order for every PO of the file that has none yet (new ones, and earlier
        // ones whose order could not be created then). A failure stays pending for the
        // background and shows on the PO.
        let refs: Vec<&str> = file_numbers.iter().map(String::as_str).collect();
        let stored = store::get_many(&mut *self.connection().await?, client_id, &refs).await?;
        let mut pos = Vec::with_capacity(file_numbers.len());
        for po_number in &file_numbers {
            let Some(po) = stored.get(po_number) else {
                return Err(Error::Internal(anyhow::anyhow!(
                    "outward PO `{po_number}` vanished"
                )));
            };
            pos.push(po.clone());
        }
        let orders: Vec<OutwardOrder> = futures::stream::iter(pos)
            .map(|po| self.link_if_pending(po))
            .buffered(LINK_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(OutwardUploadOutcome {
            report,
            created_po_numbers,
            orders,
        })
    }

    /// Creates one outward PO from lines in request order (each SKU once), and its bulk
    /// order. The same number with the same content returns the stored PO.
    #[instrument(
        name = "purchase_order.create_outward",
        skip_all,
        fields(client_id, po_number = %po_number)
    )]
    pub async fn create_outward_purchase_order(
        &self,
        client_id: &str,
        po_number: PoNumber,
        terms: OutwardTerms,
        lines: Vec<NewOutwardLine>,
        actor: &Actor,
    ) -> Result<(OutwardOrder, bool), Error> {
        // 1. Every SKU active in the product master, reported by its request position.
        let skus: Vec<String> = lines.iter().map(|line| line.sku.to_string()).collect();
        let products = self.dependencies.products.lookup(client_id, &skus).await?;
        super::inward::check_products_of_lines(client_id, &skus, &products)?;
        let po = NewOutwardOrder::new(po_number, terms, lines);

        // 2. Create, or find the same PO stored before.
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let inserted = store::insert(
            &mut tx,
            client_id,
            &po,
            actor.as_str(),
            now,
            Self::lease_end(now),
        )
        .await?;
        let stored = store::get(&mut tx, client_id, po.po_number.as_str())
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("outward PO vanished after insert")))?;
        if !inserted && !po.matches(&stored) {
            return Err(Error::AlreadyExists(format!(
                "outward PO `{}` exists with other content (customer, terms or lines differ); \
                 use a new PO number",
                po.po_number
            )));
        }
        tx.commit().await?;
        if inserted {
            let lines = po.lines.len();
            info!(client_id, po_number = %po.po_number, lines, "outward purchase order created");
        }

        // 3. Its bulk order, unless an earlier call made it.
        let stored = self.link_if_pending(stored).await?;
        Ok((stored, inserted))
    }

    /// One outward PO.
    pub async fn get_outward_purchase_order(
        &self,
        client_id: &str,
        po_number: &PoNumber,
    ) -> Result<OutwardOrder, Error> {
        store::get(
            &mut *self.connection().await?,
            client_id,
            po_number.as_str(),
        )
        .await?
        .ok_or_else(|| Error::not_found("outward PO", po_number))
    }

    /// One page of outward POs and the key to continue after it.
    pub async fn page_outward_purchase_orders(
        &self,
        client_id: &str,
        selection: OutwardSelection<'_>,
        after_opt: Option<&str>,
        page_size: i64,
    ) -> Result<(Vec<OutwardOrder>, Option<String>), Error> {
        let mut conn = self.connection().await?;
        let mut pos =
            store::page(&mut conn, client_id, selection, after_opt, page_size + 1).await?;
        Ok(super::inward::split_page(&mut pos, page_size, |po| {
            po.po_number.clone()
        }))
    }

    /// Creates the bulk order of a pending PO and returns the PO as stored after the
    /// attempt; a failed attempt is recorded on the PO, not returned.
    ///
    /// A refusal by the order service (not only an outage) is retried in the background as
    /// well, at most hourly once the delay has grown: nothing here can tell a refusal that
    /// an operator will fix (a disabled channel, a product re-enabled) from one that never
    /// clears, so the PO stays pending with the refusal in `last_link_error`.
    pub(super) async fn link_if_pending(&self, po: OutwardOrder) -> Result<OutwardOrder, Error> {
        if po.order_link == OrderLink::Linked {
            return Ok(po);
        }
        let request = bulk_order_request(&po);
        let mut conn = self.connection().await?;
        match self.dependencies.orders.create_bulk_order(request).await {
            Ok(order_id) => {
                store::mark_linked(
                    &mut conn,
                    &po.client_id,
                    &po.po_number,
                    &order_id,
                    now_micros(),
                )
                .await?;
                info!(
                    client_id = %po.client_id,
                    po_number = %po.po_number,
                    order_id = %order_id,
                    "bulk order created for outward purchase order"
                );
            }
            Err(error) => {
                warn!(
                    client_id = %po.client_id,
                    po_number = %po.po_number,
                    error = %error,
                    "bulk order not created; the outward purchase order stays pending"
                );
                let now = now_micros();
                let next = self.next_attempt_after_failure(now, po.link_attempts + 1);
                let description = describe_failure(&error);
                store::record_link_failure(
                    &mut conn,
                    &po.client_id,
                    &po.po_number,
                    &description,
                    next,
                )
                .await?;
            }
        }
        store::get(&mut conn, &po.client_id, &po.po_number)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("outward PO vanished while linking")))
    }
}

/// The bulk order of an outward PO. Built from stored values only, so every attempt sends
/// the same request and the order service recognises a retry.
fn bulk_order_request(po: &OutwardOrder) -> CreateBulkOrderRequest {
    let fulfilment_type = match po.fulfilment_type {
        FulfilmentType::Partial => order_v1::FulfilmentType::Partial,
        FulfilmentType::BlockComplete => order_v1::FulfilmentType::BlockComplete,
    };
    CreateBulkOrderRequest {
        client_id: po.client_id.clone(),
        channel: INTERNAL_CHANNEL.to_string(),
        reference: po.po_number.clone(),
        lines: po
            .lines
            .iter()
            .map(|(sku, quantity)| NewOrderLine {
                sku: sku.clone(),
                quantity: *quantity,
                ..NewOrderLine::default()
            })
            .collect(),
        fulfilment_type: fulfilment_type as i32,
        qc_grade: super::receipts::proto_grade(po.qc_grade) as i32,
        order_time: Some(to_timestamp(po.create_time)),
        start_processing_time: None,
        actor: po.created_by.clone(),
    }
}
