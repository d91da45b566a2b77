//! Allocation rules: what each order line gets, decided in memory from the locked stock
//! and the line's earlier allocation, before anything is written.
//!
//! - A line's allocation is keyed by (client, order ref, line id). A line that was ever
//!   allocated units is left as it is unless the caller asks for a top-up, so a retried
//!   call never allocates a line twice.
//! - A line's `quantity` is the target it should hold, not an increment: a top-up takes
//!   `quantity - held`. A line holding more than its target keeps it (only a release gives
//!   units back).
//! - A line holds units from one pool and grade at a time; topping it up from another pool
//!   or grade while it holds units is refused (release first). A line holding nothing may
//!   be allocated from anywhere.
//! - All or nothing: every line's need is met, or nothing is allocated. Partial: lines are
//!   served in request order, each as much as there is.

use std::collections::HashMap;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::Error;

use crate::domain::ids::{
    Actor, ChannelCode, ClientId, IdempotencyKey, LineId, OrderRef, PoolName, Sku,
};
use crate::domain::stock::{Grade, Quantity, StockKey};

/// How a request treats what it cannot serve in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationMode {
    /// Every line fully or nothing.
    AllOrNothing,
    /// Each line as much as there is.
    Partial,
}

impl AllocationMode {
    /// Parses the required mode.
    pub fn parse(field: &str, value: i32) -> Result<Self, Error> {
        match pb::AllocationMode::try_from(value) {
            Ok(pb::AllocationMode::AllOrNothing) => Ok(Self::AllOrNothing),
            Ok(pb::AllocationMode::Partial) => Ok(Self::Partial),
            Ok(pb::AllocationMode::Unspecified) => Err(Error::invalid(
                field,
                "allocation mode is required (ALL_OR_NOTHING or PARTIAL)",
            )),
            Err(_) => Err(Error::invalid(
                field,
                format!("unknown allocation mode {value}"),
            )),
        }
    }
}

/// Where to allocate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolTarget {
    /// A named pool.
    Pool(PoolName),
    /// The pool serving a channel at the time of the call.
    Channel(ChannelCode),
}

/// One line of a checked allocation request.
#[derive(Debug, Clone)]
pub struct LineRequest {
    /// Line id.
    pub line_id: LineId,
    /// SKU.
    pub sku: Sku,
    /// Target units.
    pub quantity: Quantity,
}

/// A checked allocation request.
#[derive(Debug, Clone)]
pub struct AllocateCommand {
    /// Owner.
    pub client: ClientId,
    /// The order.
    pub order_ref: OrderRef,
    /// Pool or channel.
    pub target: PoolTarget,
    /// Grade.
    pub grade: Grade,
    /// Mode.
    pub mode: AllocationMode,
    /// Lines, ids distinct.
    pub lines: Vec<LineRequest>,
    /// Whether to top up lines already allocated.
    pub top_up: bool,
    /// Idempotency key.
    pub key: IdempotencyKey,
    /// Who asks.
    pub actor: Actor,
    /// The request as received (key included), for the idempotency record.
    pub request_bytes: Vec<u8>,
}

/// What a line held before this call (its stored allocation).
#[derive(Debug, Clone)]
pub struct ExistingLine {
    /// Stored id.
    pub allocation_id: i64,
    /// SKU of the line.
    pub sku: Sku,
    /// Pool of its units.
    pub pool: PoolName,
    /// Grade of its units.
    pub grade: Grade,
    /// Units held open.
    pub held: i64,
}

/// The decision for one line.
#[derive(Debug, Clone)]
pub struct LinePlan {
    /// Line id.
    pub line_id: LineId,
    /// SKU.
    pub sku: Sku,
    /// Target units.
    pub quantity: i64,
    /// Units held before.
    pub held_before: i64,
    /// Units this call allocates.
    pub allocate_now: i64,
    /// The line had been allocated before and was left alone (no top-up asked).
    pub already_allocated: bool,
    /// The stored allocation to update, if any.
    pub existing_id: Option<i64>,
}

impl LinePlan {
    /// Units held after the call.
    pub fn held_after(&self) -> i64 {
        self.held_before + self.allocate_now
    }
}

