//! Picking, packing, invoicing, dispatch, cancellation and completion.

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_runtime::Error;
use kosha_runtime::time::now_micros;

use super::{App, JOB_OWNER, OrderView};
use crate::domain::rules::{self, CancelPlan, settled_status};
use crate::domain::{Order, OrderId, OrderStatus, Shipment, ShipmentStatus};
use crate::store::orders;
use crate::store::work::{self, OutboxKind};

/// What a cancellation did.
#[derive(Debug)]
pub struct CancelOutcome {
    /// The order as stored.
    pub view: OrderView,
    /// True when it was cancelled already.
    pub already_cancelled: bool,
    /// In words.
    pub message: String,
}

/// Finds the shipment a call names: by public id, or the only one in `status`.
fn pick_shipment<'a>(
    order: &Order,
    shipments: &'a [Shipment],
    shipment_id: &str,
    status: ShipmentStatus,
) -> Result<&'a Shipment, Error> {
    if !shipment_id.is_empty() {
        return shipments
            .iter()
            .find(|shipment| {
                shipment
                    .public_id(order.id)
                    .eq_ignore_ascii_case(shipment_id)
            })
            .ok_or_else(|| Error::not_found("shipment", shipment_id));
    }
    let mut candidates = shipments
        .iter()
        .filter(|shipment| shipment.status == status);
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(Error::FailedPrecondition(format!(
            "order {} has no {} shipment",
            order.id,
            status.as_str()
        ))),
        (Some(_), Some(_)) => Err(Error::invalid(
            "shipment_id",
            format!(
                "order {} has several {} shipments; name one",
                order.id,
                status.as_str()
            ),
        )),
    }
}

// === impl App: lifecycle ===

impl App {
    /// Picks the units of a pick list (`(line number, units)` pairs), or every allocated
    /// unit not yet picked when the list is empty.
    pub async fn pick(
        &self,
        id: OrderId,
        actor: &str,
        pick_list: &[(i32, i64)],
    ) -> Result<OrderView, Error> {
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        let holds = orders::load_holds(&mut tx, id).await?;
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let open_holds: Vec<_> = holds.iter().filter(|hold| hold.is_open()).collect();
        rules::check_pick(&order, &open_holds, &shipments, now)?;

        let to_pick = rules::plan_pick(&order, pick_list)?;
        let mut picked_now = 0;
        for (line, units) in order.lines.iter_mut().zip(to_pick) {
            debug_assert!(units <= line.unpicked_allocated());
            picked_now += units;
            line.picked += units;
        }
        let before = order.status;
        order.status = OrderStatus::Processing;
        orders::save(&mut tx, &order, now).await?;
        orders::add_history(
            &mut tx,
            id,
            now,
            actor,
            Some(before),
            order.status,
            &format!("picked {picked_now} units"),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(order_id = %id, picked_now, "order picked");
        self.view(id).await
    }

    /// Packs every picked unit not yet packed into a new shipment, after checking with the
    /// channel that the order is still live there.
    pub async fn pack(&self, id: OrderId, actor: &str) -> Result<(OrderView, Shipment), Error> {
        // Sync with the channel first, so a channel-side cancellation is caught here and
        // not after invoicing.
        let order = self.load(id).await?;
        let shipments = {
            let mut conn = self.db.pool().acquire().await?;
            orders::load_shipments(&mut conn, id).await?
        };
        rules::check_pack(&order, &shipments)?;
        if self.clients.connectors.contains_key(&order.channel) {
            let report = self
                .sync_statuses_of(
                    &order.client_id,
                    &order.channel,
                    &[(Some(id), order.channel_order_id.clone())],
                )
                .await?;
            if report.cancelled_order_ids.contains(&id) {
                return Err(Error::FailedPrecondition(format!(
                    "order {id} was cancelled on {}; it is cancelled here too and its stock is \
                     freed, so it is not packed",
                    order.channel
                )));
            }
            // Packing is where a cancellation is caught before invoicing: without the
            // channel's word, it waits.
            if let Some((_, reason)) = report.unreadable_statuses.first() {
                return Err(Error::FailedPrecondition(format!(
                    "order {id} is not packed: whether {} cancelled it cannot be told, as its \
                     status there cannot be read ({reason}); pack it once the status reads",
                    order.channel
                )));
            }
        }

        // Then record the shipment.
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        let shipments = orders::load_shipments(&mut tx, id).await?;
        rules::check_pack(&order, &shipments)?;
        let mut shipment_lines = Vec::new();
        for line in &mut order.lines {
            let units = line.unpacked_picked();
            if units > 0 {
                shipment_lines.push((line.line_no, units));
                line.packed += units;
            }
        }
        let sequence = shipments.len() as i32 + 1;
        orders::insert_shipment(&mut tx, id, sequence, &shipment_lines, now).await?;
        orders::save(&mut tx, &order, now).await?;
        let units: i64 = shipment_lines.iter().map(|(_, units)| units).sum();
        let note = format!("packed shipment {id}-S{sequence} with {units} units");
        orders::add_history(
            &mut tx,
            id,
            now,
            actor,
            Some(order.status),
            order.status,
            &note,
        )
        .await?;
        tx.commit().await?;

        let view = self.view(id).await?;
        let shipment = view
            .shipments
            .iter()
            .find(|shipment| shipment.sequence == sequence)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("shipment {sequence} of {id} vanished"))?;
        Ok((view, shipment))
    }

