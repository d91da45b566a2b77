//! Master data: clients (sellers) and channels (where orders come from).

use super::ids::{ChannelCode, ChannelKind, ClientId};
use super::product::text_problem;

/// A seller: the tenant everything else belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Id chosen at creation.
    pub client_id: ClientId,
    /// Human-readable name.
    pub display_name: String,
    /// Created at, microseconds UTC.
    pub create_time: i64,
}

/// A sales channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Code, e.g. `AMAZON`.
    pub code: ChannelCode,
    /// Human-readable name.
    pub display_name: String,
    /// Marketplace or B2B.
    pub kind: ChannelKind,
    /// Registered at, microseconds UTC.
    pub create_time: i64,
}

/// A display name as given, or `default` when blank; the error says what is wrong.
pub fn display_name_or(given: &str, default: &str) -> Result<String, String> {
    let name = given.trim();
    if name.is_empty() {
        return Ok(default.to_string());
    }
    match text_problem(name) {
        Some(problem) => Err(problem),
        None => Ok(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_display_name_defaults_and_a_bad_one_is_refused() {
        assert_eq!(display_name_or("  ", "acme").unwrap(), "acme");
        assert_eq!(display_name_or(" Acme Ltd ", "acme").unwrap(), "Acme Ltd");
        assert!(display_name_or("a\tb", "acme").is_err());
        assert!(display_name_or("Acme \u{202E}dtL", "acme").is_err());
        assert_eq!(display_name_or("ভারত", "acme").unwrap(), "ভারত");
    }
}
