//! Kosha purchase-order service (being built).
