//! Recomputes stock from the ledger and checks every invariant, in one read snapshot (so
//! concurrent writers never make it report a difference that is not there):
//!
//! 1. no stock column is negative;
//! 2. every bucket equals the sum of the transfers into it less those out of it;
//! 3. every ALLOCATED bucket equals the open allocations of order lines from it;
//! 4. per SKU, what is held equals received - consumed + found - lost (adjustments);
//! 5. every allocation's open, consumed and released units equal its transfers.
//!
//! Cost: one pass over the stock, allocation and ledger tables each, grouped in the
//! database. Fine for tests and for an operator's check; on a very large ledger it should
//! be run per client.

use std::collections::{BTreeMap, BTreeSet};

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::db::Backend;
use kosha_runtime::{Db, Error};
use sqlx::Row as _;

use crate::domain::stock::{Grade, StockState, Totals, TransferReason};

/// Most differences reported.
const MAX_DISCREPANCIES: usize = 1000;
/// Transfers listed per difference.
const TRANSFERS_PER_DISCREPANCY: i64 = 20;

type RowKey = (String, String, String, i64);

/// Runs the audit, for one client or (empty) all.
pub async fn run(db: &Db, client: &str) -> Result<pb::AuditResponse, Error> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }

    // Stored figures.
    let mut stored: BTreeMap<RowKey, Totals> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT client_id, sku, pool, grade, available, allocated, recycle FROM stock \
         WHERE ($1 = '' OR client_id = $1)",
    )
    .bind(client)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let key = (
            row.try_get("client_id")?,
            row.try_get("sku")?,
            row.try_get("pool")?,
            row.try_get("grade")?,
        );
        let totals = Totals {
            available: row.try_get("available")?,
            allocated: row.try_get("allocated")?,
            recycle: row.try_get("recycle")?,
        };
        stored.insert(key, totals);
    }

    // Figures from the ledger.
    let mut from_ledger: BTreeMap<RowKey, Totals> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT client_id, sku, pool, grade, state, CAST(SUM(quantity) AS BIGINT) AS units FROM ( \
           SELECT client_id, sku, to_pool AS pool, grade, to_state AS state, quantity FROM ledger \
           WHERE to_pool IS NOT NULL AND ($1 = '' OR client_id = $1) \
           UNION ALL \
           SELECT client_id, sku, from_pool AS pool, grade, from_state AS state, \
           -quantity AS quantity FROM ledger \
           WHERE from_pool IS NOT NULL AND ($1 = '' OR client_id = $1) \
         ) AS moves GROUP BY client_id, sku, pool, grade, state",
    )
    .bind(client)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let key = (
            row.try_get("client_id")?,
            row.try_get("sku")?,
            row.try_get("pool")?,
            row.try_get("grade")?,
        );
        let state = StockState::from_code(row.try_get("state")?)?;
        *from_ledger.entry(key).or_default().get_mut(state) += row.try_get::<i64, _>("units")?;
    }

    // Open allocations per stock row.
    let mut allocated: BTreeMap<RowKey, i64> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT client_id, sku, pool, grade, CAST(SUM(quantity) AS BIGINT) AS units, \
         COUNT(*) AS lines FROM allocations WHERE ($1 = '' OR client_id = $1) \
         GROUP BY client_id, sku, pool, grade",
    )
    .bind(client)
    .fetch_all(&mut *tx)
    .await?;
    let mut allocations_checked = 0;
    for row in rows {
        let key = (
            row.try_get("client_id")?,
            row.try_get("sku")?,
            row.try_get("pool")?,
            row.try_get("grade")?,
        );
        allocated.insert(key, row.try_get("units")?);
        allocations_checked += row.try_get::<i64, _>("lines")?;
    }

    // Units entering and leaving per SKU, by reason.
    let mut flows: BTreeMap<(String, String), i64> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT client_id, sku, reason, \
         CAST(SUM(CASE WHEN from_pool IS NULL THEN quantity ELSE -quantity END) AS BIGINT) \
           AS units \
         FROM ledger WHERE (from_pool IS NULL OR to_pool IS NULL) \
         AND ($1 = '' OR client_id = $1) GROUP BY client_id, sku, reason",
    )
    .bind(client)
    .fetch_all(&mut *tx)
    .await?;
    let mut outside_flows_by_other_reasons: Vec<(String, String, i64)> = Vec::new();
    for row in rows {
        let key: (String, String) = (row.try_get("client_id")?, row.try_get("sku")?);
        let reason = TransferReason::from_code(row.try_get("reason")?)?;
        let units: i64 = row.try_get("units")?;
        match reason {
            TransferReason::Receive | TransferReason::Consume | TransferReason::Adjust => {
                *flows.entry(key).or_default() += units;
            }
            _ => outside_flows_by_other_reasons.push((key.0, key.1, reason.code())),
        }
    }

    // Each allocation against its transfers.
    let rows = sqlx::query(
        "SELECT a.client_id, a.order_ref, a.line_id, a.sku, a.quantity, a.consumed, a.released, \
         CAST(COALESCE(SUM(CASE WHEN l.reason = $2 THEN l.quantity ELSE 0 END), 0) AS BIGINT) \
           AS in_units, \
         CAST(COALESCE(SUM(CASE WHEN l.reason = $3 THEN l.quantity ELSE 0 END), 0) AS BIGINT) \
           AS released_units, \
         CAST(COALESCE(SUM(CASE WHEN l.reason = $4 THEN l.quantity ELSE 0 END), 0) AS BIGINT) \
           AS consumed_units \
         FROM allocations a LEFT JOIN ledger l ON l.client_id = a.client_id \
           AND l.order_ref = a.order_ref AND l.line_id = a.line_id \
         WHERE ($1 = '' OR a.client_id = $1) \
         GROUP BY a.id, a.client_id, a.order_ref, a.line_id, a.sku, a.quantity, a.consumed, \
           a.released",
    )
    .bind(client)
    .bind(TransferReason::Allocate.code())
    .bind(TransferReason::Release.code())
    .bind(TransferReason::Consume.code())
    .fetch_all(&mut *tx)
    .await?;
    let mut line_problems = Vec::new();
    for row in rows {
        let quantity: i64 = row.try_get("quantity")?;
        let consumed: i64 = row.try_get("consumed")?;
        let released: i64 = row.try_get("released")?;
        let in_units: i64 = row.try_get("in_units")?;
        let released_units: i64 = row.try_get("released_units")?;
        let consumed_units: i64 = row.try_get("consumed_units")?;
        let expected_open = in_units - released_units - consumed_units;
        if quantity != expected_open || consumed != consumed_units || released != released_units {
            let client_id: String = row.try_get("client_id")?;
            let order_ref: String = row.try_get("order_ref")?;
            let line_id: String = row.try_get("line_id")?;
            line_problems.push(pb::Discrepancy {
                kind: pb::DiscrepancyKind::AllocationLedgerMismatch as i32,
                client_id,
                sku: row.try_get("sku")?,
                expected: expected_open,
                actual: quantity,
                description: format!(
                    "order `{order_ref}` line `{line_id}` holds {quantity} (consumed {consumed}, \
                     released {released}) but its transfers say {expected_open} (consumed \
                     {consumed_units}, released {released_units})"
                ),
                ..Default::default()
            });
        }
    }

    let transfers_checked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE ($1 = '' OR client_id = $1)")
            .bind(client)
            .fetch_one(&mut *tx)
            .await?;

    // Compare.
    let mut discrepancies = Vec::new();
    let keys: BTreeSet<&RowKey> = stored.keys().chain(from_ledger.keys()).collect();
    for key in &keys {
        let actual = stored.get(*key).copied().unwrap_or_default();
        let expected = from_ledger.get(*key).copied().unwrap_or_default();
        for state in [
            StockState::Available,
            StockState::Allocated,
            StockState::Recycle,
        ] {
            if actual.get(state) < 0 {
                discrepancies.push(row_discrepancy(
                    pb::DiscrepancyKind::NegativeBucket,
                    key,
                    state,
                    0,
                    actual.get(state),
                    "bucket is negative".to_string(),
                ));
            }
            if actual.get(state) != expected.get(state) {
                discrepancies.push(row_discrepancy(
                    pb::DiscrepancyKind::BucketLedgerMismatch,
                    key,
                    state,
                    expected.get(state),
                    actual.get(state),
                    "bucket differs from the sum of its transfers".to_string(),
                ));
            }
        }
    }
    let allocation_keys: BTreeSet<&RowKey> = stored.keys().chain(allocated.keys()).collect();
    for key in allocation_keys {
        let actual = stored
            .get(key)
            .map(|totals| totals.allocated)
            .unwrap_or_default();
        let expected = allocated.get(key).copied().unwrap_or_default();
        if actual != expected {
            discrepancies.push(row_discrepancy(
                pb::DiscrepancyKind::AllocationMismatch,
                key,
                StockState::Allocated,
                expected,
                actual,
                "ALLOCATED differs from the open allocations of order lines".to_string(),
            ));
        }
    }
    let mut held: BTreeMap<(String, String), i64> = BTreeMap::new();
    for ((client_id, sku, _, _), totals) in &stored {
        *held.entry((client_id.clone(), sku.clone())).or_default() += totals.held();
    }
    let sku_keys: BTreeSet<&(String, String)> = held.keys().chain(flows.keys()).collect();
    for key in sku_keys {
        let actual = held.get(key).copied().unwrap_or_default();
        let expected = flows.get(key).copied().unwrap_or_default();
        if actual != expected {
            discrepancies.push(pb::Discrepancy {
                kind: pb::DiscrepancyKind::SkuBalanceMismatch as i32,
                client_id: key.0.clone(),
                sku: key.1.clone(),
                expected,
                actual,
                description: format!(
                    "SKU holds {actual} units but received - consumed +/- adjusted is {expected}"
                ),
                ..Default::default()
            });
        }
    }
    for (client_id, sku, reason) in outside_flows_by_other_reasons {
        discrepancies.push(pb::Discrepancy {
            kind: pb::DiscrepancyKind::SkuBalanceMismatch as i32,
            client_id,
            sku,
            description: format!(
                "transfers with reason {reason} move units from or to outside; only receive, \
                 consume and adjust may"
            ),
            ..Default::default()
        });
    }
    discrepancies.extend(line_problems);
    discrepancies.truncate(MAX_DISCREPANCIES);

    // The transfers involved, for bucket-level differences.
    for discrepancy in &mut discrepancies {
        if discrepancy.pool.is_empty() {
            continue;
        }
        discrepancy.transfer_ids = crate::store::ledger::latest_ids_for_row(
            &mut *tx,
            &discrepancy.client_id,
            &discrepancy.sku,
            &discrepancy.pool,
            i64::from(discrepancy.grade),
            TRANSFERS_PER_DISCREPANCY,
        )
        .await?;
    }
    tx.commit().await?;

    Ok(pb::AuditResponse {
        clean: discrepancies.is_empty(),
        buckets_checked: i64::try_from(keys.len() * 3).unwrap_or(i64::MAX),
        transfers_checked,
        allocations_checked,
        discrepancies,
    })
}

fn row_discrepancy(
    kind: pb::DiscrepancyKind,
    key: &RowKey,
    state: StockState,
    expected: i64,
    actual: i64,
    what: String,
) -> pb::Discrepancy {
    let grade = Grade::from_code(key.3)
        .map(Grade::to_proto)
        .unwrap_or_default();
    pb::Discrepancy {
        kind: kind as i32,
        client_id: key.0.clone(),
        sku: key.1.clone(),
        pool: key.2.clone(),
        grade,
        state: state.to_proto(),
        expected,
        actual,
        description: format!(
            "{what}: {}/{}/{}/{} is {actual}, expected {expected}",
            key.1,
            key.2,
            Grade::from_code(key.3).map(Grade::label).unwrap_or("?"),
            state.label()
        ),
        transfer_ids: Vec::new(),
    }
}
