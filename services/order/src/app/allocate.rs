//! Allocation: on arrival, on retry, and when stock arrives (the change-feed follower).
//!
//! Waiting marketplace orders are retried in one total order: priority flag first, then
//! earliest dispatch-by, then earliest order time, then lowest id. A new order arriving
//! while older ones wait for the same SKU and pool first lets those retry, so it takes
//! only what they cannot use.
//!
//! The total order holds within one retry pass. Two passes running at once (the follower
//! and a new order's arrival, say) may interleave, and then a later order can win a unit
//! an earlier one also wanted; the earlier one is served by the next pass.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::scheduler::v1 as scheduler;
use kosha_proto::types::QcGrade;
use kosha_runtime::Error;
use kosha_runtime::time::{now_micros, to_timestamp};

use super::{App, JOB_OWNER, StatusChange};
use crate::domain::rules::{allocation_status, check_allocatable};
use crate::domain::{Grade, Order, OrderId, OrderKind, OrderStatus};
use crate::store::orders;
use crate::store::work::{self, OutboxKind};

/// Name of the stored position in inventory's change feed.
const STOCK_FEED_CURSOR: &str = "inventory-stock-changes";

/// Transfers that can make stock AVAILABLE somewhere.
const GROWTH_REASONS: [inv::TransferReason; 6] = [
    inv::TransferReason::Receive,
    inv::TransferReason::PoolMove,
    inv::TransferReason::Release,
    inv::TransferReason::MakeLive,
    inv::TransferReason::Adjust,
    inv::TransferReason::PoolExpiry,
];

/// The inventory grade of an order grade.
pub fn qc_grade(grade: Grade) -> QcGrade {
    match grade {
        Grade::Pass => QcGrade::Pass,
        Grade::Fail => QcGrade::Fail,
    }
}

/// The order grade of an inventory grade.
pub fn grade_of(grade: QcGrade) -> Option<Grade> {
    match grade {
        QcGrade::Pass => Some(Grade::Pass),
        QcGrade::Fail => Some(Grade::Fail),
        QcGrade::Unspecified => None,
    }
}

/// Takes inventory's answer into the order's lines; returns a note for the history.
pub fn apply_allocation(order: &mut Order, response: &inv::AllocateResponse) -> String {
    if !response.pool.is_empty() {
        order.pool = response.pool.clone();
    }
    for result in &response.lines {
        let Ok(line_no) = result.line_id.parse::<i32>() else {
            continue;
        };
        if let Some(line) = order.line_mut(line_no) {
            // An allocation never takes units away, so an answer showing fewer held units
            // than are recorded is older than the record: another attempt for this order
            // reached inventory after it and was stored first. Releases and consumption
            // record what they free themselves, and settling corrects from inventory.
            line.held = line.held.max(result.held).max(0);
        }
    }
    let wanted: i64 = order.lines.iter().map(|line| line.wanted()).sum();
    format!(
        "allocated {} of {wanted} units from pool {}",
        order.allocated(),
        order.pool
    )
}

/// What one allocation attempt did.
#[derive(Debug, Default)]
pub struct AllocationOutcome {
    /// The status change, if any.
    pub change_opt: Option<StatusChange>,
    /// SKUs with nothing AVAILABLE left in the pool after the attempt.
    pub exhausted_skus: Vec<String>,
}

/// What the change-feed follower did in one run.
#[derive(Debug, Default)]
pub struct FollowReport {
    /// Changes read from the feed.
    pub changes_read: usize,
    /// Orders retried.
    pub orders_tried: usize,
    /// Status changes made.
    pub changes: Vec<StatusChange>,
}

// === impl App: allocation ===

