//! GRNs: recording a receipt (against a PO or without one) and delivering its units to
//! inventory.

use kosha_proto::kosha::inventory::v1::{ReceiveLine, ReceiveRequest};
use kosha_runtime::Error;
use kosha_runtime::error::FieldViolation;
use kosha_runtime::time::now_micros;
use tracing::{debug, info, instrument, warn};

use super::{PurchaseOrders, describe_failure};
use crate::domain::grn::{Delivery, Grn, NewGrn};
use crate::domain::ids::{Actor, GrnNumber, PoNumber, Reason};
use crate::domain::purchase_order::{PurchaseOrder, ReceiptLine};
use crate::domain::values::QcGrade;
use crate::store::grns::{self, GrnSelection};
use crate::store::purchase_orders;

/// A receipt as asked for, lines in request order (each SKU once).
#[derive(Debug, Clone)]
pub struct GrnInput {
    /// GRN number.
    pub grn_number: GrnNumber,
    /// The PO received against, if any.
    pub po_number_opt: Option<PoNumber>,
    /// Why (required without a PO).
    pub reason: Reason,
    /// Lines in request order.
    pub lines: Vec<ReceiptLine>,
    /// Who asks.
    pub actor: Actor,
}

/// What a receipt call did.
#[derive(Debug, Clone)]
pub struct GrnOutcome {
    /// The GRN as stored.
    pub grn: Grn,
    /// Its PO after the receipt.
    pub purchase_order_opt: Option<PurchaseOrder>,
    /// True when the GRN number had been received before.
    pub replayed: bool,
}

/// Whether a GRN was recorded by this call or found from an earlier one.
enum Recorded {
    New(Grn),
    Existing(Grn),
}