    /// Invoices a packed shipment: its units are consumed in inventory. An order that
    /// ships once has the rest of its quantity cancelled now.
    pub async fn invoice(
        &self,
        id: OrderId,
        shipment_id: &str,
        invoice_number: &str,
        actor: &str,
    ) -> Result<(OrderView, Shipment), Error> {
        // The order stays locked from the check to the record, inventory's consumption
        // included: a cancellation or completion racing the invoice waits for it (or wins
        // before it and the check refuses), so units never leave stock for an order that
        // was cancelled meanwhile. The consumption is keyed by the shipment, so a retry
        // after a failure in between consumes once.
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let shipment =
            pick_shipment(&order, &shipments, shipment_id, ShipmentStatus::Packed)?.clone();
        if shipment.status != ShipmentStatus::Packed {
            // Invoiced already: answer as the first call did.
            drop(tx);
            return Ok((self.view(id).await?, shipment));
        }
        rules::check_invoice(&order)?;
        let invoice_number = if invoice_number.trim().is_empty() {
            format!("INV-{}", shipment.public_id(id))
        } else {
            invoice_number.trim().to_string()
        };
        // An invoice number names one invoice of the seller.
        let holder_opt = orders::invoice_number_holder(
            &mut tx,
            self.db.backend(),
            &order.client_id,
            &invoice_number,
            shipment.id,
        )
        .await?;
        if let Some((other_id, sequence)) = holder_opt {
            return Err(Error::AlreadyExists(format!(
                "invoice number `{invoice_number}` is already on shipment {other_id}-S{sequence} \
                 of client `{}`; an invoice number names one invoice",
                order.client_id
            )));
        }
        let request = inv::ConsumeRequest {
            client_id: order.client_id.clone(),
            order_ref: order.order_ref(),
            lines: shipment
                .lines
                .iter()
                .map(|(line_no, units)| inv::ConsumeLine {
                    line_id: line_no.to_string(),
                    quantity: *units,
                })
                .collect(),
            reference: invoice_number.clone(),
            idempotency_key: format!("{}#invoice-S{}", order.order_ref(), shipment.sequence),
            actor: JOB_OWNER.to_string(),
        };
        self.clients.inventory.clone().consume(request).await?;
        self.faults.check_after_consume()?;

        // Then record it.
        let now = now_micros();
        let mut settle_ids = Vec::new();
        for (line_no, units) in &shipment.lines {
            if let Some(line) = order.line_mut(*line_no) {
                line.invoiced += units;
                line.held = (line.held - units).max(0);
            }
        }
        orders::mark_invoiced(&mut tx, shipment.id, &invoice_number, now).await?;
        let mut note = format!(
            "invoiced shipment {} as {invoice_number}",
            shipment.public_id(id)
        );
        if !order.fulfilment.allows_several_shipments() && order.status != OrderStatus::Complete {
            let mut cancelled_rest = 0;
            for line in &mut order.lines {
                let rest = line.wanted() - line.invoiced;
                if rest > 0 {
                    line.cancelled += rest;
                    cancelled_rest += rest;
                }
            }
            if cancelled_rest > 0 {
                note.push_str(&format!(
                    "; {cancelled_rest} units not in the shipment cancelled ({} ships once)",
                    order.fulfilment.as_str()
                ));
                let outbox_id =
                    work::enqueue(&mut tx, OutboxKind::SettleOrder, id.0, now, now).await?;
                settle_ids.push(outbox_id);
            }
        }
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let before = order.status;
        order.status = settled_status(&order, false, &shipments);
        orders::save(&mut tx, &order, now).await?;
        orders::add_history(&mut tx, id, now, actor, Some(before), order.status, &note).await?;
        tx.commit().await?;
        if !settle_ids.is_empty() {
            // A failed delivery stays in the outbox for the sweep.
            self.deliver_outbox(&settle_ids).await.ok();
        }

        let view = self.view(id).await?;
        let invoiced = view
            .shipments
            .iter()
            .find(|s| s.id == shipment.id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("shipment of {id} vanished"))?;
        Ok((view, invoiced))
    }

