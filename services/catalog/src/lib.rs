//! Kosha catalog: the master data every other service refers to. Clients (sellers),
//! channels (marketplaces and `INTERNAL`), each client's product master with per-channel
//! MRPs, and listings that map a marketplace's SKU to the client's own. Products and
//! listings can be uploaded in bulk as CSV files, checked whole before anything is
//! stored.
//!
//! # Layout
//! - [`config`]: the service's settings (`KOSHA_MAX_UPLOAD_BYTES`);
//! - [`startup`]: [`startup::mount`] migrates the database and adds the service to a server;
//! - [`grpc`]: thin handlers of `kosha.catalog.v1.CatalogService`;
//! - [`catalog`]: the operations, including the two-pass bulk uploads;
//! - [`domain`]: identifiers, products, patches, the template and upload row rules;
//! - [`store`]: the SQL, portable between SQLite and PostgreSQL, and the migrations;
//! - [`bench`](mod@bench): the upload benchmark behind `kosha bench upload`.

pub mod bench;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod startup;
pub mod store;

/// The service's name: its database file, its migrations' lock, its logs.
pub const NAME: &str = "catalog";