/// Decides every line of `command`, allocating from `pool`, taking units out of the
/// running `available` figures (shared by every request of a batch, so requests served
/// earlier in the batch leave less for later ones). Returns a request-level error
/// (nothing allocated) when a line conflicts with its earlier allocation.
pub fn plan(
    command: &AllocateCommand,
    pool: &PoolName,
    existing: &HashMap<LineId, ExistingLine>,
    available: &mut HashMap<StockKey, i64>,
) -> Result<Vec<LinePlan>, Error> {
    // 1. What each line needs, and conflicts with earlier allocations.
    let mut plans = Vec::with_capacity(command.lines.len());
    let mut needs = Vec::with_capacity(command.lines.len());
    for (index, line) in command.lines.iter().enumerate() {
        let quantity = line.quantity.get();
        let Some(stored) = existing.get(&line.line_id) else {
            plans.push(new_plan(line, 0, false, None));
            needs.push(quantity);
            continue;
        };
        if stored.sku != line.sku {
            return Err(Error::FailedPrecondition(format!(
                "line `{}` of order `{}` was allocated for SKU `{}`, not `{}` (lines[{index}].sku)",
                line.line_id, command.order_ref, stored.sku, line.sku
            )));
        }
        if !command.top_up {
            plans.push(new_plan(
                line,
                stored.held,
                true,
                Some(stored.allocation_id),
            ));
            needs.push(0);
            continue;
        }
        let need = (quantity - stored.held).max(0);
        let same_source = stored.pool == *pool && stored.grade == command.grade;
        if need > 0 && stored.held > 0 && !same_source {
            return Err(Error::FailedPrecondition(format!(
                "line `{}` of order `{}` holds {} units from pool `{}` grade {}; release them \
                 before topping up from pool `{}` grade {}",
                line.line_id,
                command.order_ref,
                stored.held,
                stored.pool,
                stored.grade.label(),
                pool,
                command.grade.label()
            )));
        }
        plans.push(new_plan(
            line,
            stored.held,
            false,
            Some(stored.allocation_id),
        ));
        needs.push(need);
    }

    // 2. All or nothing: every need must fit in what is left, counted together.
    if command.mode == AllocationMode::AllOrNothing {
        let mut wanted: HashMap<StockKey, i64> = HashMap::new();
        for (line, need) in command.lines.iter().zip(&needs) {
            let key = StockKey::new(&command.client, &line.sku, pool, command.grade);
            *wanted.entry(key).or_default() += need;
        }
        let all_fit = wanted
            .iter()
            .all(|(key, want)| *want <= available.get(key).copied().unwrap_or_default());
        if !all_fit {
            return Ok(plans);
        }
    }

    // 3. Take the units, line by line in request order.
    for (plan, need) in plans.iter_mut().zip(needs) {
        if need == 0 {
            continue;
        }
        let key = StockKey::new(&command.client, &plan.sku, pool, command.grade);
        let left = available.entry(key).or_default();
        let take = need.min(*left);
        *left -= take;
        plan.allocate_now = take;
        debug_assert!(*left >= 0, "allocation never takes more than is available");
    }
    Ok(plans)
}

fn new_plan(
    line: &LineRequest,
    held_before: i64,
    already_allocated: bool,
    existing_id: Option<i64>,
) -> LinePlan {
    LinePlan {
        line_id: line.line_id.clone(),
        sku: line.sku.clone(),
        quantity: line.quantity.get(),
        held_before,
        allocate_now: 0,
        already_allocated,
        existing_id,
    }
}

