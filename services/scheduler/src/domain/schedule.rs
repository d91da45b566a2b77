//! When the runs of a recurring job are due.

use super::cron::CronExpr;

/// Shortest interval between two runs of a recurring job.
pub const MIN_INTERVAL_MICROS: i64 = 1_000_000;

/// How a recurring job recurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A fixed time between the starts of two runs.
    Every { interval_micros: i64 },
    /// The instants a cron expression matches, in UTC.
    Cron(CronExpr),
}

impl Schedule {
    /// The schedule as stored: a non-empty cron expression wins over the interval.
    pub fn from_stored(interval_micros: i64, cron: &str) -> Result<Self, String> {
        if !cron.is_empty() {
            return CronExpr::parse(cron).map(Self::Cron);
        }
        if interval_micros < MIN_INTERVAL_MICROS {
            return Err(format!(
                "stored interval {interval_micros}us is below one second"
            ));
        }
        Ok(Self::Every { interval_micros })
    }

    /// The first occurrence strictly after `after_micros`.
    pub fn next_after(&self, after_micros: i64) -> Option<i64> {
        match self {
            Self::Every { interval_micros } => after_micros.checked_add(*interval_micros),
            Self::Cron(cron) => cron.next_after(after_micros),
        }
    }

    /// When the run after one due at `previous_micros` is due: the next occurrence, or now
    /// when that has already passed. Occurrences missed while the scheduler was down or a
    /// slow run was still going collapse into one run now instead of a burst of catch-ups.
    pub fn following(&self, previous_micros: i64, now_micros: i64) -> Option<i64> {
        self.next_after(previous_micros)
            .map(|next| next.max(now_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_occurrences_collapse_into_one_run_now() {
        let every_minute = Schedule::Every {
            interval_micros: 60_000_000,
        };

        assert_eq!(every_minute.following(0, 10), Some(60_000_000));
        assert_eq!(
            every_minute.following(0, 3_600_000_000),
            Some(3_600_000_000)
        );
    }

    #[test]
    fn a_cron_expression_wins_over_the_interval() {
        let schedule = Schedule::from_stored(5_000_000, "0 * * * *").unwrap();
        assert!(matches!(schedule, Schedule::Cron(_)));
        assert_eq!(schedule.next_after(0), Some(3_600_000_000));
        assert!(Schedule::from_stored(0, "").is_err());
    }
}
