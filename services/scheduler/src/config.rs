//! The scheduler's settings (flags and `KOSHA_*` variables) and the owners it calls.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::owners::{BUILTIN_OWNERS, owner_name_problem};
use crate::domain::{DueWindow, Owners, RetryPolicy};

/// How often the loop looks for due jobs. A job scheduled through this replica to run
/// now wakes the loop at once; anything else waits at most this long past its due time.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 100;
/// How long a claim lasts without renewal. The runner renews it every third of this while
/// the handler works, so it only runs out when the runner is gone; then another replica
/// takes the job over. Shorter means faster recovery and more renewals.
pub const DEFAULT_LEASE_SECS: u64 = 30;
/// Longest a handler may take for one attempt before it counts as a retryable failure.
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 300;
/// Most attempts running at once per owner, per replica. Tune to what each owner's
/// handler (and its database) can take.
pub const DEFAULT_MAX_RUNS_PER_OWNER: usize = 16;
/// First wait after a failed attempt.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Longest wait between attempts.
pub const DEFAULT_RETRY_CAP_SECS: u64 = 300;
/// How far in the past a new job may be due.
pub const DEFAULT_PAST_TOLERANCE_SECS: u64 = 24 * 3_600;
/// How far ahead a new job may be due.
pub const DEFAULT_HORIZON_DAYS: u64 = 400;
/// How long shutdown waits for running attempts before cutting them off (their leases
/// then expire and another replica runs them again).
pub const DEFAULT_DRAIN_SECS: u64 = 10;

/// Scheduler settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address of the catalog service's job handler (owner `catalog`).
    #[arg(long, env = "KOSHA_CATALOG_ADDR")]
    pub catalog_addr: Option<String>,

    /// Address of the inventory service's job handler (owner `inventory`).
    #[arg(long, env = "KOSHA_INVENTORY_ADDR")]
    pub inventory_addr: Option<String>,

    /// Address of the order service's job handler (owner `order`).
    #[arg(long, env = "KOSHA_ORDER_ADDR")]
    pub order_addr: Option<String>,

    /// Address of the purchase-order service's job handler (owner `purchase-order`).
    #[arg(long, env = "KOSHA_PURCHASE_ORDER_ADDR")]
    pub purchase_order_addr: Option<String>,

    /// More owners as `NAME=ADDR`; repeat the flag, or separate with commas in the
    /// variable. Wins over the per-service address of the same name.
    #[arg(long = "owner", env = "KOSHA_SCHEDULER_OWNERS", value_delimiter = ',')]
    pub owners: Vec<String>,

    /// Address used for every built-in owner (catalog, inventory, order, purchase-order)
    /// that has no address of its own, e.g. one process serving all handlers.
    #[arg(long, env = "KOSHA_SCHEDULER_DEFAULT_OWNER_ADDR")]
    pub default_owner_addr: Option<String>,

    /// Milliseconds between looks for due jobs.
    #[arg(
        long,
        env = "KOSHA_SCHEDULER_POLL_INTERVAL_MS",
        default_value_t = DEFAULT_POLL_INTERVAL_MS
    )]
    pub poll_interval_ms: u64,

    /// Seconds a claim on a job lasts without renewal.
    #[arg(long, env = "KOSHA_SCHEDULER_LEASE_SECS", default_value_t = DEFAULT_LEASE_SECS)]
    pub lease_secs: u64,

    /// Seconds one attempt may take.
    #[arg(
        long,
        env = "KOSHA_SCHEDULER_RUN_TIMEOUT_SECS",
        default_value_t = DEFAULT_RUN_TIMEOUT_SECS
    )]
    pub run_timeout_secs: u64,

    /// Most attempts running at once per owner on this replica.
    #[arg(
        long,
        env = "KOSHA_SCHEDULER_MAX_RUNS_PER_OWNER",
        default_value_t = DEFAULT_MAX_RUNS_PER_OWNER
    )]
    pub max_runs_per_owner: usize,

    /// Milliseconds before the second attempt; doubles per attempt, with jitter.
    #[arg(long, env = "KOSHA_SCHEDULER_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS)]
    pub retry_base_ms: u64,

    /// Longest wait between attempts, in seconds.
    #[arg(long, env = "KOSHA_SCHEDULER_RETRY_CAP_SECS", default_value_t = DEFAULT_RETRY_CAP_SECS)]
    pub retry_cap_secs: u64,

    /// Seconds in the past a new job may be due.
    #[arg(
        long,
        env = "KOSHA_SCHEDULER_PAST_TOLERANCE_SECS",
        default_value_t = DEFAULT_PAST_TOLERANCE_SECS
    )]
    pub past_tolerance_secs: u64,

    /// Days ahead a new job may be due.
    #[arg(long, env = "KOSHA_SCHEDULER_HORIZON_DAYS", default_value_t = DEFAULT_HORIZON_DAYS)]
    pub horizon_days: u64,

    /// Seconds shutdown waits for running attempts.
    #[arg(long, env = "KOSHA_SCHEDULER_DRAIN_SECS", default_value_t = DEFAULT_DRAIN_SECS)]
    pub drain_secs: u64,
}

