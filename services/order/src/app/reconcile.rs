//! Keeping what inventory holds for each order equal to what the order should hold.
//!
//! For each line, what it should still hold is ordered - cancelled - consumed (zero once
//! the order is cancelled, only the picked units once a bulk order is complete), and
//! never less than its picked units while the order is open: reconcile never releases a
//! picked unit. What inventory holds beyond that is released. Releases are keyed by the
//! line, the figures they were computed from and the allocations as inventory listed them
//! (newest allocation id, units released and consumed so far), so two settles of the same
//! state release once, while units allocated again after a release are a new state whose
//! release is not mistaken for the earlier one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kosha_proto::kosha::inventory::v1 as inv;
use kosha_runtime::Error;
use kosha_runtime::time::{from_timestamp, now_micros};

use super::{App, JOB_OWNER};
use crate::domain::rules::allocation_status;
use crate::domain::{Line, Order, OrderId, OrderStatus};
use crate::store::orders;

/// One line's holding compared with what it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineHolding {
    /// The order (`ORD-<n>`), or the inventory order ref of an allocation whose order
    /// this service never stored.
    pub order_label: String,
    /// Line number.
    pub line_no: i32,
    /// Client SKU.
    pub sku: String,
    /// What it should hold.
    pub expected: i64,
    /// What inventory holds.
    pub held: i64,
    /// Picked and not invoiced.
    pub picked_open: i64,
    /// Held beyond expected.
    pub excess: i64,
    /// Released by this call.
    pub released: i64,
}

/// What a line should hold in inventory.
pub fn expected_hold(order: &Order, line: &Line) -> i64 {
    if order.marketplace_fulfilled {
        return 0;
    }
    match order.status {
        OrderStatus::Cancelled | OrderStatus::Failed => 0,
        OrderStatus::Complete => line.picked_open(),
        _ => line.allocation_target().max(line.picked_open()),
    }
}

/// What inventory's open allocations of one line hold.
#[derive(Debug, Clone, Default)]
struct LineHeld {
    sku: String,
    /// Units held open.
    held: i64,
    /// When the oldest of them was allocated.
    oldest: i64,
    /// The newest allocation's id, and units released and consumed from the allocations
    /// so far: together they tell one holding from a later one with the same figures.
    newest_id: i64,
    released: i64,
    consumed: i64,
}

impl LineHeld {
    /// A key part naming this holding.
    fn mark(&self) -> String {
        format!("a{}-r{}-x{}", self.newest_id, self.released, self.consumed)
    }
}

/// Open allocations per line id.
type Holdings = BTreeMap<String, LineHeld>;

fn add_allocation(holdings: &mut Holdings, allocation: &inv::Allocation) {
    let created = allocation
        .create_time
        .as_ref()
        .and_then(|time| from_timestamp(time, "create_time").ok())
        .unwrap_or(i64::MAX);
    let entry = holdings
        .entry(allocation.line_id.clone())
        .or_insert_with(|| LineHeld {
            sku: allocation.sku.clone(),
            oldest: created,
            ..LineHeld::default()
        });
    entry.held += allocation.quantity;
    entry.oldest = entry.oldest.min(created);
    entry.newest_id = entry.newest_id.max(allocation.allocation_id);
    entry.released += allocation.released;
    entry.consumed += allocation.consumed;
}

/// Splits an inventory order ref into channel and channel order id.
fn split_order_ref(order_ref: &str) -> Option<(&str, &str)> {
    order_ref
        .split_once(':')
        .filter(|(channel, id)| !channel.is_empty() && !id.is_empty())
}

// === impl App: reconcile ===

impl App {
    /// Every allocation inventory has for one order (only those still holding units when
    /// `open_only`).
    async fn order_allocations(
        &self,
        client_id: &str,
        order_ref: &str,
        open_only: bool,
    ) -> Result<Vec<inv::Allocation>, Error> {
        let mut allocations = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListAllocationsRequest {
                client_id: client_id.to_string(),
                order_ref: order_ref.to_string(),
                sku: String::new(),
                pool: String::new(),
                open_only,
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_allocations(request)
                .await?
                .into_inner();
            allocations.extend(page.allocations);
            if page.next_page_token.is_empty() {
                return Ok(allocations);
            }
            page_token = page.next_page_token;
        }
    }

