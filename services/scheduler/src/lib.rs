//! Kosha's scheduler: a generic durable timer.
//!
//! A service that needs something done later or periodically schedules a job naming
//! itself as the owner; when the job is due, the scheduler calls that owner's
//! `kosha.scheduler.v1.JobHandler`. The scheduler knows no domain: a payload is bytes the
//! owner defines. Delivery is at least once, so handlers are idempotent.
//!
//! # Layout
//! - [`config`]: settings (`KOSHA_SCHEDULER_*`, owners' `KOSHA_<SERVICE>_ADDR`) and
//!   [`config::Peers`], the owners' handler addresses;
//! - [`domain`]: jobs, recurring schedules (interval or cron, UTC), the clock, backoff, and
//!   the checks on every request;
//! - [`store`]: the job tables and every statement on them, SQLite and PostgreSQL;
//! - [`grpc`]: `SchedulerService`, thin handlers over the store;
//! - [`runner`]: the execution loop that claims due jobs and calls their owners;
//! - [`startup`]: [`mount`], which puts all of it on a server;
//! - [`bench`]: scheduling throughput and due-to-run lag, for `kosha bench scheduler`.

pub mod bench;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod runner;
pub mod startup;
pub mod store;
mod trace_context;

pub use config::{Peers, Settings};
pub use startup::{Mounted, mount, mount_with_clock};

/// The service's name: its health name prefix, its SQLite file, its migration lock.
pub const NAME: &str = "scheduler";