/// The response line for a decided line; `available_after` is what the pool has left.
pub fn line_result(plan: &LinePlan, available_after: i64) -> pb::AllocateLineResult {
    let held = plan.held_after();
    let shortfall = (plan.quantity - held).max(0);
    let outcome = if shortfall == 0 {
        pb::LineOutcome::Full
    } else if held > 0 {
        pb::LineOutcome::Partial
    } else {
        pb::LineOutcome::None
    };
    pb::AllocateLineResult {
        line_id: plan.line_id.to_string(),
        sku: plan.sku.to_string(),
        quantity: plan.quantity,
        allocated_now: plan.allocate_now,
        held,
        shortfall,
        already_allocated: plan.already_allocated,
        outcome: outcome as i32,
        available_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(mode: AllocationMode, top_up: bool, lines: &[(&str, &str, i64)]) -> AllocateCommand {
        AllocateCommand {
            client: ClientId::parse("c", "acme").unwrap(),
            order_ref: OrderRef::parse("o", "AMAZON:1").unwrap(),
            target: PoolTarget::Pool(PoolName::common()),
            grade: Grade::Pass,
            mode,
            lines: lines
                .iter()
                .map(|(line, sku, quantity)| LineRequest {
                    line_id: LineId::parse("l", line).unwrap(),
                    sku: Sku::parse("s", sku).unwrap(),
                    quantity: Quantity::new("q", *quantity).unwrap(),
                })
                .collect(),
            top_up,
            key: IdempotencyKey::parse("k", "k1").unwrap(),
            actor: Actor::parse("a", "test").unwrap(),
            request_bytes: Vec::new(),
        }
    }

    fn stock(entries: &[(&str, i64)]) -> HashMap<StockKey, i64> {
        let client = ClientId::parse("c", "acme").unwrap();
        entries
            .iter()
            .map(|(sku, units)| {
                let sku = Sku::parse("s", sku).unwrap();
                (
                    StockKey::new(&client, &sku, &PoolName::common(), Grade::Pass),
                    *units,
                )
            })
            .collect()
    }

    #[test]
    fn all_or_nothing_allocates_nothing_when_one_line_is_short() {
        let command = command(
            AllocationMode::AllOrNothing,
            false,
            &[("1", "A", 2), ("2", "B", 5)],
        );
        let mut available = stock(&[("A", 10), ("B", 4)]);

        let plans = plan(
            &command,
            &PoolName::common(),
            &HashMap::new(),
            &mut available,
        )
        .unwrap();

        assert!(plans.iter().all(|plan| plan.allocate_now == 0));
        assert_eq!(available, stock(&[("A", 10), ("B", 4)]));
    }

    #[test]
    fn all_or_nothing_counts_two_lines_of_one_sku_together() {
        let command = command(
            AllocationMode::AllOrNothing,
            false,
            &[("1", "A", 3), ("2", "A", 3)],
        );
        let mut available = stock(&[("A", 5)]);

        let plans = plan(
            &command,
            &PoolName::common(),
            &HashMap::new(),
            &mut available,
        )
        .unwrap();

        assert_eq!(plans.iter().map(|p| p.allocate_now).sum::<i64>(), 0);
    }

    #[test]
    fn partial_serves_lines_in_order_as_far_as_stock_goes() {
        let command = command(
            AllocationMode::Partial,
            false,
            &[("1", "A", 3), ("2", "A", 3)],
        );
        let mut available = stock(&[("A", 4)]);

        let plans = plan(
            &command,
            &PoolName::common(),
            &HashMap::new(),
            &mut available,
        )
        .unwrap();

        assert_eq!((plans[0].allocate_now, plans[1].allocate_now), (3, 1));
        assert_eq!(available, stock(&[("A", 0)]));
        assert_eq!(
            line_result(&plans[1], 0).outcome,
            pb::LineOutcome::Partial as i32
        );
    }

    #[test]
    fn an_allocated_line_is_left_alone_without_top_up_and_topped_up_with_it() {
        let existing: HashMap<LineId, ExistingLine> = [(
            LineId::parse("l", "1").unwrap(),
            ExistingLine {
                allocation_id: 7,
                sku: Sku::parse("s", "A").unwrap(),
                pool: PoolName::common(),
                grade: Grade::Pass,
                held: 1,
            },
        )]
        .into();

        let mut available = stock(&[("A", 10)]);
        let untouched = command(AllocationMode::Partial, false, &[("1", "A", 3)]);
        let plans = plan(&untouched, &PoolName::common(), &existing, &mut available).unwrap();
        assert!(plans[0].already_allocated);
        assert_eq!(plans[0].allocate_now, 0);

        let top_up = command(AllocationMode::Partial, true, &[("1", "A", 3)]);
        let plans = plan(&top_up, &PoolName::common(), &existing, &mut available).unwrap();
        assert_eq!(plans[0].allocate_now, 2);
        assert_eq!(plans[0].held_after(), 3);
    }

    #[test]
    fn a_line_keeps_its_sku_and_its_pool_while_holding_units() {
        let existing: HashMap<LineId, ExistingLine> = [(
            LineId::parse("l", "1").unwrap(),
            ExistingLine {
                allocation_id: 7,
                sku: Sku::parse("s", "A").unwrap(),
                pool: PoolName::parse("p", "RESERVE").unwrap(),
                grade: Grade::Pass,
                held: 1,
            },
        )]
        .into();
        let mut available = stock(&[("A", 10), ("B", 10)]);

        let other_sku = command(AllocationMode::Partial, true, &[("1", "B", 3)]);
        let other_pool = command(AllocationMode::Partial, true, &[("1", "A", 3)]);

        let error = plan(&other_sku, &PoolName::common(), &existing, &mut available).unwrap_err();
        assert!(error.to_string().contains("SKU `A`"), "{error}");
        let error = plan(&other_pool, &PoolName::common(), &existing, &mut available).unwrap_err();
        assert!(error.to_string().contains("release them"), "{error}");
    }
}
