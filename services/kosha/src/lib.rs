//! The all-in-one runner and operator tool.
//!
//! # Layout
//! - [`suite`]: every service mounted on one server and one address, each with its own
//!   SQLite file under a data directory: how Kosha runs on one machine;
//! - [`jobs`]: the one `JobHandler` that passes each job to its owner in-process;
//! - [`cli`]: the `kosha` command line;
//! - [`bench`]: the benchmarks the project ships;
//! - [`replay`]: `kosha replay`, a seller's real data through the whole suite;
//! - [`sample_data`]: a small generated dataset in the format of the real one.

pub mod bench;
pub mod cli;
pub mod jobs;
pub mod replay;
pub mod sample_data;
pub mod suite;