impl Default for Settings {
    /// The same values as the flags' defaults, with no owner configured.
    fn default() -> Self {
        Self {
            catalog_addr: None,
            inventory_addr: None,
            order_addr: None,
            purchase_order_addr: None,
            owners: Vec::new(),
            default_owner_addr: None,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            lease_secs: DEFAULT_LEASE_SECS,
            run_timeout_secs: DEFAULT_RUN_TIMEOUT_SECS,
            max_runs_per_owner: DEFAULT_MAX_RUNS_PER_OWNER,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_cap_secs: DEFAULT_RETRY_CAP_SECS,
            past_tolerance_secs: DEFAULT_PAST_TOLERANCE_SECS,
            horizon_days: DEFAULT_HORIZON_DAYS,
            drain_secs: DEFAULT_DRAIN_SECS,
        }
    }
}

/// [`Settings`] after checking: how the loop and the checks behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Time between looks for due jobs.
    pub poll_interval: Duration,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Longest one attempt may take.
    pub run_timeout: Duration,
    /// Most attempts at once per owner.
    pub max_runs_per_owner: usize,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// How far from now a new job may be due.
    pub due_window: DueWindow,
    /// How long shutdown waits for running attempts.
    pub drain_deadline: Duration,
}

impl Settings {
    /// Checks every setting; returns all problems at once.
    pub fn options(&self) -> Result<SchedulerOptions, Vec<String>> {
        let mut problems = Vec::new();
        if self.poll_interval_ms == 0 || self.poll_interval_ms > 10_000 {
            problems.push("KOSHA_SCHEDULER_POLL_INTERVAL_MS must be between 1 and 10000".into());
        }
        if self.lease_secs < 3 {
            problems.push("KOSHA_SCHEDULER_LEASE_SECS must be at least 3".into());
        }
        if self.run_timeout_secs == 0 {
            problems.push("KOSHA_SCHEDULER_RUN_TIMEOUT_SECS must be at least 1".into());
        }
        if self.max_runs_per_owner == 0 || self.max_runs_per_owner > 10_000 {
            problems.push("KOSHA_SCHEDULER_MAX_RUNS_PER_OWNER must be between 1 and 10000".into());
        }
        if self.retry_base_ms == 0 {
            problems.push("KOSHA_SCHEDULER_RETRY_BASE_MS must be at least 1".into());
        }
        if self.retry_cap_secs.saturating_mul(1_000) < self.retry_base_ms {
            problems.push(
                "KOSHA_SCHEDULER_RETRY_CAP_SECS must not be below KOSHA_SCHEDULER_RETRY_BASE_MS"
                    .into(),
            );
        }
        if self.horizon_days == 0 || self.horizon_days > 10 * 366 {
            problems.push("KOSHA_SCHEDULER_HORIZON_DAYS must be between 1 and 3660".into());
        }
        if self.past_tolerance_secs > 366 * 86_400 {
            problems.push("KOSHA_SCHEDULER_PAST_TOLERANCE_SECS must be at most a year".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }

        let micros = |seconds: u64| i64::try_from(seconds).unwrap_or(i64::MAX / 2) * 1_000_000;
        Ok(SchedulerOptions {
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            lease: Duration::from_secs(self.lease_secs),
            run_timeout: Duration::from_secs(self.run_timeout_secs),
            max_runs_per_owner: self.max_runs_per_owner,
            retry: RetryPolicy {
                base: Duration::from_millis(self.retry_base_ms),
                cap: Duration::from_secs(self.retry_cap_secs),
            },
            due_window: DueWindow {
                past_tolerance_micros: micros(self.past_tolerance_secs),
                horizon_micros: micros(self.horizon_days * 86_400),
            },
            drain_deadline: Duration::from_secs(self.drain_secs),
        })
    }
}

/// The services the scheduler calls: each owner's `JobHandler` address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    /// Handler address per owner name.
    pub owner_addrs: BTreeMap<String, String>,
    /// Address for every built-in owner without one of its own. The all-in-one runner
    /// sets it to its own address, where one `JobHandler` dispatches by owner in-process.
    pub default_owner_addr: Option<String>,
}

impl Peers {
    /// Every owner routed to `address`: the all-in-one runner's setting.
    pub fn all_in_one(address: impl Into<String>) -> Self {
        Self {
            owner_addrs: BTreeMap::new(),
            default_owner_addr: Some(address.into()),
        }
    }

    /// The all-in-one runner's owners: `local`, the services of its process that own jobs,
    /// at `address`, where one handler passes each job to its owner in-process; and the
    /// further owners `KOSHA_SCHEDULER_OWNERS` names, whose handlers run elsewhere. No other
    /// name is an owner, so a job for a service without jobs is refused when scheduled
    /// rather than retried until it gives up.
    pub fn in_process(
        address: &str,
        local: &[&str],
        settings: &Settings,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut owner_addrs = extra_owners(&settings.owners, &mut problems);
        for name in local {
            owner_addrs.insert((*name).to_string(), address.to_string());
        }
        if problems.is_empty() {
            Ok(Self {
                owner_addrs,
                default_owner_addr: None,
            })
        } else {
            Err(problems)
        }
    }

