//! The scheduler's notion of "now", injectable so tests control time.
//!
//! Every instant is microseconds since the Unix epoch, UTC. Nothing here (nor anywhere in
//! the scheduler) reads the process time zone, so a job due at 12:30Z runs at 12:30Z on a
//! host set to Asia/Kolkata or America/New_York, and a daylight-saving change moves
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in microseconds since the epoch, UTC.
    fn now_micros(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        kosha_runtime::time::now_micros()
    }
}

/// A clock that moves only when told to; clones share the same instant.
#[derive(Debug, Clone)]
pub struct FakeClock {
    micros: Arc<AtomicI64>,
}

impl FakeClock {
    /// A clock stopped at `micros`.
    pub fn at(micros: i64) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(micros)),
        }
    }

    /// Moves the clock to `micros` (backwards too, to test clock skew).
    pub fn set(&self, micros: i64) {
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: std::time::Duration) {
        let step = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(step, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_clock_moves_only_when_told_and_clones_share_it() {
        let clock = FakeClock::at(1_000);
        let shared = clock.clone();

        clock.advance(std::time::Duration::from_millis(2));
        shared.set(shared.now_micros() + 1);

        assert_eq!(clock.now_micros(), 3_001);
    }
}
