//! `kosha replay DIR`: one seller's real data through the whole suite, using only the
//! public gRPC contracts, with a summary that is the same every run.
//!
//! Without an address the replay starts the all-in-one suite in this process on a fresh
//! SQLite directory. With `--addr` (one address for all services) or the per-service
//! flags it drives a suite that is already running: all-in-one, or five processes.
//!
//! # Input
//!
//! A directory with four CSV files (header row first; extra columns are ignored):
//!
//! - `products.csv` — the first client's product master: `sku, design_no, stock,
//!   category, size, color`. `design_no` becomes the style; a positive whole `stock` is
//!   brought in by the opening PO and GRN.
//! - `channel-mrp.csv` — the second client's product master: `sku, style_id, catalog,
//!   category, final_mrp_old` and one `<channel>_mrp` column per channel
//!   (`amazon_fba_mrp` is channel `AMAZON_FBA`); `Nill` means no value.
//! - `amazon-orders.csv` — marketplace orders in the order they arrived: `order_id, date
//!   (YYYY-MM-DD), status, fulfilment, sku, qty` and optionally `amount` (the line's
//!   total). Lines with one `order_id` form one order. `status` is the channel's later
//!   word on it: `Shipped`, `Shipped - Delivered to Buyer`, `Cancelled`, `Shipped -
//!   Returned to Seller`, `Shipped - Rejected by Buyer`. `fulfilment` `Amazon` means the
//!   marketplace ships from its own stock; anything else, the seller. A cancelled line
//!   with `qty` 0 was ordered as one unit.
//! - `b2b-orders.csv` — wholesale invoice lines: `date, customer, sku, pcs` (`pcs` may
//!   be written `3.00`). One bulk order per (customer, date); a SKU on several lines of
//!   one order is summed.
//!
//! Rows the services refuse (a blank or malformed SKU, a SKU not in the product master,
//! a SKU listed twice) are reported by each upload's dry run and left out.
//!
//! # The AMAZON channel connector
//!
//! Channel statuses reach the order service through its file connector: the replay writes
//! `<connector dir>/<client>/statuses.csv` and asks the order service to sync. The suite
//! started in-process is configured for it. A suite running elsewhere needs
//! `KOSHA_ORDER_CONNECTORS=AMAZON=dir:<PATH>` on its order service, and the replay needs
//! `--connector-dir <PATH>` pointing at the same directory (shared between the two).

pub mod connect;
pub mod input;
pub mod progress;
pub mod report;
mod stages;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

pub use connect::{Endpoints, LocalSuite};
pub use progress::ProgressOutput;
pub use report::{Facts, ReplayReport};
pub use stages::{COMMON, MARKETPLACE, SECOND_CLIENT, SELLER};

/// Default category whose AMAZON listings are added only after the failed-order report.
pub const DEFAULT_LATE_CATEGORY: &str = "TOP";

/// Default time the replay waits for background work (the change feed, a scheduled job,
/// a GRN's delivery to inventory) before it calls it a failure.
pub const DEFAULT_SETTLE_TIMEOUT_SECS: u64 = 120;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The input directory.
    pub dir: PathBuf,
    /// Where the AMAZON file connector of the order service reads channel statuses.
    pub connector_dir: PathBuf,
    /// Only the first N bulk orders of the B2B file; all when unset.
    pub b2b_groups_opt: Option<usize>,
    /// The category listed late.
    pub late_category: String,
    /// How long to wait for background work.
    pub settle_timeout: Duration,
    /// Where progress lines go.
    pub progress: ProgressOutput,
}

impl ReplayOptions {
    /// Options with the defaults for `dir`, statuses written under `connector_dir`.
    pub fn new(dir: PathBuf, connector_dir: PathBuf) -> Self {
        Self {
            dir,
            connector_dir,
            b2b_groups_opt: None,
            late_category: DEFAULT_LATE_CATEGORY.to_string(),
            settle_timeout: Duration::from_secs(DEFAULT_SETTLE_TIMEOUT_SECS),
            progress: ProgressOutput::Stderr,
        }
    }
}

