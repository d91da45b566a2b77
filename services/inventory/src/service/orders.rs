//! Order stock: allocate, release, consume.
//!
//! Allocation runs in batches: [`Inventory::allocate_batch`] serves many requests in one
//! transaction, with one update per stock row however many requests draw on it, and one
//! multi-row insert per table. The [`crate::coalesce`] module gathers concurrent requests
//! into such batches; a batch of one is the plain path. Correctness never depends on the
//! batching: rows are locked in the database, and a batch that loses a race to another
//! replica is rolled back whole and its requests re-run one by one.

use std::collections::{BTreeSet, HashMap, HashSet};

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::db::Backend;
use kosha_runtime::time::now_micros;
use prost::Message as _;

use crate::domain::allocation::{
    self, AllocateCommand, AllocationMode, ExistingLine, LineRequest, PoolTarget,
};
use crate::domain::ids::{
    Actor, ChannelCode, ClientId, IdempotencyKey, LineId, OrderRef, PoolName, Sku, free_text,
};
use crate::domain::pool::PoolRecord;
use crate::domain::stock::{
    Grade, Provenance, Quantity, Side, StockKey, StockState, Totals, TransferReason, TransferSpec,
};
use crate::service::{Inventory, encoded, forward_out_of_expired, retrying};
use crate::store::allocations::{self, AllocationRow, LineKey, NewAllocation};
use crate::store::{self, Compared, Statement, batch, idempotency, stock};

/// Most lines in one allocation, release or consumption.
const MAX_LINES: usize = 1000;
/// Longest reason or reference.
const MAX_TEXT: usize = 500;

/// What became of one request of a batch.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Answered (or refused) within the batch.
    Done(Result<pb::AllocateResponse, Error>),
    /// It repeats an idempotency key or an order line of an earlier request of the same
    /// batch; run it on its own after the batch, so it sees the earlier one committed.
    RunAlone,
}

/// How a batch read what it decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// In its transaction, with the order lines and stock rows locked until it commits.
    Locked,
    /// Outside any transaction, without locks; the writes compare before they change.
    Unlocked,
}

/// A decided batch: the answers so far, the answers its writes make true, and the writes.
struct Decision {
    outcomes: Vec<Option<BatchOutcome>>,
    responses: Vec<(usize, pb::AllocateResponse)>,
    statements: Vec<Statement>,
    /// Compared batches: every stock row read, with the figures the write leaves.
    stock_after: Vec<(StockKey, Totals)>,
}

impl Decision {
    /// Every request's outcome, once the writes are committed.
    fn finish(mut self, commands: &[AllocateCommand]) -> Vec<BatchOutcome> {
        for (index, response) in self.responses {
            let command = &commands[index];
            tracing::debug!(
                client = %command.client,
                order_ref = %command.order_ref,
                pool = %response.pool,
                fully_allocated = response.fully_allocated,
                "allocated"
            );
            self.outcomes[index] = Some(BatchOutcome::Done(Ok(response)));
        }
        self.outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(BatchOutcome::RunAlone))
            .collect()
    }
}

