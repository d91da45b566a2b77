//! Inward POs: uploads, field-by-field creation, short-close and queries.

use std::collections::HashMap;

use kosha_proto::types::UploadReport;
use kosha_runtime::Error;
use kosha_runtime::error::FieldViolation;
use kosha_runtime::time::now_micros;
use kosha_runtime::upload::reject_or_report;
use tracing::{debug, info, instrument};

use super::PurchaseOrders;
use crate::domain::ids::{Actor, PartyName, PoNumber, Reason};
use crate::domain::purchase_order::{NewPoLine, NewPurchaseOrder, PurchaseOrder};
use crate::domain::upload::{self, InwardFormat};
use crate::store::purchase_orders::{self as store, PoSelection};

/// What an inward upload did (or would do).
#[derive(Debug, Clone)]
pub struct InwardUploadOutcome {
    /// The per-row report.
    pub report: UploadReport,
    /// PO numbers created, or that a dry run would create, in file order.
    pub created_po_numbers: Vec<String>,
}

impl PurchaseOrders {
    /// Validates a whole inward PO file and, unless `dry_run`, creates its new POs in one
    /// transaction. A file with any problem stores nothing: a dry run reports every
    /// problem, a real upload is INVALID_ARGUMENT naming each row and column.
    #[instrument(
        name = "purchase_order.upload_inward",
        skip_all,
        fields(client_id, dry_run, bytes = bytes.len())
    )]
    pub async fn upload_purchase_orders(
        &self,
        client_id: &str,
        dry_run: bool,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<InwardUploadOutcome, Error> {
        // 1. Every cell, then every SKU against the product master in one lookup.
        let mut draft = upload::read_file::<InwardFormat>(bytes)?;
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
        if draft.is_clean() {
            let ready = upload::ready_pos::<InwardFormat>(&draft)?;
            let numbers: Vec<&str> = ready.iter().map(|po| po.order.po_number.as_str()).collect();
            let stored =
                store::get_many(&mut *self.connection().await?, client_id, &numbers).await?;
            for po in ready {
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
            debug!(problems = report.errors.len(), "inward upload has problems");
            return reject_or_report(report).map(|report| InwardUploadOutcome {
                report,
                created_po_numbers: Vec::new(),
            });
        }
        let created_po_numbers: Vec<String> =
            new_pos.iter().map(|po| po.po_number.to_string()).collect();
        if dry_run {
            return Ok(InwardUploadOutcome {
                report,
                created_po_numbers,
            });
        }

        // 3. All new POs in one transaction.
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let all_new = store::insert_many(&mut tx, client_id, &new_pos, actor.as_str(), now).await?;
        if !all_new {
            tx.rollback().await?;
            return Err(Error::Aborted(
                "a PO of this file was created by another request while the file was checked; \
                 nothing was stored: upload the file again (POs stored with the same content \
                 count as unchanged)"
                    .into(),
            ));
        }
        tx.commit().await?;
        report.applied = true;
        info!(
            client_id,
            pos = new_pos.len(),
            rows = report.created,
            "inward purchase orders uploaded"
        );
        Ok(InwardUploadOutcome {
            report,
            created_po_numbers,
        })
    }

    /// Creates one inward PO from lines in request order (each SKU once; the caller checks
    /// formats). The same number with the same content returns the stored PO.
    #[instrument(
        name = "purchase_order.create_inward",
        skip_all,
        fields(client_id, po_number = %po_number)
    )]
    pub async fn create_purchase_order(
        &self,
        client_id: &str,
        po_number: PoNumber,
        supplier: PartyName,
        lines: Vec<NewPoLine>,
        actor: &Actor,
    ) -> Result<(PurchaseOrder, bool), Error> {
        // 1. Every SKU active in the product master, reported by its request position.
        let skus: Vec<String> = lines.iter().map(|line| line.sku.to_string()).collect();
        let products = self.dependencies.products.lookup(client_id, &skus).await?;
        check_products_of_lines(client_id, &skus, &products)?;
        let po = NewPurchaseOrder::new(po_number, supplier, lines);

        // 2. Create, or find the same PO stored before.
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let inserted = store::insert(&mut tx, client_id, &po, actor.as_str(), now).await?;
        let stored = store::get(&mut tx, client_id, po.po_number.as_str(), "")
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("PO vanished after insert")))?;
        if !inserted && !po.matches(&stored) {
            return Err(Error::AlreadyExists(format!(
                "PO `{}` exists with other content (supplier or lines differ); use a new PO \
                 number",
                po.po_number
            )));
        }
        tx.commit().await?;
        if inserted {
            let lines = po.lines.len();
            info!(client_id, po_number = %po.po_number, lines, "inward purchase order created");
        }
        Ok((stored, inserted))
    }

    /// Short-closes a PO: nothing more is expected, and what never arrived is recorded.
    #[instrument(
        name = "purchase_order.close",
        skip_all,
        fields(client_id, po_number = %po_number)
    )]
    pub async fn close_purchase_order(
        &self,
        client_id: &str,
        po_number: &PoNumber,
        reason: &Reason,
        actor: &Actor,
    ) -> Result<PurchaseOrder, Error> {
        let mut tx = self.db.begin().await?;
        let po = store::get(&mut tx, client_id, po_number.as_str(), self.db.for_update())
            .await?
            .ok_or_else(|| Error::not_found("PO", po_number))?;
        if !po.check_close()? {
            return Ok(po);
        }
        let now = now_micros();
        let closed = store::close(
            &mut tx,
            client_id,
            po_number.as_str(),
            reason.as_str(),
            actor.as_str(),
            now,
        )
        .await?;
        debug_assert!(
            closed,
            "the PO row is locked and was OPEN or PARTIALLY_RECEIVED"
        );
        let po = store::get(&mut tx, client_id, po_number.as_str(), "")
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("PO vanished while closing")))?;
        tx.commit().await?;
        info!(
            client_id,
            po_number = %po_number,
            short_closed = po.totals().short_closed,
            "inward purchase order closed"
        );
        Ok(po)
    }

    /// One inward PO.
    pub async fn get_purchase_order(
        &self,
        client_id: &str,
        po_number: &PoNumber,
    ) -> Result<PurchaseOrder, Error> {
        store::get(
            &mut *self.connection().await?,
            client_id,
            po_number.as_str(),
            "",
        )
        .await?
        .ok_or_else(|| Error::not_found("PO", po_number))
    }

    /// One page of inward POs and the key to continue after it.
    pub async fn page_purchase_orders(
        &self,
        client_id: &str,
        selection: PoSelection<'_>,
        after_opt: Option<&str>,
        page_size: i64,
    ) -> Result<(Vec<PurchaseOrder>, Option<String>), Error> {
        let mut conn = self.connection().await?;
        let mut pos =
            store::page(&mut conn, client_id, selection, after_opt, page_size + 1).await?;
        Ok(split_page(&mut pos, page_size, |po| po.po_number.clone()))
    }
}

/// Fails with every line whose SKU is missing from the product master or disabled.
pub(super) fn check_products_of_lines(
    client_id: &str,
    skus: &[String],
    products: &HashMap<String, bool>,
) -> Result<(), Error> {
    let mut violations = Vec::new();
    for (index, sku) in skus.iter().enumerate() {
        let problem = match products.get(sku) {
            Some(true) => continue,
            Some(false) => format!("product `{sku}` is disabled in the product master"),
            None => format!("SKU `{sku}` is not in the product master of client `{client_id}`"),
        };
        violations.push(FieldViolation::new(format!("lines[{index}].sku"), problem));
    }
    if violations.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} line(s) name SKUs that cannot be ordered",
        violations.len()
    );
    Err(Error::invalid_many(message, violations))
}

/// Cuts a page fetched with one extra row: the extra row only says there is a next page,
/// whose token is the key of the page's last row.
pub(super) fn split_page<T>(
    rows: &mut Vec<T>,
    page_size: i64,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let has_more = rows.len() as i64 > page_size;
    if has_more {
        rows.truncate(page_size as usize);
    }
    let next_opt = if has_more { rows.last().map(key) } else { None };
    (std::mem::take(rows), next_opt)
}
