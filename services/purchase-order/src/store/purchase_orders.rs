//! Inward POs: headers in `purchase_orders`, one row per SKU in `purchase_order_lines`.

use std::collections::HashMap;

use kosha_runtime::Error;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{
    IN_LIST_KEYS, INSERT_BATCH_ROWS, QueryParams, in_list_placeholders, like_literal,
    values_placeholders,
};
use crate::domain::purchase_order::{NewPurchaseOrder, PoLine, PoStatus, PurchaseOrder};
use crate::domain::values::UnitCost;

const HEADER_COLUMNS: &str = "client_id, po_number, supplier, status, grn_count, close_reason, \
                              created_by, closed_by, create_time, update_time, close_time";

const LINE_COLUMNS: &str =
    "po_number, sku, ordered, unit_cost, expected_date, received, passed, failed, short_closed";

/// Which POs a page holds.
#[derive(Debug, Clone, Copy)]
pub enum PoSelection<'a> {
    /// POs in one of `statuses` (all when empty), of one supplier when given.
    Filter {
        /// Allowed statuses; empty means all.
        statuses: &'a [PoStatus],
        /// Exact supplier.
        supplier_opt: Option<&'a str>,
    },
    /// POs whose number starts with `text`, whose supplier contains it (both ignoring
    /// case), or with a line of SKU `text`.
    Search {
        /// What to look for.
        text: &'a str,
    },
}

/// Stores a new PO and its lines. `false` (and nothing written) when the number exists.
pub async fn insert(
    conn: &mut AnyConnection,
    client_id: &str,
    po: &NewPurchaseOrder,
    created_by: &str,
    now: i64,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO purchase_orders \
           (client_id, po_number, supplier, status, created_by, create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (client_id, po_number) DO NOTHING",
    )
    .bind(client_id)
    .bind(po.po_number.as_str())
    .bind(po.supplier.as_str())
    .bind(PoStatus::Open.as_str())
    .bind(created_by)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }

    for chunk in po.lines.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO purchase_order_lines \
               (client_id, po_number, sku, ordered, unit_cost, expected_date) VALUES {}",
            values_placeholders(chunk.len(), 6, 1)
        );
        let mut query = sqlx::query(&sql);
        for line in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(line.sku.as_str())
                .bind(line.quantity.get())
                .bind(line.unit_cost.paise())
                .bind(line.expected_date.to_text());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// Stores new POs and their lines with a few multi-row statements. `false` when any of
/// the numbers exists (the caller rolls the transaction back: nothing is kept).
pub async fn insert_many(
    conn: &mut AnyConnection,
    client_id: &str,
    pos: &[NewPurchaseOrder],
    created_by: &str,
    now: i64,
) -> Result<bool, Error> {
    for chunk in pos.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO purchase_orders \
               (client_id, po_number, supplier, status, created_by, create_time, update_time) \
             VALUES {} ON CONFLICT (client_id, po_number) DO NOTHING",
            values_placeholders(chunk.len(), 7, 1)
        );
        let mut query = sqlx::query(&sql);
        for po in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(po.supplier.as_str())
                .bind(PoStatus::Open.as_str())
                .bind(created_by)
                .bind(now)
                .bind(now);
        }
        let inserted = query.execute(&mut *conn).await?.rows_affected();
        if inserted != chunk.len() as u64 {
            return Ok(false);
        }
    }

    let lines: Vec<(&NewPurchaseOrder, &crate::domain::purchase_order::NewPoLine)> = pos
        .iter()
        .flat_map(|po| po.lines.iter().map(move |line| (po, line)))
        .collect();
    for chunk in lines.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO purchase_order_lines \
               (client_id, po_number, sku, ordered, unit_cost, expected_date) VALUES {}",
            values_placeholders(chunk.len(), 6, 1)
        );
        let mut query = sqlx::query(&sql);
        for (po, line) in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(line.sku.as_str())
                .bind(line.quantity.get())
                .bind(line.unit_cost.paise())
                .bind(line.expected_date.to_text());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// One PO with its lines; `lock` is [`kosha_runtime::Db::for_update`] inside a