/// Checks an allocation request.
pub fn parse_allocate(request: &pb::AllocateRequest) -> Result<AllocateCommand, Error> {
    let client = ClientId::parse("client_id", &request.client_id)?;
    let order_ref = OrderRef::parse("order_ref", &request.order_ref)?;
    let target = match (request.pool.is_empty(), request.channel.is_empty()) {
        (false, true) => PoolTarget::Pool(PoolName::parse("pool", &request.pool)?),
        (true, false) => PoolTarget::Channel(ChannelCode::parse("channel", &request.channel)?),
        (false, false) => {
            return Err(Error::invalid(
                "channel",
                "set either `pool` or `channel`, not both",
            ));
        }
        (true, true) => {
            return Err(Error::invalid(
                "pool",
                "set `pool`, or `channel` to use its serving pool",
            ));
        }
    };
    let grade = Grade::parse("grade", request.grade)?;
    let mode = AllocationMode::parse("mode", request.mode)?;
    if request.lines.is_empty() {
        return Err(Error::invalid("lines", "at least one line is required"));
    }
    if request.lines.len() > MAX_LINES {
        return Err(Error::invalid(
            "lines",
            format!("at most {MAX_LINES} lines per request"),
        ));
    }
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(request.lines.len());
    for (index, line) in request.lines.iter().enumerate() {
        let line_id = LineId::parse(&format!("lines[{index}].line_id"), &line.line_id)?;
        if !seen.insert(line_id.clone()) {
            return Err(Error::invalid(
                format!("lines[{index}].line_id"),
                format!("line `{line_id}` appears twice"),
            ));
        }
        lines.push(LineRequest {
            line_id,
            sku: Sku::parse(&format!("lines[{index}].sku"), &line.sku)?,
            quantity: Quantity::new(&format!("lines[{index}].quantity"), line.quantity)?,
        });
    }
    Ok(AllocateCommand {
        client,
        order_ref,
        target,
        grade,
        mode,
        lines,
        top_up: request.top_up,
        key: IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?,
        actor: Actor::parse("actor", &request.actor)?,
        request_bytes: encoded(request),
    })
}

impl Inventory {
    /// Allocates one request in its own transaction (no batching).
    pub async fn allocate(&self, command: &AllocateCommand) -> Result<pb::AllocateResponse, Error> {
        retrying(|| async move {
            let mut outcomes = self
                .allocate_batch(None, std::slice::from_ref(command))
                .await?;
            match outcomes.pop() {
                Some(BatchOutcome::Done(result)) => result,
                _ => Err(Error::Internal(anyhow::anyhow!(
                    "a batch of one deferred its request"
                ))),
            }
        })
        .await
    }

