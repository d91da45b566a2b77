//! The order service against real catalog, inventory and scheduler services started
//! in-process, on SQLite and on PostgreSQL.

mod harness;

mod faq;
mod holds;
mod ingest;
mod lifecycle;
mod reconcile;
mod stock_feed;
mod sync;