impl App {
    /// Calls inventory to bring each line up to its target; `None` when no line needs
    /// anything. The request key names the order and the attempt; the per-line keys in
    /// inventory make any retry safe whatever the key.
    pub(crate) async fn allocate_call(
        &self,
        order: &Order,
        attempt: i64,
    ) -> Result<Option<inv::AllocateResponse>, Error> {
        let lines: Vec<inv::AllocateLine> = order
            .lines
            .iter()
            .filter(|line| !line.sku.is_empty() && line.allocation_target() > 0)
            .map(|line| inv::AllocateLine {
                line_id: line.line_id(),
                sku: line.sku.clone(),
                quantity: line.allocation_target(),
            })
            .collect();
        if lines.is_empty() {
            return Ok(None);
        }
        let mode = if order.fulfilment.is_all_or_nothing() {
            inv::AllocationMode::AllOrNothing
        } else {
            inv::AllocationMode::Partial
        };
        // A line holds units of one pool at a time, so an order that holds units is topped
        // up from the pool it holds them in, even if its channel is served by another pool
        // since; only an order holding nothing follows the channel's serving pool. The cost:
        // a partly served order waits for stock in its first pool.
        let holds_units = order.lines.iter().any(|line| line.held > 0);
        let (pool, channel) = if holds_units && !order.pool.is_empty() {
            (order.pool.clone(), String::new())
        } else {
            (String::new(), order.channel.clone())
        };
        let request = inv::AllocateRequest {
            client_id: order.client_id.clone(),
            order_ref: order.order_ref(),
            pool,
            channel,
            grade: qc_grade(order.grade) as i32,
            mode: mode as i32,
            lines,
            top_up: true,
            idempotency_key: format!("{}#alloc-{attempt}", order.order_ref()),
            actor: JOB_OWNER.to_string(),
        };
        let response = self
            .clients
            .inventory
            .clone()
            .allocate(request)
            .await?
            .into_inner();
        Ok(Some(response))
    }

    /// Tops up the allocation of a stored order and stores the outcome.
    pub async fn allocate_existing(
        &self,
        id: OrderId,
        actor: &str,
        reason: &str,
    ) -> Result<AllocationOutcome, Error> {
        let order = self.load(id).await?;
        check_allocatable(&order)?;
        let needs_stock = order
            .lines
            .iter()
            .any(|line| line.pending() > 0 && !line.sku.is_empty());
        if !needs_stock && order.status != OrderStatus::Created {
            return Ok(AllocationOutcome::default());
        }

        // Ask inventory first, outside any transaction.
        let attempt = {
            let mut conn = self.db.pool().acquire().await?;
            orders::next_alloc_attempt(&mut conn, id).await?
        };
        let response_opt = self.allocate_call(&order, attempt).await?;

        // Then store what inventory says the lines hold.
        let mut tx = self.db.begin().await?;
        let Some(mut locked) = orders::lock(&mut tx, self.db.for_update(), id).await? else {
            return Err(Error::not_found("order", id));
        };
        let now = now_micros();
        if check_allocatable(&locked).is_err() {
            // Cancelled or moved on meanwhile: give back whatever this call took.
            let outbox_id = work::enqueue(&mut tx, OutboxKind::SettleOrder, id.0, now, now).await?;
            tx.commit().await?;
            self.deliver_outbox(&[outbox_id]).await?;
            return Ok(AllocationOutcome::default());
        }
        let mut outcome = AllocationOutcome::default();
        let note = match &response_opt {
            Some(response) => {
                for result in &response.lines {
                    if result.available_after == 0 {
                        outcome.exhausted_skus.push(result.sku.clone());
                    }
                }
                apply_allocation(&mut locked, response)
            }
            None => "nothing to allocate".to_string(),
        };
        let before = locked.status;
        if before.is_allocation_phase() {
            let holds = orders::load_holds(&mut tx, id).await?;
            locked.status = allocation_status(&locked, holds.iter().any(|hold| hold.is_open()));
        }
        orders::save(&mut tx, &locked, now).await?;
        if locked.status != before {
            orders::add_history(
                &mut tx,
                id,
                now,
                actor,
                Some(before),
                locked.status,
                &format!("{reason}: {note}"),
            )
            .await?;
            outcome.change_opt = Some(StatusChange {
                order_id: id,
                from: before,
                to: locked.status,
            });
        }
        tx.commit().await?;
        if let Some(change) = outcome.change_opt {
            tracing::info!(
                order_id = %id,
                from = %change.from,
                to = %change.to,
                "order allocation changed"
            );
        }
        Ok(outcome)
    }

