//! Stock movements that are not about orders: goods receipt, pool moves, recycle,
//! make live and operator adjustments.

use std::collections::{BTreeSet, HashMap};

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::time::now_micros;
use kosha_runtime::{Error, validate};

use crate::domain::ids::{Actor, ClientId, IdempotencyKey, PoolName, Sku, free_text};
use crate::domain::pool::PoolRecord;
use crate::domain::stock::{
    Grade, Provenance, Quantity, Side, StockKey, StockState, Totals, TransferReason, TransferSpec,
};
use crate::service::pools::for_share;
use crate::service::{Inventory, encoded, forward_out_of_expired, retrying};
use crate::store::{self, Tx, stock};

/// Most lines in one receipt or one move.
const MAX_LINES: usize = 1000;
/// Longest reason, note or reference.
const MAX_TEXT: usize = 500;

/// A stock row as the contract shows it.
pub(crate) fn level(key: &StockKey, totals: &Totals) -> pb::StockLevel {
    pb::StockLevel {
        sku: key.sku.to_string(),
        pool: key.pool.to_string(),
        grade: key.grade.to_proto(),
        totals: Some(totals.to_proto()),
    }
}

/// One checked (SKU, grade, quantity) line.
#[derive(Debug, Clone)]
struct StockLine {
    sku: Sku,
    grade: Grade,
    quantity: i64,
}

