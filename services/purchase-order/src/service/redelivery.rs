//! Background delivery of what a request could not finish: GRN stock inventory has not
//! confirmed, outward POs without their bulk order.
//!
//! Each round takes the due items one by one with a conditional update (a claim) that
//! pushes their next attempt past the delivery lease, so replicas running the same loop
//! against one database share the work instead of repeating it. A failed attempt is
//! recorded with a later due time, doubling per failure.

use std::time::Duration;

use kosha_runtime::Error;
use kosha_runtime::time::now_micros;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::PurchaseOrders;
use crate::store::{grns, outward};

/// Most items of each kind taken in one round.
const ROUND_LIMIT: i64 = 100;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedeliveryRound {
    /// GRNs whose stock inventory confirmed.
    pub grns_delivered: usize,
    /// GRNs still pending after an attempt.
    pub grns_failed: usize,
    /// Outward POs whose bulk order now exists.
    pub orders_linked: usize,
    /// Outward POs still pending after an attempt.
    pub orders_failed: usize,
}

impl PurchaseOrders {
    /// Runs one round: every due GRN and outward PO gets one attempt.
    pub async fn redeliver_due(&self) -> Result<RedeliveryRound, Error> {
        let mut round = RedeliveryRound::default();
        let now = now_micros();
        let until = Self::lease_end(now);

        let due_grns = grns::due(&mut *self.connection().await?, now, ROUND_LIMIT).await?;
        for due in due_grns {
            if !grns::claim(&mut *self.connection().await?, &due, until).await? {
                continue;
            }
            let grn_opt =
                grns::get(&mut *self.connection().await?, &due.client_id, &due.number).await?;
            let Some(grn) = grn_opt else {
                continue;
            };
            match self.deliver_grn(&grn).await {
                Ok(()) => round.grns_delivered += 1,
                Err(_) => round.grns_failed += 1,
            }
        }

        let due_orders = outward::due(&mut *self.connection().await?, now, ROUND_LIMIT).await?;
        for due in due_orders {
            if !outward::claim(&mut *self.connection().await?, &due, until).await? {
                continue;
            }
            let po_opt =
                outward::get(&mut *self.connection().await?, &due.client_id, &due.number).await?;
            let Some(po) = po_opt else {
                continue;
            };
            let po = self.link_if_pending(po).await?;
            if po.order_id.is_empty() {
                round.orders_failed += 1;
            } else {
                round.orders_linked += 1;
            }
        }
        Ok(round)
    }
}

/// Runs redelivery rounds every `interval` until `shutdown_rx` turns true.
pub fn spawn(
    service: PurchaseOrders,
    interval: Duration,
    mut shutdown_rx: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        info!(
            interval_ms = interval.as_millis() as u64,
            "background redelivery started"
        );
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown_rx.changed() => break,
            }
            if *shutdown_rx.borrow() {
                break;
            }
            match service.redeliver_due().await {
                Ok(round) if round == RedeliveryRound::default() => {}
                Ok(round) => info!(
                    grns_delivered = round.grns_delivered,
                    grns_failed = round.grns_failed,
                    orders_linked = round.orders_linked,
                    orders_failed = round.orders_failed,
                    "redelivery round"
                ),
                Err(error) => warn!(error = %error, "redelivery round failed; trying again later"),
            }
        }
        info!("background redelivery stopped");
    })
}
