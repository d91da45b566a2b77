//! Kosha inventory service (being built).
