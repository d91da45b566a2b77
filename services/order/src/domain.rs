//! Orders, lines, holds and shipments, and the rules that move an order between statuses.
//!
//! Everything here is plain data and pure functions: no database, no network. The
//! application layer ([`crate::app`]) loads an order, asks these rules whether a move is
//! allowed and what it changes, and stores the outcome.

pub mod holds;
pub mod rules;
pub mod types;

pub use holds::{Hold, HoldKind, HoldRule, HoldRules};
pub use types::{
    FulfilmentType, Grade, Line, Order, OrderId, OrderKind, OrderStatus, Shipment, ShipmentStatus,
};
