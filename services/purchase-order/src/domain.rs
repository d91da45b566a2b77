//! Types and rules of purchase orders, free of storage and transport.

/// Goods receipts and their parts for inventory.
pub mod grn;
/// Identifiers and names with their parsing constructors.
pub mod ids;
/// Outward (B2B) POs and their bulk orders.
pub mod outward;
/// Inward POs and the rules of receiving against them.
pub mod purchase_order;
/// Reading and checking upload files.
pub mod upload;
/// Quantities, money, dates, fulfilment types and grades.
pub mod values;

/// How long to wait before delivering again after `attempts` failed deliveries: the
/// base interval doubled per failure, at most an hour, so a dependency that is down for
/// long is not hammered and one that is back is tried again soon.
pub fn retry_delay_micros(base_micros: i64, attempts: i64) -> i64 {
    const MAX_DELAY_MICROS: i64 = 3_600_000_000;
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    base_micros
        .saturating_mul(1_i64 << doublings)
        .min(MAX_DELAY_MICROS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped_at_an_hour() {
        assert_eq!(retry_delay_micros(1_000, 1), 1_000);
        assert_eq!(retry_delay_micros(1_000, 3), 4_000);
        assert_eq!(retry_delay_micros(30_000_000, 50), 3_600_000_000);
    }
}
