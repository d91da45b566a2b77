//! Identifiers, each checked once at the edge by a parsing constructor.
//!
//! Rules (also stated in the contract):
//! - client id, channel code and SKU follow the suite-wide formats of
//!   [`kosha_runtime::validate`]; inventory does not consult the product master, so any SKU
//!   of the right format is accepted (it simply has no stock until received);
//! - pool name: 1-64 of `A-Z`, `0-9`, `_`, `-`, starting with a letter; `COMMON` is every
//!   client's default pool;
//! - order ref: 1-200 printable ASCII characters without spaces; line id: 1-64 of the same;
//! - idempotency key: 1-200 printable ASCII characters without spaces;
//! - actor: 1-128 characters, no control characters.

use std::fmt;

use kosha_runtime::{Error, validate};

/// Name of the pool every client has.
pub const COMMON_POOL: &str = "COMMON";

/// Longest pool name.
const MAX_POOL_NAME_LEN: usize = 64;
/// Longest order ref.
const MAX_ORDER_REF_LEN: usize = 200;
/// Longest line id.
const MAX_LINE_ID_LEN: usize = 64;
/// Longest idempotency key.
const MAX_KEY_LEN: usize = 200;
/// Longest actor.
const MAX_ACTOR_LEN: usize = 128;

/// Declares a string newtype with `as_str`, `Display` and `into_string`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A seller (tenant).
    ClientId
);
string_id!(
    /// A sales channel code, e.g. `AMAZON`.
    ChannelCode
);
string_id!(
    /// A client's SKU.
    Sku
);
string_id!(
    /// A pool name.
    PoolName
);
string_id!(
    /// An order's natural key within its client, e.g. `AMAZON:404-7483843-3467836`.
    OrderRef
);
string_id!(
    /// A line id within an order.
    LineId
);
string_id!(
    /// A caller's idempotency key.
    IdempotencyKey
);
string_id!(
    /// Who asks: a user or a service name.
    Actor
);

// === impl ClientId ===

impl ClientId {
    /// Parses the client id in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::client_id(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// A client id read back from the database (checked when it was written).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl ChannelCode ===

impl ChannelCode {
    /// Parses the channel code in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::channel_code(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// A channel code read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl Sku ===

impl Sku {
    /// Parses the SKU in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::sku(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// A SKU read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl PoolName ===

impl PoolName {
    /// Parses the pool name in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::invalid(field, "pool name is required"));
        }
        let valid = text.len() <= MAX_POOL_NAME_LEN
            && text.starts_with(|c: char| c.is_ascii_uppercase())
            && text
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_-".contains(c));
        if !valid {
            return Err(Error::invalid(
                field,
                format!(
                    "`{text}` is not a valid pool name (1-{MAX_POOL_NAME_LEN} of A-Z, 0-9, `_`, \
                     `-`, starting with a letter)"
                ),
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// Parses an optional pool name: empty means none.
    pub fn parse_opt(field: &str, text: &str) -> Result<Option<Self>, Error> {
        if text.is_empty() {
            Ok(None)
        } else {
            Self::parse(field, text).map(Some)
        }
    }

    /// The `COMMON` pool.
    pub fn common() -> Self {
        Self(COMMON_POOL.to_string())
    }

    /// Whether this is `COMMON`.
    pub fn is_common(&self) -> bool {
        self.0 == COMMON_POOL
    }

    /// A pool name read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl OrderRef ===

impl OrderRef {
    /// Parses the order ref in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        printable_token(field, text, "order ref", MAX_ORDER_REF_LEN).map(Self)
    }

    /// An order ref read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl LineId ===

impl LineId {
    /// Parses the line id in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        printable_token(field, text, "line id", MAX_LINE_ID_LEN).map(Self)
    }

    /// A line id read back from the database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

// === impl IdempotencyKey ===

impl IdempotencyKey {
    /// Parses the idempotency key in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        printable_token(field, text, "idempotency key", MAX_KEY_LEN).map(Self)
    }

    /// A key made by this service itself (e.g. for a scheduled job), trusted as is.
    pub fn internal(text: String) -> Self {
        Self(text)
    }
}

// === impl Actor ===

impl Actor {
    /// Parses the actor in `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        if text.trim().is_empty() {
            return Err(Error::invalid(
                field,
                "actor is required (a user or service name)",
            ));
        }
        if text.chars().count() > MAX_ACTOR_LEN || text.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("actor must be 1-{MAX_ACTOR_LEN} characters without control characters"),
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// An actor named by this service itself.
    pub fn internal(text: &str) -> Self {
        Self(text.to_string())
    }
}

/// Checks 1-`max` printable ASCII characters without spaces.
fn printable_token(field: &str, text: &str, what: &str, max: usize) -> Result<String, Error> {
    if text.is_empty() {
        return Err(Error::invalid(field, format!("{what} is required")));
    }
    if text.len() > max {
        return Err(Error::invalid(
            field,
            format!("{what} is longer than {max} characters"),
        ));
    }
    if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!("{what} must be printable ASCII without spaces; found {bad:?}"),
        ));
    }
    Ok(text.to_string())
}

pub use kosha_runtime::validate::free_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_upper_case_codes() {
        assert!(PoolName::parse("pool", "FLIPKART-BBD_2").is_ok());
        for bad in ["", "flipkart", "1POOL", "A B", "-X", &"P".repeat(65)] {
            let error = PoolName::parse("pool", bad).unwrap_err();
            assert!(error.to_string().contains("`pool`"), "{bad}: {error}");
        }
    }

    #[test]
    fn order_refs_and_line_ids_are_printable_tokens() {
        assert!(OrderRef::parse("order_ref", "AMAZON:404-7483843-3467836").is_ok());
        assert!(OrderRef::parse("order_ref", "has space").is_err());
        assert!(OrderRef::parse("order_ref", "").is_err());
        assert!(LineId::parse("lines[0].line_id", &"x".repeat(65)).is_err());
        assert!(LineId::parse("lines[0].line_id", "1").is_ok());
    }

    #[test]
    fn actor_is_required_and_has_no_control_characters() {
        assert!(Actor::parse("actor", "ops@acme").is_ok());
        assert!(Actor::parse("actor", " ").is_err());
        assert!(Actor::parse("actor", "a\u{7}b").is_err());
    }
}
