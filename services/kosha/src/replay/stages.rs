//! The replay's stages over one set of clients, and what they share: the state learned
//! by earlier stages, paging through lists, waiting for background work to settle.
//!
//! Background work is the one source of nondeterminism: the order service fills waiting
//! orders from inventory's change feed on its own schedule, and the scheduler runs bulk
//! retries when it gets to them. So the replay never moves on while such work could still
//! change something: after every step that frees or brings stock it waits until no
//! waiting marketplace order could take stock that is there ([`Replay::settle`]), and it
//! retries bulk orders one at a time, each to the end of its job. Same input, same calls
//! in the same order, same outcome.

mod b2b;
mod books;
mod explain;
mod failed;
mod marketplace;
mod master;
mod stock;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use anyhow::bail;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::kosha::scheduler::v1 as sched;
use kosha_proto::types::{QcGrade, RowError};

use super::ReplayOptions;
use super::connect::{CallResult as _, Clients};
use super::input::{Dataset, ProductRow};
use super::progress::{ProgressOutput, Stage, StageTiming};
use super::report::{Facts, ReplayReport, Summary, thousands};

/// The client whose product master is `products.csv`.
pub const SELLER: &str = "ethnic";
/// The client whose product master is `channel-mrp.csv`.
pub const SECOND_CLIENT: &str = "os-catalog";
/// Who the replay says it is in every call that records an actor.
pub const ACTOR: &str = "replay";
/// The marketplace of the order file.
pub const MARKETPLACE: &str = "AMAZON";
/// The channel of B2B orders.
pub const INTERNAL: &str = "INTERNAL";
/// Every client's default pool.
pub const COMMON: &str = "COMMON";

/// Largest page the services hand out.
const PAGE_SIZE: i32 = 1000;
/// Most SKUs or lines per call where a contract caps them.
pub const BATCH: usize = 1000;
/// Stages in a replay.
const STAGES: usize = 7;

/// A replay under way.
pub struct Replay<'a> {
    clients: Clients,
    options: &'a ReplayOptions,
    data: Dataset,
    summary: Summary,
    findings: Vec<String>,
    facts: Facts,
    timings: Vec<StageTiming>,
    /// The first client's products as stored, in file order.
    seller_products: Vec<ProductRow>,
    /// The second client's SKUs as stored, in file order.
    second_skus: Vec<String>,
    /// SKUs of the category listed late.
    late_skus: BTreeSet<String>,
}

impl<'a> Replay<'a> {
    /// A replay of `data` through `clients`.
    pub fn new(clients: Clients, options: &'a ReplayOptions, data: Dataset) -> Self {
        let facts = Facts {
            seller: SELLER.to_string(),
            second_client: SECOND_CLIENT.to_string(),
            late_category: options.late_category.clone(),
            ..Facts::default()
        };
        Self {
            clients,
            options,
            data,
            summary: Summary::default(),
            findings: Vec::new(),
            facts,
            timings: Vec::new(),
            seller_products: Vec::new(),
            second_skus: Vec::new(),
            late_skus: BTreeSet::new(),
        }
    }

    /// Runs every stage in order; a call that fails outright stops the replay, a check
    /// that does not hold is recorded and the replay goes on.
    pub async fn run(mut self) -> anyhow::Result<ReplayReport> {
        self.describe_input();

        let mut stage = self.stage(1, "clients, channels, products, listings");
        let items = self.master_data(&mut stage).await?;
        self.timings
            .push(stage.finish(items, "products and listings"));

        let mut stage = self.stage(2, "opening stock and reserve pools");
        let items = self.opening_stock(&mut stage).await?;
        self.timings.push(stage.finish(items, "PO lines"));

        let mut stage = self.stage(3, "marketplace orders and channel statuses");
        let items = self.marketplace_orders(&mut stage).await?;
        self.timings.push(stage.finish(items, "orders"));

        let mut stage = self.stage(4, "failed orders and late listings");
        let items = self.failed_orders(&mut stage).await?;
        self.timings.push(stage.finish(items, "failed orders"));

        let mut stage = self.stage(5, "an order unblocked by a pool move");
        let items = self.unblock_by_pool_move(&mut stage).await?;
        self.timings.push(stage.finish(items, "orders"));

        let mut stage = self.stage(6, "B2B bulk orders and a second GRN");
        let items = self.bulk_orders(&mut stage).await?;
        self.timings.push(stage.finish(items, "bulk orders"));

        let mut stage = self.stage(7, "audit, reconciliation, isolation");
        let items = self.books(&mut stage).await?;
        self.timings.push(stage.finish(items, "ledger transfers"));

        self.summary.section("Checks");
        if self.findings.is_empty() {
            self.summary.line("every check held");
        } else {
            for finding in &self.findings {
                self.summary.line(format!("FAILED: {finding}"));
            }
        }
        Ok(ReplayReport {
            summary: self.summary.into_text(),
            timings: self.timings,
            findings: self.findings,
            facts: self.facts,
        })
    }

