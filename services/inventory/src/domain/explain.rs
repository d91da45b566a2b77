//! The smallest set of steps that would make a quantity AVAILABLE in a pool.
//!
//! Steps are tried from the least disruptive: make RECYCLE units of the target pool live
//! (nothing moves between pools), then one move from a single pool that covers the rest
//! alone (COMMON first, then the pool with the least stock that still covers it, so big
//! reserves stay whole), then moves from the largest pools, then RECYCLE units of other
//! pools made live and moved, and finally a goods receipt for whatever nothing covers.

use kosha_proto::kosha::inventory::v1 as pb;

use crate::domain::ids::PoolName;
use crate::domain::stock::Totals;

/// One suggested step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// What to do.
    pub kind: pb::RemedyKind,
    /// Source pool (empty for a receipt).
    pub from_pool: String,
    /// Units.
    pub quantity: i64,
}

impl Remedy {
    /// As the contract's message, with a sentence for operators.
    pub fn to_proto(&self, target: &PoolName) -> pb::Remedy {
        let units = units(self.quantity);
        let description = match self.kind {
            pb::RemedyKind::MakeLive => {
                format!("make {units} live from RECYCLE in `{target}`")
            }
            pb::RemedyKind::Move => {
                format!("move {units} from `{}` to `{target}`", self.from_pool)
            }
            pb::RemedyKind::MakeLiveAndMove => format!(
                "make {units} live in `{}`, then move them to `{target}`",
                self.from_pool
            ),
            // A goods receipt lands in COMMON, so only a reserve pool needs a move after it.
            _ if target.is_common() => format!("receive {units} (GRN)"),
            _ => format!("receive {units} (GRN), then move them to `{target}`"),
        };
        pb::Remedy {
            kind: self.kind as i32,
            from_pool: self.from_pool.clone(),
            quantity: self.quantity,
            description,
        }
    }
}

/// "1 unit", "3 units".
fn units(quantity: i64) -> String {
    if quantity == 1 {
        "1 unit".to_string()
    } else {
        format!("{quantity} units")
    }
}

/// Plans the steps covering `shortfall` units for `target`, which holds `target_totals`,
/// given the same SKU and grade in the other pools.
pub fn remedies(
    target: &PoolName,
    target_totals: &Totals,
    others: &[(PoolName, Totals)],
    shortfall: i64,
) -> Vec<Remedy> {
    let mut steps = Vec::new();
    let mut missing = shortfall;
    if missing <= 0 {
        return steps;
    }

    // 1. RECYCLE of the target itself.
    let make_live = missing.min(target_totals.recycle);
    if make_live > 0 {
        steps.push(Remedy {
            kind: pb::RemedyKind::MakeLive,
            from_pool: target.to_string(),
            quantity: make_live,
        });
        missing -= make_live;
    }
    if missing == 0 {
        return steps;
    }

    // 2. One pool that covers the rest alone: COMMON, else the smallest that does.
    let mut sources: Vec<&(PoolName, Totals)> = others
        .iter()
        .filter(|(pool, totals)| pool != target && totals.available > 0)
        .collect();
    let single = sources
        .iter()
        .filter(|(_, totals)| totals.available >= missing)
        .min_by_key(|(pool, totals)| (!pool.is_common(), totals.available, pool.clone()));
    if let Some((pool, _)) = single {
        steps.push(Remedy {
            kind: pb::RemedyKind::Move,
            from_pool: pool.to_string(),
            quantity: missing,
        });
        return steps;
    }

    // 3. The largest pools first.
    sources.sort_by_key(|(pool, totals)| (std::cmp::Reverse(totals.available), pool.clone()));
    for (pool, totals) in sources {
        let take = missing.min(totals.available);
        steps.push(Remedy {
            kind: pb::RemedyKind::Move,
            from_pool: pool.to_string(),
            quantity: take,
        });
        missing -= take;
        if missing == 0 {
            return steps;
        }
    }

    // 4. RECYCLE elsewhere, largest first.
    let mut recycled: Vec<&(PoolName, Totals)> = others
        .iter()
        .filter(|(pool, totals)| pool != target && totals.recycle > 0)
        .collect();
    recycled.sort_by_key(|(pool, totals)| (std::cmp::Reverse(totals.recycle), pool.clone()));
    for (pool, totals) in recycled {
        let take = missing.min(totals.recycle);
        steps.push(Remedy {
            kind: pb::RemedyKind::MakeLiveAndMove,
            from_pool: pool.to_string(),
            quantity: take,
        });
        missing -= take;
        if missing == 0 {
            return steps;
        }
    }

    // 5. Nothing inside covers the rest.
    steps.push(Remedy {
        kind: pb::RemedyKind::Receive,
        from_pool: String::new(),
        quantity: missing,
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str) -> PoolName {
        PoolName::parse("p", name).unwrap()
    }

    fn totals(available: i64, recycle: i64) -> Totals {
        Totals {
            available,
            allocated: 0,
            recycle,
        }
    }

    #[test]
    fn a_receipt_is_moved_on_only_when_the_target_is_a_reserve_pool() {
        let receipt = Remedy {
            kind: pb::RemedyKind::Receive,
            from_pool: String::new(),
            quantity: 1,
        };

        let into_common = receipt.to_proto(&PoolName::common()).description;
        let into_reserve = receipt.to_proto(&pool("MYNTRA")).description;

        assert_eq!(into_common, "receive 1 unit (GRN)");
        assert_eq!(
            into_reserve,
            "receive 1 unit (GRN), then move them to `MYNTRA`"
        );
    }

    #[test]
    fn recycle_in_the_target_comes_first_then_one_covering_pool() {
        let others = vec![(pool("BIG"), totals(50, 0)), (pool("SMALL"), totals(4, 0))];

        let steps = remedies(&pool("TARGET"), &totals(0, 2), &others, 5);

        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[0].kind, steps[0].quantity),
            (pb::RemedyKind::MakeLive, 2)
        );
        assert_eq!(
            steps[1],
            Remedy {
                kind: pb::RemedyKind::Move,
                from_pool: "SMALL".into(),
                quantity: 3
            }
        );
    }

    #[test]
    fn common_is_preferred_when_it_covers_alone() {
        let others = vec![
            (PoolName::common(), totals(10, 0)),
            (pool("R"), totals(3, 0)),
        ];

        let steps = remedies(&pool("TARGET"), &totals(0, 0), &others, 3);

        assert_eq!(steps[0].from_pool, "COMMON");
    }

    #[test]
    fn shortage_everywhere_ends_with_a_receipt() {
        let others = vec![(pool("A"), totals(2, 1)), (pool("B"), totals(3, 0))];

        let steps = remedies(&pool("TARGET"), &totals(0, 0), &others, 10);

        let kinds: Vec<_> = steps.iter().map(|s| (s.kind, s.quantity)).collect();
        assert_eq!(
            kinds,
            vec![
                (pb::RemedyKind::Move, 3),
                (pb::RemedyKind::Move, 2),
                (pb::RemedyKind::MakeLiveAndMove, 1),
                (pb::RemedyKind::Receive, 4)
            ]
        );
    }

    #[test]
    fn nothing_is_suggested_without_a_shortfall() {
        assert!(remedies(&pool("T"), &totals(5, 0), &[], 0).is_empty());
    }
}
