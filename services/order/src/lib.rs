//! Kosha order service (being built).
