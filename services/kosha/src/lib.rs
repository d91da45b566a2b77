//! The all-in-one runner and operator tool.
//!
//! # Layout
//! - [`suite`]: every service mounted on one server and one address, each with its own
//!   SQLite file under a data directory: how Kosha runs on one machine;
//! - [`jobs`]: the one `JobHandler` that passes each job to its owner in-process;
//! - [`cli`]: the `kosha` command line;
//! - [`bench`]: the benchmarks the project ships;
//! - [`sample_data`]: a small generated dataset in the format of the real one.

pub mod bench;
pub mod cli;
pub mod jobs;
pub mod sample_data;
pub mod suite;
