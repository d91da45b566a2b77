//! What every Kosha service shares.
//!
//! # Layout
//! - [`config`]: flags and `KOSHA_*` variables common to every service;
//! - [`telemetry`]: logs, traces and trace-context propagation;
//! - [`server`]: the gRPC server with health, reflection, limits and graceful shutdown;
//! - [`client`]: channels to other services that carry the trace context;
//! - [`db`]: the SQLite / PostgreSQL pool, transactions and migrations;
//! - [`changes`]: telling every replica that rows it keeps copies of have changed;
//! - [`error`]: the error type and its one mapping to `tonic::Status`;
//! - [`upload`]: reading CSV uploads sent as chunk streams;
//! - [`validate`], [`page`], [`time`]: formats, pagination and instants.

pub mod changes;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod page;
pub mod server;
pub mod telemetry;
pub mod time;
pub mod upload;
pub mod validate;

pub use db::Db;
pub use error::{Error, Result};

/// Every Kosha process allocates through mimalloc: a request touches many small, short-lived
/// buffers (protobuf messages, SQL text, rows) on several threads at once, where the system
/// allocator spends a noticeable share of the CPU and contends on its arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
