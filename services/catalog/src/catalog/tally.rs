//! What an upload's rows would do, and which of them repeat a key.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// What one valid row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Makes a new record.
    Created,
    /// Changes an existing record.
    Updated,
    /// Matches an existing record exactly.
    Unchanged,
}

/// Whether a row's key was seen on an earlier row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The first row with this key.
    First,
    /// The key was first on `first_row`. `first_report` is true the first time the key
    /// repeats: the first row must then be reported too, since every row of a repeated
    /// key is a problem.
    Again { first_row: i64, first_report: bool },
}

#[derive(Debug)]
struct Seen {
    first_row: i64,
    repeated: bool,
    counted_opt: Option<Outcome>,
}

/// The keys of an upload's rows and the counts of what its valid rows would do. A row is
/// counted once its outcome is known; a key that repeats later takes its first row back
/// out of the counts.
#[derive(Debug)]
pub struct Tally<K> {
    seen: HashMap<K, Seen>,
    /// Rows that would create a record.
    pub created: i64,
    /// Rows that would change a record.
    pub updated: i64,
    /// Rows that would change nothing.
    pub unchanged: i64,
}

impl<K: Hash + Eq> Tally<K> {
    /// An empty tally.
    pub fn new() -> Self {
        Self {
            seen: HashMap::new(),
            created: 0,
            updated: 0,
            unchanged: 0,
        }
    }

    /// Notes that `row` has `key`.
    pub fn note(&mut self, key: K, row: i64) -> Repeat {
        match self.seen.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(Seen {
                    first_row: row,
                    repeated: false,
                    counted_opt: None,
                });
                Repeat::First
            }
            Entry::Occupied(mut occupied) => {
                let seen = occupied.get_mut();
                let first_report = !seen.repeated;
                seen.repeated = true;
                let uncounted_opt = seen.counted_opt.take();
                let first_row = seen.first_row;
                if let Some(outcome) = uncounted_opt {
                    self.add(outcome, -1);
                }
                Repeat::Again {
                    first_row,
                    first_report,
                }
            }
        }
    }

    /// Counts the outcome of the (valid) row with `key`, unless the key repeats.
    pub fn count(&mut self, key: &K, outcome: Outcome) {
        let Some(seen) = self.seen.get_mut(key) else {
            debug_assert!(false, "a key is noted before it is counted");
            return;
        };
        if seen.repeated {
            return;
        }
        debug_assert!(seen.counted_opt.is_none(), "a row is counted once");
        seen.counted_opt = Some(outcome);
        self.add(outcome, 1);
    }

    fn add(&mut self, outcome: Outcome, delta: i64) {
        match outcome {
            Outcome::Created => self.created += delta,
            Outcome::Updated => self.updated += delta,
            Outcome::Unchanged => self.unchanged += delta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_a_repeated_key_is_flagged_and_none_is_counted() {
        let mut tally = Tally::new();

        assert_eq!(tally.note("A", 2), Repeat::First);
        tally.count(&"A", Outcome::Created);
        assert_eq!(tally.note("B", 3), Repeat::First);
        tally.count(&"B", Outcome::Created);
        assert_eq!(
            tally.note("A", 4),
            Repeat::Again {
                first_row: 2,
                first_report: true
            }
        );
        assert_eq!(
            tally.note("A", 9),
            Repeat::Again {
                first_row: 2,
                first_report: false
            }
        );
        tally.count(&"A", Outcome::Created);

        assert_eq!((tally.created, tally.updated, tally.unchanged), (1, 0, 0));
    }

    #[test]
    fn outcomes_are_counted_apart() {
        let mut tally = Tally::new();
        for (key, outcome) in [
            (1, Outcome::Updated),
            (2, Outcome::Unchanged),
            (3, Outcome::Updated),
        ] {
            tally.note(key, key + 1);
            tally.count(&key, outcome);
        }

        assert_eq!((tally.created, tally.updated, tally.unchanged), (0, 2, 1));
    }
}