    fn stage(&self, number: usize, name: &str) -> Stage {
        let output = self.options.progress;
        Stage::start(output, number, STAGES, name)
    }

    fn describe_input(&mut self) {
        let data = &self.data;
        let replayed_groups = self.b2b_groups().len();
        let replayed_lines: usize = self.b2b_groups().iter().map(|group| group.lines).sum();
        let lines = [
            format!(
                "products.csv       {} rows",
                thousands(data.products.len() as i64)
            ),
            format!(
                "channel-mrp.csv    {} rows",
                thousands(data.channel_mrp.rows.len() as i64)
            ),
            format!(
                "amazon-orders.csv  {} lines, {} orders",
                thousands(data.marketplace_lines as i64),
                thousands(data.marketplace_orders.len() as i64)
            ),
            format!(
                "b2b-orders.csv     {} lines, {} (customer, date) groups; replayed: {} groups, \
                 {} lines",
                thousands(data.b2b_lines as i64),
                thousands(data.b2b_groups.len() as i64),
                thousands(replayed_groups as i64),
                thousands(replayed_lines as i64)
            ),
            format!(
                "clients: `{SELLER}` (products.csv), `{SECOND_CLIENT}` (channel-mrp.csv); \
                 category listed late: {}",
                self.options.late_category
            ),
        ];
        self.summary.section("Input");
        for line in lines {
            self.summary.line(line);
        }
    }

    /// The B2B groups this replay sends: all, or the first N of the file.
    fn b2b_groups(&self) -> &[super::input::B2bGroup] {
        let groups = &self.data.b2b_groups;
        match self.options.b2b_groups_opt {
            Some(limit) => &groups[..limit.min(groups.len())],
            None => groups,
        }
    }

    /// Records a check that did not hold.
    fn finding(&mut self, text: impl Into<String>) {
        let text = text.into();
        if self.options.progress == ProgressOutput::Stderr {
            eprintln!("replay: check failed: {text}");
        }
        self.findings.push(text);
    }

    // === paging ===

