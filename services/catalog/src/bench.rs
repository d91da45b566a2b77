//! The upload benchmark (placeholder while the service is built).
