//! Support for Kosha's end-to-end tests: what the real data should produce, read from
//! the files independently of the replay; the five service binaries started as separate
//! processes; and the checks of a replay's outcome made against the suite afterwards.
//!
//! # Layout
//! - [`expected`]: facts about the real data computed here, from the CSV files alone;
//! - [`processes`]: each service as its own process on a loopback port;
//! - [`outcomes`]: the assertions every replay of the real data must pass.

pub mod expected;
pub mod outcomes;
pub mod processes;

/// The real dataset's raw files.
pub fn real_data_dir() -> std::path::PathBuf {
    kosha_testkit::shared_data_dir().join("raw")
}

/// Bulk orders replayed from the B2B file in tests: enough to have block-complete and
/// partial orders compete for stock with marketplace orders, few enough for a CI run.
pub const B2B_GROUPS_IN_TESTS: usize = 25;
