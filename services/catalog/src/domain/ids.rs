//! Identifiers, each checked once by its parsing constructor.
//!
//! Values read back from our own tables were checked on the way in, so they are wrapped
//! with `from_stored` without checking again.

use std::fmt;

use kosha_runtime::Error;
use kosha_runtime::validate;

/// A client (tenant) id: 1-64 of `a-z`, `0-9`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Checks `text` from request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::client_id(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// A value read from our own tables.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl ChannelCode ===

/// A channel code: 1-32 of `A-Z`, `0-9`, `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelCode(String);

impl ChannelCode {
    /// The channel of B2B orders made from outward POs; it always exists.
    pub const INTERNAL: &'static str = "INTERNAL";

    /// Checks `text` from request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::channel_code(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// Why `text` is not a channel code, if it is not (for upload cells).
    pub fn problem(text: &str) -> Option<String> {
        match validate::channel_code("channel", text) {
            Ok(()) => None,
            Err(Error::InvalidArgument { violations, .. }) => violations
                .into_iter()
                .next()
                .map(|violation| violation.description),
            Err(other) => Some(other.to_string()),
        }
    }

    /// A value read from our own tables.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Sku ===

/// A SKU, the client's or a marketplace's: 1-64 of letters, digits, `-`, `_`, `.`, `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Checks `text` from request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        validate::sku(field, text)?;
        Ok(Self(text.to_string()))
    }

    /// Checks an upload cell; the error says what is wrong in words.
    pub fn parse_cell(text: &str) -> Result<Self, String> {
        match validate::sku_problem(text) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// A value read from our own tables.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The SKU as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl ChannelKind ===

/// What kind of sales channel a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A marketplace (B2C); it may have its own MRP per product.
    Marketplace,
    /// Wholesale bulk orders.
    B2b,
}

impl ChannelKind {
    /// The value stored in `channels.kind`.
    pub fn to_stored(self) -> i64 {
        match self {
            Self::Marketplace => 1,
            Self::B2b => 2,
        }
    }

    /// A stored `channels.kind`.
    pub fn from_stored(value: i64) -> anyhow::Result<Self> {
        match value {
            1 => Ok(Self::Marketplace),
            2 => Ok(Self::B2b),
            other => anyhow::bail!("unknown stored channel kind {other}"),
        }
    }
}