/// transaction that will change it, or empty.
pub async fn get(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
    lock: &str,
) -> Result<Option<PurchaseOrder>, Error> {
    let sql = format!(
        "SELECT {HEADER_COLUMNS} FROM purchase_orders WHERE client_id = $1 AND po_number = $2{lock}"
    );
    let row_opt = sqlx::query(&sql)
        .bind(client_id)
        .bind(po_number)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row_opt else {
        return Ok(None);
    };
    let mut pos = vec![header_from_row(&row)?];
    attach_lines(conn, client_id, &mut pos).await?;
    Ok(pos.pop())
}

/// The stored POs among `po_numbers`, by number.
pub async fn get_many(
    conn: &mut AnyConnection,
    client_id: &str,
    po_numbers: &[&str],
) -> Result<HashMap<String, PurchaseOrder>, Error> {
    let mut found = Vec::new();
    for chunk in po_numbers.chunks(IN_LIST_KEYS) {
        let sql = format!(
            "SELECT {HEADER_COLUMNS} FROM purchase_orders \
             WHERE client_id = $1 AND po_number IN ({})",
            in_list_placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).bind(client_id);
        for po_number in chunk {
            query = query.bind(*po_number);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.push(header_from_row(&row)?);
        }
    }
    attach_lines(conn, client_id, &mut found).await?;
    Ok(found
        .into_iter()
        .map(|po| (po.po_number.clone(), po))
        .collect())
}

