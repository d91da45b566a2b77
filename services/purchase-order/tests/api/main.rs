//! The purchase-order service over real gRPC with real catalog, inventory and order
//! servers in the same process, on SQLite and PostgreSQL.

mod bad_input;
mod convergence;
mod grn;
mod inward;
mod outward;
mod real_data;
mod support;
