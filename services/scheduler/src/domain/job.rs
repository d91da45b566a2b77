//! Jobs and recurring jobs, and the rules every request about them must follow.

use kosha_proto::kosha::scheduler::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::error::FieldViolation;
use kosha_runtime::time::{format_micros, from_timestamp};

use super::owners::Owners;
use super::schedule::{MIN_INTERVAL_MICROS, Schedule};

/// Largest payload, in bytes. Payloads are meant to be references (an order id, a batch
/// key), not documents; the limit keeps the job table and each handler call small.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest kind.
pub const MAX_KIND_LEN: usize = 128;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Attempts of a one-shot job when the request gives none.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 10;
/// Most attempts a request may ask for.
pub const MAX_MAX_ATTEMPTS: i32 = 100;
/// Attempts of one run of a recurring job. Few, because a run being retried holds back
/// the next occurrence (runs of one recurring job never overlap), and the next occurrence
/// retries the work anyway.
pub const RECURRING_RUN_MAX_ATTEMPTS: i32 = 3;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its due time (or its next attempt).
    Pending,
    /// Claimed by a scheduler replica under a lease.
    Running,
    /// Its handler reported success.
    Succeeded,
    /// Failed permanently or ran out of attempts.
    Failed,
    /// Cancelled before it ran (again).
    Cancelled,
}

impl JobState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Reads the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PENDING" => Some(Self::Pending),
            "RUNNING" => Some(Self::Running),
            "SUCCEEDED" => Some(Self::Succeeded),
            "FAILED" => Some(Self::Failed),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// Whether the job will never run again.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state a list filter names; `UNSPECIFIED` is no filter.
    pub fn from_proto_filter(value: i32) -> Result<Option<Self>, Error> {
        match pb::JobState::try_from(value) {
            Ok(pb::JobState::Unspecified) => Ok(None),
            Ok(pb::JobState::Pending) => Ok(Some(Self::Pending)),
            Ok(pb::JobState::Running) => Ok(Some(Self::Running)),
            Ok(pb::JobState::Succeeded) => Ok(Some(Self::Succeeded)),
            Ok(pb::JobState::Failed) => Ok(Some(Self::Failed)),
            Ok(pb::JobState::Cancelled) => Ok(Some(Self::Cancelled)),
            Err(_) => Err(Error::invalid(
                "state",
                format!("{value} is not a job state"),
            )),
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> pb::JobState {
        match self {
            Self::Pending => pb::JobState::Pending,
            Self::Running => pb::JobState::Running,
            Self::Succeeded => pb::JobState::Succeeded,
            Self::Failed => pb::JobState::Failed,
            Self::Cancelled => pb::JobState::Cancelled,
        }
    }
}

/// One job, or one run of a recurring job, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Id assigned at scheduling.
    pub job_id: String,
    /// Owning service.
    pub owner: String,
    /// What to do, in the owner's words.
    pub kind: String,
    /// Bytes the owner defines.
    pub payload: Vec<u8>,
    /// When the job may next run: its due time, moved by retries and `RunNow`.
    pub due_at: i64,
    /// When the job was first due; for a run, the occurrence it stands for.
    pub first_due_at: i64,
    /// The caller's key; runs of recurring jobs have none.
    pub idempotency_key_opt: Option<String>,
    /// Attempts started so far, including a running one.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Error of the last failed attempt, empty when none failed.
    pub last_error: String,
    /// Current state.
    pub state: JobState,
    /// Cancellation was asked while an attempt was running: no further attempt.
    pub cancel_requested: bool,
    /// W3C `traceparent` of the call that scheduled the job, empty when untraced.
    pub traceparent: String,
    /// The recurring job this is a run of.
    pub recurring_job_id_opt: Option<String>,
    /// When scheduled.
    pub created_at: i64,
    /// When last changed.
    pub updated_at: i64,
    /// When it succeeded, failed or was cancelled.
    pub finished_at_opt: Option<i64>,
}

