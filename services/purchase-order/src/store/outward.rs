//! Outward POs: headers in `outward_purchase_orders` (with their bulk-order link), one row
//! per SKU in `outward_purchase_order_lines`.

use std::collections::HashMap;

use kosha_runtime::Error;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{
    Due, IN_LIST_KEYS, INSERT_BATCH_ROWS, QueryParams, in_list_placeholders, like_literal,
    values_placeholders,
};
use crate::domain::outward::{NewOutwardOrder, OrderLink, OutwardOrder};
use crate::domain::values::{FulfilmentType, QcGrade};

const HEADER_COLUMNS: &str = "client_id, po_number, customer, fulfilment_type, qc_grade, \
                              order_link, order_id, link_attempts, last_link_error, created_by, \
                              create_time, link_time";

/// Which outward POs a page holds.
#[derive(Debug, Clone, Copy)]
pub enum OutwardSelection<'a> {
    /// POs of one customer (when given), only those whose order does not exist yet.
    Filter {
        /// Exact customer.
        customer_opt: Option<&'a str>,
        /// Only POs still waiting for their bulk order.
        pending_only: bool,
    },
    /// POs whose number starts with `text`, whose customer contains it (both ignoring
    /// case), with a line of SKU `text`, or whose bulk order is `text`.
    Search {
        /// What to look for.
        text: &'a str,
    },
}

/// Stores a new outward PO with its lines, its bulk order pending until
/// `next_attempt_time`. `false` (and nothing written) when the number exists.
pub async fn insert(
    conn: &mut AnyConnection,
    client_id: &str,
    po: &NewOutwardOrder,
    created_by: &str,
    now: i64,
    next_attempt_time: i64,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO outward_purchase_orders (client_id, po_number, customer, fulfilment_type, \
           qc_grade, order_link, next_attempt_time, created_by, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (client_id, po_number) DO NOTHING",
    )
    .bind(client_id)
    .bind(po.po_number.as_str())
    .bind(po.terms.customer.as_str())
    .bind(po.terms.fulfilment_type.as_str())
    .bind(po.terms.qc_grade.as_str())
    .bind(OrderLink::Pending.as_str())
    .bind(next_attempt_time)
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
            "INSERT INTO outward_purchase_order_lines (client_id, po_number, sku, quantity) \
             VALUES {}",
            values_placeholders(chunk.len(), 4, 1)
        );
        let mut query = sqlx::query(&sql);
        for line in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(line.sku.as_str())
                .bind(line.quantity.get());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// Stores new outward POs and their lines with a few multi-row statements, their bulk
/// orders pending until `next_attempt_time`. `false` when any of the numbers exists (the
/// caller rolls the transaction back: nothing is kept).
pub async fn insert_many(
    conn: &mut AnyConnection,
    client_id: &str,
    pos: &[NewOutwardOrder],
    created_by: &str,
    now: i64,
    next_attempt_time: i64,
) -> Result<bool, Error> {
    for chunk in pos.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO outward_purchase_orders (client_id, po_number, customer, \
               fulfilment_type, qc_grade, order_link, next_attempt_time, created_by, create_time) \
             VALUES {} ON CONFLICT (client_id, po_number) DO NOTHING",
            values_placeholders(chunk.len(), 9, 1)
        );
        let mut query = sqlx::query(&sql);
        for po in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(po.terms.customer.as_str())
                .bind(po.terms.fulfilment_type.as_str())
                .bind(po.terms.qc_grade.as_str())
                .bind(OrderLink::Pending.as_str())
                .bind(next_attempt_time)
                .bind(created_by)
                .bind(now);
        }
        let inserted = query.execute(&mut *conn).await?.rows_affected();
        if inserted != chunk.len() as u64 {
            return Ok(false);
        }
    }

    let lines: Vec<(&NewOutwardOrder, &crate::domain::outward::NewOutwardLine)> = pos
        .iter()
        .flat_map(|po| po.lines.iter().map(move |line| (po, line)))
        .collect();
    for chunk in lines.chunks(INSERT_BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO outward_purchase_order_lines (client_id, po_number, sku, quantity) \
             VALUES {}",
            values_placeholders(chunk.len(), 4, 1)
        );
        let mut query = sqlx::query(&sql);
        for (po, line) in chunk {
            query = query
                .bind(client_id)
                .bind(po.po_number.as_str())
                .bind(line.sku.as_str())
                .bind(line.quantity.get());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(true)
}

