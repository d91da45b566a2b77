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

/// Writes the parameters of a statement built at run time, numbered in the order they
/// are bound.
///
/// PostgreSQL takes only `$N`. SQLite takes `$N` too, but finds a named parameter by a
/// linear search of the statement's parameter names each time a value is bound, so a
/// multi-row `INSERT` with thousands of `$N` binds in quadratic time (a 100,000-row upload
/// spent most of its time there); on SQLite these statements use `?`, bound by position.
/// One statement never mixes the two forms: sqlx numbers `?` apart from `$N`.
struct Binder {
    positional: bool,
    bound: usize,
}

impl Binder {
    /// A binder for statements run on `conn`.
    fn new(conn: &sqlx::AnyConnection) -> Self {
        Self::with_positional(conn.backend_name() == "SQLite")
    }

    fn with_positional(positional: bool) -> Self {
        Self {
            positional,
            bound: 0,
        }
    }

    /// The next parameter.
    fn next(&mut self) -> String {
        self.bound += 1;
        if self.positional {
            "?".to_string()
        } else {
            format!("${}", self.bound)
        }
    }

    /// `count` parameters separated by commas.
    fn list(&mut self, count: usize) -> String {
        let params: Vec<String> = (0..count).map(|_| self.next()).collect();
        params.join(", ")
    }

    /// `(…), (…)`: `rows` tuples of `width` parameters.
    fn rows(&mut self, rows: usize, width: usize) -> String {
        let tuples: Vec<String> = (0..rows)
            .map(|_| format!("({})", self.list(width)))
            .collect();
        tuples.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_count_on_across_a_statement() {
        let mut binder = Binder::with_positional(false);

        assert_eq!(binder.next(), "$1");
        assert_eq!(binder.list(2), "$2, $3");
        assert_eq!(binder.rows(2, 2), "($4, $5), ($6, $7)");
        assert_eq!(binder.list(0), "");
    }

    #[test]
    fn positional_parameters_are_all_question_marks() {
        let mut binder = Binder::with_positional(true);

        assert_eq!(binder.next(), "?");
        assert_eq!(binder.rows(2, 2), "(?, ?), (?, ?)");
    }
}
