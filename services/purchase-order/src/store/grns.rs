//! GRNs: headers in `grns` (with their delivery state), one row per SKU in `grn_lines`.

use std::collections::HashMap;

use kosha_runtime::Error;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{
    Due, IN_LIST_KEYS, INSERT_BATCH_ROWS, QueryParams, in_list_placeholders, like_literal,
    values_placeholders,
};
use crate::domain::grn::{Delivery, Grn, GrnLine, NewGrn};

const HEADER_COLUMNS: &str = "client_id, grn_number, po_number, reason, actor, delivery, \
                              delivery_attempts, last_delivery_error, create_time, \
                              deliver_time, delivery_nonce";

/// Which GRNs a page holds.
#[derive(Debug, Clone, Copy)]
pub enum GrnSelection<'a> {
    /// GRNs against one PO (when given), only those without a PO, only pending ones.
    Filter {
        /// Exact PO number.
        po_number_opt: Option<&'a str>,
        /// Only GRNs without a PO.
        without_po_only: bool,
        /// Only GRNs whose units have not reached inventory.
        pending_only: bool,
    },
    /// GRNs whose number starts with `text` (ignoring case), against PO `text`, or with a
    /// line of SKU `text`.
    Search {
        /// What to look for.
        text: &'a str,
    },
}

