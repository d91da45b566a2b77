//! Pools: a named share of a client's stock, optionally active only between an
//! activation and an expiry time.
//!
//! A channel is served by its assigned pool while that pool is active, and by COMMON
//! otherwise (no assignment, assigned pool not active yet, or expired). Once a pool has
//! expired, its AVAILABLE units go back to COMMON (the sweep), and any unit that would
//! enter its AVAILABLE bucket later (a release, a make-live, a found adjustment) goes on
//! to COMMON in the same transaction, so an expired pool never strands sellable stock.

use kosha_proto::kosha::inventory::v1 as pb;

use crate::domain::ids::{ClientId, PoolName};

/// A stored pool's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    /// Owner.
    pub client: ClientId,
    /// Name.
    pub name: PoolName,
    /// Free text.
    pub description: String,
    /// Activation time, microseconds.
    pub activate_at: Option<i64>,
    /// Expiry time, microseconds.
    pub expire_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change of settings.
    pub updated_at: i64,
}

impl PoolRecord {
    /// The pool's status at `now`.
    pub fn status(&self, now: i64) -> pb::PoolStatus {
        if self.is_expired(now) {
            pb::PoolStatus::Expired
        } else if self.activate_at.is_some_and(|at| now < at) {
            pb::PoolStatus::Pending
        } else {
            pb::PoolStatus::Active
        }
    }

    /// Whether the pool has expired at `now` (COMMON never does).
    pub fn is_expired(&self, now: i64) -> bool {
        !self.name.is_common() && self.expire_at.is_some_and(|at| at <= now)
    }

    /// Whether the pool serves its channels at `now`.
    pub fn is_serving(&self, now: i64) -> bool {
        self.status(now) == pb::PoolStatus::Active
    }
}

/// Why a channel is served by the pool it is served by, in words.
pub fn serving_reason(assigned_opt: Option<&PoolRecord>, now: i64) -> &'static str {
    match assigned_opt {
        None => "common (no pool assigned to the channel)",
        Some(pool) => match pool.status(now) {
            pb::PoolStatus::Pending => "common (the assigned pool is not active yet)",
            pb::PoolStatus::Expired => "common (the assigned pool has expired)",
            _ => "assigned",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(activate_at: Option<i64>, expire_at: Option<i64>) -> PoolRecord {
        PoolRecord {
            client: ClientId::parse("c", "acme").unwrap(),
            name: PoolName::parse("p", "SALE").unwrap(),
            description: String::new(),
            activate_at,
            expire_at,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_pool_serves_between_activation_and_expiry() {
        let sale = pool(Some(100), Some(200));

        assert_eq!(sale.status(99), pb::PoolStatus::Pending);
        assert_eq!(sale.status(100), pb::PoolStatus::Active);
        assert_eq!(sale.status(200), pb::PoolStatus::Expired);
        assert!(!sale.is_serving(250));
        assert_eq!(
            serving_reason(Some(&sale), 250),
            "common (the assigned pool has expired)"
        );
    }

    #[test]
    fn common_never_expires() {
        let mut common = pool(None, Some(1));
        common.name = PoolName::common();

        assert!(!common.is_expired(10));
    }
}