/// Replays `options.dir` against the services at `endpoints`.
pub async fn replay(
    endpoints: &Endpoints,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayReport> {
    let data = input::Dataset::read(&options.dir)
        .with_context(|| format!("read the replay directory {}", options.dir.display()))?;
    let clients = connect::Clients::connect(endpoints)?;
    stages::Replay::new(clients, options, data).run().await
}

/// Settings of `kosha replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Directory with `products.csv`, `channel-mrp.csv`, `amazon-orders.csv` and
    /// `b2b-orders.csv`.
    pub dir: PathBuf,

    /// Address of a running all-in-one suite (every service at one address). Without it
    /// and without per-service addresses, a suite is started in this process.
    #[arg(long)]
    pub addr: Option<String>,

    /// Address of the catalog service (wins over --addr).
    #[arg(long)]
    pub catalog_addr: Option<String>,

    /// Address of the inventory service (wins over --addr).
    #[arg(long)]
    pub inventory_addr: Option<String>,

    /// Address of the order service (wins over --addr).
    #[arg(long)]
    pub order_addr: Option<String>,

    /// Address of the purchase-order service (wins over --addr).
    #[arg(long)]
    pub purchase_order_addr: Option<String>,

    /// Address of the scheduler (wins over --addr).
    #[arg(long)]
    pub scheduler_addr: Option<String>,

    /// Data directory of the suite started in this process: must be new or empty.
    /// Default: a temporary directory, removed at the end.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Directory the order service's AMAZON file connector reads. Required with an
    /// address, and that suite's order service must have been started with
    /// `KOSHA_ORDER_CONNECTORS=AMAZON=dir:<this directory>`; default for a suite started
    /// here: `<data dir>/channels`.
    #[arg(long)]
    pub connector_dir: Option<PathBuf>,

    /// Replay only the first N bulk orders of the B2B file.
    #[arg(long)]
    pub b2b_groups: Option<usize>,

    /// Category whose AMAZON listings are added only after the failed-order report.
    #[arg(long, default_value = DEFAULT_LATE_CATEGORY)]
    pub late_category: String,

    /// Seconds to wait for background work before calling it a failure.
    #[arg(long, default_value_t = DEFAULT_SETTLE_TIMEOUT_SECS)]
    pub settle_timeout_secs: u64,

    /// After the replay, keep serving the suite started here until Ctrl-C, so it can be
    /// explored with grpcurl.
    #[arg(long)]
    pub serve_after: bool,
}

impl ReplayArgs {
    fn options(&self, connector_dir: PathBuf) -> ReplayOptions {
        let mut options = ReplayOptions::new(self.dir.clone(), connector_dir);
        options.b2b_groups_opt = self.b2b_groups;
        options.late_category = self.late_category.clone();
        options.settle_timeout = Duration::from_secs(self.settle_timeout_secs);
        options
    }

    /// The addresses given, or `None` when none was: then a suite is started here.
    fn endpoints(&self) -> anyhow::Result<Option<Endpoints>> {
        let per_service = [
            ("--catalog-addr", &self.catalog_addr),
            ("--inventory-addr", &self.inventory_addr),
            ("--order-addr", &self.order_addr),
            ("--purchase-order-addr", &self.purchase_order_addr),
            ("--scheduler-addr", &self.scheduler_addr),
        ];
        if self.addr.is_none() && per_service.iter().all(|(_, address)| address.is_none()) {
            return Ok(None);
        }
        let missing: Vec<&str> = per_service
            .iter()
            .filter(|(_, address)| address.is_none() && self.addr.is_none())
            .map(|(flag, _)| *flag)
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "give --addr or every per-service address; missing: {}",
                missing.join(", ")
            );
        }
        let pick = |own: &Option<String>| {
            own.clone()
                .or_else(|| self.addr.clone())
                .unwrap_or_default()
        };
        Ok(Some(Endpoints {
            catalog: pick(&self.catalog_addr),
            inventory: pick(&self.inventory_addr),
            order: pick(&self.order_addr),
            purchase_order: pick(&self.purchase_order_addr),
            scheduler: pick(&self.scheduler_addr),
        }))
    }
}