    async fn inventory_holdings(
        &self,
        client_id: &str,
        order_ref: &str,
    ) -> Result<Holdings, Error> {
        let mut holdings = Holdings::new();
        for allocation in &self.order_allocations(client_id, order_ref, true).await? {
            add_allocation(&mut holdings, allocation);
        }
        Ok(holdings)
    }

    /// Units inventory has consumed for each line of an order, by line id.
    pub(crate) async fn consumed_in_inventory(
        &self,
        client_id: &str,
        order_ref: &str,
    ) -> Result<BTreeMap<String, i64>, Error> {
        let mut consumed = BTreeMap::new();
        for allocation in self.order_allocations(client_id, order_ref, false).await? {
            *consumed.entry(allocation.line_id).or_insert(0) += allocation.consumed;
        }
        Ok(consumed)
    }

    async fn release_excess(
        &self,
        client_id: &str,
        order_ref: &str,
        line_id: &str,
        quantity: i64,
        key: String,
        reason: &str,
    ) -> Result<i64, Error> {
        self.faults.check_release()?;
        let request = inv::ReleaseRequest {
            client_id: client_id.to_string(),
            order_ref: order_ref.to_string(),
            line_ids: vec![line_id.to_string()],
            quantity,
            reason: reason.to_string(),
            idempotency_key: key,
            actor: JOB_OWNER.to_string(),
        };
        let response = self
            .clients
            .inventory
            .clone()
            .release(request)
            .await?
            .into_inner();
        Ok(response.released.iter().map(|line| line.quantity).sum())
    }

    /// Compares one order's lines with inventory and, unless `dry_run`, releases the
    /// excess and stores what inventory holds.
    ///
    /// The order stays locked from before inventory is read until the result is stored:
    /// every change that takes units from a line (an invoice's consumption, another
    /// settle's release) holds the same lock, so what is read, what the order should
    /// hold and what is released all describe one moment.
    pub async fn settle(&self, id: OrderId, dry_run: bool) -> Result<Vec<LineHolding>, Error> {
        if dry_run {
            let order = self.load(id).await?;
            let holdings = self
                .inventory_holdings(&order.client_id, &order.order_ref())
                .await?;
            return Ok(self.compare_and_release(&order, &holdings, true).await?.0);
        }
        let mut tx = self.db.begin().await?;
        let Some(order) = orders::lock(&mut tx, self.db.for_update(), id).await? else {
            return Err(Error::not_found("order", id));
        };
        let holdings = self
            .inventory_holdings(&order.client_id, &order.order_ref())
            .await?;
        let (result, held_after) = self.compare_and_release(&order, &holdings, false).await?;
        self.record_settled(tx, order, &result, &held_after).await?;
        Ok(result)
    }

    /// Each line of `order` against what inventory holds for it; unless `dry_run`, the
    /// excess is released. Returns the comparison and what each line holds afterwards.
    async fn compare_and_release(
        &self,
        order: &Order,
        holdings: &Holdings,
        dry_run: bool,
    ) -> Result<(Vec<LineHolding>, BTreeMap<i32, i64>), Error> {
        let id = order.id;
        let order_ref = order.order_ref();
        let mut result = Vec::with_capacity(order.lines.len());
        let mut held_after: BTreeMap<i32, i64> = BTreeMap::new();
        for line in &order.lines {
            let line_held = holdings.get(&line.line_id()).cloned().unwrap_or_default();
            let held = line_held.held;
            let expected = expected_hold(order, line);
            let excess = (held - expected).max(0);
            let mut released = 0;
            if excess > 0 && !dry_run {
                // The key names only what inventory held when it was read, so two settles
                // that read the same holding (a cancellation and a completion racing, say)
                // cannot both release from it: the second replays the first, or is refused
                // for asking otherwise and is retried from a fresh read.
                let key = release_key(
                    &order_ref,
                    &format!("release-L{}-h{held}-{}", line.line_no, line_held.mark()),
                );
                let reason = format!(
                    "order {id} is {}: units beyond what it should hold",
                    order.status
                );
                released = self
                    .release_excess(
                        &order.client_id,
                        &order_ref,
                        &line.line_id(),
                        excess,
                        key,
                        &reason,
                    )
                    .await?;
            }
            held_after.insert(line.line_no, held - released);
            result.push(LineHolding {
                order_label: id.to_string(),
                line_no: line.line_no,
                sku: line.sku.clone(),
                expected,
                held,
                picked_open: line.picked_open(),
                excess,
                released,
            });
        }
        Ok((result, held_after))
    }