    /// Serves `commands` in one transaction, in order: earlier requests get stock first.
    /// The outer error means the transaction failed as a whole (nothing was written);
    /// otherwise each request has its own outcome.
    ///
    /// With `connection_opt`, the batch runs on that connection (a worker keeps one, which
    /// spares the pool's check of a connection before every batch); otherwise on one from
    /// the pool.
    pub async fn allocate_batch(
        &self,
        connection_opt: Option<&mut sqlx::AnyConnection>,
        commands: &[AllocateCommand],
    ) -> Result<Vec<BatchOutcome>, Error> {
        let now = now_micros();
        let mut tx = match connection_opt {
            Some(connection) => {
                let begin = match self.db().backend() {
                    Backend::Sqlite => "BEGIN IMMEDIATE",
                    Backend::Postgres => "BEGIN",
                };
                sqlx::Connection::begin_with(connection, begin).await?
            }
            None => self.db().begin().await?,
        };
        let mut context = batch::read(&mut tx, self.db(), &batch_keys(commands)).await?;
        let decision = self
            .decide(&mut tx, Reads::Locked, &mut context, commands, now)
            .await?
            .ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("a batch under lock asked for a lock"))
            })?;
        store::run_all(&mut tx, self.db().backend(), &decision.statements).await?;
        tx.commit().await?;
        Ok(decision.finish(commands))
    }

    /// PostgreSQL only: serves `commands` like [`Self::allocate_batch`] in two round trips
    /// instead of four, with no transaction kept open: it reads without locks, decides,
    /// and writes everything in one statement that changes each stock row only if the row
    /// still holds the figures read (see [`crate::store::run_compared`]). Two batches (or
    /// replicas) racing for a row cannot both win: the loser's statement undoes itself.
    ///
    /// `None` when nothing was written and the batch has to go the locked way: a row
    /// changed since it was read, or the batch needs what only a transaction does (an
    /// order line that already holds units, a client's first COMMON pool, a new stock
    /// row, a batch too large for one statement).
    pub async fn allocate_batch_compared(
        &self,
        connection: &mut sqlx::AnyConnection,
        commands: &[AllocateCommand],
    ) -> Result<Option<Vec<BatchOutcome>>, Error> {
        debug_assert_eq!(self.db().backend(), Backend::Postgres);
        let now = now_micros();
        // Neither stored responses nor earlier allocations of the lines are read; the write
        // is undone instead when either exists, and the batch goes the locked way, which
        // replays a repeated key and tops up or answers for a line that holds units. Both
        // are rare next to first allocations, and reading them costs every batch.
        // - Every request the write answers stores its response in the same write, so a
        //   repeated key collides with the stored one. A request refused outright stores
        //   nothing, so a batch with a refusal goes the locked way at once.
        // - A line the write allocates to is inserted, so a stored line collides; a line
        //   it leaves short gets a part that expects no stored allocation.
        let mut keys = batch_keys(commands);
        keys.idempotency.clear();
        keys.lines.clear();
        // First from kept reads when every part is kept; a kept read that proves stale
        // (the write's comparison fails, or it leaves the decision to the locked way) is
        // redone once from a fresh read.
        let cache = &self.read_cache;
        for from_cache in [true, false] {
            let (mut context, compared_keys) = if from_cache {
                match cache.context(&keys) {
                    Some(context) => {
                        let compared: Vec<StockKey> =
                            context.locked.rows().map(|(key, _)| key.clone()).collect();
                        (context, compared)
                    }
                    None => continue,
                }
            } else {
                let generation = cache.generation();
                let context = batch::read_unlocked(connection, &keys).await?;
                cache.remember(generation, &keys, &context);
                (context, Vec::new())
            };
            let Some(mut decision) = self
                .decide(connection, Reads::Unlocked, &mut context, commands, now)
                .await?
            else {
                cache.forget_stock(&compared_keys);
                if from_cache {
                    continue;
                }
                return Ok(None);
            };
            let refused = decision
                .outcomes
                .iter()
                .any(|outcome| matches!(outcome, Some(BatchOutcome::Done(Err(_)))));
            if refused {
                cache.forget_stock(&compared_keys);
                if from_cache {
                    continue;
                }
                return Ok(None);
            }
            let untouched: Vec<LineKey> = decision
                .responses
                .iter()
                .flat_map(|(index, response)| {
                    let command = &commands[*index];
                    response
                        .lines
                        .iter()
                        .filter(|result| result.allocated_now == 0)
                        .map(|result| {
                            (
                                command.client.clone(),
                                command.order_ref.clone(),
                                LineId::from_stored(result.line_id.clone()),
                            )
                        })
                })
                .collect();
            decision
                .statements
                .extend(allocations::absent_statements(&untouched));
            match store::run_compared(connection, &decision.statements).await? {
                Compared::Written => {
                    cache.remember_stock(std::mem::take(&mut decision.stock_after));
                    return Ok(Some(decision.finish(commands)));
                }
                Compared::Conflict => {
                    let read: Vec<StockKey> = decision
                        .stock_after
                        .iter()
                        .map(|(key, _)| key.clone())
                        .collect();
                    cache.forget_stock(&read);
                    if !from_cache {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Decides a batch from what was read (`context`) and returns its writes and answers;
    /// `None` when, with `Reads::Unlocked`, the batch must go the locked way instead.
    async fn decide(
        &self,
        connection: &mut sqlx::AnyConnection,
        reads: Reads,
        context: &mut batch::Context,
        commands: &[AllocateCommand],
        now: i64,
    ) -> Result<Option<Decision>, Error> {
        let mut outcomes: Vec<Option<BatchOutcome>> = (0..commands.len()).map(|_| None).collect();

        // 1. Repeated keys answer from their first response (a stored response never
        //    changes, so this holds however it was read), and a key or an order line seen
        //    earlier in this batch waits for a run of its own.
        let records = &context.records;
        let mut keys_seen = HashSet::new();
        let mut lines_seen: HashSet<LineKey> = HashSet::new();
        for (index, command) in commands.iter().enumerate() {
            let scoped_key = (command.client.to_string(), command.key.to_string());
            if let Some(record) = records.get(&scoped_key) {
                let replayed = record
                    .replay(command.key.as_str(), "Allocate", &command.request_bytes)
                    .and_then(|bytes| {
                        pb::AllocateResponse::decode(bytes.as_slice()).map_err(|error| {
                            Error::Internal(anyhow::anyhow!("stored response: {error}"))
                        })
                    });
                outcomes[index] = Some(BatchOutcome::Done(replayed));
                continue;
            }
            let line_keys: Vec<LineKey> = line_keys(command);
            let repeats_line = line_keys.iter().any(|key| lines_seen.contains(key));
            if !keys_seen.insert(scoped_key) || repeats_line {
                outcomes[index] = Some(BatchOutcome::RunAlone);
                continue;
            }
            lines_seen.extend(line_keys);
        }

        // 2. The pool of each remaining request.
        let pending: Vec<usize> = (0..commands.len())
            .filter(|i| outcomes[*i].is_none())
            .collect();
        let Some(mut pools) = self
            .resolve_pools(&mut *connection, reads, context, commands, &pending, now)
            .await?
        else {
            return Ok(None);
        };
        let mut chosen: HashMap<usize, PoolName> = HashMap::new();
        for index in &pending {
            match pools.remove(index) {
                Some(Ok(pool)) => {
                    chosen.insert(*index, pool);
                }
                Some(Err(error)) => outcomes[*index] = Some(BatchOutcome::Done(Err(error))),
                None => outcomes[*index] = Some(BatchOutcome::RunAlone),
            }
        }

        // 3. Lock the lines' earlier allocations, then the stock rows, and decide.
        let active: Vec<usize> = pending
            .into_iter()
            .filter(|i| chosen.contains_key(i))
            .collect();
        let existing = &context.lines;
        let mut locked = std::mem::take(&mut context.locked);
        let stock_keys = active.iter().flat_map(|index| {
            let command = &commands[*index];
            let pool = &chosen[index];
            command
                .lines
                .iter()
                .map(move |line| StockKey::new(&command.client, &line.sku, pool, command.grade))
        });
        let stock_keys: Vec<StockKey> = stock_keys.collect();
        match reads {
            Reads::Locked => {
                stock::lock(&mut *connection, self.db(), &mut locked, stock_keys).await?
            }
            // Every row a batch allocates from was read with it, but for a channel whose
            // pool stopped serving since: that batch goes the locked way.
            Reads::Unlocked => {
                if stock_keys.iter().any(|key| !locked.contains(key)) {
                    return Ok(None);
                }
            }
        }
        let mut available: HashMap<StockKey, i64> = HashMap::new();
        let mut plans = Vec::with_capacity(active.len());
        for index in &active {
            let command = &commands[*index];
            let pool = &chosen[index];
            let earlier: HashMap<LineId, ExistingLine> = command
                .lines
                .iter()
                .filter_map(|line| {
                    let key = (
                        command.client.clone(),
                        command.order_ref.clone(),
                        line.line_id.clone(),
                    );
                    existing
                        .get(&key)
                        .map(|row| (line.line_id.clone(), existing_line(row)))
                })
                .collect();
            for line in &command.lines {
                let key = StockKey::new(&command.client, &line.sku, pool, command.grade);
                let units = locked.totals(&key).available;
                available.entry(key).or_insert(units);
            }
            match allocation::plan(command, pool, &earlier, &mut available) {
                Ok(lines) => plans.push((*index, lines)),
                Err(error) => outcomes[*index] = Some(BatchOutcome::Done(Err(error))),
            }
        }

        // 4. Write: stock rows with the ledger, allocation rows.
        let provenances: Vec<Provenance> = plans
            .iter()
            .map(|(index, _)| Provenance {
                actor: commands[*index].actor.to_string(),
                reference: String::new(),
                idempotency_key: commands[*index].key.to_string(),
            })
            .collect();
        let mut transfers = Vec::new();
        let mut transfer_provenances = Vec::new();
        let mut new_rows = Vec::new();
        let mut updated_rows = Vec::new();
        for ((index, lines), provenance) in plans.iter().zip(&provenances) {
            let command = &commands[*index];
            let pool = &chosen[index];
            for line in lines.iter().filter(|line| line.allocate_now > 0) {
                transfers.push(TransferSpec {
                    client: command.client.clone(),
                    sku: line.sku.clone(),
                    grade: command.grade,
                    from: Some(Side {
                        pool: pool.clone(),
                        state: StockState::Available,
                    }),
                    to: Some(Side {
                        pool: pool.clone(),
                        state: StockState::Allocated,
                    }),
                    quantity: line.allocate_now,
                    reason: TransferReason::Allocate,
                    order_line: Some((command.order_ref.clone(), line.line_id.clone())),
                });
                transfer_provenances.push(provenance);
                let line_key = (
                    command.client.clone(),
                    command.order_ref.clone(),
                    line.line_id.clone(),
                );
                match existing.get(&line_key) {
                    Some(row) => {
                        let mut row = row.clone();
                        row.quantity += line.allocate_now;
                        row.pool = pool.clone();
                        row.grade = command.grade;
                        updated_rows.push(row);
                    }
                    None => new_rows.push(NewAllocation {
                        client: &command.client,
                        order_ref: &command.order_ref,
                        line_id: &line.line_id,
                        sku: &line.sku,
                        pool,
                        grade: command.grade,
                        quantity: line.allocate_now,
                    }),
                }
            }
        }
        let mut statements = Vec::new();
        let mut stock_after = Vec::new();
        match reads {
            Reads::Locked if !transfers.is_empty() => {
                let (_, stock_writes) = stock::prepare(
                    &mut *connection,
                    self.db(),
                    &mut locked,
                    &transfers,
                    &transfer_provenances,
                    now,
                )
                .await?;
                statements.extend(stock_writes);
            }
            Reads::Locked => {}
            Reads::Unlocked => {
                match stock::prepare_compared(
                    self.db().backend(),
                    &mut locked,
                    &transfers,
                    &transfer_provenances,
                    now,
                )? {
                    Some((_, stock_writes)) => statements.extend(stock_writes),
                    None => return Ok(None),
                }
                stock_after = locked
                    .rows()
                    .map(|(key, totals)| (key.clone(), *totals))
                    .collect();
            }
        }
        statements.extend(allocations::insert_statements(&new_rows, now));
        for row in &updated_rows {
            statements.push(allocations::update_statement(row, now));
        }

        // 5. Responses, remembered under their keys.
        let mut responses = Vec::with_capacity(plans.len());
        for (index, lines) in &plans {
            let command = &commands[*index];
            let pool = &chosen[index];
            let results: Vec<pb::AllocateLineResult> = lines
                .iter()
                .map(|line| {
                    let key = StockKey::new(&command.client, &line.sku, pool, command.grade);
                    allocation::line_result(line, locked.totals(&key).available)
                })
                .collect();
            let fully_allocated = results.iter().all(|line| line.shortfall == 0);
            responses.push((
                *index,
                pb::AllocateResponse {
                    pool: pool.to_string(),
                    lines: results,
                    fully_allocated,
                },
            ));
        }
        let records: Vec<idempotency::NewRecord<'_>> = responses
            .iter()
            .map(|(index, response)| idempotency::NewRecord {
                client: commands[*index].client.as_str(),
                key: commands[*index].key.as_str(),
                method: "Allocate",
                request: &commands[*index].request_bytes,
                response: response.encode_to_vec(),
            })
            .collect();
        statements.extend(idempotency::insert_statements(&records, now));
        Ok(Some(Decision {
            outcomes,
            responses,
            statements,
            stock_after,
        }))
    }

    /// The pool each pending request allocates from, or why it cannot.
    /// `None` when, with `Reads::Unlocked`, a client has no COMMON pool yet.
    async fn resolve_pools(
        &self,
        connection: &mut sqlx::AnyConnection,
        reads: Reads,
        context: &mut batch::Context,
        commands: &[AllocateCommand],
        pending: &[usize],
        now: i64,
    ) -> Result<Option<HashMap<usize, Result<PoolName, Error>>>, Error> {
        // COMMON is created on a client's first use, in a transaction.
        let clients: BTreeSet<&ClientId> = pending
            .iter()
            .map(|index| &commands[*index].client)
            .collect();
        for client in clients {
            let key = (client.clone(), PoolName::common());
            if context.pools.contains_key(&key) {
                continue;
            }
            if reads == Reads::Unlocked {
                return Ok(None);
            }
            store::pools::ensure_common(&mut *connection, client, now).await?;
            if let Some(record) =
                store::pools::get(&mut *connection, client, &PoolName::common()).await?
            {
                context.pools.insert(key, record);
            }
        }

        let mut resolved = HashMap::new();
        for index in pending {
            let command = &commands[*index];
            let outcome = match &command.target {
                PoolTarget::Pool(pool) => {
                    match context.pools.get(&(command.client.clone(), pool.clone())) {
                        None => Err(Error::NotFound(format!(
                            "pool `{pool}` of client `{}` not found (pool)",
                            command.client
                        ))),
                        Some(record) if record.is_expired(now) => {
                            Err(Error::FailedPrecondition(format!(
                                "pool `{pool}` has expired; its channels are served by COMMON now"
                            )))
                        }
                        Some(_) => Ok(pool.clone()),
                    }
                }
                PoolTarget::Channel(channel) => {
                    let assigned: Option<&PoolRecord> = context
                        .assignments
                        .get(&(command.client.clone(), channel.clone()))
                        .and_then(|pool| {
                            context.pools.get(&(command.client.clone(), pool.clone()))
                        });
                    match assigned {
                        Some(record) if record.is_serving(now) => Ok(record.name.clone()),
                        _ => Ok(PoolName::common()),
                    }
                }
            };
            resolved.insert(*index, outcome);
        }
        Ok(Some(resolved))
    }

    /// Gives back what an order (or some of its lines) holds.
    pub async fn release(&self, request: pb::ReleaseRequest) -> Result<pb::ReleaseResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let order_ref = OrderRef::parse("order_ref", &request.order_ref)?;
        let mut line_ids = Vec::with_capacity(request.line_ids.len());
        for (index, text) in request.line_ids.iter().enumerate() {
            let line_id = LineId::parse(&format!("line_ids[{index}]"), text)?;
            if line_ids.contains(&line_id) {
                return Err(Error::invalid(
                    format!("line_ids[{index}]"),
                    "line listed twice",
                ));
            }
            line_ids.push(line_id);
        }
        let quantity_opt = match request.quantity {
            0 => None,
            units => {
                if line_ids.len() != 1 {
                    return Err(Error::invalid(
                        "quantity",
                        "a quantity can be released only from exactly one line",
                    ));
                }
                Some(Quantity::new("quantity", units)?.get())
            }
        };
        let reason = free_text("reason", &request.reason, MAX_TEXT)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client_ref, order_ref_ref, lines_ref, key_ref) =
            (&client, &order_ref, &line_ids, &key);
        let (bytes_ref, actor_ref, reason_ref) = (&request_bytes, &actor, &reason);
        let response = retrying(|| async move {
            let (client, order_ref, line_ids, key) =
                (client_ref, order_ref_ref, lines_ref, key_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "Release", bytes_ref)
                .await?
            {
                return Ok(response);
            }

            let mut rows = allocations::lock_order(&mut tx, self.db(), client, order_ref).await?;
            if !line_ids.is_empty() {
                rows.retain(|row| line_ids.contains(&row.line_id));
            }
            if let Some(units) = quantity_opt {
                let held = rows.first().map(|row| row.quantity).unwrap_or_default();
                if held < units {
                    return Err(Error::FailedPrecondition(format!(
                        "line `{}` of order `{order_ref}` holds {held} units; cannot release \
                         {units}",
                        line_ids[0]
                    )));
                }
            }
            rows.retain(|row| row.quantity > 0);

            // Where the units go back: the pool each line was allocated from.
            let pool_keys: Vec<(ClientId, PoolName)> = rows
                .iter()
                .map(|row| (client.clone(), row.pool.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let pools: HashMap<PoolName, PoolRecord> = store::pools::get_many(&mut tx, &pool_keys)
                .await?
                .into_iter()
                .map(|((_, name), record)| (name, record))
                .collect();
            let mut transfers = Vec::new();
            let mut released = Vec::new();
            for row in &mut rows {
                let units = quantity_opt.unwrap_or(row.quantity);
                transfers.push(TransferSpec {
                    client: client.clone(),
                    sku: row.sku.clone(),
                    grade: row.grade,
                    from: Some(Side {
                        pool: row.pool.clone(),
                        state: StockState::Allocated,
                    }),
                    to: Some(Side {
                        pool: row.pool.clone(),
                        state: StockState::Available,
                    }),
                    quantity: units,
                    reason: TransferReason::Release,
                    order_line: Some((order_ref.clone(), row.line_id.clone())),
                });
                row.quantity -= units;
                row.released += units;
                // Units released into a pool that has expired go on to COMMON (below); the
                // answer names where they are.
                let back_to = if pools
                    .get(&row.pool)
                    .is_some_and(|pool| pool.is_expired(now))
                {
                    PoolName::common()
                } else {
                    row.pool.clone()
                };
                released.push(pb::ReleasedLine {
                    line_id: row.line_id.to_string(),
                    sku: row.sku.to_string(),
                    pool: back_to.to_string(),
                    grade: row.grade.to_proto(),
                    quantity: units,
                    held_after: row.quantity,
                });
            }
            forward_out_of_expired(&mut transfers, &pools, now);

            let mut locked = stock::Locked::default();
            let keys: Vec<StockKey> = transfers
                .iter()
                .flat_map(|t| [t.from_key(), t.to_key()])
                .flatten()
                .collect();
            stock::lock(&mut tx, self.db(), &mut locked, keys).await?;
            if !transfers.is_empty() {
                let provenance = Provenance {
                    actor: actor_ref.to_string(),
                    reference: reason_ref.clone(),
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
            }
            for row in &rows {
                allocations::update(&mut tx, row, now).await?;
            }

            let response = pb::ReleaseResponse { released };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "Release",
                bytes_ref,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;

        let units: i64 = response.released.iter().map(|line| line.quantity).sum();
        tracing::info!(
            client = %client,
            order_ref = %order_ref,
            lines = response.released.len(),
            units,
            "allocation released"
        );
        Ok(response)
    }

    /// Invoicing: allocated units leave the system.
    pub async fn consume(&self, request: pb::ConsumeRequest) -> Result<pb::ConsumeResponse, Error> {
        let client = ClientId::parse("client_id", &request.client_id)?;
        let order_ref = OrderRef::parse("order_ref", &request.order_ref)?;
        if request.lines.is_empty() {
            return Err(Error::invalid("lines", "at least one line is required"));
        }
        if request.lines.len() > MAX_LINES {
            return Err(Error::invalid(
                "lines",
                format!("at most {MAX_LINES} lines per request"),
            ));
        }
        let mut lines: Vec<(LineId, i64)> = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let line_id = LineId::parse(&format!("lines[{index}].line_id"), &line.line_id)?;
            if lines.iter().any(|(seen, _)| *seen == line_id) {
                return Err(Error::invalid(
                    format!("lines[{index}].line_id"),
                    "line listed twice",
                ));
            }
            let units = Quantity::new(&format!("lines[{index}].quantity"), line.quantity)?.get();
            lines.push((line_id, units));
        }
        let reference = free_text("reference", &request.reference, MAX_TEXT)?;
        let key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
        let actor = Actor::parse("actor", &request.actor)?;
        let request_bytes = encoded(&request);

        let (client_ref, order_ref_ref, lines_ref, key_ref) = (&client, &order_ref, &lines, &key);
        let (bytes_ref, actor_ref, reference_ref) = (&request_bytes, &actor, &reference);
        let response = retrying(|| async move {
            let (client, order_ref, lines, key) = (client_ref, order_ref_ref, lines_ref, key_ref);
            let now = now_micros();
            let mut tx = self.db().begin().await?;
            if let Some(response) = self
                .replay(&mut tx, client.as_str(), key, "Consume", bytes_ref)
                .await?
            {
                return Ok(response);
            }

            let mut rows = allocations::lock_order(&mut tx, self.db(), client, order_ref).await?;
            let mut transfers = Vec::with_capacity(lines.len());
            for (index, (line_id, units)) in lines.iter().enumerate() {
                let Some(row) = rows.iter_mut().find(|row| row.line_id == *line_id) else {
                    return Err(Error::FailedPrecondition(format!(
                        "line `{line_id}` of order `{order_ref}` holds no stock (lines[{index}])"
                    )));
                };
                if row.quantity < *units {
                    return Err(Error::FailedPrecondition(format!(
                        "line `{line_id}` of order `{order_ref}` holds {} units; cannot consume \
                         {units} (lines[{index}].quantity)",
                        row.quantity
                    )));
                }
                transfers.push(TransferSpec {
                    client: client.clone(),
                    sku: row.sku.clone(),
                    grade: row.grade,
                    from: Some(Side {
                        pool: row.pool.clone(),
                        state: StockState::Allocated,
                    }),
                    to: None,
                    quantity: *units,
                    reason: TransferReason::Consume,
                    order_line: Some((order_ref.clone(), line_id.clone())),
                });
                row.quantity -= units;
                row.consumed += units;
            }

            let mut locked = stock::Locked::default();
            let keys: Vec<StockKey> = transfers
                .iter()
                .filter_map(TransferSpec::from_key)
                .collect();
            stock::lock(&mut tx, self.db(), &mut locked, keys).await?;
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
            let consumed_lines: HashSet<&LineId> =
                lines.iter().map(|(line_id, _)| line_id).collect();
            for row in rows
                .iter_mut()
                .filter(|row| consumed_lines.contains(&row.line_id))
            {
                // The answer shows each allocation as stored, update time included.
                row.updated_at = now;
                allocations::update(&mut tx, row, now).await?;
            }

            let response = pb::ConsumeResponse {
                allocations: rows.iter().map(AllocationRow::to_proto).collect(),
            };
            self.remember(
                &mut tx,
                client.as_str(),
                key,
                "Consume",
                bytes_ref,
                &response,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(response)
        })
        .await?;

        let units: i64 = lines.iter().map(|(_, units)| units).sum();
        tracing::info!(
            client = %client,
            order_ref = %order_ref,
            lines = lines.len(),
            units,
            "allocation consumed"
        );
        Ok(response)
    }
}

/// The keys a batch reads: its idempotency keys, the pools named (and COMMON), the
/// channels named, and its order lines.
fn batch_keys(commands: &[AllocateCommand]) -> batch::Keys {
    let mut idempotency = BTreeSet::new();
    let mut pools = BTreeSet::new();
    let mut channels = BTreeSet::new();
    let mut lines = Vec::new();
    let mut stock = BTreeSet::new();
    let mut stock_by_channel = BTreeSet::new();
    for command in commands {
        idempotency.insert((command.client.to_string(), command.key.to_string()));
        pools.insert((command.client.clone(), PoolName::common()));
        match &command.target {
            PoolTarget::Pool(pool) => {
                pools.insert((command.client.clone(), pool.clone()));
                for line in &command.lines {
                    stock.insert(StockKey::new(
                        &command.client,
                        &line.sku,
                        pool,
                        command.grade,
                    ));
                }
            }
            PoolTarget::Channel(channel) => {
                channels.insert((command.client.clone(), channel.clone()));
                for line in &command.lines {
                    let key = (
                        command.client.clone(),
                        line.sku.clone(),
                        command.grade,
                        channel.clone(),
                    );
                    stock_by_channel.insert(key);
                }
            }
        }
        lines.extend(line_keys(command));
    }
    batch::Keys {
        idempotency: idempotency.into_iter().collect(),
        pools: pools.into_iter().collect(),
        channels: channels.into_iter().collect(),
        lines,
        stock: stock.into_iter().collect(),
        stock_by_channel: stock_by_channel.into_iter().collect(),
    }
}

/// The line keys of a request.
fn line_keys(command: &AllocateCommand) -> Vec<LineKey> {
    command
        .lines
        .iter()
        .map(|line| {
            (
                command.client.clone(),
                command.order_ref.clone(),
                line.line_id.clone(),
            )
        })
        .collect()
}

fn existing_line(row: &AllocationRow) -> ExistingLine {
    ExistingLine {
        allocation_id: row.id,
        sku: row.sku.clone(),
        pool: row.pool.clone(),
        grade: row.grade,
        held: row.quantity,
    }
}
