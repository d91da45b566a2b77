//! SQL of the catalog, portable between SQLite and PostgreSQL (see `kosha_runtime::db`).
//!
//! Every function takes a connection, so the same query runs on the pool or inside a
//! transaction. Functions that read or write many rows take one chunk at a time
//! ([`CHUNK_ROWS`] keys or [`INSERT_ROWS`] rows) and run one statement per chunk; callers
//! cut their input with `chunks`.

/// Channel listings.
pub mod listings;
/// Clients and channels.
pub mod master;
/// Products and their channel prices.
pub mod products;

use kosha_runtime::db::Migration;

/// Most keys in one `IN (…)` list. Far below SQLite's 32,766 parameters and PostgreSQL's
/// 65,535, and large enough that a 100,000-row check is a hundred queries.
pub const CHUNK_ROWS: usize = 1000;

/// Rows per multi-row `INSERT`: 500 products are 5,500 parameters.
pub const INSERT_ROWS: usize = 500;

/// The catalog's schema, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "clients and channels",
        sql: "
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    create_time BIGINT NOT NULL
);
CREATE TABLE channels (
    code TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    kind BIGINT NOT NULL,
    create_time BIGINT NOT NULL
);
-- INTERNAL is the channel of B2B orders made from outward POs; it has always existed,
-- hence a creation time at the epoch.
INSERT INTO channels (code, display_name, kind, create_time)
VALUES ('INTERNAL', 'Internal (B2B)', 2, 0);
",
    },
    Migration {
        version: 2,
        name: "products",
        sql: "
CREATE TABLE products (
    client_id TEXT NOT NULL REFERENCES clients (client_id),
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    style TEXT NOT NULL,
    category TEXT NOT NULL,
    color TEXT NOT NULL,
    size TEXT NOT NULL,
    mrp_paise BIGINT,
    active BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (client_id, sku)
);
CREATE INDEX products_by_style ON products (client_id, style);
CREATE TABLE product_channel_mrps (
    client_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    channel TEXT NOT NULL REFERENCES channels (code),
    mrp_paise BIGINT NOT NULL,
    PRIMARY KEY (client_id, sku, channel),
    FOREIGN KEY (client_id, sku) REFERENCES products (client_id, sku)
);
",
    },
    Migration {
        version: 3,
        name: "listings",
        sql: "
CREATE TABLE listings (
    client_id TEXT NOT NULL,
    channel TEXT NOT NULL REFERENCES channels (code),
    marketplace_sku TEXT NOT NULL,
    sku TEXT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (client_id, channel, marketplace_sku),
    FOREIGN KEY (client_id, sku) REFERENCES products (client_id, sku)
);
CREATE INDEX listings_by_sku ON listings (client_id, sku);
",
    },
];

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    let mut text = String::with_capacity(count * 6);
    for index in 0..count {
        if index > 0 {
            text.push_str(", ");
        }
        text.push('$');
        text.push_str(&(first + index).to_string());
    }
    text
}

/// `($first, …), (…), …` for `rows` tuples of `width` parameters each.
fn value_rows(first: usize, rows: usize, width: usize) -> String {
    let mut text = String::with_capacity(rows * width * 6);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        text.push_str(&placeholders(first + row * width, width));
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_the_first_parameter() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(value_rows(2, 2, 2), "($2, $3), ($4, $5)");
        assert_eq!(placeholders(1, 0), "");
    }
}
