//! The settings a service binary accepts from the environment, with their defaults.
//!
//! They are read from the binary's own `--help` (clap prints `[env: NAME=]` and
//! `[default: VALUE]` for every setting), so the check is against what the built program
//! really reads, not against a list kept by hand.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// Environment settings of one binary: name to default value, if it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `KOSHA_*` name to its default.
    pub defaults: BTreeMap<String, Option<String>>,
}

impl Settings {
    /// The settings `binary --help` lists, or `None` when it lists none (a service whose
    /// binary does nothing yet).
    pub fn of_binary(binary: &Path) -> anyhow::Result<Option<Self>> {
        // No inherited environment: clap would print inherited values instead of defaults.
        let output = Command::new(binary)
            .arg("--help")
            .env_clear()
            .output()
            .with_context(|| format!("run {} --help", binary.display()))?;
        let settings = Self::from_help(&String::from_utf8_lossy(&output.stdout));
        Ok(if settings.defaults.is_empty() {
            None
        } else {
            Some(settings)
        })
    }

    /// The settings of a clap command (for checks that need no built binary).
    pub fn of_command(command: &clap::Command) -> Self {
        let defaults = command
            .get_arguments()
            .filter_map(|argument| {
                let name = argument.get_env()?.to_string_lossy().into_owned();
                let default = argument
                    .get_default_values()
                    .first()
                    .map(|value| value.to_string_lossy().into_owned());
                Some((name, default))
            })
            .collect();
        Self { defaults }
    }

    /// Parses clap's long help: each `[env: NAME...]`, then its `[default: ...]` if one
    /// follows before the next setting.
    pub fn from_help(help: &str) -> Self {
        let mut defaults = BTreeMap::new();
        let mut rest = help;
        while let Some(start) = rest.find("[env: ") {
            rest = &rest[start + "[env: ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let this_setting = match rest.find("[env: ") {
                Some(next) => &rest[..next],
                None => rest,
            };
            let default = this_setting.find("[default: ").and_then(|at| {
                let value = &this_setting[at + "[default: ".len()..];
                value.find(']').map(|end| value[..end].to_string())
            });
            if !name.is_empty() {
                defaults.insert(name, default);
            }
        }
        Self { defaults }
    }

    /// Whether the binary reads `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.defaults.contains_key(name)
    }

    /// Settings whose default only works on one machine (a loopback address): in a pod
    /// each must be set, or the service would listen or call where nothing is.
    pub fn loopback_defaults(&self) -> impl Iterator<Item = &str> {
        self.defaults.iter().filter_map(|(name, default)| {
            let default = default.as_deref()?;
            let loopback = default.contains("127.0.0.1")
                || default.contains("localhost")
                || default.contains("[::1]");
            loopback.then_some(name.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Options:
      --listen <LISTEN>
          Address to serve gRPC on [env: KOSHA_LISTEN=] [default: 127.0.0.1:50051]
      --database-url <DATABASE_URL>
          Database URL [env: KOSHA_DATABASE_URL]
      --scheduler-addr <ADDR>
          The scheduler
          [env: KOSHA_SCHEDULER_ADDR=]
          [default: http://localhost:50051]
      --max-upload-bytes <MAX_UPLOAD_BYTES>
          Largest upload [env: KOSHA_MAX_UPLOAD_BYTES=] [default: 67108864]
  -h, --help
          Print help
";

    #[test]
    fn every_env_setting_is_read_with_its_default() {
        let settings = Settings::from_help(HELP);

        assert_eq!(settings.defaults.len(), 4);
        assert_eq!(
            settings.defaults["KOSHA_LISTEN"].as_deref(),
            Some("127.0.0.1:50051")
        );
        assert_eq!(settings.defaults["KOSHA_DATABASE_URL"], None);
        assert_eq!(
            settings.defaults["KOSHA_MAX_UPLOAD_BYTES"].as_deref(),
            Some("67108864")
        );
    }

    #[test]
    fn settings_defaulting_to_loopback_are_singled_out() {
        let settings = Settings::from_help(HELP);

        let loopback: Vec<&str> = settings.loopback_defaults().collect();

        assert_eq!(loopback, ["KOSHA_LISTEN", "KOSHA_SCHEDULER_ADDR"]);
    }

    #[test]
    fn the_common_settings_read_from_clap_match_what_help_prints() {
        use clap::Args as _;
        let command = kosha_runtime::config::CommonArgs::augment_args(clap::Command::new("t"));

        let settings = Settings::of_command(&command);
        let from_help = Settings::from_help(&command.clone().render_long_help().to_string());

        assert!(settings.knows("KOSHA_LISTEN"));
        assert!(settings.knows("KOSHA_DATABASE_URL_FILE"));
        assert_eq!(settings, from_help);
    }
}
