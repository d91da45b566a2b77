//! What compare-and-set allocation batches read, kept between batches (PostgreSQL).
//!
//! A compared batch reads pools, channel assignments and stock rows without locks, then
//! writes with every stock row compared to the figures it read. Figures kept from an
//! earlier batch are as good as fresh ones there: a row that changed since fails the
//! comparison, and the batch is redone from a fresh read. So a batch whose every row,
//! pool and assignment is kept here skips its read, and costs one round trip instead of
//! two. After a batch writes, its rows are kept with the figures it wrote.
//!
//! Pools and channel assignments are not compared in the write. They are kept for
//! [`SETTINGS_KEPT`] at most, and forgotten as soon as this process changes one; a change
//! made through another replica reaches this one's compared batches within that time.
//! Stock rows are kept for [`STOCK_KEPT`]: the comparison, not the age, keeps them honest.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::{ChannelCode, ClientId, PoolName};
use crate::domain::pool::PoolRecord;
use crate::domain::stock::{StockKey, Totals};
use crate::store::batch::{Context, Keys};

/// Longest a pool or a channel assignment is used without reading it again.
pub const SETTINGS_KEPT: Duration = Duration::from_secs(1);

/// Longest a stock row's figures are used without reading them again.
pub const STOCK_KEPT: Duration = Duration::from_secs(5);

/// Stock rows kept at most; beyond it the oldest half is dropped.
const MOST_ROWS: usize = 100_000;

/// The kept reads.
#[derive(Debug, Default)]
pub struct ReadCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped whenever pools or assignments are forgotten, so a read that began before
    /// is not kept after.
    generation: u64,
    /// A pool, or that it does not exist, as of when it was read.
    pools: HashMap<(ClientId, PoolName), (Instant, Option<PoolRecord>)>,
    /// A channel's assigned pool, or that it has none.
    assignments: HashMap<(ClientId, ChannelCode), (Instant, Option<PoolName>)>,
    stock: BTreeMap<StockKey, (Instant, Totals)>,
}

impl ReadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Taken before a read; [`ReadCache::remember`] keeps the read only if no pool or
    /// assignment was forgotten in between.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// What a compared batch with `keys` would read, when all of it is kept and fresh.
    pub fn context(&self, keys: &Keys) -> Option<Context> {
        let now = Instant::now();
        let state = self.lock();
        let settings_fresh = |at: &Instant| now.duration_since(*at) < SETTINGS_KEPT;
        let mut context = Context::default();
        for key in &keys.pools {
            let (at, pool_opt) = state.pools.get(key)?;
            if !settings_fresh(at) {
                return None;
            }
            if let Some(pool) = pool_opt {
                context.pools.insert(key.clone(), pool.clone());
            }
        }
        for key in &keys.channels {
            let (at, assigned_opt) = state.assignments.get(key)?;
            if !settings_fresh(at) {
                return None;
            }
            if let Some(pool) = assigned_opt {
                // The read brings the assigned pool along; so must the kept one.
                let pool_key = (key.0.clone(), pool.clone());
                let (at, record_opt) = state.pools.get(&pool_key)?;
                if !settings_fresh(at) {
                    return None;
                }
                if let Some(record) = record_opt {
                    context.pools.insert(pool_key, record.clone());
                }
                context.assignments.insert(key.clone(), pool.clone());
            }
        }
        let mut stock_key = |key: StockKey| -> Option<()> {
            let (at, totals) = state.stock.get(&key)?;
            if now.duration_since(*at) >= STOCK_KEPT {
                return None;
            }
            context.locked.insert(key, *totals);
            Some(())
        };
        for key in &keys.stock {
            stock_key(key.clone())?;
        }
        for (client, sku, grade, channel) in &keys.stock_by_channel {
            let (_, assigned_opt) = state.assignments.get(&(client.clone(), channel.clone()))?;
            let pool = assigned_opt.clone().unwrap_or_else(PoolName::common);
            stock_key(StockKey::new(client, sku, &pool, *grade))?;
        }
        Some(context)
    }

    /// Keeps what a compared batch with `keys` read, unless pools or assignments were
    /// forgotten since `generation`.
    pub fn remember(&self, generation: u64, keys: &Keys, context: &Context) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        for key in &keys.pools {
            state
                .pools
                .insert(key.clone(), (now, context.pools.get(key).cloned()));
        }
        for key in &keys.channels {
            let assigned_opt = context.assignments.get(key).cloned();
            if let Some(pool) = &assigned_opt {
                let pool_key = (key.0.clone(), pool.clone());
                let record_opt = context.pools.get(&pool_key).cloned();
                state.pools.insert(pool_key, (now, record_opt));
            }
            state.assignments.insert(key.clone(), (now, assigned_opt));
        }
        drop(state);
        self.remember_stock(
            context
                .locked
                .rows()
                .map(|(key, totals)| (key.clone(), *totals)),
        );
    }

    /// Keeps stock rows with figures just read or written.
    pub fn remember_stock(&self, rows: impl IntoIterator<Item = (StockKey, Totals)>) {
        let now = Instant::now();
        let mut state = self.lock();
        for (key, totals) in rows {
            state.stock.insert(key, (now, totals));
        }
        if state.stock.len() > MOST_ROWS {
            let mut ages: Vec<Instant> = state.stock.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            state.stock.retain(|_, (at, _)| *at > cutoff);
        }
    }

    /// Forgets stock rows whose kept figures turned out stale.
    pub fn forget_stock<'a>(&self, keys: impl IntoIterator<Item = &'a StockKey>) {
        let mut state = self.lock();
        for key in keys {
            state.stock.remove(key);
        }
    }

    /// Forgets every pool and assignment: this process just changed one.
    pub fn forget_settings(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.pools.clear();
        state.assignments.clear();
    }
}
