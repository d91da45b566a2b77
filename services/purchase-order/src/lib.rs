//! Kosha purchase-order service: inward POs from suppliers and the goods receipts (GRNs)
//! against them, GRNs without a PO for units that come back, and outward B2B POs that
//! become bulk orders.
//!
//! # Layout
//! - [`grpc`]: the `kosha.purchase_order.v1.PurchaseOrderService` handlers, thin: check
//!   the request, call an operation, convert the answer;
//! - [`service`]: the operations — validate uploads whole, write in one transaction, then
//!   call inventory or the order service, with background redelivery of what is pending;
//! - [`domain`]: identifiers, values, the receipt rules and the upload file rules;
//! - [`store`]: SQL over SQLite and PostgreSQL, and the migrations;
//! - [`clients`]: catalog, inventory and order behind one trait each;
//! - [`config`]: this service's settings; [`startup`]: mounting on a server.

pub mod clients;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod store;

/// The service's name: its SQLite file, its migrations' lock, its logs.
pub const NAME: &str = "purchase-order";