    /// Retries the waiting marketplace orders of a client (and grade and pool, when
    /// given) that need any of `skus`, in the waiting order.
    pub async fn retry_waiting(
        &self,
        client_id: &str,
        grade_opt: Option<Grade>,
        pool: &str,
        skus: &[String],
        actor: &str,
    ) -> Result<(Vec<OrderId>, Vec<StatusChange>), Error> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            orders::waiting(&mut conn, client_id, grade_opt, pool, skus).await?
        };
        let mut tried = Vec::new();
        let mut changes = Vec::new();
        let mut exhausted: HashSet<String> = HashSet::new();
        for id in ids {
            // Within one pool, once every SKU asked about is gone, no later order can get
            // anything more from this pass.
            let nothing_left = !pool.is_empty()
                && !skus.is_empty()
                && skus.iter().all(|sku| exhausted.contains(sku));
            if nothing_left {
                break;
            }
            tried.push(id);
            match self
                .allocate_existing(id, actor, "retried when stock arrived")
                .await
            {
                Ok(outcome) => {
                    exhausted.extend(outcome.exhausted_skus);
                    changes.extend(outcome.change_opt);
                }
                Err(Error::FailedPrecondition(message)) => {
                    tracing::debug!(
                        order_id = %id,
                        %message,
                        "waiting order no longer allocatable"
                    );
                }
                Err(error) => {
                    tracing::warn!(order_id = %id, %error, "retry of a waiting order failed");
                }
            }
        }
        Ok((tried, changes))
    }

    /// Before a new order takes stock, lets older orders waiting for the same SKUs (the
    /// caller found some) retry, when the serving pool has any of those SKUs AVAILABLE.
    pub(crate) async fn serve_waiting_orders_first(
        &self,
        order: &Order,
        skus: &[String],
    ) -> Result<(), Error> {
        let serving = self
            .clients
            .inventory
            .clone()
            .get_serving_pool(inv::GetServingPoolRequest {
                client_id: order.client_id.clone(),
                channel: order.channel.clone(),
            })
            .await?
            .into_inner();
        let pool = serving.pool.map(|pool| pool.name).unwrap_or_default();
        let stock = self
            .clients
            .inventory
            .clone()
            .get_stock(inv::GetStockRequest {
                client_id: order.client_id.clone(),
                skus: skus.to_vec(),
                pool: pool.clone(),
                grade: qc_grade(order.grade) as i32,
            })
            .await?
            .into_inner();
        let any_available = stock.levels.iter().any(|level| {
            level
                .totals
                .as_ref()
                .is_some_and(|totals| totals.available > 0)
        });
        if !any_available {
            return Ok(());
        }
        self.retry_waiting(
            &order.client_id,
            Some(order.grade),
            &pool,
            skus,
            "arrival of a newer order",
        )
        .await?;
        Ok(())
    }

    /// Reads inventory's change feed from the stored cursor and retries the waiting
    /// orders of every (client, pool, grade, SKU) whose AVAILABLE may have grown.
    #[tracing::instrument(name = "order.follow_stock_changes", skip_all)]
    pub async fn follow_stock_changes(&self) -> Result<FollowReport, Error> {
        let mut cursor = {
            let mut conn = self.db.pool().acquire().await?;
            work::cursor(&mut conn, STOCK_FEED_CURSOR).await?
        };
        let mut report = FollowReport::default();
        loop {
            let request = inv::ListStockChangesRequest {
                client_id: String::new(),
                after_cursor: cursor.clone(),
                page_size: 1000,
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_stock_changes(request)
                .await?
                .into_inner();
            report.changes_read += page.changes.len();

            let mut grown: BTreeMap<(String, String, Grade), BTreeSet<String>> = BTreeMap::new();
            for change in &page.changes {
                let grew = GROWTH_REASONS.contains(&change.reason());
                let available = change.totals.as_ref().map_or(0, |totals| totals.available);
                let Some(grade) = grade_of(change.grade()) else {
                    continue;
                };
                if grew && available > 0 {
                    grown
                        .entry((change.client_id.clone(), change.pool.clone(), grade))
                        .or_default()
                        .insert(change.sku.clone());
                }
            }
            for ((client_id, pool, grade), skus) in grown {
                let skus: Vec<String> = skus.into_iter().collect();
                let (tried, changes) = self
                    .retry_waiting(&client_id, Some(grade), &pool, &skus, "stock-feed")
                    .await?;
                report.orders_tried += tried.len();
                report.changes.extend(changes);
            }

            // The cursor moves only after the retries, so a crash repeats them (harmless).
            let advanced = page.next_cursor != cursor && !page.next_cursor.is_empty();
            if advanced {
                cursor = page.next_cursor.clone();
                let mut conn = self.db.pool().acquire().await?;
                work::set_cursor(&mut conn, STOCK_FEED_CURSOR, &cursor, now_micros()).await?;
            }
            if !advanced || page.changes.is_empty() {
                break;
            }
        }
        if !report.changes.is_empty() {
            tracing::info!(
                changes_read = report.changes_read,
                orders_tried = report.orders_tried,
                orders_changed = report.changes.len(),
                "waiting orders retried after stock changes"
            );
        }
        Ok(report)
    }

    /// An operator's retry of a bulk order: scheduled as a job due now, so it runs within
    /// the scheduler's next poll. The same `request_id` returns the same job.
    pub async fn schedule_bulk_retry(
        &self,
        id: OrderId,
        request_id: &str,
        actor: &str,
    ) -> Result<scheduler::Job, Error> {
        let order = self.load(id).await?;
        debug_assert_eq!(order.kind, OrderKind::Bulk);
        check_allocatable(&order)?;
        let request_key = if request_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            request_id.to_string()
        };
        let request = scheduler::ScheduleJobRequest {
            owner: JOB_OWNER.to_string(),
            kind: crate::jobs::BULK_RETRY.to_string(),
            payload: format!("{id}|{actor}").into_bytes(),
            due_time: Some(to_timestamp(now_micros())),
            idempotency_key: format!("order:bulk-retry:{id}:{request_key}"),
            max_attempts: 0,
        };
        let response = self
            .clients
            .scheduler
            .clone()
            .schedule_job(request)
            .await?
            .into_inner();
        let job = response
            .job
            .ok_or_else(|| anyhow::anyhow!("scheduler answered without a job"))?;

        if response.created {
            let now = now_micros();
            let mut tx = self.db.begin().await?;
            if let Some(locked) = orders::lock(&mut tx, self.db.for_update(), id).await? {
                let reason = format!(
                    "allocation retry requested; scheduler job {} runs it",
                    job.job_id
                );
                orders::add_history(
                    &mut tx,
                    id,
                    now,
                    actor,
                    Some(locked.status),
                    locked.status,
                    &reason,
                )
                .await?;
            }
            tx.commit().await?;
        }
        tracing::info!(order_id = %id, job_id = %job.job_id, "bulk order retry scheduled");
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::tests::{line, order};

    fn answer(held: i64) -> inv::AllocateResponse {
        inv::AllocateResponse {
            pool: "COMMON".into(),
            lines: vec![inv::AllocateLineResult {
                line_id: "1".into(),
                held,
                ..Default::default()
            }],
            fully_allocated: false,
        }
    }

    #[test]
    fn an_older_answer_showing_fewer_held_units_never_lowers_the_record() {
        let mut order = order(OrderStatus::Fulfillable, vec![line(2, 2)]);

        apply_allocation(&mut order, &answer(0));
        let kept = order.lines[0].held;
        apply_allocation(&mut order, &answer(3));

        assert_eq!(kept, 2);
        assert_eq!(order.lines[0].held, 3);
    }
}
