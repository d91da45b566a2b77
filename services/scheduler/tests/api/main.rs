//! The scheduler's acceptance tests, on SQLite and PostgreSQL, against a test job handler
//! served in-process.

mod bad_input;
mod execution;
mod jobs;
mod recurring;
mod support;
mod time_zone;
mod trace;