/// Checks lines: 1 to [`MAX_LINES`], each (SKU, grade) once.
fn parse_lines<'a>(
    lines: impl ExactSizeIterator<Item = (&'a str, i32, i64)>,
) -> Result<Vec<StockLine>, Error> {
    if lines.len() == 0 {
        return Err(Error::invalid("lines", "at least one line is required"));
    }
    if lines.len() > MAX_LINES {
        return Err(Error::invalid(
            "lines",
            format!("at most {MAX_LINES} lines per request"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::with_capacity(lines.len());
    for (index, (sku, grade, quantity)) in lines.enumerate() {
        let sku = Sku::parse(&format!("lines[{index}].sku"), sku)?;
        let grade = Grade::parse(&format!("lines[{index}].grade"), grade)?;
        let quantity = Quantity::new(&format!("lines[{index}].quantity"), quantity)?.get();
        if !seen.insert((sku.clone(), grade)) {
            return Err(Error::invalid(
                format!("lines[{index}]"),
                format!(
                    "SKU `{sku}` grade {} appears twice; put it on one line",
                    grade.label()
                ),
            ));
        }
        parsed.push(StockLine {
            sku,
            grade,
            quantity,
        });
    }
    Ok(parsed)
}

impl Inventory {
    /// Goods receipt into COMMON.
    pub async fn receive(&self, request: pb::ReceiveRequest) -> Result<pb::ReceiveResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        if request.reference.trim().is_empty() {
            return Err(Error::invalid("reference", "the GRN number is required"));
        }
        let reference = free_text("reference", &request.reference, MAX_TEXT)?;
        let lines = parse_lines(
            request
                .lines
                .iter()
                .map(|line| (line.sku.as_str(), line.grade, line.quantity)),
        )?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client_ref, lines_ref, key_ref, bytes_ref) = (&client, &lines, &key, &request_bytes);
        let (actor_ref, reference_ref) = (&actor, &reference);
        let response = retrying(|| async move {
            let (client, lines, key, request_bytes) = (client_ref, lines_ref, key_ref, bytes_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "Receive", request_bytes)
                .await?
            {
                return Ok(response);
            }

            store::pools::ensure_common(&mut *tx, client, now).await?;
            let common = PoolName::common();
            let mut locked = stock::Locked::default();
            let keys: Vec<StockKey> = lines
                .iter()
                .map(|line| StockKey::new(client, &line.sku, &common, line.grade))
                .collect();
            stock::lock(&mut tx, self.db(), &mut locked, keys.iter().cloned()).await?;
            let transfers: Vec<TransferSpec> = lines
                .iter()
                .map(|line| TransferSpec {
                    client: client.clone(),
                    sku: line.sku.clone(),
                    grade: line.grade,
                    from: None,
                    to: Some(Side {
                        pool: common.clone(),
                        state: StockState::Available,
                    }),
                    quantity: line.quantity,
                    reason: TransferReason::Receive,
                    order_line: None,
                })
                .collect();
            let provenance = Provenance {
                actor: actor_ref.to_string(),
                reference: reference_ref.clone(),
                idempotency_key: key.to_string(),
            };
            stock::apply(
                &mut tx,
                self.db(),
                &mut locked,
                &transfers,
                &provenance,
                now,
            )
            .await?;

            let levels = keys
                .iter()
                .map(|key| level(key, &locked.totals(key)))
                .collect();
            let response = pb::ReceiveResponse { levels };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "Receive",
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;

        let units: i64 = lines.iter().map(|line| line.quantity).sum();
        tracing::info!(
            client = %client,
            reference = %reference,
            lines = lines.len(),
            units,
            "stock received"
        );
        Ok(response)
    }

    /// Moves AVAILABLE units between pools, or reports what a move would do.
    pub async fn move_stock(
        &self,
        request: pb::MoveStockRequest,
    ) -> Result<pb::MoveStockResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let from_pool = PoolName::parse("from_pool", &request.from_pool)?;
        let to_pool = PoolName::parse("to_pool", &request.to_pool)?;
        if from_pool == to_pool {
            return Err(Error::invalid(
                "to_pool",
                format!("must differ from from_pool `{from_pool}`"),
            ));
        }
        let lines = parse_lines(
            request
                .lines
                .iter()
                .map(|line| (line.sku.as_str(), line.grade, line.quantity)),
        )?;
        let reason = free_text("reason", &request.reason, MAX_TEXT)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;

        if request.dry_run {
            return self
                .move_stock_dry_run(&client, &from_pool, &to_pool, &lines)
                .await;
        }

        let request_bytes = encoded(&request);
        let (client_ref, from_ref, to_ref, lines_ref) = (&client, &from_pool, &to_pool, &lines);
        let (key_ref, bytes_ref, actor_ref, reason_ref) = (&key, &request_bytes, &actor, &reason);
        let response = retrying(|| async move {
            let (client, from_pool, to_pool, lines) = (client_ref, from_ref, to_ref, lines_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key_ref, "MoveStock", bytes_ref)
                .await?
            {
                return Ok(response);
            }

            let pools = self
                .move_pools(&mut tx, client, from_pool, to_pool, now, true)
                .await?;
            let mut locked = stock::Locked::default();
            let keys = lines.iter().flat_map(|line| {
                [
                    StockKey::new(client, &line.sku, from_pool, line.grade),
                    StockKey::new(client, &line.sku, to_pool, line.grade),
                ]
            });
            stock::lock(&mut tx, self.db(), &mut locked, keys).await?;
            let results = move_results(client, from_pool, to_pool, lines, |key| locked.totals(key));
            let short: Vec<String> = results
                .iter()
                .enumerate()
                .filter(|(_, result)| result.shortfall > 0)
                .map(|(index, result)| {
                    format!(
                        "lines[{index}]: {} units of `{}` asked, {} available",
                        result.quantity, result.sku, result.source_available_before
                    )
                })
                .collect();
            if !short.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "not enough AVAILABLE stock in pool `{from_pool}`, nothing moved: {}",
                    short.join("; ")
                )));
            }

            let mut transfers: Vec<TransferSpec> = lines
                .iter()
                .map(|line| TransferSpec {
                    client: client.clone(),
                    sku: line.sku.clone(),
                    grade: line.grade,
                    from: Some(Side {
                        pool: from_pool.clone(),
                        state: StockState::Available,
                    }),
                    to: Some(Side {
                        pool: to_pool.clone(),
                        state: StockState::Available,
                    }),
                    quantity: line.quantity,
                    reason: TransferReason::PoolMove,
                    order_line: None,
                })
                .collect();
            forward_out_of_expired(&mut transfers, &pools, now);
            let provenance = Provenance {
                actor: actor_ref.to_string(),
                reference: reason_ref.clone(),
                idempotency_key: key_ref.to_string(),
            };
            stock::apply(
                &mut tx,
                self.db(),
                &mut locked,
                &transfers,
                &provenance,
                now,
            )
            .await?;

            let response = pb::MoveStockResponse {
                dry_run: false,
                applied: true,
                lines: results,
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key_ref,
                "MoveStock",
                bytes_ref,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;

        let units: i64 = lines.iter().map(|line| line.quantity).sum();
        tracing::info!(
            client = %client,
            from_pool = %from_pool,
            to_pool = %to_pool,
            lines = lines.len(),
            units,
            "stock moved between pools"
        );
        Ok(response)
    }

    /// The report of a move, computed from committed stock, storing nothing.
    async fn move_stock_dry_run(
        &self,
        client: &ClientId,
        from_pool: &PoolName,
        to_pool: &PoolName,
        lines: &[StockLine],
    ) -> Result<pb::MoveStockResponse, Error> {
        let now = now_micros();
        let mut tx = self.db().pool().begin().await?;
        self.move_pools(&mut tx, client, from_pool, to_pool, now, false)
            .await?;
        let skus: Vec<Sku> = lines.iter().map(|line| line.sku.clone()).collect();
        let mut current: HashMap<StockKey, Totals> = HashMap::new();
        for pool in [from_pool, to_pool] {
            let filter = stock::StockFilter {
                skus: skus.clone(),
                pool: Some(pool.clone()),
                ..Default::default()
            };
            current.extend(stock::read(&mut *tx, client, &filter).await?);
        }
        tx.commit().await?;
        let results = move_results(client, from_pool, to_pool, lines, |key| {
            current.get(key).copied().unwrap_or_default()
        });
        Ok(pb::MoveStockResponse {
            dry_run: true,
            applied: false,
            lines: results,
        })
    }

    /// Checks both pools of a move: they exist, and the destination has not expired.
    /// With `lock`, the destination is share-locked so it cannot be deleted meanwhile.
    async fn move_pools(
        &self,
        tx: &mut Tx<'_>,
        client: &ClientId,
        from_pool: &PoolName,
        to_pool: &PoolName,
        now: i64,
        lock: bool,
    ) -> Result<HashMap<PoolName, PoolRecord>, Error> {
        if from_pool.is_common() || to_pool.is_common() {
            store::pools::ensure_common(&mut **tx, client, now).await?;
        }
        let source = store::pools::get(&mut **tx, client, from_pool)
            .await?
            .ok_or_else(|| Error::not_found("pool", format!("{client}/{from_pool} (from_pool)")))?;
        let lock_clause = if lock {
            for_share(self.db().backend())
        } else {
            ""
        };
        let target = store::pools::lock(tx, lock_clause, client, to_pool)
            .await?
            .ok_or_else(|| Error::not_found("pool", format!("{client}/{to_pool} (to_pool)")))?;
        if target.is_expired(now) {
            return Err(Error::FailedPrecondition(format!(
                "pool `{to_pool}` has expired; stock cannot be moved into it"
            )));
        }
        Ok([(source.name.clone(), source), (target.name.clone(), target)].into())
    }

    /// AVAILABLE -> RECYCLE in one pool.
    pub async fn recycle(&self, request: pb::RecycleRequest) -> Result<pb::RecycleResponse, Error> {
        let command = StateChange::parse(
            &request.client_id,
            &request.pool,
            &request.sku,
            request.grade,
            request.quantity,
            &request.reason,
            &request.idempotency_key,
            &request.actor,
        )?;
        let request_bytes = encoded(&request);
        let levels = self
            .change_state(
                &command,
                StockState::Available,
                StockState::Recycle,
                "Recycle",
                &request_bytes,
            )
            .await?;
        tracing::info!(
            client = %command.client,
            pool = %command.pool,
            sku = %command.sku,
            units = command.quantity,
            "stock recycled"
        );
        Ok(pb::RecycleResponse {
            level: levels.into_iter().next(),
        })
    }

    /// RECYCLE -> AVAILABLE in one pool (on to COMMON if the pool has expired).
    pub async fn make_live(
        &self,
        request: pb::MakeLiveRequest,
    ) -> Result<pb::MakeLiveResponse, Error> {
        let command = StateChange::parse(
            &request.client_id,
            &request.pool,
            &request.sku,
            request.grade,
            request.quantity,
            &request.reason,
            &request.idempotency_key,
            &request.actor,
        )?;
        let request_bytes = encoded(&request);
        let levels = self
            .change_state(
                &command,
                StockState::Recycle,
                StockState::Available,
                "MakeLive",
                &request_bytes,
            )
            .await?;
        tracing::info!(
            client = %command.client,
            pool = %command.pool,
            sku = %command.sku,
            units = command.quantity,
            "stock made live"
        );
        Ok(pb::MakeLiveResponse { levels })
    }

    /// Moves units between two states of one pool's row.
    async fn change_state(
        &self,
        command: &StateChange,
        from: StockState,
        to: StockState,
        method: &'static str,
        request_bytes: &[u8],
    ) -> Result<Vec<pb::StockLevel>, Error> {
        let reason = if to == StockState::Recycle {
            TransferReason::Recycle
        } else {
            TransferReason::MakeLive
        };
        let response: pb::MakeLiveResponse = retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            let scope = command.client.as_str();
            // Both calls record their levels in the shape of MakeLiveResponse.
            if let Some(response) = self
                .replay(&mut tx, scope, &command.key, method, request_bytes)
                .await?
            {
                return Ok(response);
            }

            let pool = self
                .existing_pool(&mut tx, &command.client, &command.pool, "pool", now)
                .await?;
            let row = StockKey::new(&command.client, &command.sku, &command.pool, command.grade);
            let mut locked = stock::Locked::default();
            let mut keys = vec![row.clone()];
            if pool.is_expired(now) && to == StockState::Available {
                keys.push(row.in_pool(&PoolName::common()));
            }
            stock::lock(&mut tx, self.db(), &mut locked, keys.iter().cloned()).await?;
            let has = locked.totals(&row).get(from);
            if has < command.quantity {
                return Err(Error::FailedPrecondition(format!(
                    "pool `{}` has {has} units of `{}` grade {} in {}, fewer than the {} asked",
                    command.pool,
                    command.sku,
                    command.grade.label(),
                    from.label(),
                    command.quantity
                )));
            }

            let mut transfers = vec![TransferSpec {
                client: command.client.clone(),
                sku: command.sku.clone(),
                grade: command.grade,
                from: Some(Side {
                    pool: command.pool.clone(),
                    state: from,
                }),
                to: Some(Side {
                    pool: command.pool.clone(),
                    state: to,
                }),
                quantity: command.quantity,
                reason,
                order_line: None,
            }];
            forward_out_of_expired(&mut transfers, &[(pool.name.clone(), pool)].into(), now);
            stock::apply(
                &mut tx,
                self.db(),
                &mut locked,
                &transfers,
                &command.provenance(),
                now,
            )
            .await?;

            let levels = keys
                .iter()
                .map(|key| level(key, &locked.totals(key)))
                .collect();
            let response = pb::MakeLiveResponse { levels };
            self.remember(
                &mut tx,
                scope,
                &command.key,
                method,
                request_bytes,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;
        Ok(response.levels)
    }

    /// An operator's correction of an AVAILABLE or RECYCLE bucket.
    pub async fn adjust(&self, request: pb::AdjustRequest) -> Result<pb::AdjustResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let pool_name = PoolName::parse("pool", &request.pool)?;
        let sku = Sku::parse("sku", &request.sku)?;
        let grade = Grade::parse("grade", request.grade)?;
        let state = match pb::StockState::try_from(request.state) {
            Ok(pb::StockState::Available) => StockState::Available,
            Ok(pb::StockState::Recycle) => StockState::Recycle,
            Ok(pb::StockState::Allocated) => {
                return Err(Error::invalid(
                    "state",
                    "ALLOCATED belongs to orders; release or consume instead of adjusting",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "state",
                    "state is required (AVAILABLE or RECYCLE)",
                ));
            }
        };
        let delta = request.delta;
        if delta == 0 {
            return Err(Error::invalid("delta", "must not be zero"));
        }
        if delta.unsigned_abs() > validate::MAX_QUANTITY.unsigned_abs() {
            return Err(Error::invalid(
                "delta",
                format!("at most {} units either way", validate::MAX_QUANTITY),
            ));
        }
        let reason =
            pb::AdjustReason::try_from(request.reason).unwrap_or(pb::AdjustReason::Unspecified);
        match reason {
            pb::AdjustReason::Unspecified => {
                return Err(Error::invalid(
                    "reason",
                    "reason is required (FOUND, LOST, DAMAGED or COUNT_CORRECTION)",
                ));
            }
            pb::AdjustReason::Found if delta < 0 => {
                return Err(Error::invalid(
                    "delta",
                    "FOUND adds units: delta must be positive",
                ));
            }
            pb::AdjustReason::Lost | pb::AdjustReason::Damaged if delta > 0 => {
                return Err(Error::invalid(
                    "delta",
                    "LOST and DAMAGED remove units: delta must be negative",
                ));
            }
            _ => {}
        }
        let note = free_text("note", &request.note, MAX_TEXT)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);
        let reference = if note.is_empty() {
            reason
                .as_str_name()
                .trim_start_matches("ADJUST_REASON_")
                .to_string()
        } else {
            format!(
                "{}: {note}",
                reason.as_str_name().trim_start_matches("ADJUST_REASON_")
            )
        };

        let (client_ref, pool_ref, sku_ref, key_ref) = (&client, &pool_name, &sku, &key);
        let (bytes_ref, actor_ref, reference_ref) = (&request_bytes, &actor, &reference);
        let response = retrying(|| async move {
            let (client, pool_name, sku, key) = (client_ref, pool_ref, sku_ref, key_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "Adjust", bytes_ref)
                .await?
            {
                return Ok(response);
            }

            if pool_name.is_common() {
                store::pools::ensure_common(&mut *tx, client, now).await?;
            }
            let lock_clause = for_share(self.db().backend());
            let pool = store::pools::lock(&mut tx, lock_clause, client, pool_name)
                .await?
                .ok_or_else(|| Error::not_found("pool", format!("{client}/{pool_name}")))?;
            let row = StockKey::new(client, sku, pool_name, grade);
            let mut locked = stock::Locked::default();
            let mut keys = vec![row.clone()];
            let forwards = pool.is_expired(now) && state == StockState::Available && delta > 0;
            if forwards {
                keys.push(row.in_pool(&PoolName::common()));
            }
            stock::lock(&mut tx, self.db(), &mut locked, keys.iter().cloned()).await?;
            let has = locked.totals(&row).get(state);
            if delta < 0 && has < -delta {
                return Err(Error::FailedPrecondition(format!(
                    "pool `{pool_name}` has {has} units of `{sku}` grade {} in {}; cannot remove \
                     {}",
                    grade.label(),
                    state.label(),
                    -delta
                )));
            }

            let side = Side {
                pool: pool_name.clone(),
                state,
            };
            let (from, to) = if delta > 0 {
                (None, Some(side))
            } else {
                (Some(side), None)
            };
            let mut transfers = vec![TransferSpec {
                client: client.clone(),
                sku: sku.clone(),
                grade,
                from,
                to,
                quantity: delta.abs(),
                reason: TransferReason::Adjust,
                order_line: None,
            }];
            forward_out_of_expired(&mut transfers, &[(pool.name.clone(), pool)].into(), now);
            let provenance = Provenance {
                actor: actor_ref.to_string(),
                reference: reference_ref.clone(),
                idempotency_key: key.to_string(),
            };
            stock::apply(
                &mut tx,
                self.db(),
                &mut locked,
                &transfers,
                &provenance,
                now,
            )
            .await?;

            let response = pb::AdjustResponse {
                level: Some(level(&row, &locked.totals(&row))),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "Adjust",
                bytes_ref,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;
        tracing::info!(
            client = %client,
            pool = %pool_name,
            sku = %sku,
            delta,
            reason = reason.as_str_name(),
            "stock adjusted"
        );
        Ok(response)
    }
}

/// Per line of a move: figures before and after, and any shortfall.
fn move_results(
    client: &ClientId,
    from_pool: &PoolName,
    to_pool: &PoolName,
    lines: &[StockLine],
    totals: impl Fn(&StockKey) -> Totals,
) -> Vec<pb::MoveStockLineResult> {
    lines
        .iter()
        .map(|line| {
            let source = totals(&StockKey::new(client, &line.sku, from_pool, line.grade)).available;
            let target = totals(&StockKey::new(client, &line.sku, to_pool, line.grade)).available;
            let shortfall = (line.quantity - source).max(0);
            let moved = if shortfall == 0 { line.quantity } else { 0 };
            pb::MoveStockLineResult {
                sku: line.sku.to_string(),
                grade: line.grade.to_proto(),
                quantity: line.quantity,
                source_available_before: source,
                source_available_after: source - moved,
                target_available_after: target + moved,
                shortfall,
            }
        })
        .collect()
}

/// A checked recycle or make-live request.
#[derive(Debug, Clone)]
struct StateChange {
    client: ClientId,
    pool: PoolName,
    sku: Sku,
    grade: Grade,
    quantity: i64,
    reason: String,
    key: IdempotencyKey,
    actor: Actor,
}

impl StateChange {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        client: &str,
        pool: &str,
        sku: &str,
        grade: i32,
        quantity: i64,
        reason: &str,
        key: &str,
        actor: &str,
    ) -> Result<Self, Error> {
        Ok(Self {
            client: ClientId::parse("client_id", client)?,
            pool: PoolName::parse("pool", pool)?,
            sku: Sku::parse("sku", sku)?,
            grade: Grade::parse("grade", grade)?,
            quantity: Quantity::new("quantity", quantity)?.get(),
            reason: free_text("reason", reason, MAX_TEXT)?,
            key: IdempotencyKey::parse("idempotency_key", key)?,
            actor: Actor::parse("actor", actor)?,
        })
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            actor: self.actor.to_string(),
            reference: self.reason.clone(),
            idempotency_key: self.key.to_string(),
        }
    }
}
