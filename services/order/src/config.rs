//! The order service's own settings, from flags and `KOSHA_*` environment variables.
//!
//! Per-channel settings the order service enforces live here: hold rules, the address of
//! each channel's connector, and which (client, channel) pairs are synced on a timer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::HoldRules;

/// Hold rules when none are configured: Flipkart orders wait for their dispatch-after
/// time and Paytm replacement orders for the return pickup of the original, as the
/// help-desk FAQ describes.
pub const DEFAULT_HOLD_RULES: &str = "FLIPKART=dispatch-after,PAYTM=return-pickup";

/// Settings of the order service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Hold rules per channel: `CHANNEL=rule,…` with rules `dispatch-after` (hold until
    /// the order's dispatch-after time), `return-pickup` (hold a replacement until the
    /// return of the original is picked up) and `manual` (hold until an operator
    /// releases it). A channel may be named several times.
    #[arg(
        long = "order-hold-rules",
        env = "KOSHA_ORDER_HOLD_RULES",
        default_value = DEFAULT_HOLD_RULES
    )]
    pub hold_rules: String,

    /// Connector of each channel: `CHANNEL=ADDRESS,…` where ADDRESS is the `host:port` of
    /// a `kosha.channel.v1.ChannelConnector` server, or `dir:PATH` for the file connector
    /// that serves orders and statuses from CSV/JSON files under PATH.
    #[arg(
        long = "order-connectors",
        env = "KOSHA_ORDER_CONNECTORS",
        default_value = ""
    )]
    pub connectors: String,

    /// (client, channel) pairs whose orders are pulled and availability pushed on a timer:
    /// `client:CHANNEL,…`. Each channel needs a connector.
    #[arg(
        long = "order-sync-targets",
        env = "KOSHA_ORDER_SYNC_TARGETS",
        default_value = ""
    )]
    pub sync_targets: String,

    /// Seconds between two pulls of a channel's orders (and pushes of its availability).
    /// The help-desk promise is that an order shows within 15 minutes.
    #[arg(
        long = "order-sync-interval-secs",
        env = "KOSHA_ORDER_SYNC_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub sync_interval_secs: u64,

    /// Seconds between two reads of inventory's change feed (the retry of waiting orders
    /// when stock arrives).
    #[arg(
        long = "order-follow-interval-secs",
        env = "KOSHA_ORDER_FOLLOW_INTERVAL_SECS",
        default_value_t = 5
    )]
    pub follow_interval_secs: u64,

    /// Seconds between two sweeps of due holds and undelivered outbox rows (a safety net
    /// behind the one-shot release jobs).
    #[arg(
        long = "order-hold-sweep-interval-secs",
        env = "KOSHA_ORDER_HOLD_SWEEP_INTERVAL_SECS",
        default_value_t = 60
    )]
    pub hold_sweep_interval_secs: u64,

    /// Seconds between two reconciles of order holdings with inventory.
    #[arg(
        long = "order-reconcile-interval-secs",
        env = "KOSHA_ORDER_RECONCILE_INTERVAL_SECS",
        default_value_t = 600
    )]
    pub reconcile_interval_secs: u64,

    /// Seconds an allocation of an order this service never stored may live before
    /// reconcile releases it (a create that died between inventory and its own write and
    /// was never retried).
    #[arg(
        long = "order-orphan-grace-secs",
        env = "KOSHA_ORDER_ORPHAN_GRACE_SECS",
        default_value_t = 900
    )]
    pub orphan_grace_secs: u64,

    /// Seconds between two in-process deliveries of undelivered outbox rows (releases of
    /// stock, scheduling of hold releases) that failed when first tried.
    #[arg(
        long = "order-outbox-interval-secs",
        env = "KOSHA_ORDER_OUTBOX_INTERVAL_SECS",
        default_value_t = 10
    )]
    pub outbox_interval_secs: u64,

    /// Whether to register the recurring jobs with the scheduler at start.
    #[arg(
        long = "order-register-jobs",
        env = "KOSHA_ORDER_REGISTER_JOBS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub register_jobs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hold_rules: DEFAULT_HOLD_RULES.to_string(),
            connectors: String::new(),
            sync_targets: String::new(),
            sync_interval_secs: 300,
            follow_interval_secs: 5,
            hold_sweep_interval_secs: 60,
            reconcile_interval_secs: 600,
            orphan_grace_secs: 900,
            outbox_interval_secs: 10,
            register_jobs: true,
        }
    }
}

