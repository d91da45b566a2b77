//! Kosha inventory: pools, stock buckets, order allocations and the stock ledger.
//!
//! Every unit of a client's stock sits in a bucket (SKU, pool, QC grade, state) and moves
//! only by ledger transfers written in the same transaction as the bucket change, so the
//! books can be recomputed and checked at any time (`Audit`). Allocation never oversells:
//! stock rows are locked and changed with conditional updates inside one database
//! transaction, with any number of callers and replicas.
//!
//! # Layout
//! - [`config`]: settings (`KOSHA_INVENTORY_*`) and peer addresses;
//! - [`startup`]: mounting the service on a server, and its background tasks;
//! - [`grpc`]: the gRPC handlers, thin;
//! - [`coalesce`]: concurrent allocations gathered into shared transactions;
//! - [`service`]: the operations, each one transaction with its idempotency record;
//! - [`domain`]: identifiers, stock, pools and allocation rules;
//! - [`store`]: the schema and the SQL;
//! - [`jobs`]: the scheduler callback (pool expiry);
//! - [`delivery`]: handing queued jobs to the scheduler after commit;
//! - [`bench`]: the allocation benchmark against PostgreSQL and pgbench.

pub mod bench;
pub mod coalesce;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod grpc;
pub mod jobs;
pub mod service;
pub mod startup;
pub mod store;

/// The service's name: its scheduler owner name, its default SQLite file, its log name.
pub const NAME: &str = "inventory";
