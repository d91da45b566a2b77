//! Stock: grades, states, buckets, quantities and ledger transfers.
//!
//! A bucket is the stock of one (client, SKU, pool, grade) in one state. The three states
//! of one (client, SKU, pool, grade) are kept side by side in one stored row, so moving
//! units between states of the same row (allocate, release, recycle, make live) is one row
//! update; a bucket is therefore a (row, state) pair.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::types::QcGrade;
use kosha_runtime::{Error, validate};

use crate::domain::ids::{ClientId, LineId, OrderRef, PoolName, Sku};

/// A QC grade of stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    /// Passed QC.
    Pass,
    /// Failed QC.
    Fail,
}

impl Grade {
    /// Both grades.
    pub const ALL: [Grade; 2] = [Grade::Pass, Grade::Fail];

    /// Parses a required grade.
    pub fn parse(field: &str, value: i32) -> Result<Self, Error> {
        match QcGrade::try_from(value) {
            Ok(QcGrade::Pass) => Ok(Self::Pass),
            Ok(QcGrade::Fail) => Ok(Self::Fail),
            Ok(QcGrade::Unspecified) => {
                Err(Error::invalid(field, "QC grade is required (PASS or FAIL)"))
            }
            Err(_) => Err(Error::invalid(field, format!("unknown QC grade {value}"))),
        }
    }

    /// Parses an optional grade filter: unspecified means both.
    pub fn parse_filter(field: &str, value: i32) -> Result<Option<Self>, Error> {
        if value == QcGrade::Unspecified as i32 {
            return Ok(None);
        }
        Self::parse(field, value).map(Some)
    }

    /// The stored number (the contract's enum number).
    pub fn code(self) -> i64 {
        match self {
            Self::Pass => QcGrade::Pass as i64,
            Self::Fail => QcGrade::Fail as i64,
        }
    }

    /// A grade read back from the database.
    pub fn from_code(code: i64) -> Result<Self, Error> {
        match code {
            1 => Ok(Self::Pass),
            2 => Ok(Self::Fail),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored grade {other} is unknown"
            ))),
        }
    }

    /// The other grade.
    pub fn other(self) -> Self {
        match self {
            Self::Pass => Self::Fail,
            Self::Fail => Self::Pass,
        }
    }

    /// As the contract's enum.
    pub fn to_proto(self) -> i32 {
        match self {
            Self::Pass => QcGrade::Pass as i32,
            Self::Fail => QcGrade::Fail as i32,
        }
    }

    /// For messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
        }
    }
}

/// The state of units in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StockState {
    /// Free to allocate.
    Available,
    /// Promised to an order line.
    Allocated,
    /// Set aside.
    Recycle,
}

impl StockState {
    /// The stored number (the contract's enum number).
    pub fn code(self) -> i64 {
        match self {
            Self::Available => pb::StockState::Available as i64,
            Self::Allocated => pb::StockState::Allocated as i64,
            Self::Recycle => pb::StockState::Recycle as i64,
        }
    }

    /// A state read back from the database.
    pub fn from_code(code: i64) -> Result<Self, Error> {
        match code {
            1 => Ok(Self::Available),
            2 => Ok(Self::Allocated),
            3 => Ok(Self::Recycle),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored state {other} is unknown"
            ))),
        }
    }

    /// As the contract's enum.
    pub fn to_proto(self) -> i32 {
        self.code() as i32
    }

    /// For messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Allocated => "ALLOCATED",
            Self::Recycle => "RECYCLE",
        }
    }
}

/// A positive quantity of units, at most [`validate::MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// Checks the quantity in `field`.
    pub fn new(field: &str, value: i64) -> Result<Self, Error> {
        validate::quantity(field, value)?;
        Ok(Self(value))
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// The stored row of stock a bucket belongs to: one (client, SKU, pool, grade).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StockKey {
    /// Owner.
    pub client: ClientId,
    /// SKU.
    pub sku: Sku,
    /// Pool.
    pub pool: PoolName,
    /// QC grade.
    pub grade: Grade,
}

impl StockKey {
    /// A key.
    pub fn new(client: &ClientId, sku: &Sku, pool: &PoolName, grade: Grade) -> Self {
        Self {
            client: client.clone(),
            sku: sku.clone(),
            pool: pool.clone(),
            grade,
        }
    }

    /// The same SKU and grade in another pool.
    pub fn in_pool(&self, pool: &PoolName) -> Self {
        Self {
            pool: pool.clone(),
            ..self.clone()
        }
    }
}

/// Units of one stock row by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// AVAILABLE.
    pub available: i64,
    /// ALLOCATED.
    pub allocated: i64,
    /// RECYCLE.
    pub recycle: i64,
}

impl Totals {
    /// Units in `state`.
    pub fn get(&self, state: StockState) -> i64 {
        match state {
            StockState::Available => self.available,
            StockState::Allocated => self.allocated,
            StockState::Recycle => self.recycle,
        }
    }

    /// Mutable units in `state`.
    pub fn get_mut(&mut self, state: StockState) -> &mut i64 {
        match state {
            StockState::Available => &mut self.available,
            StockState::Allocated => &mut self.allocated,
            StockState::Recycle => &mut self.recycle,
        }
    }

    /// Whether every state is zero.
    pub fn is_empty(&self) -> bool {
        self.available == 0 && self.allocated == 0 && self.recycle == 0
    }

    /// Whether any state is negative.
    pub fn has_negative(&self) -> bool {
        self.available < 0 || self.allocated < 0 || self.recycle < 0
    }

