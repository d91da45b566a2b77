//! The order service's operations: what each RPC and each job does, step by step.
//!
//! Each operation that changes an order follows one pattern. Calls to other services
//! (catalog, inventory, the scheduler, connectors) happen outside any database
//! transaction; the order's own change then happens in one transaction that locks the
//! order's row first. Side effects that must not be lost (releasing stock, scheduling a
//! hold's release) are written to the outbox in that same transaction and delivered after
//! commit, and again by a sweep until they succeed.
//!
//! Inventory's allocations are keyed by the order's natural key and line number, so a
//! retry after a crash at any point finds what the first attempt did.

pub mod allocate;
pub mod answers;
pub mod holds;
pub mod ingest;
mod intake;
pub mod lifecycle;
pub mod reconcile;
pub mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use kosha_proto::kosha::scheduler::v1 as scheduler;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_runtime::{Db, Error};

use crate::config::OrderConfig;
use crate::domain::{Hold, Order, OrderId, Shipment};
use crate::peers::Clients;
use crate::store::orders;
use crate::store::work::{self, OutboxKind};

/// The job owner name the scheduler calls back.
pub const JOB_OWNER: &str = crate::NAME;

/// Deliveries of one outbox row before it is given up. At the default sweep interval of
/// ten seconds that is about three hours of an unreachable dependency.
const MAX_OUTBOX_ATTEMPTS: i64 = 1000;

/// Actor recorded when a caller names none.
pub const DEFAULT_ACTOR: &str = "operator";

/// Failures a test can inject to reproduce a crash or an outage at a precise point.
///
/// Each counter makes the next N passes through its point fail as if the process had
/// died there (or the call had failed), and then lets everything through again.
#[derive(Debug, Default)]
pub struct Faults {
    after_allocate: AtomicU32,
    after_consume: AtomicU32,
    release: AtomicU32,
    schedule: AtomicU32,
}

impl Faults {
    /// The next `times` order creations fail after inventory allocated and before the
    /// order is stored.
    pub fn fail_after_allocate(&self, times: u32) {
        self.after_allocate.store(times, Ordering::SeqCst);
    }

    /// The next `times` invoices fail after inventory consumed the units and before the
    /// invoice is recorded.
    pub fn fail_after_consume(&self, times: u32) {
        self.after_consume.store(times, Ordering::SeqCst);
    }

    /// The next `times` calls to inventory's Release fail as if inventory were down.
    pub fn fail_releases(&self, times: u32) {
        self.release.store(times, Ordering::SeqCst);
    }

    /// The next `times` calls to the scheduler's ScheduleJob fail as if it were down.
    pub fn fail_schedules(&self, times: u32) {
        self.schedule.store(times, Ordering::SeqCst);
    }