/// Where a channel's connector is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorAddress {
    /// A gRPC server.
    Grpc(String),
    /// The file connector over this directory, run in-process.
    Dir(PathBuf),
}

/// [`Settings`] after checking.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// Hold rules per channel.
    pub hold_rules: HoldRules,
    /// Connector per channel.
    pub connectors: BTreeMap<String, ConnectorAddress>,
    /// (client, channel) pairs synced on a timer.
    pub sync_targets: Vec<(String, String)>,
    /// Between two syncs of one channel.
    pub sync_interval: Duration,
    /// Between two reads of the change feed.
    pub follow_interval: Duration,
    /// Between two hold sweeps.
    pub hold_sweep_interval: Duration,
    /// Between two reconciles.
    pub reconcile_interval: Duration,
    /// Age after which an allocation of an unknown order is released.
    pub orphan_grace: Duration,
    /// Between two in-process outbox deliveries.
    pub outbox_interval: Duration,
    /// Whether to register recurring jobs.
    pub register_jobs: bool,
}

impl Settings {
    /// Checks every setting and returns all problems at once.
    pub fn resolve(&self) -> Result<OrderConfig, Vec<String>> {
        let mut problems = Vec::new();

        let hold_rules = HoldRules::parse(&self.hold_rules).unwrap_or_else(|problem| {
            problems.push(format!("KOSHA_ORDER_HOLD_RULES: {problem}"));
            HoldRules::default()
        });

        let mut connectors = BTreeMap::new();
        for entry in self
            .connectors
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            match entry.split_once('=') {
                Some((channel, address))
                    if kosha_runtime::validate::channel_code("c", channel.trim()).is_ok()
                        && !address.trim().is_empty() =>
                {
                    let address = address.trim();
                    let channel = channel.trim();
                    let parsed = match address.strip_prefix("dir:") {
                        Some(path) if path.trim().is_empty() => {
                            problems
                                .push(format!("KOSHA_ORDER_CONNECTORS: `{entry}` names no folder"));
                            continue;
                        }
                        Some(path) => ConnectorAddress::Dir(PathBuf::from(path.trim())),
                        None => ConnectorAddress::Grpc(address.to_string()),
                    };
                    if connectors.contains_key(channel) {
                        problems.push(format!(
                            "KOSHA_ORDER_CONNECTORS: channel {channel} is given twice"
                        ));
                    }
                    // The file connector's folders hold one channel's orders: a folder
                    // shared by two channels would give each of them every order, however
                    // the two paths are spelled.
                    let shared_with = connectors.iter().find(|(_, other)| {
                        matches!(
                            (&parsed, other),
                            (ConnectorAddress::Dir(path), ConnectorAddress::Dir(other_path))
                                if same_folder(path, other_path)
                        )
                    });
                    if let Some((other_channel, _)) = shared_with {
                        problems.push(format!(
                            "KOSHA_ORDER_CONNECTORS: `{entry}` uses the folder of \
                             {other_channel}; each channel's files need a folder of their own"
                        ));
                    }
                    connectors.insert(channel.to_string(), parsed);
                }
                _ => problems.push(format!(
                    "KOSHA_ORDER_CONNECTORS: `{entry}` is not CHANNEL=host:port or CHANNEL=dir:PATH"
                )),
            }
        }

