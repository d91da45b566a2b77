//! Kosha's order service: marketplace and B2B orders from arrival to dispatch.
//!
//! Marketplace orders are pulled from channels (or sent with `CreateOrder`), their SKUs
//! resolved through catalog's listings, and allocated on arrival from the inventory pool
//! that serves their channel; when they wait for stock they are retried automatically as
//! stock arrives, in one total order. Bulk (B2B) orders are allocated only when an
//! operator retries them. Holds keep allocated orders from picking until their time, their
//! event or their operator. Picking, packing (after a sync with the channel), invoicing
//! (which consumes the packed units) and dispatch follow; cancellations free stock exactly
//! once, and a periodic reconcile keeps inventory's holdings equal to what orders need.
//!
//! # Layout
//! - [`config`]: the service's settings (`KOSHA_ORDER_*`);
//! - [`domain`]: orders, lines, holds and shipments, and the rules that move them;
//! - [`store`]: the SQL, the outbox and feed cursors;
//! - [`peers`]: clients of catalog, inventory, the scheduler and channel connectors;
//! - [`app`]: every operation, step by step;
//! - [`grpc`]: the `OrderService` handlers;
//! - [`jobs`]: the scheduler jobs and their `JobHandler`;
//! - [`connector`]: the file-based channel connector for local use;
//! - [`startup`]: mounting the service on a server;
//! - [`bench`]: the end-to-end `CreateOrder` benchmark.

pub mod app;
pub mod bench;
pub mod config;
pub mod connector;
pub mod domain;
pub mod grpc;
pub mod jobs;
pub mod peers;
pub mod startup;
pub mod store;

/// The service's name: its job owner, its SQLite file, its log name.
pub const NAME: &str = "order";

pub use config::Settings;
pub use peers::{PeerArgs, Peers};
pub use startup::{Mounted, mount};