    /// Stores what inventory holds for the lines of `locked` (locked in `tx`) after a
    /// settle; in the allocation phase the status follows.
    async fn record_settled(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        mut locked: Order,
        result: &[LineHolding],
        held_after: &BTreeMap<i32, i64>,
    ) -> Result<(), Error> {
        let id = locked.id;
        let now = now_micros();
        let mut changed = false;
        for line in &mut locked.lines {
            let Some(held) = held_after.get(&line.line_no) else {
                continue;
            };
            // Never record fewer held units than are picked: picked units are physically
            // out of the shelf whatever the books say.
            let held = (*held).max(line.picked - line.invoiced).max(0);
            if line.held != held {
                line.held = held;
                changed = true;
            }
        }
        if changed {
            let before = locked.status;
            if before.is_allocation_phase() && before != OrderStatus::Created {
                let holds = orders::load_holds(&mut tx, id).await?;
                locked.status = allocation_status(&locked, holds.iter().any(|hold| hold.is_open()));
            }
            orders::save(&mut tx, &locked, now).await?;
            let released: i64 = result.iter().map(|line| line.released).sum();
            let note = format!("holdings settled with inventory; {released} units released");
            orders::add_history(
                &mut tx,
                id,
                now,
                JOB_OWNER,
                Some(before),
                locked.status,
                &note,
            )
            .await?;
        }
        tx.commit().await?;
        let released: i64 = result.iter().map(|line| line.released).sum();
        if released > 0 {
            tracing::info!(order_id = %id, released, "released units an order no longer needs");
        }
        Ok(())
    }

    /// Reconciles every order of one client (every client when empty) with inventory.
    /// Returns the lines compared and the lines that held too much.
    #[tracing::instrument(name = "order.reconcile", skip_all)]
    pub async fn reconcile(
        &self,
        client_id: &str,
        dry_run: bool,
    ) -> Result<(i64, Vec<LineHolding>), Error> {
        let clients = if client_id.is_empty() {
            let mut conn = self.db.pool().acquire().await?;
            orders::clients(&mut conn).await?
        } else {
            vec![client_id.to_string()]
        };
        let mut checked = 0;
        let mut adjusted = Vec::new();
        for client in clients {
            let (client_checked, client_adjusted) = self.reconcile_client(&client, dry_run).await?;
            checked += client_checked;
            adjusted.extend(client_adjusted);
        }
        if !adjusted.is_empty() {
            tracing::info!(
                lines = adjusted.len(),
                dry_run,
                "reconcile found excess holdings"
            );
        }
        Ok((checked, adjusted))
    }

