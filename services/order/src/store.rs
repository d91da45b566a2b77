//! SQL for orders, lines, holds, shipments, history, the outbox and feed cursors.
//!
//! Queries are written inline with the portable subset of [`kosha_runtime::db`]: `$N`
//! parameters, BIGINT and TEXT columns, instants as microseconds. Every change of an order
//! runs in one transaction that first locks the order's row ([`orders::lock`]), so
//! concurrent changes of one order (a release racing a pick, two releases of one hold)
//! queue on the database, whichever replica runs them.

pub mod orders;
pub mod work;

use kosha_runtime::db::Migration;

/// The order service's schema, in version order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders",
        sql: r#"
CREATE TABLE orders (
    id BIGSERIAL_PK,
    client_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_order_id TEXT NOT NULL,
    channel_order_id_lc TEXT NOT NULL,
    parent_order_id TEXT NOT NULL,
    parent_order_id_lc TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    fulfilment TEXT NOT NULL,
    grade TEXT NOT NULL,
    marketplace_fulfilled BIGINT NOT NULL,
    priority BIGINT NOT NULL,
    order_time BIGINT NOT NULL,
    dispatch_by BIGINT,
    start_processing BIGINT,
    dispatch_after BIGINT,
    replacement_for TEXT NOT NULL,
    pool TEXT NOT NULL,
    failure_reason TEXT NOT NULL,
    unknown_skus TEXT NOT NULL,
    channel_conflict TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alloc_attempts BIGINT NOT NULL,
    waiting BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT orders_natural_key UNIQUE (client_id, channel, channel_order_id)
);
CREATE INDEX orders_by_channel_order_id ON orders (channel_order_id_lc);
CREATE INDEX orders_by_parent_order_id ON orders (parent_order_id_lc);
CREATE INDEX orders_by_status ON orders (status, client_id, id);
CREATE INDEX orders_waiting ON orders (waiting, client_id, grade);

CREATE TABLE order_lines (
    order_id BIGINT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    marketplace_sku TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    price_paise BIGINT,
    cancelled BIGINT NOT NULL,
    held BIGINT NOT NULL,
    picked BIGINT NOT NULL,
    packed BIGINT NOT NULL,
    invoiced BIGINT NOT NULL,
    dispatched BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_by_sku ON order_lines (sku, order_id);
CREATE INDEX order_lines_by_marketplace_sku ON order_lines (marketplace_sku, order_id);

CREATE TABLE order_holds (
    id BIGSERIAL_PK,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL,
    release_after BIGINT,
    event TEXT NOT NULL,
    event_ref TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    released_at BIGINT,
    released_by TEXT NOT NULL,
    release_reason TEXT NOT NULL
);
CREATE INDEX order_holds_by_order ON order_holds (order_id);
CREATE INDEX order_holds_due ON order_holds (kind, release_after);
CREATE INDEX order_holds_by_event_ref ON order_holds (event_ref);

CREATE TABLE order_history (
    id BIGSERIAL_PK,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX order_history_by_order ON order_history (order_id, id);

CREATE TABLE shipments (
    id BIGSERIAL_PK,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    sequence BIGINT NOT NULL,
    status TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    packed_at BIGINT NOT NULL,
    invoiced_at BIGINT,
    dispatched_at BIGINT,
    CONSTRAINT shipments_sequence UNIQUE (order_id, sequence)
);

CREATE TABLE shipment_lines (
    shipment_id BIGINT NOT NULL REFERENCES shipments (id),
    line_no BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (shipment_id, line_no)
);

CREATE TABLE outbox (
    id BIGSERIAL_PK,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (delivered_at, id);

CREATE TABLE feed_cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        name: "indexes of what still waits for stock",
        // A new order asks whether older orders wait for its SKUs. Through the plain SKU
        // index that costs every line the SKU ever had; lines that still want units are
        // few (an allocated, cancelled or invoiced line drops out), so the question reads
        // only those, however long the order history grows. PostgreSQL uses the index only
        // where a query states this very condition, so the queries repeat it word for word.
        // Waiting orders are looked up only as waiting ones, so only they are indexed:
        // every other order skips an index write.
        sql: "CREATE INDEX order_lines_wanting ON order_lines (sku, order_id) \
              WHERE quantity - cancelled - held - invoiced > 0;
              DROP INDEX orders_waiting;
              CREATE INDEX orders_waiting ON orders (client_id, grade) WHERE waiting = 1;",
    },
    Migration {
        version: 3,
        name: "no line indexes that nothing reads",
        // Lines are read by SKU only while they still want stock (through
        // order_lines_wanting), and failed orders' lines through their order, never by
        // marketplace SKU alone. These two indexes were read by no query, and every new
        // line paid two index writes for them.
        sql: "DROP INDEX order_lines_by_sku;
              DROP INDEX order_lines_by_marketplace_sku;",
    },
    Migration {
        version: 4,
        name: "shipments by invoice number",
        // An invoice number names one invoice of a seller; an invoice checks that no other
        // shipment carries its number. Shipments not invoiced yet have none.
        sql: "CREATE INDEX shipments_by_invoice_number ON shipments (invoice_number) \
              WHERE invoice_number <> '';",
    },
    Migration {
        version: 5,
        name: "shipments by invoice number in any case",
        // `inv-7` and `INV-7` are one invoice number to a seller and a tax office alike.
        // Numbers are printable ASCII, whose lower case both databases agree on.
        sql: "CREATE INDEX shipments_by_invoice_key ON shipments (LOWER(invoice_number)) \
              WHERE invoice_number <> '';",
    },
];
