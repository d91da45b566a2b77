//! Inventory over gRPC, on SQLite and PostgreSQL: every call, every error, concurrency,
//! random operation sequences, the change feed and the scheduler callback. Each test ends
//! with a clean `Audit`.

mod concurrency;
mod feed;
mod jobs;
mod orders;
mod pools;
mod property;
mod queries;
mod stock;
mod support;
