//! Types and rules of inventory, free of storage and transport.
//!
//! - [`ids`]: identifiers with parsing constructors (the format rules live there);
//! - [`stock`]: grades, states, quantities, stock rows and ledger transfers;
//! - [`pool`]: pools and which one serves a channel;
//! - [`allocation`]: what each order line gets;
//! - [`explain`]: the steps that would make stock available where it is needed.

pub mod allocation;
pub mod explain;
pub mod ids;
pub mod pool;
pub mod stock;
