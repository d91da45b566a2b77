//! The operator's questions: where is this order, which orders failed to arrive, what
//! happened to it, and why is it where it is.

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as api;
use kosha_runtime::Error;
use kosha_runtime::time::{format_micros, now_micros};

use super::allocate::qc_grade;
use super::{App, OrderView};
use crate::domain::{FulfilmentType, Grade, Line, Order, OrderId, OrderKind, OrderStatus};
use crate::store::orders::{self, HistoryRow, SearchFilter};

/// Most waiting orders looked at to count what orders ahead of one need.
const MAX_ORDERS_AHEAD: usize = 500;

/// Why a bulk order waits, when nothing else keeps it waiting.
const BULK_RETRY_REASON: &str = "bulk orders are allocated only when an operator retries them";

/// Blocked lines an explanation's summary names at most; the rest are counted.
const MOST_LINES_SUMMARISED: usize = 5;

/// The answer to "why is this order where it is".
#[derive(Debug)]
pub struct Explanation {
    /// The order.
    pub view: OrderView,
    /// One sentence.
    pub summary: String,
    /// Rules holding the whole order.
    pub order_blockers: Vec<api::Blocker>,
    /// Steps that would move the whole order on.
    pub order_unblock: Vec<api::UnblockStep>,
    /// Per line.
    pub lines: Vec<api::LineExplanation>,
}

fn step(
    action: api::UnblockAction,
    quantity: i64,
    from_pool: &str,
    to_pool: &str,
    description: String,
) -> api::UnblockStep {
    api::UnblockStep {
        action: action as i32,
        quantity,
        from_pool: from_pool.to_string(),
        to_pool: to_pool.to_string(),
        description,
    }
}

fn state_name(state: &str, quantity: i64) -> Option<(String, i64)> {
    (quantity > 0).then(|| (state.to_string(), quantity))
}

fn elsewhere_of(level: &inv::StockLevel, include_available: bool) -> Vec<api::StockElsewhere> {
    let Some(totals) = &level.totals else {
        return Vec::new();
    };
    let mut states = Vec::new();
    if include_available {
        states.extend(state_name("AVAILABLE", totals.available));
    }
    states.extend(state_name("RECYCLE", totals.recycle));
    states.extend(state_name("ALLOCATED", totals.allocated));
    states
        .into_iter()
        .map(|(state, quantity)| api::StockElsewhere {
            pool: level.pool.clone(),
            qc_grade: level.grade,
            state,
            quantity,
        })
        .collect()
}

// === impl App: answers ===