impl Job {
    /// The wire form.
    pub fn to_proto(&self) -> pb::Job {
        use kosha_runtime::time::{to_timestamp, to_timestamp_opt};
        pb::Job {
            job_id: self.job_id.clone(),
            owner: self.owner.clone(),
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            due_time: Some(to_timestamp(self.due_at)),
            idempotency_key: self.idempotency_key_opt.clone().unwrap_or_default(),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            last_error: self.last_error.clone(),
            state: self.state.to_proto() as i32,
            create_time: Some(to_timestamp(self.created_at)),
            update_time: Some(to_timestamp(self.updated_at)),
            finish_time: to_timestamp_opt(self.finished_at_opt),
            recurring_job_id: self.recurring_job_id_opt.clone().unwrap_or_default(),
            cancel_requested: self.cancel_requested,
        }
    }
}

/// A recurring job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringJob {
    /// Id assigned at first registration.
    pub recurring_job_id: String,
    /// Owning service.
    pub owner: String,
    /// Kind, unique per owner.
    pub kind: String,
    /// Payload of every run.
    pub payload: Vec<u8>,
    /// Interval between the starts of two runs; 0 when only a cron expression is given.
    pub interval_micros: i64,
    /// Cron expression, empty for none; wins over the interval.
    pub cron: String,
    /// When the next run is (or the open run was) due.
    pub next_due_at: i64,
    /// First registered.
    pub created_at: i64,
    /// Last registered with a change.
    pub updated_at: i64,
}

impl RecurringJob {
    /// The schedule; stored values were checked when registered.
    pub fn schedule(&self) -> Result<Schedule, String> {
        Schedule::from_stored(self.interval_micros, &self.cron)
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::RecurringJob {
        use kosha_runtime::time::to_timestamp;
        pb::RecurringJob {
            recurring_job_id: self.recurring_job_id.clone(),
            owner: self.owner.clone(),
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            interval: (self.interval_micros > 0).then(|| micros_to_duration(self.interval_micros)),
            cron: self.cron.clone(),
            next_due_time: Some(to_timestamp(self.next_due_at)),
            create_time: Some(to_timestamp(self.created_at)),
            update_time: Some(to_timestamp(self.updated_at)),
        }
    }
}

/// How far from now a new job may be due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueWindow {
    /// How far in the past a due time may be (a caller catching up after an outage);
    /// older is more likely a bug (a zero or a wrong unit) than intent.
    pub past_tolerance_micros: i64,
    /// How far in the future a due time may be.
    pub horizon_micros: i64,
}

impl DueWindow {
    /// Why `due_at` is outside the window around `now`, if it is.
    pub fn problem(&self, due_at: i64, now: i64) -> Option<String> {
        if due_at < now.saturating_sub(self.past_tolerance_micros) {
            return Some(format!(
                "{} is more than {} in the past",
                format_micros(due_at),
                describe_micros(self.past_tolerance_micros)
            ));
        }
        if due_at > now.saturating_add(self.horizon_micros) {
            return Some(format!(
                "{} is more than {} ahead",
                format_micros(due_at),
                describe_micros(self.horizon_micros)
            ));
        }
        None
    }
}

/// A checked `ScheduleJob` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Owning service, configured in this scheduler.
    pub owner: String,
    /// What to do.
    pub kind: String,
    /// Bytes the owner defines.
    pub payload: Vec<u8>,
    /// When to run.
    pub due_at: i64,
    /// The caller's key.
    pub idempotency_key: String,
    /// Attempts before failing.
    pub max_attempts: i32,
}

impl NewJob {
    /// Checks every field of a request at once. The due time is only read here; whether
    /// it is too far from now is [`DueWindow`]'s call, made only for a key not seen before,
    /// so that a caller retrying long after a first success still gets its job back.
    pub fn parse(
        request: pb::ScheduleJobRequest,
        owners: &Owners,
        now: i64,
    ) -> Result<Self, Error> {
        let mut problems = Problems::default();
        if let Err(why) = owners.check(&request.owner) {
            problems.push("owner", why);
        }
        check_kind(&request.kind, &mut problems);
        check_payload(&request.payload, &mut problems);
        check_idempotency_key(&request.idempotency_key, &mut problems);

        let due_at = match &request.due_time {
            None => now,
            Some(timestamp) => match from_timestamp(timestamp, "due_time") {
                Ok(micros) => micros,
                Err(_) => {
                    problems.push("due_time", "timestamp out of range");
                    now
                }
            },
        };
        let max_attempts = match request.max_attempts {
            0 => DEFAULT_MAX_ATTEMPTS,
            n if (1..=MAX_MAX_ATTEMPTS).contains(&n) => n,
            n => {
                problems.push(
                    "max_attempts",
                    format!(
                        "{n} is not between 1 and {MAX_MAX_ATTEMPTS} \
                         (0 means {DEFAULT_MAX_ATTEMPTS})"
                    ),
                );
                DEFAULT_MAX_ATTEMPTS
            }
        };
        problems.into_result("invalid job")?;

        Ok(Self {
            owner: request.owner,
            kind: request.kind,
            payload: request.payload,
            due_at,
            idempotency_key: request.idempotency_key,
            max_attempts,
        })
    }

