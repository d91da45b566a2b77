//! Formats of identifiers and values, checked once at the edge of every service.
//!
//! - client id: 1-64 of `a-z`, `0-9`, `-`, starting with a letter or digit;
//! - channel code: 1-32 of `A-Z`, `0-9`, `_`, starting with a letter;
//! - SKU (a client's or a marketplace's): 1-64 of ASCII letters, digits, `-`, `_`, `.`,
//!   `/`. A spreadsheet error such as `#REF!`, a blank, or a cell with spaces is not a SKU;
//! - money: a non-negative decimal with at most two decimals (`1299`, `1299.5`, `0.99`),
//!   stored as whole paise; no thousands separators, no decimal comma, no sign;
//! - quantity: a positive whole number, written `3` or `3.00`; at most one billion.

use crate::error::Error;

/// Longest SKU accepted.
pub const MAX_SKU_LEN: usize = 64;

/// Largest quantity in one line or one movement. Far above any real order, far below any
/// overflow when quantities are added up.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// Why `sku` is not a valid SKU, if it is not.
pub fn sku_problem(sku: &str) -> Option<String> {
    if sku.is_empty() {
        return Some("SKU is blank".to_string());
    }
    if sku.len() > MAX_SKU_LEN {
        return Some(format!("SKU is longer than {MAX_SKU_LEN} characters"));
    }
    if let Some(bad) = sku
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
    {
        return Some(format!(
            "`{sku}` is not a valid SKU: `{bad}` is not allowed \
             (letters, digits, `-`, `_`, `.`, `/`)"
        ));
    }
    None
}

/// Checks a SKU field of a request.
pub fn sku(field: &str, sku: &str) -> Result<(), Error> {
    match sku_problem(sku) {
        Some(problem) => Err(Error::invalid(field, problem)),
        None => Ok(()),
    }
}

/// Checks a client id field of a request.
pub fn client_id(field: &str, id: &str) -> Result<(), Error> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else if id.is_empty() {
        Err(Error::invalid(field, "client id is required"))
    } else {
        Err(Error::invalid(
            field,
            format!("`{id}` is not a valid client id (1-64 of a-z, 0-9, `-`)"),
        ))
    }
}

/// Checks a channel code field of a request.
pub fn channel_code(field: &str, code: &str) -> Result<(), Error> {
    let valid = !code.is_empty()
        && code.len() <= 32
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else if code.is_empty() {
        Err(Error::invalid(field, "channel code is required"))
    } else {
        Err(Error::invalid(
            field,
            format!("`{code}` is not a valid channel code (1-32 of A-Z, 0-9, `_`)"),
        ))
    }
}

/// Parses money into whole paise.
pub fn parse_money(text: &str) -> Result<i64, String> {
    let not_money = || {
        format!("`{text}` is not an amount: write digits with at most two decimals, e.g. 1299.50")
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 2 {
        return Err(not_money());
    }
    if text.ends_with('.') {
        return Err(not_money());
    }
    let too_large = || format!("`{text}` is too large: at most {}", format_money(MAX_PAISE));
    // All digits by now: a whole part that does not fit is too large, not malformed.
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| not_money())?;
    whole
        .checked_mul(100)
        .and_then(|paise| paise.checked_add(fraction))
        .filter(|paise| *paise <= MAX_PAISE)
        .ok_or_else(too_large)
}

/// The largest amount taken, in paise: ten billion rupees.
const MAX_PAISE: i64 = 1_000_000_000_000;

/// Whole paise as a decimal string with two decimals.
pub fn format_money(paise: i64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// Parses a positive whole quantity; `3.00` is 3, `3.5`, `1,000`, `-3` and `0` are not.
pub fn parse_quantity(text: &str) -> Result<i64, String> {
    let not_quantity = || format!("`{text}` is not a positive whole number");
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return Err(not_quantity()),
        None => text,
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_quantity());
    }
    let quantity: i64 = whole
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    if quantity == 0 {
        return Err(format!("`{text}`: quantity must be at least 1"));
    }
    if quantity > MAX_QUANTITY {
        return Err(format!("`{text}` is more than {MAX_QUANTITY}"));
    }
    Ok(quantity)
}

/// Checks free text (a reason, a note, a reference) for length and control characters;
/// line breaks and tabs are allowed, since a note may have several lines.
pub fn free_text(field: &str, text: &str, max: usize) -> Result<String, Error> {
    if text.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "control characters are not allowed"));
    }
    if has_direction_override(text) {
        return Err(Error::invalid(
            field,
            "text-direction override characters are not allowed",
        ));
    }
    Ok(text.to_string())
}

/// Whether `text` holds a text-direction override or isolate. They make text display in
/// another order than it is stored, so that a name can pass for another on an operator's
/// screen; no name or note needs them.
pub fn has_direction_override(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// `text` cut to `most` characters, with `mark` after what is kept when it was cut: a
/// quoted value or a message must stay readable however much was sent.
pub fn cut_to(text: &str, most: usize, mark: &str) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let kept: String = text.chars().take(most).collect();
    format!("{kept}{mark}")
}

/// Checks a quantity field of a request.
pub fn quantity(field: &str, quantity: i64) -> Result<(), Error> {
    if quantity <= 0 {
        return Err(Error::invalid(
            field,
            format!("quantity must be positive, got {quantity}"),
        ));
    }
    if quantity > MAX_QUANTITY {
        return Err(Error::invalid(
            field,
            format!("quantity {quantity} is more than {MAX_QUANTITY}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_skus_pass_and_spreadsheet_errors_do_not() {
        for good in [
            "JNE3781-KR-XXXL",
            "Os206_3141_S",
            "SET252-KR-PP-S.",
            "A/B.1",
        ] {
            assert_eq!(sku_problem(good), None, "{good}");
        }
        for bad in ["", "#REF!", "SKU 1", "ÄBC", &"X".repeat(65)] {
            assert!(sku_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn money_accepts_plain_decimals_only() {
        assert_eq!(parse_money("1299"), Ok(129_900));
        assert_eq!(parse_money("1299.5"), Ok(129_950));
        assert_eq!(parse_money("0.99"), Ok(99));
        for bad in [
            "1,800", "4,20", "abc", "", "-3", "1.234", "1.", ".5", "+5", " 5", "1e3",
        ] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
        assert_eq!(format_money(129_950), "1299.50");
        for huge in ["99999999999", "99999999999999999999999999"] {
            let refused = parse_money(huge).unwrap_err();
            assert!(
                refused.ends_with("is too large: at most 10000000000.00"),
                "{refused}"
            );
        }
    }

    #[test]
    fn quantities_are_positive_whole_numbers() {
        assert_eq!(parse_quantity("1.00"), Ok(1));
        assert_eq!(parse_quantity("12"), Ok(12));
        for bad in [
            "1,000",
            "12.5",
            "abc",
            "-3",
            "0",
            "0.00",
            "",
            "1.",
            "99999999999999999999",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_follow_their_formats() {
        assert!(client_id("c", "acme-1").is_ok());
        assert!(client_id("c", "Acme").is_err());
        assert!(client_id("c", "").is_err());
        assert!(channel_code("c", "AMAZON").is_ok());
        assert!(channel_code("c", "amazon").is_err());
        assert!(channel_code("c", "1X").is_err());
    }
}