        let mut sync_targets = Vec::new();
        for entry in self
            .sync_targets
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.split_once(':').filter(|(client, channel)| {
                kosha_runtime::validate::client_id("c", client).is_ok()
                    && kosha_runtime::validate::channel_code("c", channel).is_ok()
            });
            match parsed {
                Some((client, channel)) if connectors.contains_key(channel) => {
                    sync_targets.push((client.to_string(), channel.to_string()));
                }
                Some((_, channel)) => problems.push(format!(
                    "KOSHA_ORDER_SYNC_TARGETS: channel `{channel}` has no connector in \
                     KOSHA_ORDER_CONNECTORS"
                )),
                None => problems.push(format!(
                    "KOSHA_ORDER_SYNC_TARGETS: `{entry}` is not client:CHANNEL"
                )),
            }
        }

        for (name, value) in [
            ("KOSHA_ORDER_SYNC_INTERVAL_SECS", self.sync_interval_secs),
            (
                "KOSHA_ORDER_FOLLOW_INTERVAL_SECS",
                self.follow_interval_secs,
            ),
            (
                "KOSHA_ORDER_HOLD_SWEEP_INTERVAL_SECS",
                self.hold_sweep_interval_secs,
            ),
            (
                "KOSHA_ORDER_RECONCILE_INTERVAL_SECS",
                self.reconcile_interval_secs,
            ),
            (
                "KOSHA_ORDER_OUTBOX_INTERVAL_SECS",
                self.outbox_interval_secs,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(OrderConfig {
            hold_rules,
            connectors,
            sync_targets,
            sync_interval: Duration::from_secs(self.sync_interval_secs),
            follow_interval: Duration::from_secs(self.follow_interval_secs),
            hold_sweep_interval: Duration::from_secs(self.hold_sweep_interval_secs),
            reconcile_interval: Duration::from_secs(self.reconcile_interval_secs),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs),
            outbox_interval: Duration::from_secs(self.outbox_interval_secs),
            register_jobs: self.register_jobs,
        })
    }
}

/// Whether two paths name one folder: resolved through links where they exist, and
/// otherwise with `.` and `..` worked out.
fn same_folder(a: &std::path::Path, b: &std::path::Path) -> bool {
    fn resolved(path: &std::path::Path) -> PathBuf {
        if let Ok(real) = std::fs::canonicalize(path) {
            return real;
        }
        let absolute = std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf());
        let mut plain = PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    plain.pop();
                }
                other => plain.push(other),
            }
        }
        plain
    }
    resolved(a) == resolved(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(
            config.hold_rules.describe(),
            "FLIPKART=dispatch-after,PAYTM=return-pickup"
        );
        assert!(config.connectors.is_empty());
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let settings = Settings {
            hold_rules: "FLIPKART=someday".into(),
            connectors: "flipkart=x".into(),
            sync_targets: "acme:AMAZON,nope".into(),
            follow_interval_secs: 0,
            ..Settings::default()
        };

        let problems = settings.resolve().unwrap_err();

        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn two_channels_cannot_share_a_folder_however_it_is_spelled() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("chan");
        std::fs::create_dir(&folder).unwrap();
        std::os::unix::fs::symlink(&folder, root.path().join("link")).unwrap();
        let (folder, root) = (folder.display(), root.path().display());
        let settings = Settings {
            connectors: format!(
                "AMAZON=dir:{folder},FLIPKART=dir:{root}/link,PAYTM=dir:{root}/x/../chan,\
                 MYNTRA=dir:,AMAZON=dir:{root}/other"
            ),
            ..Settings::default()
        };

        let problems = settings.resolve().unwrap_err();

        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("FLIPKART") && problems[0].contains("folder of AMAZON"));
        assert!(problems[1].contains("PAYTM") && problems[1].contains("folder of"));
        assert!(problems[2].contains("names no folder"), "{problems:?}");
        assert!(
            problems[3].contains("AMAZON is given twice"),
            "{problems:?}"
        );
    }

    #[test]
    fn connectors_are_grpc_addresses_or_directories() {
        let settings = Settings {
            connectors: "FLIPKART=127.0.0.1:7001, AMAZON=dir:/tmp/amazon".into(),
            sync_targets: "acme:AMAZON".into(),
            ..Settings::default()
        };

        let config = settings.resolve().unwrap();

        assert_eq!(
            config.connectors["FLIPKART"],
            ConnectorAddress::Grpc("127.0.0.1:7001".into())
        );
        assert_eq!(
            config.connectors["AMAZON"],
            ConnectorAddress::Dir("/tmp/amazon".into())
        );
        assert_eq!(
            config.sync_targets,
            vec![("acme".to_string(), "AMAZON".to_string())]
        );
    }
}
