//! Types and rules of the scheduler, free of storage and transport.

/// The injectable source of "now".
pub mod clock;
/// Five-field cron expressions, in UTC.
pub mod cron;
/// Jobs, recurring jobs, and the checks on every request about them.
pub mod job;
/// Owners: the services the scheduler calls back, by name.
pub mod owners;
/// Backoff between attempts.
pub mod retry;
/// When the runs of a recurring job are due.
pub mod schedule;

pub use clock::{Clock, FakeClock, SystemClock};
pub use job::{DueWindow, Job, JobState, NewJob, RecurringJob, RecurringRegistration};
pub use owners::Owners;
pub use retry::RetryPolicy;
pub use schedule::Schedule;