/// Runs `kosha replay`: prints the summary on stdout, then the timings apart; fails when
/// a check did not hold.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    // The services log nothing unless asked: the replay's own output is the summary.
    let _telemetry_opt = match std::env::var_os("RUST_LOG") {
        Some(_) => Some(kosha_runtime::telemetry::init(
            "kosha-replay",
            kosha_runtime::telemetry::LogFormat::Text,
        )?),
        None => None,
    };
    match args.endpoints()? {
        Some(endpoints) => {
            let connector_dir = args.connector_dir.clone().context(
                "a running suite needs --connector-dir: the directory its order service reads \
                 with KOSHA_ORDER_CONNECTORS=AMAZON=dir:<PATH>",
            )?;
            let options = args.options(connector_dir);
            let report = replay(&endpoints, &options).await?;
            print_report(&report)
        }
        None => run_in_process(&args).await,
    }
}

/// Prints the summary and the timings; an error when a check did not hold.
fn print_report(report: &ReplayReport) -> anyhow::Result<()> {
    println!("{}", report.summary);
    println!("--- timings (these differ run to run) ---");
    print!("{}", report.render_timings(progress::peak_memory_kib()));
    if !report.findings.is_empty() {
        anyhow::bail!(
            "{} check(s) did not hold; see the summary",
            report.findings.len()
        );
    }
    Ok(())
}

async fn run_in_process(args: &ReplayArgs) -> anyhow::Result<()> {
    // A fresh data directory: a temporary one, or one given that holds nothing yet.
    let temporary_opt = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("kosha-replay-").tempdir()?),
    };
    let data_dir = match (&args.data_dir, &temporary_opt) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temporary)) => temporary.path().to_path_buf(),
        (None, None) => unreachable!("a temporary directory exists when none is given"),
    };
    let is_fresh =
        std::fs::read_dir(&data_dir).map_or(true, |mut entries| entries.next().is_none());
    if !is_fresh {
        anyhow::bail!(
            "--data-dir {} is not empty: the replay needs a fresh suite",
            data_dir.display()
        );
    }
    let connector_dir = args
        .connector_dir
        .clone()
        .unwrap_or_else(|| connect::default_connector_dir(&data_dir));

    let suite = LocalSuite::start(&data_dir, &connector_dir).await?;
    eprintln!(
        "replay: suite started on {} with data in {}",
        suite.address(),
        data_dir.display()
    );
    let options = args.options(connector_dir);
    let outcome = match replay(&suite.endpoints(), &options).await {
        Ok(report) => {
            let printed = print_report(&report);
            if args.serve_after {
                eprintln!("replay: serving on {} until Ctrl-C", suite.address());
                kosha_runtime::server::shutdown_signal().await;
            }
            printed
        }
        Err(error) => Err(error),
    };
    suite.stop().await?;
    outcome
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn parse(flags: &[&str]) -> ReplayArgs {
        let mut argv = vec!["kosha-replay", "data"];
        argv.extend_from_slice(flags);
        Command::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn without_an_address_the_suite_is_started_here() {
        assert_eq!(parse(&[]).endpoints().unwrap(), None);
    }

    #[test]
    fn one_address_serves_every_service_unless_a_service_has_its_own() {
        let args = parse(&["--addr", "127.0.0.1:7000", "--order-addr", "127.0.0.1:7003"]);

        let endpoints = args.endpoints().unwrap().unwrap();

        assert_eq!(endpoints.catalog, "127.0.0.1:7000");
        assert_eq!(endpoints.order, "127.0.0.1:7003");
        assert_eq!(endpoints.scheduler, "127.0.0.1:7000");
    }

    #[test]
    fn some_per_service_addresses_without_the_others_are_refused_naming_the_missing() {
        let args = parse(&["--catalog-addr", "127.0.0.1:7001"]);

        let error = args.endpoints().unwrap_err().to_string();

        assert!(error.contains("--inventory-addr"), "{error}");
        assert!(error.contains("--scheduler-addr"), "{error}");
        assert!(!error.contains("--catalog-addr"), "{error}");
    }
}
