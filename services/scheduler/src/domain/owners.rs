//! Job owners: the services whose `JobHandler` the scheduler calls, by name.

use std::collections::BTreeMap;

/// The Kosha services that own jobs, with the variable naming each one's address.
pub const BUILTIN_OWNERS: [(&str, &str); 4] = [
    ("catalog", "KOSHA_CATALOG_ADDR"),
    ("inventory", "KOSHA_INVENTORY_ADDR"),
    ("order", "KOSHA_ORDER_ADDR"),
    ("purchase-order", "KOSHA_PURCHASE_ORDER_ADDR"),
];

/// Longest owner name.
const MAX_OWNER_LEN: usize = 63;

/// Why `name` cannot name an owner, if it cannot: 1-63 of `a-z`, `0-9`, `-`, starting
/// with a letter (the shape of a Kubernetes service name).
pub fn owner_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("owner name is empty".to_string());
    }
    let well_formed = name.len() <= MAX_OWNER_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if well_formed {
        None
    } else {
        Some(format!(
            "`{name}` is not an owner name (1-63 of a-z, 0-9, `-`, starting with a letter)"
        ))
    }
}

/// Every owner this scheduler can call, with its handler's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    addresses: BTreeMap<String, String>,
}

impl Owners {
    /// Owners from a name → address map (names already checked).
    pub fn new(addresses: BTreeMap<String, String>) -> Self {
        debug_assert!(
            addresses
                .keys()
                .all(|name| owner_name_problem(name).is_none())
        );
        Self { addresses }
    }

    /// The handler address of `owner`, if configured.
    pub fn address(&self, owner: &str) -> Option<&str> {
        self.addresses.get(owner).map(String::as_str)
    }

    /// Owner names and addresses, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.addresses
            .iter()
            .map(|(name, address)| (name.as_str(), address.as_str()))
    }

    /// Whether no owner is configured (the scheduler then accepts no job).
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Checks that `owner` is configured; the error lists those that are.
    pub fn check(&self, owner: &str) -> Result<(), String> {
        if owner.is_empty() {
            return Err("owner is required: the name of the service that runs the job".into());
        }
        if self.addresses.contains_key(owner) {
            return Ok(());
        }
        let known: Vec<&str> = self.addresses.keys().map(String::as_str).collect();
        Err(format!(
            "unknown owner `{owner}`: this scheduler has handler addresses for [{}]",
            known.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_look_like_service_names() {
        assert!(owner_name_problem("purchase-order").is_none());
        assert!(owner_name_problem("").is_some());
        assert!(owner_name_problem("Order").is_some());
        assert!(owner_name_problem("9lives").is_some());
        assert!(owner_name_problem("a b").is_some());
    }

    #[test]
    fn an_unknown_owner_is_refused_with_the_known_ones_listed() {
        let owners = Owners::new(BTreeMap::from([("order".into(), "127.0.0.1:1".into())]));

        let problem = owners.check("billing").unwrap_err();

        assert!(owners.check("order").is_ok());
        assert!(
            problem.contains("`billing`") && problem.contains("[order]"),
            "{problem}"
        );
    }
}