    /// Whether `job` was scheduled by the same request (a retry), judged by what the
    /// handler will see: owner, kind and payload.
    pub fn is_same_request_as(&self, job: &Job) -> bool {
        job.owner == self.owner && job.kind == self.kind && job.payload == self.payload
    }
}

/// A checked `RegisterRecurringJob` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringRegistration {
    /// Owning service.
    pub owner: String,
    /// Kind, unique per owner.
    pub kind: String,
    /// Payload of every run.
    pub payload: Vec<u8>,
    /// Interval as given (0 when only a cron expression is).
    pub interval_micros: i64,
    /// Cron expression as given, trimmed; empty for none.
    pub cron: String,
    /// The schedule they make.
    pub schedule: Schedule,
}

impl RecurringRegistration {
    /// Checks every field of a request at once; `now` is needed to check that a cron
    /// expression fires at all.
    pub fn parse(
        request: pb::RegisterRecurringJobRequest,
        owners: &Owners,
        window: &DueWindow,
        now: i64,
    ) -> Result<Self, Error> {
        let mut problems = Problems::default();
        if let Err(why) = owners.check(&request.owner) {
            problems.push("owner", why);
        }
        check_kind(&request.kind, &mut problems);
        check_payload(&request.payload, &mut problems);

        // `None`: not given, or given and already reported as malformed.
        let interval_opt = match &request.interval {
            None => None,
            Some(duration) => match duration_to_micros(duration) {
                Ok(micros) => Some(micros),
                Err(why) => {
                    problems.push("interval", why);
                    None
                }
            },
        };
        let interval_malformed = request.interval.is_some() && interval_opt.is_none();
        let cron = request.cron.trim().to_string();

        let mut schedule_opt = None;
        if !cron.is_empty() {
            match super::cron::CronExpr::parse(&cron) {
                Ok(expression) if expression.next_after(now).is_none() => {
                    problems.push("cron", format!("`{cron}` never fires"));
                }
                Ok(expression) => schedule_opt = Some(Schedule::Cron(expression)),
                Err(why) => problems.push("cron", why),
            }
        }

        // With a cron expression the interval may be left out (or zero); given, it must
        // still make sense, so that a typo is not silently ignored.
        let interval_micros = interval_opt.unwrap_or(0);
        let interval_in_use = cron.is_empty() || interval_micros != 0;
        if interval_in_use && !interval_malformed {
            if interval_opt.is_none() {
                problems.push(
                    "interval",
                    "an interval (at least 1s) or a cron expression is required",
                );
            } else if interval_micros < MIN_INTERVAL_MICROS {
                problems.push(
                    "interval",
                    format!(
                        "{} is below the minimum of 1s",
                        describe_micros(interval_micros)
                    ),
                );
            } else if interval_micros > window.horizon_micros {
                problems.push(
                    "interval",
                    format!(
                        "longer than the scheduling horizon of {}",
                        describe_micros(window.horizon_micros)
                    ),
                );
            } else if cron.is_empty() {
                schedule_opt = Some(Schedule::Every { interval_micros });
            }
        }
        problems.into_result("invalid recurring job")?;

        let schedule = schedule_opt.ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("checked registration without a schedule"))
        })?;
        Ok(Self {
            owner: request.owner,
            kind: request.kind,
            payload: request.payload,
            interval_micros,
            cron,
            schedule,
        })
    }

    /// Whether `stored` already recurs on this schedule.
    pub fn has_schedule_of(&self, stored: &RecurringJob) -> bool {
        stored.interval_micros == self.interval_micros && stored.cron == self.cron
    }
}

