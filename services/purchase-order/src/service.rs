//! The service's operations: each one checks its input against the product master and
//! storage, writes in one transaction, then calls out to inventory or the order service.
//!
//! Calls out happen after the commit, never inside a transaction, and are recorded as
//! pending first: a failure (or a crash) between the commit and the call leaves a marker
//! that a retry of the same request, or the background redelivery, picks up and finishes.
//! Every call out is keyed by a natural key (GRN number and part, PO number), so finishing
//! twice lands once.

use std::sync::Arc;
use std::time::Duration;

use kosha_runtime::{Db, Error};

use crate::clients::Dependencies;
use crate::config::Settings;

/// Inward POs: upload, create, close, queries.
pub mod inward;
/// Outward POs and their bulk orders.
pub mod outward;
/// GRNs and their delivery to inventory.
pub mod receipts;
/// Background delivery of what could not be delivered at once.
pub mod redelivery;

/// How long a delivery in progress keeps the background redelivery away from its GRN or
/// PO. A process that dies mid-delivery leaves its work to the background after this.
const DELIVERY_LEASE: Duration = Duration::from_secs(60);

/// The purchase-order service's operations, shared by the gRPC handlers and the
/// background redelivery.
#[derive(Clone)]
pub struct PurchaseOrders {
    db: Db,
    dependencies: Dependencies,
    settings: Arc<Settings>,
}

impl PurchaseOrders {
    /// Operations over `db`, calling `dependencies`.
    pub fn new(db: Db, dependencies: Dependencies, settings: Settings) -> Self {
        Self {
            db,
            dependencies,
            settings: Arc::new(settings),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A pooled connection for reads.
    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, Error> {
        Ok(self.db.pool().acquire().await?)
    }

    /// When a delivery started now may be taken over by the background.
    fn lease_end(now: i64) -> i64 {
        now + DELIVERY_LEASE.as_micros() as i64
    }

    /// When to try a delivery again after `attempts` failures (this one included).
    fn next_attempt_after_failure(&self, now: i64, attempts: i64) -> i64 {
        let base = self.settings.redelivery_interval().as_micros() as i64;
        now + crate::domain::retry_delay_micros(base, attempts)
    }
}

/// A dependency's failure in words for an operator, without internal detail.
fn describe_failure(error: &Error) -> String {
    match error {
        Error::Internal(_) => "internal error; the cause is in the server log".to_string(),
        other => format!("{:?}: {other}", other.code()),
    }
}
