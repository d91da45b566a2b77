//! Settings of the purchase-order service, from flags and `KOSHA_*` variables.

use std::time::Duration;

use kosha_runtime::upload::DEFAULT_MAX_UPLOAD_BYTES;

/// Default pause between background redelivery rounds.
pub const DEFAULT_REDELIVERY_INTERVAL_MS: u64 = 30_000;

/// Settings only this service has.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Clients allowed to receive more units than a PO line expects (comma-separated client
    /// ids). For every other client a GRN beyond the outstanding quantity is refused.
    #[arg(
        long = "excess-grn-clients",
        env = "KOSHA_EXCESS_GRN_CLIENTS",
        value_delimiter = ','
    )]
    pub excess_grn_clients: Vec<String>,

    /// Largest PO upload file, in bytes; a larger one is refused with RESOURCE_EXHAUSTED.
    #[arg(
        long = "po-max-upload-bytes",
        env = "KOSHA_PO_MAX_UPLOAD_BYTES",
        default_value_t = DEFAULT_MAX_UPLOAD_BYTES
    )]
    pub max_upload_bytes: usize,

    /// Milliseconds between background rounds that deliver GRN stock to inventory and
    /// create bulk orders that could not be delivered at once. Also the first retry delay,
    /// doubled per failed attempt up to an hour.
    #[arg(
        long = "po-redelivery-interval-ms",
        env = "KOSHA_PO_REDELIVERY_INTERVAL_MS",
        default_value_t = DEFAULT_REDELIVERY_INTERVAL_MS
    )]
    pub redelivery_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            excess_grn_clients: Vec::new(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            redelivery_interval_ms: DEFAULT_REDELIVERY_INTERVAL_MS,
        }
    }
}

impl Settings {
    /// Every bad setting, in words naming its variable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for client_id in self.excess_grn_client_ids() {
            if let Err(error) = kosha_runtime::validate::client_id("client", client_id) {
                problems.push(format!("KOSHA_EXCESS_GRN_CLIENTS: {error}"));
            }
        }
        if self.max_upload_bytes < 1024 {
            problems.push("KOSHA_PO_MAX_UPLOAD_BYTES must be at least 1024".to_string());
        }
        if self.redelivery_interval_ms < 10 {
            problems.push("KOSHA_PO_REDELIVERY_INTERVAL_MS must be at least 10".to_string());
        }
        problems
    }

    /// Whether `client_id` may receive more than its PO lines expect.
    pub fn allows_excess_grn(&self, client_id: &str) -> bool {
        self.excess_grn_client_ids()
            .any(|allowed| allowed == client_id)
    }

    /// The pause between redelivery rounds.
    pub fn redelivery_interval(&self) -> Duration {
        Duration::from_millis(self.redelivery_interval_ms)
    }

    /// The clients allowed to over-receive, blanks left out.
    pub fn excess_grn_client_ids(&self) -> impl Iterator<Item = &str> {
        self.excess_grn_clients
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn excess_grn_clients_are_a_comma_separated_list() {
        let cli = Cli::parse_from(["test", "--excess-grn-clients", "acme, other"]);

        assert!(cli.settings.allows_excess_grn("acme"));
        assert!(cli.settings.allows_excess_grn("other"));
        assert!(!cli.settings.allows_excess_grn("third"));
        assert!(cli.settings.problems().is_empty());
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let cli = Cli::parse_from([
            "test",
            "--excess-grn-clients",
            "Acme",
            "--po-max-upload-bytes",
            "10",
            "--po-redelivery-interval-ms",
            "0",
        ]);

        assert_eq!(
            cli.settings.problems().len(),
            3,
            "{:?}",
            cli.settings.problems()
        );
    }

    #[test]
    fn defaults_allow_no_excess() {
        assert!(!Settings::default().allows_excess_grn("acme"));
        assert!(Settings::default().problems().is_empty());
    }
}