    /// The sum of the states.
    pub fn held(&self) -> i64 {
        self.available + self.allocated + self.recycle
    }

    /// Adds another row's units.
    pub fn add(&mut self, other: &Totals) {
        self.available += other.available;
        self.allocated += other.allocated;
        self.recycle += other.recycle;
    }

    /// As the contract's message.
    pub fn to_proto(self) -> pb::StockTotals {
        pb::StockTotals {
            available: self.available,
            allocated: self.allocated,
            recycle: self.recycle,
        }
    }
}

/// Why a transfer happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferReason {
    /// Goods receipt.
    Receive,
    /// Between pools.
    PoolMove,
    /// To an order line.
    Allocate,
    /// Back from an order line.
    Release,
    /// Invoiced.
    Consume,
    /// Set aside.
    Recycle,
    /// Made sellable again.
    MakeLive,
    /// Operator correction.
    Adjust,
    /// Out of an expired pool.
    PoolExpiry,
}

impl TransferReason {
    /// The stored number (the contract's enum number).
    pub fn code(self) -> i64 {
        self.to_proto() as i64
    }

    /// As the contract's enum.
    pub fn to_proto(self) -> i32 {
        use pb::TransferReason as P;
        (match self {
            Self::Receive => P::Receive,
            Self::PoolMove => P::PoolMove,
            Self::Allocate => P::Allocate,
            Self::Release => P::Release,
            Self::Consume => P::Consume,
            Self::Recycle => P::Recycle,
            Self::MakeLive => P::MakeLive,
            Self::Adjust => P::Adjust,
            Self::PoolExpiry => P::PoolExpiry,
        }) as i32
    }

    /// A reason read back from the database.
    pub fn from_code(code: i64) -> Result<Self, Error> {
        use pb::TransferReason as P;
        let reason = i32::try_from(code)
            .ok()
            .and_then(|code| P::try_from(code).ok());
        match reason {
            Some(P::Receive) => Ok(Self::Receive),
            Some(P::PoolMove) => Ok(Self::PoolMove),
            Some(P::Allocate) => Ok(Self::Allocate),
            Some(P::Release) => Ok(Self::Release),
            Some(P::Consume) => Ok(Self::Consume),
            Some(P::Recycle) => Ok(Self::Recycle),
            Some(P::MakeLive) => Ok(Self::MakeLive),
            Some(P::Adjust) => Ok(Self::Adjust),
            Some(P::PoolExpiry) => Ok(Self::PoolExpiry),
            _ => Err(Error::Internal(anyhow::anyhow!(
                "stored transfer reason {code} is unknown"
            ))),
        }
    }
}

/// One side of a transfer inside the system: a pool and state (the SKU, grade and client
/// are the transfer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Pool.
    pub pool: PoolName,
    /// State.
    pub state: StockState,
}

/// A transfer to write: a positive quantity of one SKU and grade between two buckets, or
/// from or to outside (`None`).
#[derive(Debug, Clone)]
pub struct TransferSpec {
    /// Owner.
    pub client: ClientId,
    /// SKU.
    pub sku: Sku,
    /// Grade.
    pub grade: Grade,
    /// Source, `None` for stock entering.
    pub from: Option<Side>,
    /// Destination, `None` for stock leaving.
    pub to: Option<Side>,
    /// Units, positive.
    pub quantity: i64,
    /// Why.
    pub reason: TransferReason,
    /// For order movements: the order line.
    pub order_line: Option<(OrderRef, LineId)>,
}

impl TransferSpec {
    /// The stock row of the source, if inside.
    pub fn from_key(&self) -> Option<StockKey> {
        self.from
            .as_ref()
            .map(|side| StockKey::new(&self.client, &self.sku, &side.pool, self.grade))
    }

    /// The stock row of the destination, if inside.
    pub fn to_key(&self) -> Option<StockKey> {
        self.to
            .as_ref()
            .map(|side| StockKey::new(&self.client, &self.sku, &side.pool, self.grade))
    }
}

/// Who asked and under which key: written on every transfer of a request.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// Who asked.
    pub actor: String,
    /// Business reference or reason text.
    pub reference: String,
    /// The request's idempotency key.
    pub idempotency_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_codes_round_trip() {
        for grade in Grade::ALL {
            assert_eq!(Grade::from_code(grade.code()).unwrap(), grade);
        }
        for state in [
            StockState::Available,
            StockState::Allocated,
            StockState::Recycle,
        ] {
            assert_eq!(StockState::from_code(state.code()).unwrap(), state);
        }
        assert_eq!(
            TransferReason::from_code(TransferReason::PoolExpiry.code()).unwrap(),
            TransferReason::PoolExpiry
        );
    }

    #[test]
    fn grade_is_required_where_asked_and_optional_in_filters() {
        assert!(
            Grade::parse("grade", 0)
                .unwrap_err()
                .to_string()
                .contains("`grade`")
        );
        assert!(Grade::parse("grade", 7).is_err());
        assert_eq!(Grade::parse_filter("grade", 0).unwrap(), None);
        assert_eq!(Grade::parse_filter("grade", 2).unwrap(), Some(Grade::Fail));
    }

    #[test]
    fn quantities_are_positive_and_bounded() {
        assert!(Quantity::new("quantity", 0).is_err());
        assert!(Quantity::new("quantity", -3).is_err());
        assert!(Quantity::new("quantity", i64::MAX).is_err());
        assert_eq!(Quantity::new("quantity", 3).unwrap().get(), 3);
    }
}
