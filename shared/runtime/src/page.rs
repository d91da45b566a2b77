//! Pagination: `page_size` and opaque `page_token`s on every list call.
//!
//! A token is the key of the last row of the previous page with a hash of the listing's
//! filters, hex-encoded so callers treat it as opaque; lists are ordered by that key, so a
//! page never repeats or skips a row that existed when the listing began, and a token sent
//! with other filters is refused.

use crate::error::Error;

/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// The page size to use for a requested one.
pub fn page_size(requested: i32) -> Result<i64, Error> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        n => Ok(i64::from(n).min(MAX_PAGE_SIZE)),
    }
}

/// Encodes the key of the last row of a page.
fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a token from a request; an empty token is the first page.
fn decode_token(token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token", "not a token returned by this list call");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map(Some).map_err(|_| bad())
}

/// Encodes the key of the last row of a page of the listing `query` describes (its filters,
/// written out by the caller), so the token is refused with any other filters.
pub fn encode_query_token(query: &str, key: &str) -> String {
    encode_token(&format!("{:016x}{QUERY_SEPARATOR}{key}", query_hash(query)))
}

/// Decodes a token of [`encode_query_token`]; a token of a listing with other filters is
/// refused: resuming it would skip or repeat rows of this one.
pub fn decode_query_token(query: &str, token: &str) -> Result<Option<String>, Error> {
    let Some(text) = decode_token(token)? else {
        return Ok(None);
    };
    let (hash, key) = text
        .split_once(QUERY_SEPARATOR)
        .ok_or_else(|| Error::invalid("page_token", "not a token returned by this list call"))?;
    if hash != format!("{:016x}", query_hash(query)) {
        return Err(Error::invalid(
            "page_token",
            "was returned for other filters; send the same filters with it, or start again \
             without a token",
        ));
    }
    Ok(Some(key.to_string()))
}

/// Decodes a token of [`encode_query_token`] whose key is a row id, for listings ordered by
/// id; the first page starts after id 0.
pub fn decode_id_token(query: &str, token: &str) -> Result<i64, Error> {
    match decode_query_token(query, token)? {
        None => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| Error::invalid("page_token", "not a token returned by this list call")),
    }
}

/// The filters of a list request, for [`encode_query_token`] and [`decode_query_token`]:
/// the request (a message with `page_token` and `page_size` fields) written out with both
/// cleared, so a caller may change the page size between pages but nothing else.
#[macro_export]
macro_rules! list_filters {
    ($request:expr) => {{
        let mut filters = ::std::clone::Clone::clone(&$request);
        filters.page_token.clear();
        filters.page_size = 0;
        format!("{filters:?}")
    }};
}

/// Between a token's filter hash and its key.
const QUERY_SEPARATOR: char = '\u{1f}';

/// A token's hash of its listing's filters: stable, so it stays valid on another replica.
fn query_hash(query: &str) -> u64 {
    stable_hash(query.as_bytes())
}

/// FNV-1a, 64 bits: the same across processes and releases, unlike the standard library's
/// hasher, so what it marks can be stored and checked by another replica or a later build.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let token = encode_token("acme\u{1}SKU-1");
        assert_eq!(
            decode_token(&token).unwrap().as_deref(),
            Some("acme\u{1}SKU-1")
        );
        assert_eq!(decode_token("").unwrap(), None);
        assert!(decode_token("zz").is_err());
        assert!(decode_token("abc").is_err());
    }

    #[test]
    fn query_tokens_resume_only_their_own_filters() {
        let token = encode_query_token("status=FAILED", "42");

        let same = decode_query_token("status=FAILED", &token).unwrap();
        let other = decode_query_token("status=CANCELLED", &token).unwrap_err();
        let plain = decode_query_token("status=FAILED", &encode_token("42")).unwrap_err();

        assert_eq!(same.as_deref(), Some("42"));
        assert!(other.to_string().contains("other filters"), "{other}");
        assert!(plain.to_string().contains("not a token"), "{plain}");
        assert_eq!(decode_query_token("status=FAILED", "").unwrap(), None);
    }

    #[test]
    fn id_tokens_hold_a_row_id_and_nothing_else() {
        let token = encode_query_token("status=FAILED", "42");
        let word = encode_query_token("status=FAILED", "forty-two");

        assert_eq!(decode_id_token("status=FAILED", &token).unwrap(), 42);
        assert_eq!(decode_id_token("status=FAILED", "").unwrap(), 0);
        assert!(decode_id_token("status=FAILED", &word).is_err());
        assert!(decode_id_token("status=CANCELLED", &token).is_err());
    }

    #[test]
    fn page_sizes_are_capped() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