    /// Dispatches an invoiced shipment.
    pub async fn dispatch(
        &self,
        id: OrderId,
        shipment_id: &str,
        actor: &str,
    ) -> Result<(OrderView, Shipment), Error> {
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let shipment = match pick_shipment(
            &order,
            &shipments,
            shipment_id,
            ShipmentStatus::Invoiced,
        ) {
            Ok(shipment) => shipment.clone(),
            Err(Error::FailedPrecondition(_)) => {
                return Err(Error::FailedPrecondition(format!(
                    "order {id} is {}: cannot dispatch; only an invoiced shipment is dispatched",
                    order.status
                )));
            }
            Err(error) => return Err(error),
        };
        match shipment.status {
            // The customer cancelled on the channel after the invoice: shipping the parcel
            // sends goods no one will accept, and they come back as a return.
            ShipmentStatus::Invoiced if !order.channel_conflict.is_empty() => {
                return Err(Error::FailedPrecondition(format!(
                    "order {id} must not ship: it was {}; keep shipment {} in the warehouse",
                    order.channel_conflict,
                    shipment.public_id(id)
                )));
            }
            ShipmentStatus::Invoiced => {}
            ShipmentStatus::Dispatched => {
                tx.commit().await?;
                return Ok((self.view(id).await?, shipment));
            }
            ShipmentStatus::Packed if order.status == OrderStatus::Cancelled => {
                return Err(Error::FailedPrecondition(format!(
                    "shipment {} of order {id} was packed before the order was cancelled: it \
                     is void and never ships; unpack it and put its units back on the shelf",
                    shipment.public_id(id)
                )));
            }
            ShipmentStatus::Packed => {
                return Err(Error::FailedPrecondition(format!(
                    "shipment {} of order {id} is packed but not invoiced: invoice it first",
                    shipment.public_id(id)
                )));
            }
        }
        for (line_no, units) in &shipment.lines {
            if let Some(line) = order.line_mut(*line_no) {
                line.dispatched += units;
            }
        }
        orders::mark_dispatched(&mut tx, shipment.id, now).await?;
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let before = order.status;
        order.status = settled_status(&order, false, &shipments);
        orders::save(&mut tx, &order, now).await?;
        let note = format!("dispatched shipment {}", shipment.public_id(id));
        orders::add_history(&mut tx, id, now, actor, Some(before), order.status, &note).await?;
        tx.commit().await?;

        let view = self.view(id).await?;
        let dispatched = view
            .shipments
            .iter()
            .find(|s| s.id == shipment.id)
            .cloned()
            .unwrap_or(shipment);
        Ok((view, dispatched))
    }