impl PurchaseOrders {
    /// Records a GRN and delivers its units to inventory. A GRN number received before
    /// returns the first GRN (finishing its delivery if that is still pending).
    #[instrument(
        name = "purchase_order.receive_grn",
        skip_all,
        fields(client_id, grn_number = %input.grn_number, lines = input.lines.len())
    )]
    pub async fn receive_grn(&self, client_id: &str, input: GrnInput) -> Result<GrnOutcome, Error> {
        // 1. Record it, or find it recorded by an earlier call.
        let recorded = match self.find_existing_grn(client_id, &input).await? {
            Some(existing) => Recorded::Existing(existing),
            None => {
                if input.po_number_opt.is_none() {
                    self.check_returned_skus(client_id, &input.lines).await?;
                }
                self.record_grn(client_id, &input).await?
            }
        };
        let (mut grn, replayed) = match recorded {
            Recorded::New(grn) => (grn, false),
            Recorded::Existing(grn) => (grn, true),
        };

        // 2. Hand the units to inventory unless that already happened.
        if grn.delivery == Delivery::Pending {
            if let Err(error) = self.deliver_grn(&grn).await {
                return Err(pending_delivery_error(&grn.grn_number, error));
            }
            grn = self.get_grn(client_id, &input.grn_number).await?;
        }

        let purchase_order_opt = match &input.po_number_opt {
            Some(po_number) => Some(self.get_purchase_order(client_id, po_number).await?),
            None => None,
        };
        Ok(GrnOutcome {
            grn,
            purchase_order_opt,
            replayed,
        })
    }

    /// Puts a recorded GRN's units into inventory, part by part, each under its own
    /// idempotency key, then marks it delivered. A failure is recorded on the GRN (with
    /// when to try again) and returned.
    pub(super) async fn deliver_grn(&self, grn: &Grn) -> Result<(), Error> {
        for part in grn.receive_parts() {
            let lines = part
                .lines
                .into_iter()
                .map(|(sku, grade, quantity)| ReceiveLine {
                    sku,
                    grade: proto_grade(grade) as i32,
                    quantity,
                })
                .collect();
            let request = ReceiveRequest {
                client_id: grn.client_id.clone(),
                reference: grn.grn_number.clone(),
                lines,
                idempotency_key: part.idempotency_key.clone(),
                actor: grn.actor.clone(),
            };
            if let Err(error) = self.dependencies.stock.receive(request).await {
                warn!(
                    client_id = %grn.client_id,
                    grn_number = %grn.grn_number,
                    key = %part.idempotency_key,
                    error = %error,
                    "GRN stock not delivered to inventory; it stays pending"
                );
                let now = now_micros();
                let next = self.next_attempt_after_failure(now, grn.delivery_attempts + 1);
                let mut conn = self.connection().await?;
                let description = describe_failure(&error);
                grns::record_delivery_failure(
                    &mut conn,
                    &grn.client_id,
                    &grn.grn_number,
                    &description,
                    next,
                )
                .await?;
                return Err(error);
            }
        }

        let mut conn = self.connection().await?;
        grns::mark_delivered(&mut conn, &grn.client_id, &grn.grn_number, now_micros()).await?;
        info!(
            client_id = %grn.client_id,
            grn_number = %grn.grn_number,
            passed = grn.passed(),
            failed = grn.failed(),
            "GRN stock delivered to inventory"
        );
        Ok(())
    }

    /// One GRN.
    pub async fn get_grn(&self, client_id: &str, grn_number: &GrnNumber) -> Result<Grn, Error> {
        grns::get(
            &mut *self.connection().await?,
            client_id,
            grn_number.as_str(),
        )
        .await?
        .ok_or_else(|| Error::not_found("GRN", grn_number))
    }

    /// One page of GRNs and the key to continue after it.
    pub async fn page_grns(
        &self,
        client_id: &str,
        selection: GrnSelection<'_>,
        after_opt: Option<&str>,
        page_size: i64,
    ) -> Result<(Vec<Grn>, Option<String>), Error> {
        let mut conn = self.connection().await?;
        let mut page =
            grns::page(&mut conn, client_id, selection, after_opt, page_size + 1).await?;
        Ok(super::inward::split_page(&mut page, page_size, |grn| {
            grn.grn_number.clone()
        }))
    }

    /// The GRN recorded under this number before, if any, checked to be the same receipt.
    async fn find_existing_grn(
        &self,
        client_id: &str,
        input: &GrnInput,
    ) -> Result<Option<Grn>, Error> {
        let existing_opt = grns::get(
            &mut *self.connection().await?,
            client_id,
            input.grn_number.as_str(),
        )
        .await?;
        match existing_opt {
            Some(existing) => Ok(Some(same_receipt_or_conflict(input, existing)?)),
            None => Ok(None),
        }
    }

    /// Units coming back without a PO must be of products the client has (disabled ones
    /// included: a returned unit of a discontinued product still exists).
    async fn check_returned_skus(
        &self,
        client_id: &str,
        lines: &[ReceiptLine],
    ) -> Result<(), Error> {
        let skus: Vec<String> = lines.iter().map(|line| line.sku.to_string()).collect();
        let products = self.dependencies.products.lookup(client_id, &skus).await?;
        let violations: Vec<FieldViolation> = skus
            .iter()
            .enumerate()
            .filter(|(_, sku)| !products.contains_key(*sku))
            .map(|(index, sku)| {
                FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!("SKU `{sku}` is not in the product master of client `{client_id}`"),
                )
            })
            .collect();
        if violations.is_empty() {
            return Ok(());
        }
        let message = format!("{} GRN line(s) name unknown SKUs", violations.len());
        Err(Error::invalid_many(message, violations))
    }

    /// Writes the GRN, its pending delivery and its PO's new figures in one transaction.
    async fn record_grn(&self, client_id: &str, input: &GrnInput) -> Result<Recorded, Error> {
        let now = now_micros();
        let mut tx = self.db.begin().await?;

        // The PO row is locked so concurrent receipts against it are checked one by one.
        let mut po_opt = None;
        if let Some(po_number) = &input.po_number_opt {
            let lock = self.db.for_update();
            let po = purchase_orders::get(&mut tx, client_id, po_number.as_str(), lock)
                .await?
                .ok_or_else(|| Error::not_found("PO", po_number))?;
            po_opt = Some(po);
        }

        // Under the lock, a GRN recorded meanwhile under this number is the answer, before
        // any check of quantities: its units are already counted on the PO.
        if let Some(existing) = grns::get(&mut tx, client_id, input.grn_number.as_str()).await? {
            tx.rollback().await?;
            return Ok(Recorded::Existing(same_receipt_or_conflict(
                input, existing,
            )?));
        }
        let mut status_opt = None;
        if let Some(po) = &po_opt {
            let excess_allowed = self.settings.allows_excess_grn(client_id);
            status_opt = Some(po.check_receipt(&input.lines, excess_allowed)?);
        }

        let grn = NewGrn::new(
            input.grn_number.clone(),
            input.po_number_opt.clone(),
            input.reason.clone(),
            input.lines.clone(),
            input.actor.clone(),
        );
        let inserted = grns::insert(&mut tx, client_id, &grn, now, Self::lease_end(now)).await?;
        if !inserted {
            // Another call recorded this GRN number since the first look.
            tx.rollback().await?;
            let existing = self
                .find_existing_grn(client_id, input)
                .await?
                .ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!(
                        "GRN conflicted on insert but cannot be read"
                    ))
                })?;
            return Ok(Recorded::Existing(existing));
        }
        if let (Some(po_number), Some(status)) = (&input.po_number_opt, status_opt) {
            purchase_orders::apply_receipt(
                &mut tx,
                client_id,
                po_number.as_str(),
                grn.grn_number.as_str(),
                status,
                now,
            )
            .await?;
        }
        let stored = grns::get(&mut tx, client_id, grn.grn_number.as_str())
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("GRN vanished after insert")))?;
        tx.commit().await?;

        info!(
            client_id,
            grn_number = %grn.grn_number,
            po_number = grn.po_number_text(),
            passed = stored.passed(),
            failed = stored.failed(),
            "GRN recorded"
        );
        Ok(Recorded::New(stored))
    }
}