    async fn reconcile_client(
        &self,
        client_id: &str,
        dry_run: bool,
    ) -> Result<(i64, Vec<LineHolding>), Error> {
        // Everything inventory holds for this client's orders, grouped by order.
        let mut by_order: BTreeMap<String, Holdings> = BTreeMap::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListAllocationsRequest {
                client_id: client_id.to_string(),
                order_ref: String::new(),
                sku: String::new(),
                pool: String::new(),
                open_only: true,
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_allocations(request)
                .await?
                .into_inner();
            for allocation in &page.allocations {
                add_allocation(
                    by_order.entry(allocation.order_ref.clone()).or_default(),
                    allocation,
                );
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }

        let mut checked = 0;
        let mut adjusted = Vec::new();
        let mut seen: BTreeSet<OrderId> = BTreeSet::new();
        let orphan_deadline = now_micros() - duration_micros(self.config.orphan_grace);
        for (order_ref, holdings) in &by_order {
            let found = match split_order_ref(order_ref) {
                Some((channel, channel_order_id)) => {
                    let mut conn = self.db.pool().acquire().await?;
                    orders::find_by_natural_key(&mut conn, client_id, channel, channel_order_id)
                        .await?
                }
                None => None,
            };
            let lines = match found {
                Some((id, _)) => {
                    seen.insert(id);
                    // The listing above is older than the order read here (an invoice or
                    // a new allocation may have come in between), so it only picks out
                    // the orders to settle; each is settled from a fresh read under its
                    // lock.
                    let order = self.load(id).await?;
                    let (listed, _) = self.compare_and_release(&order, holdings, true).await?;
                    let agrees = listed
                        .iter()
                        .zip(&order.lines)
                        .all(|(line, stored)| line.excess == 0 && line.held == stored.held);
                    if agrees {
                        listed
                    } else {
                        self.settle_candidate(id, dry_run).await?
                    }
                }
                None => {
                    self.release_orphan(client_id, order_ref, holdings, orphan_deadline, dry_run)
                        .await?
                }
            };
            checked += lines.len() as i64;
            adjusted.extend(lines.into_iter().filter(|line| line.excess > 0));
        }

        // Orders that believe they hold units inventory no longer has for them.
        let mut after_id = 0;
        loop {
            let ids = {
                let mut conn = self.db.pool().acquire().await?;
                orders::holding_candidates(&mut conn, client_id, after_id, 500).await?
            };
            let Some(last) = ids.last() else { break };
            after_id = last.0;
            for id in ids {
                if seen.contains(&id) {
                    continue;
                }
                let order = self.load(id).await?;
                if order.lines.iter().all(|line| line.held == 0) {
                    continue;
                }
                // Not in the listing, perhaps only because it was allocated after it.
                let lines = self.settle_candidate(id, dry_run).await?;
                checked += lines.len() as i64;
                adjusted.extend(lines.into_iter().filter(|line| line.excess > 0));
            }
        }
        Ok((checked, adjusted))
    }

    /// [`App::settle`] for the reconcile job: an order a racing settle released from first
    /// is left for the next round.
    async fn settle_candidate(
        &self,
        id: OrderId,
        dry_run: bool,
    ) -> Result<Vec<LineHolding>, Error> {
        match self.settle(id, dry_run).await {
            Ok(lines) => Ok(lines),
            Err(Error::AlreadyExists(message)) => {
                tracing::debug!(order_id = %id, %message, "settled meanwhile");
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
    }

    /// Releases what inventory holds for an order this service never stored (a create
    /// that died between inventory and its own write and was never retried), once the
    /// allocation is older than the grace period.
    async fn release_orphan(
        &self,
        client_id: &str,
        order_ref: &str,
        holdings: &Holdings,
        deadline: i64,
        dry_run: bool,
    ) -> Result<Vec<LineHolding>, Error> {
        let mut lines = Vec::new();
        for (line_id, line_held) in holdings {
            let held = line_held.held;
            let excess = if line_held.oldest <= deadline {
                held
            } else {
                0
            };
            let mut released = 0;
            if excess > 0 && !dry_run {
                let key = release_key(
                    order_ref,
                    &format!("orphan-L{line_id}-h{held}-{}", line_held.mark()),
                );
                released = self
                    .release_excess(
                        client_id,
                        order_ref,
                        line_id,
                        excess,
                        key,
                        "no such order in the order service",
                    )
                    .await?;
            }
            lines.push(LineHolding {
                order_label: order_ref.to_string(),
                line_no: line_id.parse().unwrap_or(0),
                sku: line_held.sku.clone(),
                expected: 0,
                held,
                picked_open: 0,
                excess,
                released,
            });
        }
        Ok(lines)
    }

    /// The holdings of some orders, changing nothing.
    pub async fn holdings(&self, ids: &[OrderId]) -> Result<Vec<LineHolding>, Error> {
        let mut all = Vec::new();
        for id in ids {
            all.extend(self.settle(*id, true).await?);
        }
        Ok(all)
    }
}

/// Longest idempotency key inventory takes.
const MOST_KEY_CHARS: usize = 200;

/// The idempotency key `<order_ref>#<detail>`; when that is too long for inventory, the
/// detail is replaced by its hash, which is as deterministic.
fn release_key(order_ref: &str, detail: &str) -> String {
    let key = format!("{order_ref}#{detail}");
    if key.len() <= MOST_KEY_CHARS {
        return key;
    }
    format!(
        "{order_ref}#release-{:016x}",
        kosha_runtime::page::stable_hash(detail.as_bytes())
    )
}

fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