    /// The owners named by the settings; returns every problem at once.
    pub fn from_settings(settings: &Settings) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut owner_addrs = BTreeMap::new();

        let per_service = [
            &settings.catalog_addr,
            &settings.inventory_addr,
            &settings.order_addr,
            &settings.purchase_order_addr,
        ];
        for ((name, variable), address_opt) in BUILTIN_OWNERS.iter().zip(per_service) {
            if let Some(address) = address_opt
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                match address_problem(address) {
                    Some(why) => problems.push(format!("{variable} `{address}`: {why}")),
                    None => {
                        owner_addrs.insert(name.to_string(), address.to_string());
                    }
                }
            }
        }

        owner_addrs.extend(extra_owners(&settings.owners, &mut problems));

        let default_owner_addr = settings
            .default_owner_addr
            .as_deref()
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_string);
        if let Some(address) = &default_owner_addr
            && let Some(why) = address_problem(address)
        {
            problems.push(format!(
                "KOSHA_SCHEDULER_DEFAULT_OWNER_ADDR `{address}`: {why}"
            ));
        }

        if problems.is_empty() {
            Ok(Self {
                owner_addrs,
                default_owner_addr,
            })
        } else {
            Err(problems)
        }
    }

    /// Every owner this scheduler can call, with its address.
    pub fn owners(&self) -> Owners {
        let mut addresses = self.owner_addrs.clone();
        if let Some(default) = &self.default_owner_addr {
            for (name, _) in BUILTIN_OWNERS {
                addresses
                    .entry(name.to_string())
                    .or_insert_with(|| default.clone());
            }
        }
        Owners::new(addresses)
    }
}

/// The owners of `KOSHA_SCHEDULER_OWNERS` entries (`NAME=ADDR`), with a problem added to
/// `problems` for each entry that is not one.
fn extra_owners(entries: &[String], problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut owner_addrs = BTreeMap::new();
    for entry in entries
        .iter()
        .map(|entry| entry.trim())
        .filter(|e| !e.is_empty())
    {
        let Some((name, address)) = entry.split_once('=') else {
            problems.push(format!(
                "KOSHA_SCHEDULER_OWNERS entry `{entry}`: expected NAME=ADDR"
            ));
            continue;
        };
        let (name, address) = (name.trim(), address.trim());
        if let Some(why) = owner_name_problem(name) {
            problems.push(format!("KOSHA_SCHEDULER_OWNERS entry `{entry}`: {why}"));
        } else if let Some(why) = address_problem(address) {
            problems.push(format!("KOSHA_SCHEDULER_OWNERS entry `{entry}`: {why}"));
        } else {
            owner_addrs.insert(name.to_string(), address.to_string());
        }
    }
    owner_addrs
}

/// Why `address` cannot be dialled, if it cannot.
fn address_problem(address: &str) -> Option<String> {
    if address.is_empty() {
        return Some("the address is empty".to_string());
    }
    let uri = kosha_runtime::config::service_uri(address);
    match tonic::transport::Endpoint::from_shared(uri) {
        Ok(_) => None,
        Err(error) => Some(format!("not an address: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn owners_come_from_service_addresses_extra_owners_and_the_default() {
        let cli = TestCli::parse_from([
            "test",
            "--order-addr",
            "10.0.0.7:50051",
            "--owner",
            "test-handler=127.0.0.1:4000",
            "--owner",
            "order=127.0.0.1:4001",
            "--default-owner-addr",
            "127.0.0.1:5000",
        ]);

        let owners = Peers::from_settings(&cli.settings).unwrap().owners();

        assert_eq!(owners.address("order"), Some("127.0.0.1:4001"));
        assert_eq!(owners.address("test-handler"), Some("127.0.0.1:4000"));
        assert_eq!(owners.address("inventory"), Some("127.0.0.1:5000"));
        assert_eq!(owners.address("billing"), None);
    }

    #[test]
    fn the_all_in_one_runner_routes_every_built_in_owner_to_its_own_address() {
        let owners = Peers::all_in_one("127.0.0.1:50051").owners();

        let names: Vec<&str> = owners.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["catalog", "inventory", "order", "purchase-order"]);
        assert!(
            owners
                .iter()
                .all(|(_, address)| address == "127.0.0.1:50051")
        );
    }

    #[test]
    fn every_bad_owner_setting_is_reported_at_once() {
        let settings = Settings {
            owners: vec!["no-address".into(), "Bad=1.2.3.4:5".into(), "ok=".into()],
            default_owner_addr: Some("http://[::1".into()),
            ..Settings::default()
        };

        let problems = Peers::from_settings(&settings).unwrap_err();

        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn defaults_are_valid_and_bad_timings_are_reported() {
        assert!(Settings::default().options().is_ok());
        let settings = Settings {
            poll_interval_ms: 0,
            lease_secs: 1,
            ..Settings::default()
        };
        assert_eq!(settings.options().unwrap_err().len(), 2);
    }
}