    /// Cancels a whole order and frees its allocation (exactly once: the release is sized
    /// from what inventory holds for the order, and runs through the outbox until it
    /// succeeds).
    pub async fn cancel(
        &self,
        id: OrderId,
        actor: &str,
        reason: &str,
    ) -> Result<CancelOutcome, Error> {
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        if rules::check_cancel(&order)? == CancelPlan::AlreadyCancelled {
            tx.commit().await?;
            // Nothing changes; a release still owed by the first cancellation is retried
            // while we are here (a failure is left to the outbox sweep and reconcile).
            if let Err(error) = self.settle(id, false).await {
                tracing::debug!(order_id = %id, %error, "settling a cancelled order failed");
            }
            return Ok(CancelOutcome {
                view: self.view(id).await?,
                already_cancelled: true,
                message: format!("order {id} is cancelled already; nothing changed"),
            });
        }

        // An invoice whose consumption reached inventory but whose record did not (the
        // service failed in between) must be finished, not cancelled: its units have left
        // stock. Only an order with a packed shipment can be in that state.
        let shipments = orders::load_shipments(&mut tx, id).await?;
        if shipments
            .iter()
            .any(|shipment| shipment.status == ShipmentStatus::Packed)
        {
            let consumed = self
                .consumed_in_inventory(&order.client_id, &order.order_ref())
                .await?;
            for line in &order.lines {
                let gone = consumed.get(&line.line_id()).copied().unwrap_or_default();
                if gone > line.invoiced {
                    return Err(Error::FailedPrecondition(format!(
                        "order {id} line {}: inventory consumed {gone} units for an invoice \
                         this order has recorded {} of; the units have left stock, so finish \
                         the invoice with InvoiceOrder (cancelling an invoiced order takes a \
                         re-GRN)",
                        line.line_no, line.invoiced
                    )));
                }
            }
        }

        let freed: i64 = order.lines.iter().map(|line| line.held).sum();
        for line in &mut order.lines {
            line.cancelled = line.quantity - line.invoiced;
            // Picked units go back to the shelf with the cancellation.
            line.picked = line.invoiced;
            line.packed = line.invoiced;
        }
        let before = order.status;
        order.status = OrderStatus::Cancelled;
        orders::save(&mut tx, &order, now).await?;
        let note = if reason.trim().is_empty() {
            "cancelled".to_string()
        } else {
            format!("cancelled: {}", reason.trim())
        };
        orders::add_history(&mut tx, id, now, actor, Some(before), order.status, &note).await?;
        // A cancelled order waits for nothing: its open holds close with it.
        for hold in orders::load_holds(&mut tx, id).await? {
            if hold.is_open() {
                orders::release_hold(&mut tx, hold.id, now, actor, "the order was cancelled")
                    .await?;
            }
        }
        let outbox_id = work::enqueue(&mut tx, OutboxKind::SettleOrder, id.0, now, now).await?;
        tx.commit().await?;
        tracing::info!(order_id = %id, from = %before, "order cancelled");

        let message = match self.deliver_outbox(&[outbox_id]).await {
            Ok(1) => format!("order {id} cancelled; {freed} allocated units freed"),
            _ => format!(
                "order {id} cancelled; freeing its {freed} allocated units is pending and will be \
                 retried (reconcile also frees them)"
            ),
        };
        Ok(CancelOutcome {
            view: self.view(id).await?,
            already_cancelled: false,
            message,
        })
    }

    /// Cancels units of lines not yet picked.
    pub async fn cancel_lines(
        &self,
        id: OrderId,
        lines: &[(i32, i64)],
        actor: &str,
        reason: &str,
    ) -> Result<OrderView, Error> {
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        for (index, (line_no, quantity)) in lines.iter().enumerate() {
            rules::check_cancel_line(
                &order,
                *line_no,
                *quantity,
                &format!("lines[{index}].line_number"),
            )?;
            if let Some(line) = order.line_mut(*line_no) {
                line.cancelled += quantity;
            }
        }
        let holds = orders::load_holds(&mut tx, id).await?;
        let shipments = orders::load_shipments(&mut tx, id).await?;
        let before = order.status;
        order.status = settled_status(&order, holds.iter().any(|hold| hold.is_open()), &shipments);
        orders::save(&mut tx, &order, now).await?;
        let described: Vec<String> = lines
            .iter()
            .map(|(line_no, quantity)| format!("line {line_no}: {quantity}"))
            .collect();
        let mut note = format!("cancelled units ({})", described.join(", "));
        if !reason.trim().is_empty() {
            note.push_str(&format!(": {}", reason.trim()));
        }
        orders::add_history(&mut tx, id, now, actor, Some(before), order.status, &note).await?;
        let outbox_id = work::enqueue(&mut tx, OutboxKind::SettleOrder, id.0, now, now).await?;
        tx.commit().await?;
        self.deliver_outbox(&[outbox_id]).await.ok();
        self.view(id).await
    }

    /// Closes a bulk order: what is not picked is cancelled and its allocation freed.
    pub async fn complete(
        &self,
        id: OrderId,
        actor: &str,
        reason: &str,
    ) -> Result<(OrderView, i64), Error> {
        let mut tx = self.db.begin().await?;
        let mut order = orders::lock(&mut tx, self.db.for_update(), id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))?;
        let now = now_micros();
        rules::check_complete(&order)?;
        let mut freed = 0;
        for line in &mut order.lines {
            freed += (line.held - line.picked_open()).max(0);
            let keep = line.picked;
            line.cancelled = line.cancelled.max(line.quantity - keep);
        }
        let before = order.status;
        order.status = OrderStatus::Complete;
        orders::save(&mut tx, &order, now).await?;
        let mut note = format!("completed; {freed} allocated units not picked are freed");
        if !reason.trim().is_empty() {
            note.push_str(&format!(": {}", reason.trim()));
        }
        orders::add_history(&mut tx, id, now, actor, Some(before), order.status, &note).await?;
        let outbox_id = work::enqueue(&mut tx, OutboxKind::SettleOrder, id.0, now, now).await?;
        tx.commit().await?;
        tracing::info!(order_id = %id, freed, "bulk order completed");
        self.deliver_outbox(&[outbox_id]).await.ok();
        Ok((self.view(id).await?, freed))
    }
}
