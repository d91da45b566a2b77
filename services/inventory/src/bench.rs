//! The allocation benchmark.