/// One page of POs by number, after `after_opt`, at most `limit`.
pub async fn page(
    conn: &mut AnyConnection,
    client_id: &str,
    selection: PoSelection<'_>,
    after_opt: Option<&str>,
    limit: i64,
) -> Result<Vec<PurchaseOrder>, Error> {
    let mut params = QueryParams::new();
    let client = params.push(client_id);
    let mut sql =
        format!("SELECT {HEADER_COLUMNS} FROM purchase_orders p WHERE p.client_id = {client}");
    if let Some(after) = after_opt {
        sql.push_str(&format!(" AND p.po_number > {}", params.push(after)));
    }
    match selection {
        PoSelection::Filter {
            statuses,
            supplier_opt,
        } => {
            if !statuses.is_empty() {
                let list: Vec<String> = statuses
                    .iter()
                    .map(|status| params.push(status.as_str()))
                    .collect();
                sql.push_str(&format!(" AND p.status IN ({})", list.join(", ")));
            }
            if let Some(supplier) = supplier_opt {
                sql.push_str(&format!(" AND p.supplier = {}", params.push(supplier)));
            }
        }
        PoSelection::Search { text } => {
            let lowered = like_literal(&text.to_lowercase());
            let prefix = params.push(format!("{lowered}%"));
            let contains = params.push(format!("%{lowered}%"));
            let sku = params.push(text);
            sql.push_str(&format!(
                " AND (LOWER(p.po_number) LIKE {prefix} ESCAPE '!' \
                   OR LOWER(p.supplier) LIKE {contains} ESCAPE '!' \
                   OR EXISTS (SELECT 1 FROM purchase_order_lines l \
                              WHERE l.client_id = p.client_id AND l.po_number = p.po_number \
                                AND l.sku = {sku}))"
            ));
        }
    }
    sql.push_str(&format!(
        " ORDER BY p.po_number LIMIT {}",
        params.limit_placeholder()
    ));

    let mut query = sqlx::query(&sql);
    for value in &params.values {
        query = query.bind(value.as_str());
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    let mut pos = rows
        .iter()
        .map(header_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_lines(conn, client_id, &mut pos).await?;
    Ok(pos)
}

/// Adds the lines of GRN `grn_number` (stored already) to the PO's lines, and moves the
/// PO to `status`.
pub async fn apply_receipt(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
    grn_number: &str,
    status: PoStatus,
    now: i64,
) -> Result<(), Error> {
    // One statement for every line, reading the GRN's own stored lines: no per-SKU round
    // trips for a GRN of thousands of SKUs.
    sqlx::query(
        "UPDATE purchase_order_lines SET \
           passed = passed + (SELECT g.passed FROM grn_lines g WHERE g.client_id = $1 \
                              AND g.grn_number = $3 AND g.sku = purchase_order_lines.sku), \
           failed = failed + (SELECT g.failed FROM grn_lines g WHERE g.client_id = $1 \
                              AND g.grn_number = $3 AND g.sku = purchase_order_lines.sku), \
           received = received + (SELECT g.passed + g.failed FROM grn_lines g \
                                  WHERE g.client_id = $1 AND g.grn_number = $3 \
                                    AND g.sku = purchase_order_lines.sku) \
         WHERE client_id = $1 AND po_number = $2 \
           AND sku IN (SELECT g.sku FROM grn_lines g WHERE g.client_id = $1 AND g.grn_number = $3)",
    )
    .bind(client_id)
    .bind(po_number)
    .bind(grn_number)
    .execute(&mut *conn)
    .await?;

    sqlx::query(
        "UPDATE purchase_orders SET status = $3, grn_count = grn_count + 1, update_time = $4 \
         WHERE client_id = $1 AND po_number = $2",
    )
    .bind(client_id)
    .bind(po_number)
    .bind(status.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Closes an OPEN or PARTIALLY_RECEIVED PO, recording per line what was never received.
/// `false` when the PO was in another status.
pub async fn close(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<bool, Error> {
    let closed = sqlx::query(
        "UPDATE purchase_orders SET status = $3, close_reason = $4, closed_by = $5, \
           close_time = $6, update_time = $6 \
         WHERE client_id = $1 AND po_number = $2 AND status IN ($7, $8)",
    )
    .bind(client_id)
    .bind(po_number)
    .bind(PoStatus::Closed.as_str())
    .bind(reason)
    .bind(actor)
    .bind(now)
    .bind(PoStatus::Open.as_str())
    .bind(PoStatus::PartiallyReceived.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !closed {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE purchase_order_lines \
         SET short_closed = CASE WHEN ordered > received THEN ordered - received ELSE 0 END \
         WHERE client_id = $1 AND po_number = $2",
    )
    .bind(client_id)
    .bind(po_number)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

fn header_from_row(row: &AnyRow) -> Result<PurchaseOrder, Error> {
    let status: String = row.try_get("status")?;
    Ok(PurchaseOrder {
        client_id: row.try_get("client_id")?,
        po_number: row.try_get("po_number")?,
        supplier: row.try_get("supplier")?,
        status: PoStatus::from_stored(&status)?,
        lines: Vec::new(),
        grn_count: row.try_get("grn_count")?,
        close_reason: row.try_get("close_reason")?,
        created_by: row.try_get("created_by")?,
        closed_by: row.try_get("closed_by")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
        close_time_opt: row.try_get("close_time")?,
    })
}

/// Reads the lines of every PO in `pos` (one query per few hundred POs).
async fn attach_lines(
    conn: &mut AnyConnection,
    client_id: &str,
    pos: &mut [PurchaseOrder],
) -> Result<(), Error> {
    let mut lines_by_po: HashMap<String, Vec<PoLine>> = HashMap::new();
    let numbers: Vec<String> = pos.iter().map(|po| po.po_number.clone()).collect();
    for chunk in numbers.chunks(IN_LIST_KEYS) {
        let sql = format!(
            "SELECT {LINE_COLUMNS} FROM purchase_order_lines \
             WHERE client_id = $1 AND po_number IN ({})",
            in_list_placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).bind(client_id);
        for po_number in chunk {
            query = query.bind(po_number.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let po_number: String = row.try_get("po_number")?;
            let line = PoLine {
                sku: row.try_get("sku")?,
                ordered: row.try_get("ordered")?,
                unit_cost: UnitCost::from_paise(row.try_get("unit_cost")?),
                expected_date: row.try_get("expected_date")?,
                received: row.try_get("received")?,
                passed: row.try_get("passed")?,
                failed: row.try_get("failed")?,
                short_closed: row.try_get("short_closed")?,
            };
            lines_by_po.entry(po_number).or_default().push(line);
        }
    }
    // Sorted here, not by the database: PostgreSQL may collate text by locale, and the
    // domain compares lines in byte order.
    for po in pos {
        po.lines = lines_by_po.remove(&po.po_number).unwrap_or_default();
        po.lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    }
    Ok(())
}