/// One outward PO with its lines.
pub async fn get(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
) -> Result<Option<OutwardOrder>, Error> {
    let sql = format!(
        "SELECT {HEADER_COLUMNS} FROM outward_purchase_orders \
         WHERE client_id = $1 AND po_number = $2"
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

/// The stored outward POs among `po_numbers`, by number.
pub async fn get_many(
    conn: &mut AnyConnection,
    client_id: &str,
    po_numbers: &[&str],
) -> Result<HashMap<String, OutwardOrder>, Error> {
    let mut found = Vec::new();
    for chunk in po_numbers.chunks(IN_LIST_KEYS) {
        let sql = format!(
            "SELECT {HEADER_COLUMNS} FROM outward_purchase_orders \
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

/// One page of outward POs by number, after `after_opt`, at most `limit`.
pub async fn page(
    conn: &mut AnyConnection,
    client_id: &str,
    selection: OutwardSelection<'_>,
    after_opt: Option<&str>,
    limit: i64,
) -> Result<Vec<OutwardOrder>, Error> {
    let mut params = QueryParams::new();
    let client = params.push(client_id);
    let mut sql = format!(
        "SELECT {HEADER_COLUMNS} FROM outward_purchase_orders o WHERE o.client_id = {client}"
    );
    if let Some(after) = after_opt {
        sql.push_str(&format!(" AND o.po_number > {}", params.push(after)));
    }
    match selection {
        OutwardSelection::Filter {
            customer_opt,
            pending_only,
        } => {
            if let Some(customer) = customer_opt {
                sql.push_str(&format!(" AND o.customer = {}", params.push(customer)));
            }
            if pending_only {
                let pending = params.push(OrderLink::Pending.as_str());
                sql.push_str(&format!(" AND o.order_link = {pending}"));
            }
        }
        OutwardSelection::Search { text } => {
            let lowered = like_literal(&text.to_lowercase());
            let prefix = params.push(format!("{lowered}%"));
            let contains = params.push(format!("%{lowered}%"));
            let exact = params.push(text);
            sql.push_str(&format!(
                " AND (LOWER(o.po_number) LIKE {prefix} ESCAPE '!' \
                   OR LOWER(o.customer) LIKE {contains} ESCAPE '!' \
                   OR o.order_id = {exact} \
                   OR EXISTS (SELECT 1 FROM outward_purchase_order_lines l \
                              WHERE l.client_id = o.client_id AND l.po_number = o.po_number \
                                AND l.sku = {exact}))"
            ));
        }
    }
    sql.push_str(&format!(
        " ORDER BY o.po_number LIMIT {}",
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

/// Records the bulk order created for a PO.
pub async fn mark_linked(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
    order_id: &str,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE outward_purchase_orders SET order_link = $3, order_id = $4, link_time = $5, \
           last_link_error = '', link_attempts = link_attempts + 1 \
         WHERE client_id = $1 AND po_number = $2 AND order_link = $6",
    )
    .bind(client_id)
    .bind(po_number)
    .bind(OrderLink::Linked.as_str())
    .bind(order_id)
    .bind(now)
    .bind(OrderLink::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed attempt to create the bulk order and when to try again.
pub async fn record_link_failure(
    conn: &mut AnyConnection,
    client_id: &str,
    po_number: &str,
    error: &str,
    next_attempt_time: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE outward_purchase_orders SET last_link_error = $3, next_attempt_time = $4, \
           link_attempts = link_attempts + 1 \
         WHERE client_id = $1 AND po_number = $2 AND order_link = $5",
    )
    .bind(client_id)
    .bind(po_number)
    .bind(error)
    .bind(next_attempt_time)
    .bind(OrderLink::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Pending outward POs due for an attempt at `now`, oldest due first.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> Result<Vec<Due>, Error> {
    let rows = sqlx::query(
        "SELECT client_id, po_number, next_attempt_time FROM outward_purchase_orders \
         WHERE order_link = $1 AND next_attempt_time <= $2 \
         ORDER BY next_attempt_time LIMIT $3",
    )
    .bind(OrderLink::Pending.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Due {
                client_id: row.try_get("client_id")?,
                number: row.try_get("po_number")?,
                next_attempt_time: row.try_get("next_attempt_time")?,
            })
        })
        .collect()
}

/// Takes a due outward PO for one attempt until `until`; of several replicas, one wins.
pub async fn claim(conn: &mut AnyConnection, due: &Due, until: i64) -> Result<bool, Error> {
    let claimed = sqlx::query(
        "UPDATE outward_purchase_orders SET next_attempt_time = $3 \
         WHERE client_id = $1 AND po_number = $2 AND order_link = $4 AND next_attempt_time = $5",
    )
    .bind(&due.client_id)
    .bind(&due.number)
    .bind(until)
    .bind(OrderLink::Pending.as_str())
    .bind(due.next_attempt_time)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    Ok(claimed)
}

fn header_from_row(row: &AnyRow) -> Result<OutwardOrder, Error> {
    let fulfilment_type: String = row.try_get("fulfilment_type")?;
    let qc_grade: String = row.try_get("qc_grade")?;
    let order_link: String = row.try_get("order_link")?;
    Ok(OutwardOrder {
        client_id: row.try_get("client_id")?,
        po_number: row.try_get("po_number")?,
        customer: row.try_get("customer")?,
        fulfilment_type: FulfilmentType::parse(&fulfilment_type).map_err(anyhow::Error::msg)?,
        qc_grade: QcGrade::parse(&qc_grade).map_err(anyhow::Error::msg)?,
        lines: Vec::new(),
        order_link: OrderLink::from_stored(&order_link)?,
        order_id: row.try_get("order_id")?,
        link_attempts: row.try_get("link_attempts")?,
        last_link_error: row.try_get("last_link_error")?,
        created_by: row.try_get("created_by")?,
        create_time: row.try_get("create_time")?,
        link_time_opt: row.try_get("link_time")?,
    })
}

async fn attach_lines(
    conn: &mut AnyConnection,
    client_id: &str,
    pos: &mut [OutwardOrder],
) -> Result<(), Error> {
    let mut lines_by_po: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    let numbers: Vec<String> = pos.iter().map(|po| po.po_number.clone()).collect();
    for chunk in numbers.chunks(IN_LIST_KEYS) {
        let sql = format!(
            "SELECT po_number, sku, quantity FROM outward_purchase_order_lines \
             WHERE client_id = $1 AND po_number IN ({})",
            in_list_placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).bind(client_id);
        for po_number in chunk {
            query = query.bind(po_number.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let po_number: String = row.try_get("po_number")?;
            let line = (row.try_get("sku")?, row.try_get("quantity")?);
            lines_by_po.entry(po_number).or_default().push(line);
        }
    }
    for po in pos {
        po.lines = lines_by_po.remove(&po.po_number).unwrap_or_default();
        po.lines.sort();
    }
    Ok(())
}