    fn trip(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    pub(crate) fn check_after_allocate(&self) -> Result<(), Error> {
        if Self::trip(&self.after_allocate) {
            return Err(Error::Unavailable(
                "injected failure after allocation".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_after_consume(&self) -> Result<(), Error> {
        if Self::trip(&self.after_consume) {
            return Err(Error::Unavailable(
                "injected failure after consumption".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_schedule(&self) -> Result<(), Error> {
        if Self::trip(&self.schedule) {
            return Err(Error::Unavailable(
                "injected failure of the scheduler".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_release(&self) -> Result<(), Error> {
        if Self::trip(&self.release) {
            return Err(Error::Unavailable(
                "injected failure of inventory release".into(),
            ));
        }
        Ok(())
    }
}

/// An order with its holds and shipments, as answered to callers.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// The order and its lines.
    pub order: Order,
    /// Every hold.
    pub holds: Vec<Hold>,
    /// Every shipment.
    pub shipments: Vec<Shipment>,
}

/// A status change made by an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    /// The order.
    pub order_id: OrderId,
    /// Before.
    pub from: crate::domain::OrderStatus,
    /// After.
    pub to: crate::domain::OrderStatus,
}

/// The order service.
#[derive(Clone)]
pub struct App {
    pub(crate) db: Db,
    pub(crate) config: Arc<OrderConfig>,
    pub(crate) clients: Clients,
    pub(crate) faults: Arc<Faults>,
    pub(crate) intake: Arc<intake::Intake>,
}

impl App {
    /// The service over its database and peers.
    pub fn new(db: Db, config: OrderConfig, clients: Clients) -> Self {
        Self {
            db,
            config: Arc::new(config),
            clients,
            faults: Arc::new(Faults::default()),
            intake: Arc::default(),
        }
    }

    /// The failure injection points (for tests).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// Reads an order with its holds and shipments.
    pub async fn view(&self, id: OrderId) -> Result<OrderView, Error> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(order) = orders::load(&mut conn, id).await? else {
            return Err(Error::not_found("order", id));
        };
        let holds = orders::load_holds(&mut conn, id).await?;
        let shipments = orders::load_shipments(&mut conn, id).await?;
        Ok(OrderView {
            order,
            holds,
            shipments,
        })
    }

    /// Reads an order with its lines.
    pub(crate) async fn load(&self, id: OrderId) -> Result<Order, Error> {
        let mut conn = self.db.pool().acquire().await?;
        orders::load(&mut conn, id)
            .await?
            .ok_or_else(|| Error::not_found("order", id))
    }

    // === outbox ===

    /// Delivers outbox rows (the given ones, or every pending one when `ids` is empty).
    /// Failures stay pending for the next sweep; returns how many were delivered.
    pub async fn deliver_outbox(&self, ids: &[i64]) -> Result<usize, Error> {
        let items = {
            let mut conn = self.db.pool().acquire().await?;
            if ids.is_empty() {
                work::pending(&mut conn, 500).await?
            } else {
                let mut items = Vec::new();
                for id in ids {
                    if let Some(item) = work::pending_one(&mut conn, *id).await? {
                        items.push(item);
                    }
                }
                items
            }
        };

        let mut delivered = 0;
        for item in items {
            let outcome = match item.kind {
                OutboxKind::ScheduleHoldRelease => {
                    self.schedule_hold_release(item.subject, item.due_at).await
                }
                OutboxKind::SettleOrder => {
                    self.settle(OrderId(item.subject), false).await.map(|_| ())
                }
            };
            let mut conn = self.db.pool().acquire().await?;
            match outcome {
                Ok(()) => {
                    work::mark_delivered(&mut conn, item.id, now_micros()).await?;
                    delivered += 1;
                }
                Err(Error::NotFound(message)) => {
                    // The order or hold is gone for good; retrying cannot help.
                    tracing::warn!(outbox_id = item.id, %message, "outbox row dropped");
                    work::mark_delivered(&mut conn, item.id, now_micros()).await?;
                }
                Err(error) if item.attempts + 1 >= MAX_OUTBOX_ATTEMPTS => {
                    // Reconcile and the hold sweep cover what this row was for.
                    tracing::error!(
                        outbox_id = item.id,
                        kind = ?item.kind,
                        %error,
                        "outbox row given up after too many failed deliveries"
                    );
                    work::mark_failed(&mut conn, item.id, &error.to_string()).await?;
                    work::mark_delivered(&mut conn, item.id, now_micros()).await?;
                }
                Err(error) => {
                    tracing::warn!(
                        outbox_id = item.id,
                        kind = ?item.kind,
                        attempts = item.attempts + 1,
                        %error,
                        "outbox delivery failed; it stays pending"
                    );
                    work::mark_failed(&mut conn, item.id, &error.to_string()).await?;
                }
            }
        }
        Ok(delivered)
    }

    /// Schedules the release job of a time hold, keyed by the hold so it exists once.
    async fn schedule_hold_release(&self, hold_id: i64, due_at: i64) -> Result<(), Error> {
        self.faults.check_schedule()?;
        let request = scheduler::ScheduleJobRequest {
            owner: JOB_OWNER.to_string(),
            kind: crate::jobs::RELEASE_HOLD.to_string(),
            payload: hold_id.to_string().into_bytes(),
            due_time: Some(to_timestamp(due_at)),
            idempotency_key: format!("order:release-hold:{hold_id}"),
            max_attempts: 0,
        };
        self.clients.scheduler.clone().schedule_job(request).await?;
        Ok(())
    }
}

/// Longest actor recorded.
const MOST_ACTOR_CHARS: usize = 128;

/// Longest reason recorded: a sentence or a short note, kept in the history.
const MOST_REASON_CHARS: usize = 1000;

/// A reason as recorded in the history: trimmed, at most 1,000 characters, and free of
/// control characters other than line breaks and tabs (a note may have several lines).
pub fn reason_text(field: &str, reason: &str) -> Result<String, Error> {
    kosha_runtime::validate::free_text(field, reason.trim(), MOST_REASON_CHARS)
}

/// The actor to record: the caller's, or `operator` when none is given. An actor is a name
/// in the history, so it is at most 128 characters and has no control characters.
pub fn actor_or_default(actor: &str) -> Result<String, Error> {
    let actor = actor.trim();
    if actor.is_empty() {
        return Ok(DEFAULT_ACTOR.to_string());
    }
    if actor.chars().count() > MOST_ACTOR_CHARS {
        return Err(Error::invalid(
            "actor",
            format!("longer than {MOST_ACTOR_CHARS} characters"),
        ));
    }
    if actor.chars().any(char::is_control) {
        return Err(Error::invalid("actor", "has control characters"));
    }
    Ok(actor.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_a_note_of_bounded_size_without_control_characters() {
        let long = "x".repeat(MOST_REASON_CHARS + 1);

        let kept = reason_text("reason", "  customer asked\nby phone  ").unwrap();
        let too_long = reason_text("reason", &long).unwrap_err();
        let nul = reason_text("reason", "a\u{0}b").unwrap_err();

        assert_eq!(kept, "customer asked\nby phone");
        assert!(
            too_long.to_string().contains("longer than 1000"),
            "{too_long}"
        );
        assert!(nul.to_string().contains("control characters"), "{nul}");
    }
}