/// A job id or recurring job id field: present and plausible.
pub fn check_id(field: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::invalid(
            field,
            format!("`{id}` is not an id issued by the scheduler"),
        ));
    }
    Ok(())
}

fn check_kind(kind: &str, problems: &mut Problems) {
    if kind.is_empty() {
        problems.push(
            "kind",
            "is required: what the owner should do, e.g. `release-hold`",
        );
    } else if kind.len() > MAX_KIND_LEN {
        problems.push("kind", format!("is longer than {MAX_KIND_LEN} characters"));
    } else if let Some(bad) = kind
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:/".contains(*c)))
    {
        problems.push(
            "kind",
            format!(
                "`{}` is not allowed (letters, digits, `-`, `_`, `.`, `:`, `/`)",
                bad.escape_default()
            ),
        );
    }
}

fn check_payload(payload: &[u8], problems: &mut Problems) {
    if payload.len() > MAX_PAYLOAD_BYTES {
        problems.push(
            "payload",
            format!(
                "is {} bytes; at most {MAX_PAYLOAD_BYTES} bytes are accepted",
                payload.len()
            ),
        );
    }
}

fn check_idempotency_key(key: &str, problems: &mut Problems) {
    if key.is_empty() {
        problems.push(
            "idempotency_key",
            "is required, so that a retried call finds the first job",
        );
    } else if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        problems.push(
            "idempotency_key",
            format!("is longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
        );
    } else if key.chars().any(char::is_control) {
        problems.push("idempotency_key", "contains control characters");
    } else if key.trim() != key {
        // Keys are compared exactly: ` k1` would be another job than `k1`, which a caller
        // who typed a space never means.
        problems.push(
            "idempotency_key",
            "begins or ends with white space (or is nothing else)",
        );
    }
}

/// A protobuf duration in microseconds.
fn duration_to_micros(duration: &prost_types::Duration) -> Result<i64, String> {
    // Both parts must share a sign, as the protobuf contract says; a negative interval is
    // never meaningful here.
    if (duration.seconds > 0 && duration.nanos < 0) || (duration.seconds < 0 && duration.nanos > 0)
    {
        return Err("is malformed: its seconds and nanos have opposite signs".to_string());
    }
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err("must not be negative".to_string());
    }
    if duration.nanos >= 1_000_000_000 {
        return Err("nanos must be below one second".to_string());
    }
    duration
        .seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(duration.nanos) / 1_000))
        .ok_or_else(|| "is too long".to_string())
}