/// Stores a new GRN with its lines, its units pending for inventory until
/// `next_attempt_time`. `false` (and nothing written) when the number exists.
pub async fn insert(
    conn: &mut AnyConnection,
    client_id: &str,
    grn: &NewGrn,
    now: i64,
    next_attempt_time: i64,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO grns (client_id, grn_number, po_number, reason, actor, delivery, \
                           next_attempt_time, create_time, delivery_nonce) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (client_id, grn_number) DO NOTHING",
    )
    .bind(client_id)
    .bind(grn.grn_number.as_str())
    .bind(grn.po_number_text())
    .bind(grn.reason.as_str())
    .bind(grn.actor.as_str())
    .bind(Delivery::Pending.as_str())
    .bind(next_attempt_time)
    .bind(now)
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }

    let numbered: Vec<(usize, &crate::domain::purchase_order::ReceiptLine)> =
        grn.lines.iter().enumerate().collect();
    for chunk in numbered.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO grn_lines (client_id, grn_number, sku, passed, failed, part) VALUES {}",
            values_placeholders(chunk.len(), 6, 1)
        );
        let mut query = sqlx::query(&sql);
        for (index, line) in chunk {
            query = query
                .bind(client_id)
                .bind(grn.grn_number.as_str())
                .bind(line.sku.as_str())
                .bind(line.passed)
                .bind(line.failed)
                .bind(NewGrn::part_of(*index));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// One GRN with its lines.
pub async fn get(
    conn: &mut AnyConnection,
    client_id: &str,
    grn_number: &str,
) -> Result<Option<Grn>, Error> {
    let sql = format!("SELECT {HEADER_COLUMNS} FROM grns WHERE client_id = $1 AND grn_number = $2");
    let row_opt = sqlx::query(&sql)
        .bind(client_id)
        .bind(grn_number)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row_opt else {
        return Ok(None);
    };
    let mut grns = vec![header_from_row(&row)?];
    attach_lines(conn, client_id, &mut grns).await?;
    Ok(grns.pop())
}

/// One page of GRNs by number, after `after_opt`, at most `limit`.
pub async fn page(
    conn: &mut AnyConnection,
    client_id: &str,
    selection: GrnSelection<'_>,
    after_opt: Option<&str>,
    limit: i64,
) -> Result<Vec<Grn>, Error> {
    let mut params = QueryParams::new();
    let client = params.push(client_id);
    let mut sql = format!("SELECT {HEADER_COLUMNS} FROM grns g WHERE g.client_id = {client}");
    if let Some(after) = after_opt {
        sql.push_str(&format!(" AND g.grn_number > {}", params.push(after)));
    }
    match selection {
        GrnSelection::Filter {
            po_number_opt,
            without_po_only,
            pending_only,
        } => {
            if let Some(po_number) = po_number_opt {
                sql.push_str(&format!(" AND g.po_number = {}", params.push(po_number)));
            }
            if without_po_only {
                sql.push_str(" AND g.po_number = ''");
            }
            if pending_only {
                let pending = params.push(Delivery::Pending.as_str());
                sql.push_str(&format!(" AND g.delivery = {pending}"));
            }
        }
        GrnSelection::Search { text } => {
            let prefix = params.push(format!("{}%", like_literal(&text.to_lowercase())));
            let exact = params.push(text);
            sql.push_str(&format!(
                " AND (LOWER(g.grn_number) LIKE {prefix} ESCAPE '!' \
                   OR g.po_number = {exact} \
                   OR EXISTS (SELECT 1 FROM grn_lines l \
                              WHERE l.client_id = g.client_id AND l.grn_number = g.grn_number \
                                AND l.sku = {exact}))"
            ));
        }
    }
    sql.push_str(&format!(
        " ORDER BY g.grn_number LIMIT {}",
        params.limit_placeholder()
    ));

    let mut query = sqlx::query(&sql);
    for value in &params.values {
        query = query.bind(value.as_str());
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    let mut grns = rows
        .iter()
        .map(header_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_lines(conn, client_id, &mut grns).await?;
    Ok(grns)
}

/// Records that inventory holds the GRN's units.
pub async fn mark_delivered(
    conn: &mut AnyConnection,
    client_id: &str,
    grn_number: &str,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE grns SET delivery = $3, deliver_time = $4, last_delivery_error = '', \
           delivery_attempts = delivery_attempts + 1 \
         WHERE client_id = $1 AND grn_number = $2 AND delivery = $5",
    )
    .bind(client_id)
    .bind(grn_number)
    .bind(Delivery::Delivered.as_str())
    .bind(now)
    .bind(Delivery::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed delivery attempt and when to try again.
pub async fn record_delivery_failure(
    conn: &mut AnyConnection,
    client_id: &str,
    grn_number: &str,
    error: &str,
    next_attempt_time: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE grns SET last_delivery_error = $3, next_attempt_time = $4, \
           delivery_attempts = delivery_attempts + 1 \
         WHERE client_id = $1 AND grn_number = $2 AND delivery = $5",
    )
    .bind(client_id)
    .bind(grn_number)
    .bind(error)
    .bind(next_attempt_time)
    .bind(Delivery::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Pending GRNs due for a delivery attempt at `now`, oldest due first.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> Result<Vec<Due>, Error> {
    let rows = sqlx::query(
        "SELECT client_id, grn_number, next_attempt_time FROM grns \
         WHERE delivery = $1 AND next_attempt_time <= $2 \
         ORDER BY next_attempt_time LIMIT $3",
    )
    .bind(Delivery::Pending.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Due {
                client_id: row.try_get("client_id")?,
                number: row.try_get("grn_number")?,
                next_attempt_time: row.try_get("next_attempt_time")?,
            })
        })
        .collect()
}

/// Takes a due GRN for one delivery attempt until `until`: a conditional update, so of
/// several replicas seeing it due, one wins.
pub async fn claim(conn: &mut AnyConnection, due: &Due, until: i64) -> Result<bool, Error> {
    let claimed = sqlx::query(
        "UPDATE grns SET next_attempt_time = $3 \
         WHERE client_id = $1 AND grn_number = $2 AND delivery = $4 AND next_attempt_time = $5",
    )
    .bind(&due.client_id)
    .bind(&due.number)
    .bind(until)
    .bind(Delivery::Pending.as_str())
    .bind(due.next_attempt_time)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    Ok(claimed)
}

fn header_from_row(row: &AnyRow) -> Result<Grn, Error> {
    let delivery: String = row.try_get("delivery")?;
    Ok(Grn {
        client_id: row.try_get("client_id")?,
        grn_number: row.try_get("grn_number")?,
        po_number: row.try_get("po_number")?,
        reason: row.try_get("reason")?,
        lines: Vec::new(),
        actor: row.try_get("actor")?,
        delivery: Delivery::from_stored(&delivery)?,
        delivery_attempts: row.try_get("delivery_attempts")?,
        last_delivery_error: row.try_get("last_delivery_error")?,
        create_time: row.try_get("create_time")?,
        deliver_time_opt: row.try_get("deliver_time")?,
        delivery_nonce: row.try_get("delivery_nonce")?,
    })
}

async fn attach_lines(
    conn: &mut AnyConnection,
    client_id: &str,
    grns: &mut [Grn],
) -> Result<(), Error> {
    let mut lines_by_grn: HashMap<String, Vec<GrnLine>> = HashMap::new();
    let numbers: Vec<String> = grns.iter().map(|grn| grn.grn_number.clone()).collect();
    for chunk in numbers.chunks(IN_LIST_KEYS) {
        let sql = format!(
            "SELECT grn_number, sku, passed, failed, part FROM grn_lines \
             WHERE client_id = $1 AND grn_number IN ({})",
            in_list_placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).bind(client_id);
        for grn_number in chunk {
            query = query.bind(grn_number.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let grn_number: String = row.try_get("grn_number")?;
            let line = GrnLine {
                sku: row.try_get("sku")?,
                passed: row.try_get("passed")?,
                failed: row.try_get("failed")?,
                part: row.try_get("part")?,
            };
            lines_by_grn.entry(grn_number).or_default().push(line);
        }
    }
    // Byte order of SKUs, as the parts were numbered in: each part stays contiguous.
    for grn in grns {
        grn.lines = lines_by_grn.remove(&grn.grn_number).unwrap_or_default();
        grn.lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    }
    Ok(())
}
