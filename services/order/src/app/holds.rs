//! Releasing holds: by id, by order, by event, by time.
//!
//! A release locks the order's row, then marks the hold released only if it is still
//! open. Two racing releases of one hold therefore queue on the row: the first records
//! the release and the status change, the second finds the hold released and records
//! nothing.

use std::collections::BTreeMap;

use kosha_runtime::Error;
use kosha_runtime::time::{format_micros, now_micros};

use super::{App, StatusChange};
use crate::domain::rules::allocation_status;
use crate::domain::{Hold, HoldKind, OrderId};
use crate::store::orders;

/// What a release did.
#[derive(Debug, Default)]
pub struct ReleaseReport {
    /// Holds released by this call.
    pub released: Vec<Hold>,
    /// Orders whose holds the release named, whether or not it changed them.
    pub order_ids: Vec<OrderId>,
    /// Status changes.
    pub changes: Vec<StatusChange>,
}

/// When a hold's release job should run again, if it ran early.
pub enum HoldJobOutcome {
    /// Released now (or released already).
    Done(ReleaseReport),
    /// Not due yet: run again after this many microseconds.
    NotDue(i64),
}

// === impl App: holds ===

impl App {
    /// Releases the given holds (each with its order), idempotently.
    pub async fn release_holds(
        &self,
        holds: &[(i64, OrderId)],
        actor: &str,
        reason: &str,
    ) -> Result<ReleaseReport, Error> {
        let mut by_order: BTreeMap<OrderId, Vec<i64>> = BTreeMap::new();
        for (hold_id, order_id) in holds {
            by_order.entry(*order_id).or_default().push(*hold_id);
        }

        let mut report = ReleaseReport::default();
        for (order_id, hold_ids) in by_order {
            let mut tx = self.db.begin().await?;
            let Some(mut order) = orders::lock(&mut tx, self.db.for_update(), order_id).await?
            else {
                continue;
            };
            let now = now_micros();
            let mut released_ids = Vec::new();
            for hold_id in &hold_ids {
                if orders::release_hold(&mut tx, *hold_id, now, actor, reason).await? {
                    released_ids.push(*hold_id);
                }
            }
            if released_ids.is_empty() {
                // Released already: nothing changes, and the answer still shows the order.
                tx.commit().await?;
                report.order_ids.push(order_id);
                continue;
            }

            let all_holds = orders::load_holds(&mut tx, order_id).await?;
            let still_open = all_holds.iter().filter(|hold| hold.is_open()).count();
            let before = order.status;
            if before.is_allocation_phase() && before != crate::domain::OrderStatus::Created {
                order.status = allocation_status(&order, still_open > 0);
            }
            let names: Vec<String> = released_ids.iter().map(|id| format!("H-{id}")).collect();
            let note = format!(
                "hold {} released ({reason}); {still_open} hold(s) still open",
                names.join(", ")
            );
            orders::save(&mut tx, &order, now).await?;
            orders::add_history(
                &mut tx,
                order_id,
                now,
                actor,
                Some(before),
                order.status,
                &note,
            )
            .await?;
            tx.commit().await?;

            if order.status != before {
                tracing::info!(%order_id, from = %before, to = %order.status, "hold released");
                report.changes.push(StatusChange {
                    order_id,
                    from: before,
                    to: order.status,
                });
            }
            report.order_ids.push(order_id);
            report.released.extend(
                all_holds
                    .into_iter()
                    .filter(|hold| released_ids.contains(&hold.id)),
            );
        }
        Ok(report)
    }

    /// Releases one hold by id.
    pub async fn release_hold_by_id(
        &self,
        hold_id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<ReleaseReport, Error> {
        let order_id = {
            let mut conn = self.db.pool().acquire().await?;
            orders::hold_order(&mut conn, hold_id).await?
        };
        let Some(order_id) = order_id else {
            return Err(Error::not_found("hold", format!("H-{hold_id}")));
        };
        self.release_holds(&[(hold_id, order_id)], actor, reason)
            .await
    }

    /// Releases the open holds of one kind (any kind when `None`) of an order.
    pub async fn release_order_holds(
        &self,
        order_id: OrderId,
        kind_opt: Option<HoldKind>,
        actor: &str,
        reason: &str,
    ) -> Result<ReleaseReport, Error> {
        let view = self.view(order_id).await?;
        let targets: Vec<(i64, OrderId)> = view
            .holds
            .iter()
            .filter(|hold| hold.is_open() && kind_opt.is_none_or(|kind| hold.kind == kind))
            .map(|hold| (hold.id, order_id))
            .collect();
        self.release_holds(&targets, actor, reason).await
    }

    /// Releases every hold waiting for the return pickup of a client's channel order.
    pub async fn release_return_pickup(
        &self,
        client_id: &str,
        channel: &str,
        channel_order_id: &str,
        actor: &str,
    ) -> Result<ReleaseReport, Error> {
        let targets = {
            let mut conn = self.db.pool().acquire().await?;
            orders::return_pickup_holds(&mut conn, client_id, channel, channel_order_id).await?
        };
        let reason = format!("return of {channel} order `{channel_order_id}` picked up");
        self.release_holds(&targets, actor, &reason).await
    }

    /// Releases every time hold due at or before `as_of`.
    pub async fn release_due_holds(&self, as_of: i64, actor: &str) -> Result<ReleaseReport, Error> {
        let targets = {
            let mut conn = self.db.pool().acquire().await?;
            orders::due_time_holds(&mut conn, as_of).await?
        };
        if targets.is_empty() {
            return Ok(ReleaseReport::default());
        }
        self.release_holds(&targets, actor, "its dispatch-after time has passed")
            .await
    }

    /// The scheduler's release job of one time hold. A job that runs before the hold's
    /// time (run early by an operator, or a clock ahead) releases nothing and asks to run
    /// again when it is due.
    pub async fn run_hold_release_job(&self, hold_id: i64) -> Result<HoldJobOutcome, Error> {
        let order_id = {
            let mut conn = self.db.pool().acquire().await?;
            orders::hold_order(&mut conn, hold_id).await?
        };
        let Some(order_id) = order_id else {
            return Err(Error::not_found("hold", format!("H-{hold_id}")));
        };
        let view = self.view(order_id).await?;
        let Some(hold) = view.holds.iter().find(|hold| hold.id == hold_id) else {
            return Err(Error::not_found("hold", format!("H-{hold_id}")));
        };
        if !hold.is_open() {
            return Ok(HoldJobOutcome::Done(ReleaseReport::default()));
        }
        let now = now_micros();
        if let Some(at) = hold.release_after_opt.filter(|at| *at > now) {
            tracing::debug!(hold_id, due = %format_micros(at), "hold release job ran early");
            return Ok(HoldJobOutcome::NotDue(at - now));
        }
        let report = self
            .release_holds(
                &[(hold_id, order_id)],
                "scheduler",
                "its dispatch-after time has passed",
            )
            .await?;
        Ok(HoldJobOutcome::Done(report))
    }
}