    /// Every order of a client matching the filters, oldest internal id first.
    async fn search_orders(
        &self,
        client_id: &str,
        statuses: &[ord::OrderStatus],
        channel: &str,
        id: &str,
    ) -> anyhow::Result<Vec<ord::Order>> {
        let mut orders = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ord::SearchOrdersRequest {
                client_id: client_id.to_string(),
                id: id.to_string(),
                statuses: statuses.iter().map(|status| *status as i32).collect(),
                channel: channel.to_string(),
                page_size: PAGE_SIZE,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .clients
                .order
                .clone()
                .search_orders(request)
                .await
                .during("SearchOrders")?;
            orders.extend(page.orders);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        orders.sort_by_key(|order| order_number(&order.order_id));
        Ok(orders)
    }

    /// One order by its id.
    async fn get_order(&self, order_id: &str) -> anyhow::Result<ord::Order> {
        let request = ord::GetOrderRequest {
            order_id: order_id.to_string(),
        };
        let response = self
            .clients
            .order
            .clone()
            .get_order(request)
            .await
            .during(format!("GetOrder `{order_id}`"))?;
        response
            .order
            .ok_or_else(|| anyhow::anyhow!("GetOrder `{order_id}` returned no order"))
    }

    /// Every allocation of a client, optionally of one order or only open ones.
    async fn allocations(
        &self,
        client_id: &str,
        order_ref: &str,
        open_only: bool,
    ) -> anyhow::Result<Vec<inv::Allocation>> {
        let mut allocations = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListAllocationsRequest {
                client_id: client_id.to_string(),
                order_ref: order_ref.to_string(),
                open_only,
                page_size: PAGE_SIZE,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_allocations(request)
                .await
                .during("ListAllocations")?;
            allocations.extend(page.allocations);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(allocations)
    }

    /// Every ledger transfer of a client, optionally of one order, oldest first.
    async fn ledger(&self, client_id: &str, order_ref: &str) -> anyhow::Result<Vec<inv::Transfer>> {
        let mut transfers = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListLedgerRequest {
                client_id: client_id.to_string(),
                order_ref: order_ref.to_string(),
                page_size: PAGE_SIZE,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = self
                .clients
                .inventory
                .clone()
                .list_ledger(request)
                .await
                .during("ListLedger")?;
            transfers.extend(page.transfers);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(transfers)
    }

    /// AVAILABLE units (grade PASS) of `skus` in `pool`.
    async fn available_in(
        &self,
        client_id: &str,
        pool: &str,
        skus: &BTreeSet<String>,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut available = BTreeMap::new();
        let skus: Vec<String> = skus.iter().cloned().collect();
        for chunk in skus.chunks(BATCH) {
            let request = inv::GetStockRequest {
                client_id: client_id.to_string(),
                skus: chunk.to_vec(),
                pool: pool.to_string(),
                grade: QcGrade::Pass as i32,
            };
            let response = self
                .clients
                .inventory
                .clone()
                .get_stock(request)
                .await
                .during("GetStock")?;
            for level in response.levels {
                let units = level.totals.map_or(0, |totals| totals.available);
                *available.entry(level.sku).or_insert(0) += units;
            }
        }
        Ok(available)
    }

    /// Units of each SKU in a pool (grade PASS), AVAILABLE and ALLOCATED together.
    async fn held_in(
        &self,
        client_id: &str,
        pool: &str,
        skus: &[String],
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut held = BTreeMap::new();
        for chunk in skus.chunks(BATCH) {
            let request = inv::GetStockRequest {
                client_id: client_id.to_string(),
                skus: chunk.to_vec(),
                pool: pool.to_string(),
                grade: QcGrade::Pass as i32,
            };
            let response = self
                .clients
                .inventory
                .clone()
                .get_stock(request)
                .await
                .during("GetStock")?;
            for level in response.levels {
                let units = level
                    .totals
                    .map_or(0, |totals| totals.available + totals.allocated);
                *held.entry(level.sku).or_insert(0) += units;
            }
        }
        Ok(held)
    }

    // === waiting for background work ===

    /// Waits until no waiting marketplace order of the client could take stock that is
    /// AVAILABLE in its pool: the order service fills such orders by itself from
    /// inventory's change feed. If that does not happen in time, it is recorded and the
    /// orders are retried by hand, so later stages start from the same books.
    async fn settle(&mut self, client_id: &str, after: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.options.settle_timeout;
        loop {
            let fillable = self.fillable_waiting_orders(client_id).await?;
            if fillable.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let skus: BTreeSet<String> = fillable
                    .iter()
                    .flat_map(|(_, skus)| skus.iter().cloned())
                    .collect();
                let first = &fillable[0].0;
                self.finding(format!(
                    "after {after}, {} waiting order(s) of `{client_id}` (first {first}) were not \
                     filled within {} s although their SKUs are AVAILABLE in their pool; \
                     retried with RetryWaitingOrders",
                    fillable.len(),
                    self.options.settle_timeout.as_secs()
                ));
                let request = ord::RetryWaitingOrdersRequest {
                    client_id: client_id.to_string(),
                    skus: skus.into_iter().collect(),
                    actor: ACTOR.to_string(),
                };
                self.clients
                    .order
                    .clone()
                    .retry_waiting_orders(request)
                    .await
                    .during("RetryWaitingOrders")?;
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waiting marketplace orders (not yet fully allocated, seller-fulfilled) with a line
    /// whose SKU is AVAILABLE in the order's pool, with those SKUs.
    async fn fillable_waiting_orders(
        &self,
        client_id: &str,
    ) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let waiting_statuses = [
            ord::OrderStatus::Created,
            ord::OrderStatus::Unfulfillable,
            ord::OrderStatus::PartiallyFulfillable,
        ];
        let waiting: Vec<ord::Order> = self
            .search_orders(client_id, &waiting_statuses, "", "")
            .await?
            .into_iter()
            .filter(|order| {
                order.kind() == ord::OrderKind::Marketplace && !order.marketplace_fulfilled
            })
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }

        // The pool of each order: where it was allocated from, or its channel's pool.
        let mut pools_by_channel: HashMap<String, String> = HashMap::new();
        let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut pending_by_order = Vec::new();
        for order in &waiting {
            let pool = if order.pool.is_empty() {
                match pools_by_channel.get(&order.channel) {
                    Some(pool) => pool.clone(),
                    None => {
                        let pool = self.serving_pool(client_id, &order.channel).await?;
                        pools_by_channel.insert(order.channel.clone(), pool.clone());
                        pool
                    }
                }
            } else {
                order.pool.clone()
            };
            let pending: Vec<String> = order
                .lines
                .iter()
                .filter(|line| line.pending_quantity > 0 && !line.sku.is_empty())
                .map(|line| line.sku.clone())
                .collect();
            needs
                .entry(pool.clone())
                .or_default()
                .extend(pending.iter().cloned());
            pending_by_order.push((order.order_id.clone(), pool, pending));
        }

        let mut available: HashMap<(String, String), i64> = HashMap::new();
        for (pool, skus) in &needs {
            for (sku, units) in self.available_in(client_id, pool, skus).await? {
                available.insert((pool.clone(), sku), units);
            }
        }
        let fillable = pending_by_order
            .into_iter()
            .filter_map(|(order_id, pool, pending)| {
                let skus: Vec<String> = pending
                    .into_iter()
                    .filter(|sku| {
                        available
                            .get(&(pool.clone(), sku.clone()))
                            .copied()
                            .unwrap_or(0)
                            > 0
                    })
                    .collect();
                (!skus.is_empty()).then_some((order_id, skus))
            })
            .collect();
        Ok(fillable)
    }

    /// The pool serving a client's channel now.
    async fn serving_pool(&self, client_id: &str, channel: &str) -> anyhow::Result<String> {
        let request = inv::GetServingPoolRequest {
            client_id: client_id.to_string(),
            channel: channel.to_string(),
        };
        let response = self
            .clients
            .inventory
            .clone()
            .get_serving_pool(request)
            .await
            .during(format!("GetServingPool `{channel}`"))?;
        Ok(response.pool.map(|pool| pool.name).unwrap_or_default())
    }

    /// Waits for a scheduler job to end; returns its final state.
    async fn wait_for_job(&self, job_id: &str) -> anyhow::Result<sched::Job> {
        let deadline = Instant::now() + self.options.settle_timeout;
        loop {
            let request = sched::GetJobRequest {
                job_id: job_id.to_string(),
            };
            let response = self
                .clients
                .scheduler
                .clone()
                .get_job(request)
                .await
                .during(format!("GetJob `{job_id}`"))?;
            let job = response
                .job
                .ok_or_else(|| anyhow::anyhow!("GetJob `{job_id}`: no job"))?;
            let finished = matches!(
                job.state(),
                sched::JobState::Succeeded | sched::JobState::Failed | sched::JobState::Cancelled
            );
            if finished {
                return Ok(job);
            }
            if Instant::now() >= deadline {
                bail!(
                    "job `{job_id}` ({}) did not finish within {} s; its state is {}",
                    job.kind,
                    self.options.settle_timeout.as_secs(),
                    job.state().as_str_name()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The number in an order id `ORD-<n>`, for sorting; ids of another shape sort last.
pub(super) fn order_number(order_id: &str) -> (u64, String) {
    let number = order_id
        .rsplit('-')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(u64::MAX);
    (number, order_id.to_string())
}

/// An order status without its enum prefix: `FULFILLABLE`.
pub fn status_name(status: i32) -> String {
    let name = ord::OrderStatus::try_from(status)
        .map(|status| status.as_str_name())
        .unwrap_or("ORDER_STATUS_UNSPECIFIED");
    name.trim_start_matches("ORDER_STATUS_").to_string()
}

/// Units allocated to an order over its lines.
pub fn allocated_units(order: &ord::Order) -> i64 {
    order.lines.iter().map(|line| line.allocated_quantity).sum()
}

/// The order's key in inventory, as the order service builds it.
pub fn order_ref(channel: &str, channel_order_id: &str) -> String {
    format!("{channel}:{channel_order_id}")
}

/// Rows an upload's dry run reported, and the problems counted by column and reason.
pub struct RejectedRows {
    /// Spreadsheet rows with a problem.
    pub rows: BTreeSet<i64>,
    /// `column reason` with the number of problems.
    pub reasons: BTreeMap<String, usize>,
}

impl RejectedRows {
    /// Reads a dry run's errors; a problem with the whole file stops the replay.
    pub fn from_errors(file: &str, errors: &[RowError]) -> anyhow::Result<Self> {
        let mut rows = BTreeSet::new();
        let mut reasons = BTreeMap::new();
        for error in errors {
            if error.row == 0 {
                bail!(
                    "{file}: the upload was refused as a whole: {}",
                    error.message
                );
            }
            rows.insert(error.row);
            let column = if error.column.is_empty() {
                "row"
            } else {
                error.column.as_str()
            };
            *reasons
                .entry(format!("{column} {}", error.reason))
                .or_insert(0) += 1;
        }
        Ok(Self { rows, reasons })
    }

    /// `83 sku REQUIRED, 15 sku INVALID_SKU`, or `none`.
    pub fn describe(&self) -> String {
        if self.reasons.is_empty() {
            return "none".to_string();
        }
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{} {reason}", thousands(*count as i64)))
            .collect();
        parts.join(", ")
    }
}

/// Sends a CSV file as the chunks of a client-streaming upload: the first message made by
/// `first`, the rest by `rest`, each with the next 64 KiB.
pub fn chunked<M>(
    file: &[u8],
    first: impl Fn(Vec<u8>) -> M,
    rest: impl Fn(Vec<u8>) -> M,
) -> Vec<M> {
    const CHUNK: usize = 64 * 1024;
    let mut messages = Vec::new();
    for (index, chunk) in file.chunks(CHUNK).enumerate() {
        let message = if index == 0 {
            first(chunk.to_vec())
        } else {
            rest(chunk.to_vec())
        };
        messages.push(message);
    }
    if messages.is_empty() {
        messages.push(first(Vec::new()));
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_sort_by_their_number() {
        let mut ids = vec!["ORD-10", "ORD-9", "ORD-100"];
        ids.sort_by_key(|id| order_number(id));
        assert_eq!(ids, vec!["ORD-9", "ORD-10", "ORD-100"]);
    }

    #[test]
    fn a_file_is_sent_in_chunks_with_the_header_first() {
        let file = vec![b'x'; 64 * 1024 + 1];

        let messages = chunked(
            &file,
            |chunk| (true, chunk.len()),
            |chunk| (false, chunk.len()),
        );

        assert_eq!(messages, vec![(true, 64 * 1024), (false, 1)]);
    }

    #[test]
    fn dry_run_problems_are_counted_by_column_and_reason() {
        let error = |row: i64, reason: &str| RowError {
            row,
            column: "sku".into(),
            reason: reason.into(),
            ..Default::default()
        };
        let errors = [
            error(3, "REQUIRED"),
            error(5, "REQUIRED"),
            error(5, "DUPLICATE_SKU"),
        ];

        let rejected = RejectedRows::from_errors("f.csv", &errors).unwrap();

        assert_eq!(rejected.rows.into_iter().collect::<Vec<_>>(), vec![3, 5]);
        assert_eq!(rejected.reasons.len(), 2);
    }
}