/// The stored GRN when it records the same receipt; ALREADY_EXISTS otherwise.
fn same_receipt_or_conflict(input: &GrnInput, existing: Grn) -> Result<Grn, Error> {
    let asked = NewGrn::new(
        input.grn_number.clone(),
        input.po_number_opt.clone(),
        input.reason.clone(),
        input.lines.clone(),
        input.actor.clone(),
    );
    if asked.matches(&existing) {
        debug!(grn_number = %input.grn_number, "GRN received again: returning the first");
        return Ok(existing);
    }
    Err(Error::AlreadyExists(format!(
        "GRN number `{}` was used for another receipt (PO, reason or lines differ); a GRN \
         number identifies one receipt: use a new one",
        input.grn_number
    )))
}

/// The error of a receipt whose GRN is recorded but whose units inventory has not
/// confirmed: the caller learns that calling again (or waiting) finishes it.
fn pending_delivery_error(grn_number: &str, error: Error) -> Error {
    match error {
        Error::Unavailable(message) => Error::Unavailable(format!(
            "GRN `{grn_number}` is recorded but inventory has not confirmed its stock yet \
             ({message}); it is delivered in the background, or call again with the same GRN \
             number"
        )),
        // Inventory said no, for a reason the caller can see and act on: it is not a
        // fault of this service, so it is not hidden behind INTERNAL.
        other => Error::FailedPrecondition(format!(
            "GRN `{grn_number}` is recorded but inventory refused its stock ({other}); the \
             GRN stays pending with that reason in its last_delivery_error, and is delivered \
             again in the background"
        )),
    }
}

/// The contract's grade of a domain grade.
pub(crate) fn proto_grade(grade: QcGrade) -> kosha_proto::types::QcGrade {
    match grade {
        QcGrade::Pass => kosha_proto::types::QcGrade::Pass,
        QcGrade::Fail => kosha_proto::types::QcGrade::Fail,
    }
}
