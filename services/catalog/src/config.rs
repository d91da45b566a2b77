//! Settings of the catalog service.

use kosha_runtime::upload::DEFAULT_MAX_UPLOAD_BYTES;

/// Smallest upload limit accepted: below this even a template with a few rows is refused.
const MIN_MAX_UPLOAD_BYTES: usize = 1024;

/// Catalog settings, from flags or `KOSHA_*` variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Largest CSV upload (products or listings), in bytes; a larger file is refused with
    /// `RESOURCE_EXHAUSTED`. A 100,000-row product file is about 8 MiB. The whole file is
    /// held in memory while it is checked, so this bounds the memory of one upload.
    #[arg(long, env = "KOSHA_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
    /// Resolved listings each replica keeps in memory, so that resolving the SKUs of an
    /// order seldom reads the database; 0 keeps none. About 250 bytes each.
    #[arg(
        long,
        env = "KOSHA_CATALOG_RESOLUTIONS_KEPT",
        default_value_t = DEFAULT_RESOLUTIONS_KEPT
    )]
    pub resolutions_kept: usize,
}

/// Resolved listings kept by default: the listings of a large seller on every channel.
pub const DEFAULT_RESOLUTIONS_KEPT: usize = 200_000;

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            resolutions_kept: DEFAULT_RESOLUTIONS_KEPT,
        }
    }
}

impl Settings {
    /// Every bad setting, for one report with the common ones.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_upload_bytes < MIN_MAX_UPLOAD_BYTES {
            problems.push(format!(
                "KOSHA_MAX_UPLOAD_BYTES must be at least {MIN_MAX_UPLOAD_BYTES}, got {}",
                self.max_upload_bytes
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn the_default_limit_is_the_runtime_default_and_a_tiny_one_is_refused() {
        let defaults = Cli::parse_from(["catalog"]).settings;
        assert_eq!(defaults.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        assert_eq!(defaults.resolutions_kept, DEFAULT_RESOLUTIONS_KEPT);
        assert!(defaults.problems().is_empty());

        let tiny = Cli::parse_from(["catalog", "--max-upload-bytes", "10"]).settings;
        assert_eq!(tiny.problems().len(), 1);
    }
}
