//! How long a failed job waits before its next attempt.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure (before jitter).
    pub base: Duration,
    /// Longest wait between two attempts.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed_attempt` (1 for the first attempt).
    ///
    /// The ceiling doubles per attempt up to the cap; the wait is drawn between half the
    /// ceiling and the ceiling ("equal jitter"), so jobs that failed together (an owner
    /// that was down) spread out when they retry, yet never retry at once.
    pub fn delay(&self, failed_attempt: u32, rng: &mut impl Rng) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1_u32 << exponent).min(self.cap);
        let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        let half_micros = ceiling_micros / 2;
        let jittered = rng.random_range(half_micros..=ceiling_micros);
        debug_assert!(jittered <= ceiling_micros);
        Duration::from_micros(jittered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let mut rng = rand::rng();

        for _ in 0..100 {
            let first = policy.delay(1, &mut rng);
            let third = policy.delay(3, &mut rng);
            let tenth = policy.delay(10, &mut rng);
            let huge = policy.delay(u32::MAX, &mut rng);

            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            assert!(tenth >= Duration::from_secs(30) && tenth <= Duration::from_secs(60));
            assert!(huge <= Duration::from_secs(60));
        }
    }
}