impl App {
    /// Orders matching a search, newest first, with the key of the last one.
    pub async fn search(&self, filter: &SearchFilter, limit: i64) -> Result<Vec<OrderView>, Error> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            orders::search(&mut conn, filter, limit).await?
        };
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            views.push(self.view(id).await?);
        }
        Ok(views)
    }

    /// The failed-order report: FAILED orders oldest first, after id `after_id`.
    pub async fn failed_orders(
        &self,
        client_id: &str,
        channel: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Order>, Error> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            orders::failed(&mut conn, client_id, channel, after_id, limit).await?
        };
        let mut failed = Vec::with_capacity(ids.len());
        for id in ids {
            failed.push(self.load(id).await?);
        }
        Ok(failed)
    }

    /// A page of an order's history.
    pub async fn history(
        &self,
        id: OrderId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<HistoryRow>, Error> {
        let mut conn = self.db.pool().acquire().await?;
        if orders::load(&mut conn, id).await?.is_none() {
            return Err(Error::not_found("order", id));
        }
        Ok(orders::history(&mut conn, id, after_id, limit).await?)
    }

    /// Why an order is where it is, line by line, with the numbers and the moves that
    /// would unblock it.
    pub async fn explain(&self, id: OrderId) -> Result<Explanation, Error> {
        let view = self.view(id).await?;
        let order = &view.order;
        let now = now_micros();
        let mut order_blockers = Vec::new();
        let mut order_unblock = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let past_picking = matches!(
            order.status,
            OrderStatus::Processing
                | OrderStatus::Invoiced
                | OrderStatus::Dispatched
                | OrderStatus::Cancelled
                | OrderStatus::Complete
        );

        // Rules that hold the whole order.
        if order.status == OrderStatus::Failed {
            order_blockers.push(api::Blocker::FailedListing);
            reasons.push(order.failure_reason.clone());
            for sku in &order.unknown_skus {
                order_unblock.push(step(
                    api::UnblockAction::AddListing,
                    0,
                    "",
                    "",
                    format!(
                        "add the listing of `{sku}` on {} (creating the product first if the \
                         product master lacks it), then RetryFailedOrders",
                        order.channel
                    ),
                ));
            }
        }
        if order.marketplace_fulfilled {
            order_blockers.push(api::Blocker::MarketplaceFulfilled);
            reasons.push(format!(
                "{} fulfils it from its own stock; it never takes yours",
                order.channel
            ));
        }
        if !past_picking {
            for hold in view.holds.iter().filter(|hold| hold.is_open()) {
                order_blockers.push(api::Blocker::Hold);
                reasons.push(format!(
                    "{} hold {}: {}; {}",
                    hold.kind.as_str(),
                    hold.public_id(),
                    hold.reason,
                    hold.release_rule()
                ));
                order_unblock.push(step(
                    api::UnblockAction::ReleaseHold,
                    0,
                    "",
                    "",
                    format!(
                        "hold {} is {}; ReleaseHold releases it now",
                        hold.public_id(),
                        hold.release_rule()
                    ),
                ));
            }
            if let Some(start) = order.start_processing_opt.filter(|start| *start > now) {
                order_blockers.push(api::Blocker::StartProcessingTime);
                reasons.push(format!(
                    "not released for picking before {}",
                    format_micros(start)
                ));
                order_unblock.push(step(
                    api::UnblockAction::Wait,
                    0,
                    "",
                    "",
                    format!(
                        "wait until its start-processing time {}",
                        format_micros(start)
                    ),
                ));
            }
        }
        if order.kind == OrderKind::Bulk
            && order.status.is_allocation_phase()
            && order.pending() > 0
        {
            order_blockers.push(api::Blocker::BulkAwaitsRetry);
            reasons.push(BULK_RETRY_REASON.into());
            order_unblock.push(step(
                api::UnblockAction::RetryAllocation,
                order.pending(),
                "",
                "",
                "RetryAllocation schedules its allocation; it runs within a minute".into(),
            ));
        }

        // A closed order says how it closed; a completed one what it still has to ship.
        if order.status == OrderStatus::Cancelled {
            let mut conn = self.db.pool().acquire().await?;
            if let Some(entry) = orders::last_move_to(&mut conn, id, OrderStatus::Cancelled).await?
            {
                reasons.push(format!(
                    "cancelled by {} at {}: {}",
                    entry.actor,
                    format_micros(entry.at),
                    entry.reason
                ));
            }
        }
        if order.status == OrderStatus::Complete {
            let to_ship: i64 = order
                .lines
                .iter()
                .map(|line| line.picked - line.invoiced)
                .sum();
            if to_ship > 0 {
                reasons.push(format!(
                    "completed; its {to_ship} picked units not yet invoiced still go through \
                     PackOrder, InvoiceOrder and DispatchOrder"
                ));
            }
        }

        // Picked and on its way: the next steps, and what the channel said meanwhile.
        if order.status == OrderStatus::Processing {
            reasons.push(
                "picking has started; PackOrder is next, and it first asks the channel whether \
                 the order was cancelled there (SyncOrderStatus asks now)"
                    .into(),
            );
        }
        if !order.channel_conflict.is_empty() {
            order_blockers.push(api::Blocker::ChannelConflict);
            reasons.push(order.channel_conflict.clone());
            order_unblock.push(step(
                api::UnblockAction::ReceiveStock,
                order.lines.iter().map(|line| line.invoiced).sum(),
                "",
                "",
                "when the returned units are back, ReceiveGrn (a re-GRN, without a PO) \
                 brings them into stock"
                    .into(),
            ));
        }

        // Per line: what it needs and what the pool has.
        let pool = self.serving_pool(order).await?;
        let mut lines = Vec::with_capacity(order.lines.len());
        for line in &order.lines {
            lines.push(self.explain_line(order, line, &pool).await?);
        }

        // Block-complete: lines that could be served wait for the ones that cannot.
        let block_complete_waits = order.fulfilment.is_all_or_nothing()
            && order.allocated() == 0
            && lines
                .iter()
                .any(|line| line.blocker() == api::Blocker::NoStock);
        if block_complete_waits {
            order_blockers.push(api::Blocker::BlockComplete);
            let short: Vec<String> = lines
                .iter()
                .filter(|line| line.blocker() == api::Blocker::NoStock)
                .map(|line| format!("line {} ({})", line.line_number, line.sku))
                .collect();
            reasons.push(format!(
                "it is BLOCK_COMPLETE: nothing is allocated until every line can be, and {} cannot",
                short.join(", ")
            ));
            // A retry before the short lines get stock would allocate nothing.
            for unblock in &mut order_unblock {
                if unblock.action() == api::UnblockAction::RetryAllocation {
                    unblock.description = format!(
                        "once {} can be served in full (see the moves of those lines), \
                         RetryAllocation schedules the allocation; a retry before that \
                         allocates nothing",
                        short.join(", ")
                    );
                }
            }
            for line in &mut lines {
                let could_be_served = matches!(
                    line.blocker(),
                    api::Blocker::Unspecified | api::Blocker::BulkAwaitsRetry
                );
                if line.missing_quantity > 0 && could_be_served {
                    line.set_blocker(api::Blocker::BlockComplete);
                    line.unblock.clear();
                    line.explanation = format!(
                        "{} units are AVAILABLE in {} for it, but the order is BLOCK_COMPLETE and \
                         other lines cannot be served in full",
                        line.available_in_pool, line.pool
                    );
                }
            }
        }
        // A bulk order none of whose missing units are in the pool gains nothing from a
        // retry now, however often the operator retries: say so rather than point at one.
        let bulk_retry_is_futile = order.kind == OrderKind::Bulk
            && !block_complete_waits
            && order_blockers.contains(&api::Blocker::BulkAwaitsRetry)
            && lines
                .iter()
                .filter(|line| line.missing_quantity > 0)
                .all(|line| line.available_in_pool == 0);
        if bulk_retry_is_futile {
            order_blockers.retain(|blocker| *blocker != api::Blocker::BulkAwaitsRetry);
            order_blockers.push(api::Blocker::NoStock);
            reasons.retain(|reason| reason != BULK_RETRY_REASON);
            reasons.push(format!(
                "none of its missing units are AVAILABLE in {pool} ({}), so a retry now \
                 allocates nothing; each line names the move that brings stock",
                order.grade.as_str()
            ));
            for unblock in &mut order_unblock {
                if unblock.action() == api::UnblockAction::RetryAllocation {
                    unblock.description = "once stock is there for its lines (see the moves \
                                           of each line), RetryAllocation schedules the \
                                           allocation; a retry before that allocates nothing"
                        .into();
                }
            }
        }
        // The summary names a few blocked lines; every line says its own in `lines`.
        let blocked: Vec<&api::LineExplanation> = lines
            .iter()
            .filter(|line| {
                line.blocker() != api::Blocker::Unspecified
                    && line.blocker() != api::Blocker::BlockComplete
            })
            .collect();
        for line in blocked.iter().take(MOST_LINES_SUMMARISED) {
            reasons.push(format!("line {}: {}", line.line_number, line.explanation));
        }
        if blocked.len() > MOST_LINES_SUMMARISED {
            reasons.push(format!(
                "and {} more blocked lines (see lines)",
                blocked.len() - MOST_LINES_SUMMARISED
            ));
        }

        // An order that ships once gives up what it lacks when it is invoiced.
        let ships_short = order.fulfilment == FulfilmentType::SingleShipmentPartial
            && !past_picking
            && order.allocated() > 0
            && order.pending() > 0;
        if ships_short {
            reasons.push(format!(
                "it ships once (SINGLE_SHIPMENT_PARTIAL): picked and invoiced as it stands, \
                 its {} units not allocated by then are cancelled",
                order.pending()
            ));
        }

        // Nothing blocks an allocated order: it is waiting for someone to pick it.
        let ready = matches!(
            order.status,
            OrderStatus::Fulfillable | OrderStatus::PartiallyFulfillable
        ) && order_blockers.is_empty();
        if ready {
            order_unblock.push(step(
                api::UnblockAction::Pick,
                order.lines.iter().map(Line::unpicked_allocated).sum(),
                "",
                "",
                "nothing blocks it: it is ready for picking (PickOrder)".into(),
            ));
        }

        let summary = if reasons.is_empty() {
            match order.status {
                OrderStatus::Fulfillable | OrderStatus::PartiallyFulfillable => {
                    format!(
                        "{id} is {} and nothing blocks it: it is ready for picking",
                        order.status
                    )
                }
                status => format!("{id} is {status}"),
            }
        } else {
            format!("{id} is {}: {}", order.status, reasons.join("; "))
        };
        Ok(Explanation {
            view,
            summary,
            order_blockers,
            order_unblock,
            lines,
        })
    }

    async fn serving_pool(&self, order: &Order) -> Result<String, Error> {
        if !order.pool.is_empty() {
            return Ok(order.pool.clone());
        }
        let request = inv::GetServingPoolRequest {
            client_id: order.client_id.clone(),
            channel: order.channel.clone(),
        };
        let response = self
            .clients
            .inventory
            .clone()
            .get_serving_pool(request)
            .await?
            .into_inner();
        Ok(response.pool.map(|pool| pool.name).unwrap_or_default())
    }

    async fn explain_line(
        &self,
        order: &Order,
        line: &Line,
        pool: &str,
    ) -> Result<api::LineExplanation, Error> {
        let missing = line.pending();
        let mut explained = api::LineExplanation {
            line_number: line.line_no,
            sku: line.sku.clone(),
            marketplace_sku: line.marketplace_sku.clone(),
            needed_quantity: line.wanted(),
            allocated_quantity: line.allocated(),
            missing_quantity: missing,
            pool: pool.to_string(),
            qc_grade: qc_grade(order.grade) as i32,
            ..Default::default()
        };
        if line.sku.is_empty() {
            explained.set_blocker(api::Blocker::FailedListing);
            explained.explanation = format!(
                "marketplace SKU `{}` has no listing on {}: the order cannot be taken in",
                line.marketplace_sku, order.channel
            );
            explained.unblock.push(step(
                api::UnblockAction::AddListing,
                0,
                "",
                "",
                format!(
                    "add a listing of `{}` on {}, then RetryFailedOrders",
                    line.marketplace_sku, order.channel
                ),
            ));
            return Ok(explained);
        }
        if order.status.is_closed()
            || order.status == OrderStatus::Complete
            || order.marketplace_fulfilled
        {
            explained.explanation = format!("the order is {}", order.status);
            return Ok(explained);
        }
        if order.status == OrderStatus::Failed {
            explained.explanation =
                "resolved; the order waits for its other lines' listings".into();
            return Ok(explained);
        }

        // Older waiting orders come first for the same stock, so the steps inventory
        // suggests cover what they need as well as this line.
        let needed_ahead = if missing > 0 && order.kind == OrderKind::Marketplace {
            self.needed_ahead(order, &line.sku, pool).await?
        } else {
            0
        };

        // What the serving pool has, and where else the SKU is. Orders ahead may need
        // more in total than one request may name; inventory's steps are then sized for
        // the most it may, which no stock in sight covers either.
        let quantity = if missing > 0 {
            missing.saturating_add(needed_ahead)
        } else {
            line.wanted().max(1)
        }
        .min(kosha_runtime::validate::MAX_QUANTITY);
        let request = inv::ExplainAvailabilityRequest {
            client_id: order.client_id.clone(),
            sku: line.sku.clone(),
            pool: pool.to_string(),
            channel: String::new(),
            grade: qc_grade(order.grade) as i32,
            quantity,
        };
        let availability = self
            .clients
            .inventory
            .clone()
            .explain_availability(request)
            .await?
            .into_inner();
        let target = availability.target.unwrap_or_default();
        explained.available_in_pool = target.available;
        if target.recycle > 0 {
            explained.elsewhere.push(api::StockElsewhere {
                pool: pool.to_string(),
                qc_grade: qc_grade(order.grade) as i32,
                state: "RECYCLE".into(),
                quantity: target.recycle,
            });
        }
        for level in &availability.other_pools {
            explained.elsewhere.extend(elsewhere_of(level, true));
        }
        for level in &availability.other_grade {
            explained.elsewhere.extend(elsewhere_of(level, true));
        }
        if missing == 0 {
            explained.explanation = format!("fully allocated from {pool}");
            return Ok(explained);
        }

        explained.needed_by_orders_ahead = needed_ahead;
        let grade_name = order.grade.as_str();
        let free_for_this = (target.available - explained.needed_by_orders_ahead).max(0);
        if order.kind == OrderKind::Bulk && target.available >= missing {
            explained.set_blocker(api::Blocker::BulkAwaitsRetry);
            explained.explanation = format!(
                "{} units are AVAILABLE in {pool} ({grade_name}); bulk orders take them only \
                 when an operator retries the order",
                target.available
            );
            explained.unblock.push(step(
                api::UnblockAction::RetryAllocation,
                missing,
                pool,
                pool,
                "RetryAllocation allocates it within a minute".into(),
            ));
            return Ok(explained);
        }
        if target.available >= missing && free_for_this < missing {
            explained.set_blocker(api::Blocker::OlderOrdersFirst);
            explained.explanation = format!(
                "{} units are AVAILABLE in {pool} ({grade_name}) but older waiting orders \
                 need {} of them first",
                target.available, explained.needed_by_orders_ahead
            );
        } else if target.available >= missing {
            explained.explanation = format!(
                "{} units are AVAILABLE in {pool} ({grade_name}); the next retry allocates them",
                target.available
            );
            explained.unblock.push(step(
                api::UnblockAction::RetryAllocation,
                missing,
                pool,
                pool,
                "RetryAllocation allocates it now".into(),
            ));
            return Ok(explained);
        } else {
            explained.set_blocker(api::Blocker::NoStock);
            explained.explanation = format!(
                "needs {missing} more units of {} ({grade_name}) but {pool} has {} AVAILABLE{}",
                line.sku,
                target.available,
                if target.recycle > 0 {
                    format!(" and {} in RECYCLE", target.recycle)
                } else {
                    String::new()
                }
            );
        }

        // The moves that would make enough available, as inventory computes them.
        for remedy in &availability.remedies {
            match remedy.kind() {
                inv::RemedyKind::MakeLive => explained.unblock.push(step(
                    api::UnblockAction::MakeLive,
                    remedy.quantity,
                    pool,
                    pool,
                    remedy.description.clone(),
                )),
                inv::RemedyKind::Move => explained.unblock.push(step(
                    api::UnblockAction::MoveStock,
                    remedy.quantity,
                    &remedy.from_pool,
                    pool,
                    remedy.description.clone(),
                )),
                inv::RemedyKind::MakeLiveAndMove => {
                    explained.unblock.push(step(
                        api::UnblockAction::MakeLive,
                        remedy.quantity,
                        &remedy.from_pool,
                        &remedy.from_pool,
                        format!(
                            "make {} units live in {}",
                            remedy.quantity, remedy.from_pool
                        ),
                    ));
                    explained.unblock.push(step(
                        api::UnblockAction::MoveStock,
                        remedy.quantity,
                        &remedy.from_pool,
                        pool,
                        remedy.description.clone(),
                    ));
                }
                inv::RemedyKind::Receive => explained.unblock.push(step(
                    api::UnblockAction::ReceiveStock,
                    remedy.quantity,
                    "",
                    "COMMON",
                    remedy.description.clone(),
                )),
                inv::RemedyKind::Unspecified => {}
            }
        }
        let other_grade_units: i64 = availability
            .other_grade
            .iter()
            .filter_map(|level| level.totals.as_ref())
            .map(|totals| totals.available + totals.recycle)
            .sum();
        if other_grade_units > 0 {
            let other = match order.grade {
                Grade::Pass => "FAIL",
                Grade::Fail => "PASS",
            };
            explained.unblock.push(step(
                api::UnblockAction::UseOtherGrade,
                other_grade_units,
                "",
                "",
                format!(
                    "{other_grade_units} units of {} are QC {other}: an order served from QC \
                     {other} could use them; this one is served from QC {grade_name}, and an \
                     order's grade never changes: CancelOrder it and create it again with QC \
                     {other} (an outward PO again under a new PO number)",
                    line.sku
                ),
            ));
        }
        Ok(explained)
    }

    /// Units of `sku` that waiting orders ahead of `order` still need from `pool`.
    async fn needed_ahead(&self, order: &Order, sku: &str, pool: &str) -> Result<i64, Error> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            orders::waiting(
                &mut conn,
                &order.client_id,
                Some(order.grade),
                pool,
                &[sku.to_string()],
            )
            .await?
        };
        let mut needed = 0;
        for id in ids.into_iter().take(MAX_ORDERS_AHEAD) {
            if id == order.id {
                break;
            }
            let ahead = self.load(id).await?;
            needed += ahead
                .lines
                .iter()
                .filter(|line| line.sku == sku)
                .map(Line::pending)
                .sum::<i64>();
        }
        Ok(needed)
    }
}