/// Microseconds as a protobuf duration.
pub fn micros_to_duration(micros: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A length of time for messages: `24h`, `400d`, `1.5s`.
pub fn describe_micros(micros: i64) -> String {
    const SECOND: i64 = 1_000_000;
    const HOUR: i64 = 3_600 * SECOND;
    const DAY: i64 = 24 * HOUR;
    if micros >= 2 * DAY && micros % DAY == 0 {
        format!("{}d", micros / DAY)
    } else if micros != 0 && micros % HOUR == 0 {
        format!("{}h", micros / HOUR)
    } else if micros % SECOND == 0 {
        format!("{}s", micros / SECOND)
    } else {
        format!("{}s", micros as f64 / SECOND as f64)
    }
}

/// Field problems of one request, reported together.
#[derive(Debug, Default)]
struct Problems {
    violations: Vec<FieldViolation>,
}

impl Problems {
    fn push(&mut self, field: &str, description: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(field, description));
    }

    fn into_result(self, summary: &str) -> Result<(), Error> {
        match self.violations.as_slice() {
            [] => Ok(()),
            [only] => Err(Error::invalid(only.field.clone(), only.description.clone())),
            many => {
                let fields: Vec<String> = many.iter().map(|v| format!("`{}`", v.field)).collect();
                let message = format!("{summary}: problems with {}", fields.join(", "));
                Err(Error::invalid_many(message, self.violations))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const NOW: i64 = 1_741_523_400_000_000; // 2025-03-09T12:30:00Z

    fn owners() -> Owners {
        Owners::new(BTreeMap::from([("order".into(), "127.0.0.1:1".into())]))
    }

    fn window() -> DueWindow {
        DueWindow {
            past_tolerance_micros: 86_400_000_000,
            horizon_micros: 400 * 86_400_000_000,
        }
    }

    fn fields_of(error: Error) -> Vec<String> {
        match error {
            Error::InvalidArgument { violations, .. } => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_of_a_job_is_reported_at_once() {
        let request = pb::ScheduleJobRequest {
            owner: "billing".into(),
            kind: String::new(),
            payload: vec![0; MAX_PAYLOAD_BYTES + 1],
            due_time: None,
            idempotency_key: String::new(),
            max_attempts: -1,
        };

        let fields = fields_of(NewJob::parse(request, &owners(), NOW).unwrap_err());

        assert_eq!(
            fields,
            [
                "owner",
                "kind",
                "payload",
                "idempotency_key",
                "max_attempts"
            ]
        );
    }

    #[test]
    fn an_idempotency_key_with_white_space_around_it_is_refused() {
        let with_key = |key: &str| pb::ScheduleJobRequest {
            owner: "order".into(),
            kind: "release-hold".into(),
            idempotency_key: key.into(),
            ..Default::default()
        };

        for key in ["  ", " k1", "k1 "] {
            let fields = fields_of(NewJob::parse(with_key(key), &owners(), NOW).unwrap_err());
            assert_eq!(fields, ["idempotency_key"], "key {key:?}");
        }
        assert!(NewJob::parse(with_key("hold 7 release"), &owners(), NOW).is_ok());
    }

    #[test]
    fn an_unset_due_time_means_now_and_attempts_default() {
        let request = pb::ScheduleJobRequest {
            owner: "order".into(),
            kind: "release-hold".into(),
            idempotency_key: "k".into(),
            ..Default::default()
        };

        let job = NewJob::parse(request, &owners(), NOW).unwrap();

        assert_eq!((job.due_at, job.max_attempts), (NOW, DEFAULT_MAX_ATTEMPTS));
    }

    #[test]
    fn the_due_window_refuses_the_distant_past_and_beyond_the_horizon() {
        let window = window();
        assert!(window.problem(NOW - 86_400_000_000, NOW).is_none());
        assert!(
            window
                .problem(NOW - 86_400_000_001, NOW)
                .unwrap()
                .contains("24h in the past")
        );
        assert!(
            window
                .problem(NOW + 401 * 86_400_000_000, NOW)
                .unwrap()
                .contains("400d ahead")
        );
    }

    #[test]
    fn a_recurring_job_needs_an_interval_of_a_second_or_a_cron_that_fires() {
        let register = |interval: Option<prost_types::Duration>, cron: &str| {
            let request = pb::RegisterRecurringJobRequest {
                owner: "order".into(),
                kind: "sweep".into(),
                payload: Vec::new(),
                interval,
                cron: cron.into(),
            };
            RecurringRegistration::parse(request, &owners(), &window(), NOW)
        };
        let seconds = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });

        assert_eq!(fields_of(register(None, "").unwrap_err()), ["interval"]);
        assert_eq!(
            fields_of(register(seconds(0), "").unwrap_err()),
            ["interval"]
        );
        assert_eq!(
            fields_of(
                register(
                    Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 999_999_999
                    }),
                    ""
                )
                .unwrap_err()
            ),
            ["interval"]
        );
        assert_eq!(
            fields_of(register(seconds(-5), "").unwrap_err()),
            ["interval"]
        );
        assert_eq!(
            fields_of(register(None, "61 * * * *").unwrap_err()),
            ["cron"]
        );
        assert_eq!(
            fields_of(register(None, "0 0 30 2 *").unwrap_err()),
            ["cron"]
        );

        let every_minute = register(seconds(60), "").unwrap();
        let cron_only = register(None, "*/5 * * * *").unwrap();
        assert_eq!(
            every_minute.schedule,
            Schedule::Every {
                interval_micros: 60_000_000
            }
        );
        assert!(matches!(cron_only.schedule, Schedule::Cron(_)));
        assert_eq!(cron_only.interval_micros, 0);
    }

    #[test]
    fn lengths_of_time_read_naturally() {
        assert_eq!(describe_micros(86_400_000_000), "24h");
        assert_eq!(describe_micros(400 * 86_400_000_000), "400d");
        assert_eq!(describe_micros(7_200_000_000), "2h");
        assert_eq!(describe_micros(0), "0s");
        assert_eq!(describe_micros(500_000), "0.5s");
    }
}
