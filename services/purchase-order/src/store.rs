//! Storage of POs and GRNs, in portable SQL over SQLite and PostgreSQL.
//!
//! Functions take a connection (`&mut *tx` inside a transaction, or one acquired from the
//! pool for reads), so the service decides what runs together in one transaction.
//! Quantities are BIGINT units, costs BIGINT paise, instants BIGINT microseconds UTC.

use kosha_runtime::db::Migration;

/// GRNs and their delivery to inventory.
pub mod grns;
/// Outward POs and their bulk-order links.
pub mod outward;
/// Inward POs and their lines.
pub mod purchase_orders;

/// Schema changes, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "purchase orders, grns, outward purchase orders",
        sql: r#"
CREATE TABLE purchase_orders (
    client_id TEXT NOT NULL,
    po_number TEXT NOT NULL,
    supplier TEXT NOT NULL,
    status TEXT NOT NULL,
    grn_count BIGINT NOT NULL DEFAULT 0,
    close_reason TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    closed_by TEXT NOT NULL DEFAULT '',
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    close_time BIGINT,
    PRIMARY KEY (client_id, po_number)
);
CREATE INDEX purchase_orders_by_supplier ON purchase_orders (client_id, supplier, po_number);

CREATE TABLE purchase_order_lines (
    client_id TEXT NOT NULL,
    po_number TEXT NOT NULL,
    sku TEXT NOT NULL,
    ordered BIGINT NOT NULL,
    unit_cost BIGINT NOT NULL,
    expected_date TEXT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    passed BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    short_closed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, po_number, sku)
);
CREATE INDEX purchase_order_lines_by_sku ON purchase_order_lines (client_id, sku);

CREATE TABLE grns (
    client_id TEXT NOT NULL,
    grn_number TEXT NOT NULL,
    po_number TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    delivery TEXT NOT NULL,
    delivery_attempts BIGINT NOT NULL DEFAULT 0,
    last_delivery_error TEXT NOT NULL DEFAULT '',
    next_attempt_time BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    deliver_time BIGINT,
    PRIMARY KEY (client_id, grn_number)
);
CREATE INDEX grns_by_po ON grns (client_id, po_number, grn_number);
CREATE INDEX grns_due ON grns (delivery, next_attempt_time);

CREATE TABLE grn_lines (
    client_id TEXT NOT NULL,
    grn_number TEXT NOT NULL,
    sku TEXT NOT NULL,
    passed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    part BIGINT NOT NULL,
    PRIMARY KEY (client_id, grn_number, sku)
);
CREATE INDEX grn_lines_by_sku ON grn_lines (client_id, sku);

CREATE TABLE outward_purchase_orders (
    client_id TEXT NOT NULL,
    po_number TEXT NOT NULL,
    customer TEXT NOT NULL,
    fulfilment_type TEXT NOT NULL,
    qc_grade TEXT NOT NULL,
    order_link TEXT NOT NULL,
    order_id TEXT NOT NULL DEFAULT '',
    link_attempts BIGINT NOT NULL DEFAULT 0,
    last_link_error TEXT NOT NULL DEFAULT '',
    next_attempt_time BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    link_time BIGINT,
    PRIMARY KEY (client_id, po_number)
);
CREATE INDEX outward_purchase_orders_by_customer
    ON outward_purchase_orders (client_id, customer, po_number);
CREATE INDEX outward_purchase_orders_by_order ON outward_purchase_orders (client_id, order_id);
CREATE INDEX outward_purchase_orders_due ON outward_purchase_orders (order_link, next_attempt_time);

CREATE TABLE outward_purchase_order_lines (
    client_id TEXT NOT NULL,
    po_number TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (client_id, po_number, sku)
);
CREATE INDEX outward_purchase_order_lines_by_sku ON outward_purchase_order_lines (client_id, sku);
"#,
    },
    Migration {
        version: 2,
        name: "a delivery key of each GRN's own",
        // A GRN's units reach inventory under idempotency keys built from its number,
        // which anyone could send first by hand; a random part stored with the GRN makes
        // them its own. GRNs recorded before keep the keys they were delivered under.
        sql: "ALTER TABLE grns ADD COLUMN delivery_nonce TEXT NOT NULL DEFAULT '';",
    },
];

/// A GRN or an outward PO waiting for delivery, as the background redelivery finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Owner.
    pub client_id: String,
    /// GRN number (or PO number).
    pub number: String,
    /// When it became due; the claim checks it has not changed.
    pub next_attempt_time: i64,
}

/// Rows per multi-row INSERT: few round trips, and far below either database's limit of
/// bound parameters per statement.
const INSERT_BATCH_ROWS: usize = 200;

/// Keys per `IN (…)` list when reading many rows by key.
const IN_LIST_KEYS: usize = 500;

/// `($s, $s+1, …), (…)` for `rows` rows of `columns` parameters, numbered from `start`.
fn values_placeholders(rows: usize, columns: usize, start: usize) -> String {
    let mut text = String::new();
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", start + row * columns + column));
        }
        text.push(')');
    }
    text
}

/// `$s, $s+1, …` for an `IN (…)` list of `count` keys, numbered from `start`.
fn in_list_placeholders(count: usize, start: usize) -> String {
    (0..count)
        .map(|i| format!("${}", start + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `LIKE` pattern matching `text` literally, with `!` as the escape character.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '!' | '%' | '_') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped
}

/// The parameters of a list or search query: text values bound in order, then the limit.
struct QueryParams {
    values: Vec<String>,
}

impl QueryParams {
    fn new() -> Self {
        Self { values: Vec::new() }
    }

    /// Adds a text value and returns its placeholder.
    fn push(&mut self, value: impl Into<String>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// The placeholder the limit takes after every text value.
    fn limit_placeholder(&self) -> String {
        format!("${}", self.values.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(values_placeholders(2, 3, 2), "($2, $3, $4), ($5, $6, $7)");
        assert_eq!(in_list_placeholders(3, 2), "$2, $3, $4");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_literal("PO_1%!"), "PO!_1!%!!");
    }
}
