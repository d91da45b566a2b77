//! Kosha scheduler service (being built).
