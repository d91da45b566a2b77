//! Identifiers and names, each checked once by its parsing constructor.
//!
//! Every `parse` returns the problem in words on failure, so the same rule serves a field of
//! a request (`Error::invalid(field, problem)`) and a cell of an uploaded file (a row error).

use std::fmt;

use kosha_runtime::validate;

/// Longest PO or GRN number.
const MAX_NUMBER_LEN: usize = 64;

/// Longest supplier or customer name.
const MAX_PARTY_LEN: usize = 128;

/// Longest free-text reason or note.
const MAX_REASON_LEN: usize = 500;

/// Longest actor name.
const MAX_ACTOR_LEN: usize = 128;

/// Who is recorded when a request names nobody.
pub const DEFAULT_ACTOR: &str = "operator";

/// Checks a document number (PO or GRN): 1-64 of ASCII letters, digits, `-`, `_`, `.`, `/`.
fn document_number_problem(kind: &str, text: &str) -> Option<String> {
    if text.is_empty() {
        return Some(format!("{kind} number is blank"));
    }
    if text.len() > MAX_NUMBER_LEN {
        return Some(format!(
            "{kind} number is longer than {MAX_NUMBER_LEN} characters"
        ));
    }
    let bad_opt = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)));
    bad_opt.map(|bad| {
        format!(
            "`{text}` is not a valid {kind} number: `{bad}` is not allowed (letters, digits, `-`, \
             `_`, `.`, `/`)"
        )
    })
}

/// A purchase order's number, unique per client and direction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoNumber(String);

impl PoNumber {
    /// Checks the format.
    pub fn parse(text: &str) -> Result<Self, String> {
        match document_number_problem("PO", text) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A goods receipt's number, unique per client: the idempotency key of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrnNumber(String);

impl GrnNumber {
    /// Checks the format.
    pub fn parse(text: &str) -> Result<Self, String> {
        match document_number_problem("GRN", text) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GrnNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's SKU, in the format the product master uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sku(String);

impl Sku {
    /// Checks the format (not that the product exists: that needs the catalog).
    pub fn parse(text: &str) -> Result<Self, String> {
        match validate::sku_problem(text) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
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

/// Checks a free-text value: not blank, at most `max` characters, no control characters.
fn text_problem(what: &str, text: &str, max: usize) -> Option<String> {
    if text.trim().is_empty() {
        return Some(format!("{what} is blank"));
    }
    if text.chars().count() > max {
        return Some(format!("{what} is longer than {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some(format!("{what} contains a control character"));
    }
    None
}

/// A supplier's or a B2B customer's name as the operator writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartyName(String);

impl PartyName {
    /// Checks a name; `what` (`supplier`, `customer`) names it in the problem. Surrounding
    /// spaces are dropped.
    pub fn parse(what: &str, text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text_problem(what, text, MAX_PARTY_LEN) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why something was done, in the operator's words (a close, a GRN without a PO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Checks a required reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text_problem("reason", text, MAX_REASON_LEN) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// Checks an optional note: blank is allowed and kept as empty.
    pub fn parse_optional(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self(String::new()));
        }
        Self::parse(text)
    }

    /// The reason as text (empty for a blank optional note).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who asks: a user or a service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// Checks an actor; blank means [`DEFAULT_ACTOR`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(DEFAULT_ACTOR.to_string()));
        }
        match text_problem("actor", text, MAX_ACTOR_LEN) {
            Some(problem) => Err(problem),
            None => Ok(Self(text.to_string())),
        }
    }

    /// The actor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_numbers_allow_the_sku_alphabet_only() {
        assert!(PoNumber::parse("CUST-0001-2021-06-05").is_ok());
        assert!(GrnNumber::parse("GRN/2024/001").is_ok());
        assert!(PoNumber::parse("").unwrap_err().contains("blank"));
        assert!(
            PoNumber::parse("PO 1")
                .unwrap_err()
                .contains("` ` is not allowed")
        );
        assert!(
            GrnNumber::parse(&"G".repeat(65))
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            PartyName::parse("supplier", "  Acme Textiles ")
                .unwrap()
                .as_str(),
            "Acme Textiles"
        );
        assert!(
            PartyName::parse("supplier", "   ")
                .unwrap_err()
                .contains("supplier is blank")
        );
        assert!(
            PartyName::parse("customer", "a\u{7}b")
                .unwrap_err()
                .contains("control")
        );
    }

    #[test]
    fn actor_defaults_to_operator_and_reason_may_be_optional() {
        assert_eq!(Actor::parse("").unwrap().as_str(), DEFAULT_ACTOR);
        assert_eq!(Reason::parse_optional("  ").unwrap().as_str(), "");
        assert!(Reason::parse("").is_err());
    }
}
