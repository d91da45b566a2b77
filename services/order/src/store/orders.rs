//! Orders with their lines, holds, shipments and history.

use kosha_runtime::db::Backend;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::domain::holds::NewHold;
use crate::domain::{
    FulfilmentType, Grade, Hold, HoldKind, Line, Order, OrderId, OrderKind, OrderStatus, Shipment,
    ShipmentStatus,
};

type Result<T> = std::result::Result<T, sqlx::Error>;

const ORDER_COLUMNS: &str = "id, client_id, channel, channel_order_id, parent_order_id, kind, \
    status, fulfilment, grade, marketplace_fulfilled, priority, order_time, dispatch_by, \
    start_processing, dispatch_after, replacement_for, pool, failure_reason, unknown_skus, \
    channel_conflict, created_at, updated_at";

fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} `{value}` is not one this version knows").into())
}

fn order_from_row(row: &AnyRow) -> Result<Order> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let fulfilment: String = row.try_get("fulfilment")?;
    let grade: String = row.try_get("grade")?;
    let unknown_skus: String = row.try_get("unknown_skus")?;
    Ok(Order {
        id: OrderId(row.try_get("id")?),
        client_id: row.try_get("client_id")?,
        channel: row.try_get("channel")?,
        channel_order_id: row.try_get("channel_order_id")?,
        parent_order_id: row.try_get("parent_order_id")?,
        kind: OrderKind::parse(&kind).ok_or_else(|| corrupt("order kind", &kind))?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        fulfilment: FulfilmentType::parse(&fulfilment)
            .ok_or_else(|| corrupt("fulfilment type", &fulfilment))?,
        grade: Grade::parse(&grade).ok_or_else(|| corrupt("grade", &grade))?,
        marketplace_fulfilled: row.try_get::<i64, _>("marketplace_fulfilled")? != 0,
        priority: row.try_get::<i64, _>("priority")? != 0,
        order_time: row.try_get("order_time")?,
        dispatch_by_opt: row.try_get("dispatch_by")?,
        start_processing_opt: row.try_get("start_processing")?,
        dispatch_after_opt: row.try_get("dispatch_after")?,
        replacement_for: row.try_get("replacement_for")?,
        pool: row.try_get("pool")?,
        failure_reason: row.try_get("failure_reason")?,
        // One SKU per line: a marketplace's SKU may hold spaces, never a line break.
        unknown_skus: unknown_skus
            .split('\n')
            .filter(|sku| !sku.is_empty())
            .map(str::to_string)
            .collect(),
        channel_conflict: row.try_get("channel_conflict")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        lines: Vec::new(),
    })
}

fn line_from_row(row: &AnyRow) -> Result<Line> {
    Ok(Line {
        line_no: i32::try_from(row.try_get::<i64, _>("line_no")?).unwrap_or(i32::MAX),
        marketplace_sku: row.try_get("marketplace_sku")?,
        sku: row.try_get("sku")?,
        quantity: row.try_get("quantity")?,
        price_paise_opt: row.try_get("price_paise")?,
        cancelled: row.try_get("cancelled")?,
        held: row.try_get("held")?,
        picked: row.try_get("picked")?,
        packed: row.try_get("packed")?,
        invoiced: row.try_get("invoiced")?,
        dispatched: row.try_get("dispatched")?,
    })
}

/// Whether a marketplace order waits for stock and is retried when stock arrives (a
/// CREATED one is an order whose allocation on arrival failed).
pub fn is_waiting(order: &Order) -> bool {
    let waits_in_status = matches!(
        order.status,
        OrderStatus::Created
            | OrderStatus::Unfulfillable
            | OrderStatus::PartiallyFulfillable
            | OrderStatus::OnHold
    ) || (order.status == OrderStatus::Processing
        && order.fulfilment == FulfilmentType::MultiShipmentPartial);
    order.allocates_automatically() && waits_in_status && order.pending() > 0
}

// === reading ===

/// The id and request fingerprint of the order with this natural key.
pub async fn find_by_natural_key(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    channel_order_id: &str,
) -> Result<Option<(OrderId, String)>> {
    let row = sqlx::query(
        "SELECT id, fingerprint FROM orders \
         WHERE client_id = $1 AND channel = $2 AND channel_order_id = $3",
    )
    .bind(client_id)
    .bind(channel)
    .bind(channel_order_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some((
            OrderId(row.try_get("id")?),
            row.try_get("fingerprint")?,
        ))),
        None => Ok(None),
    }
}

/// What a new order's arrival learns in one read: the stored order with its natural
/// key (id and request fingerprint), and whether an older marketplace order of the client
/// and grade waits for any of `skus` (never, when `skus` is empty).
#[derive(Debug, Default)]
pub struct ArrivalCheck {
    pub existing_opt: Option<(OrderId, String)>,
    pub any_waiting: bool,
}

/// Reads what [`ArrivalCheck`] holds with one statement: a resend is answered and a new
/// order finds older waiting ones without two round trips to the database.
pub async fn arrival_check(
    conn: &mut AnyConnection,
    natural_key: (&str, &str, &str),
    grade: Grade,
    skus: &[String],
) -> Result<ArrivalCheck> {
    let (client_id, channel, channel_order_id) = natural_key;
    let mut sql = String::from(
        "SELECT id, fingerprint, CAST(0 AS BIGINT) AS waiting FROM orders \
         WHERE client_id = $1 AND channel = $2 AND channel_order_id = $3",
    );
    if !skus.is_empty() {
        let placeholders: Vec<String> = (0..skus.len()).map(|i| format!("${}", i + 5)).collect();
        sql.push_str(&format!(
            " UNION ALL SELECT * FROM (SELECT o.id, o.fingerprint, CAST(1 AS BIGINT) \
               FROM orders o WHERE o.waiting = 1 AND o.client_id = $1 AND o.grade = $4 \
               AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id \
               AND l.quantity - l.cancelled - l.held - l.invoiced > 0 AND l.sku IN ({})) \
               LIMIT 1) AS older",
            placeholders.join(", ")
        ));
    }
    let mut query = sqlx::query(&sql)
        .bind(client_id)
        .bind(channel)
        .bind(channel_order_id);
    if !skus.is_empty() {
        query = query.bind(grade.as_str());
        for sku in skus {
            query = query.bind(sku.as_str());
        }
    }
    let mut check = ArrivalCheck::default();
    for row in query.fetch_all(&mut *conn).await? {
        if row.try_get::<i64, _>("waiting")? == 1 {
            check.any_waiting = true;
        } else {
            check.existing_opt = Some((OrderId(row.try_get("id")?), row.try_get("fingerprint")?));
        }
    }
    Ok(check)
}

/// Reads an order with its lines.
pub async fn load(conn: &mut AnyConnection, id: OrderId) -> Result<Option<Order>> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut order = order_from_row(&row)?;
    order.lines = load_lines(conn, id).await?;
    Ok(Some(order))
}

/// Reads and locks an order (inside a transaction) with its lines.
pub async fn lock(
    conn: &mut AnyConnection,
    for_update: &str,
    id: OrderId,
) -> Result<Option<Order>> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{for_update}");
    let Some(row) = sqlx::query(&sql)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut order = order_from_row(&row)?;
    order.lines = load_lines(conn, id).await?;
    Ok(Some(order))
}

async fn load_lines(conn: &mut AnyConnection, id: OrderId) -> Result<Vec<Line>> {
    let rows = sqlx::query(
        "SELECT line_no, marketplace_sku, sku, quantity, price_paise, cancelled, held, picked, \
         packed, invoiced, dispatched FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(line_from_row).collect()
}

/// Every hold of an order, oldest first.
pub async fn load_holds(conn: &mut AnyConnection, id: OrderId) -> Result<Vec<Hold>> {
    let rows = sqlx::query(
        "SELECT id, kind, release_after, event, event_ref, reason, created_at, released_at, \
         released_by, release_reason FROM order_holds WHERE order_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut holds = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind")?;
        holds.push(Hold {
            id: row.try_get("id")?,
            kind: HoldKind::parse(&kind).ok_or_else(|| corrupt("hold kind", &kind))?,
            release_after_opt: row.try_get("release_after")?,
            event: row.try_get("event")?,
            event_ref: row.try_get("event_ref")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
            released_at_opt: row.try_get("released_at")?,
            released_by: row.try_get("released_by")?,
            release_reason: row.try_get("release_reason")?,
        });
    }
    Ok(holds)
}

/// Every shipment of an order, by sequence.
pub async fn load_shipments(conn: &mut AnyConnection, id: OrderId) -> Result<Vec<Shipment>> {
    let rows = sqlx::query(
        "SELECT id, sequence, status, invoice_number, packed_at, invoiced_at, dispatched_at \
         FROM shipments WHERE order_id = $1 ORDER BY sequence",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut shipments = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        let shipment_id: i64 = row.try_get("id")?;
        let line_rows = sqlx::query(
            "SELECT line_no, quantity FROM shipment_lines WHERE shipment_id = $1 ORDER BY line_no",
        )
        .bind(shipment_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut lines = Vec::with_capacity(line_rows.len());
        for line_row in line_rows {
            let line_no: i64 = line_row.try_get("line_no")?;
            lines.push((
                i32::try_from(line_no).unwrap_or(i32::MAX),
                line_row.try_get("quantity")?,
            ));
        }
        shipments.push(Shipment {
            id: shipment_id,
            sequence: i32::try_from(row.try_get::<i64, _>("sequence")?).unwrap_or(i32::MAX),
            status: ShipmentStatus::parse(&status)
                .ok_or_else(|| corrupt("shipment status", &status))?,
            lines,
            invoice_number: row.try_get("invoice_number")?,
            packed_at: row.try_get("packed_at")?,
            invoiced_at_opt: row.try_get("invoiced_at")?,
            dispatched_at_opt: row.try_get("dispatched_at")?,
        });
    }
    Ok(shipments)
}

/// One recorded status change.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// Row id (the page key).
    pub id: i64,
    /// When (µs).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// Status before (empty for the first entry).
    pub from_status: String,
    /// Status after.
    pub to_status: String,
    /// What happened.
    pub reason: String,
}

/// The latest entry of an order's history that moved it to `status` from another status,
/// if any (later entries may note work done while it stayed there).
pub async fn last_move_to(
    conn: &mut AnyConnection,
    id: OrderId,
    status: OrderStatus,
) -> Result<Option<HistoryRow>> {
    let row_opt = sqlx::query(
        "SELECT id, at, actor, from_status, to_status, reason FROM order_history \
         WHERE order_id = $1 AND to_status = $2 AND from_status <> $2 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(id.0)
    .bind(status.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row_opt.map(|row| history_row(&row)).transpose()
}

fn history_row(row: &sqlx::any::AnyRow) -> Result<HistoryRow> {
    Ok(HistoryRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        from_status: row.try_get("from_status")?,
        to_status: row.try_get("to_status")?,
        reason: row.try_get("reason")?,
    })
}

/// A page of an order's history, oldest first, after row `after_id`.
pub async fn history(
    conn: &mut AnyConnection,
    id: OrderId,
    after_id: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, from_status, to_status, reason FROM order_history \
         WHERE order_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(id.0)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(history_row).collect()
}

/// Filters of a search; every set filter must match.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Only this client.
    pub client_id: String,
    /// Lower-cased id to match a channel order id, a parent order id or (parsed) an
    /// internal id.
    pub id_lc: String,
    /// The internal id `id_lc` names, if it is one.
    pub internal_id_opt: Option<OrderId>,
    /// Only these statuses.
    pub statuses: Vec<OrderStatus>,
    /// Only this channel.
    pub channel: String,
    /// Only orders placed at or after (µs).
    pub from_opt: Option<i64>,
    /// Only orders placed before (µs).
    pub to_opt: Option<i64>,
    /// Only orders with an id below this (the page key; newest first).
    pub before_id_opt: Option<i64>,
}

/// Ids of orders matching `filter`, newest first, at most `limit`.
///
/// The statement names only the filters that are set. A catch-all form such as
/// `($1 = '' OR channel = $1)` reads the same, but no plan made once for every value can
/// use an index on a column that may go unfiltered: PostgreSQL then plans each run anew
/// with its values, and a server set to reuse generic plans would scan every order. Each
/// shape here has a plan that uses the indexes whatever the values.
pub async fn search(
    conn: &mut AnyConnection,
    filter: &SearchFilter,
    limit: i64,
) -> Result<Vec<OrderId>> {
    enum Arg<'a> {
        Text(&'a str),
        Number(i64),
    }
    /// Adds `arg` to `args` and returns its placeholder.
    fn next<'a>(arg: Arg<'a>, args: &mut Vec<Arg<'a>>) -> String {
        args.push(arg);
        format!("${}", args.len())
    }
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg<'_>> = Vec::new();
    if !filter.client_id.is_empty() {
        let p = next(Arg::Text(&filter.client_id), &mut args);
        clauses.push(format!("client_id = {p}"));
    }
    if !filter.channel.is_empty() {
        let p = next(Arg::Text(&filter.channel), &mut args);
        clauses.push(format!("channel = {p}"));
    }
    if !filter.id_lc.is_empty() {
        let p = next(Arg::Text(&filter.id_lc), &mut args);
        let mut any = format!("channel_order_id_lc = {p} OR parent_order_id_lc = {p}");
        if let Some(id) = filter.internal_id_opt {
            let q = next(Arg::Number(id.0), &mut args);
            any.push_str(&format!(" OR id = {q}"));
        }
        clauses.push(format!("({any})"));
    }
    if let Some(from) = filter.from_opt {
        let p = next(Arg::Number(from), &mut args);
        clauses.push(format!("order_time >= {p}"));
    }
    if let Some(to) = filter.to_opt {
        let p = next(Arg::Number(to), &mut args);
        clauses.push(format!("order_time < {p}"));
    }
    if let Some(before) = filter.before_id_opt {
        let p = next(Arg::Number(before), &mut args);
        clauses.push(format!("id < {p}"));
    }
    if !filter.statuses.is_empty() {
        // Status names come from the enum, never from the caller's text.
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|status| format!("'{}'", status.as_str()))
            .collect();
        clauses.push(format!("status IN ({})", list.join(", ")));
    }
    let mut sql = String::from("SELECT id FROM orders");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    let p = next(Arg::Number(limit), &mut args);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {p}"));

    let mut query = sqlx::query(&sql);
    for arg in args {
        query = match arg {
            Arg::Text(text) => query.bind(text),
            Arg::Number(number) => query.bind(number),
        };
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| Ok(OrderId(row.try_get("id")?)))
        .collect()
}

/// Ids of FAILED orders, oldest first, after id `after_id`.
pub async fn failed(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<OrderId>> {
    let rows = sqlx::query(
        "SELECT id FROM orders WHERE status = 'FAILED' AND ($1 = '' OR client_id = $1) \
         AND ($2 = '' OR channel = $2) AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(client_id)
    .bind(channel)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok(OrderId(row.try_get("id")?)))
        .collect()
}

/// FAILED orders to retry: of one client, one channel and with one marketplace SKU when
/// given, oldest first.
pub async fn failed_to_retry(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    marketplace_sku: &str,
) -> Result<Vec<OrderId>> {
    let rows = sqlx::query(
        "SELECT o.id FROM orders o WHERE o.status = 'FAILED' AND ($1 = '' OR o.client_id = $1) \
         AND ($2 = '' OR o.channel = $2) \
         AND ($3 = '' OR EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id \
                                 AND l.marketplace_sku = $3)) \
         ORDER BY o.id",
    )
    .bind(client_id)
    .bind(channel)
    .bind(marketplace_sku)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok(OrderId(row.try_get("id")?)))
        .collect()
}

/// Waiting marketplace orders of a client and grade that need any of `skus` (all SKUs
/// when empty), served from `pool` (any pool when empty), in the waiting order: priority
/// first, then earliest dispatch-by (none last), earliest order time, lowest id.
pub async fn waiting(
    conn: &mut AnyConnection,
    client_id: &str,
    grade_opt: Option<Grade>,
    pool: &str,
    skus: &[String],
) -> Result<Vec<OrderId>> {
    let mut sql = String::from(
        "SELECT o.id FROM orders o WHERE o.waiting = 1 AND o.client_id = $1 \
         AND ($2 = '' OR o.grade = $2) AND ($3 = '' OR o.pool = $3 OR o.pool = '')",
    );
    if !skus.is_empty() {
        let placeholders: Vec<String> = (0..skus.len()).map(|i| format!("${}", i + 4)).collect();
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id \
               AND l.quantity - l.cancelled - l.held - l.invoiced > 0 AND l.sku IN ({}))",
            placeholders.join(", ")
        ));
    }
    sql.push_str(
        " ORDER BY o.priority DESC, COALESCE(o.dispatch_by, 9223372036854775807), \
         o.order_time, o.id",
    );
    let mut query = sqlx::query(&sql)
        .bind(client_id)
        .bind(grade_opt.map(Grade::as_str).unwrap_or_default())
        .bind(pool);
    for sku in skus {
        query = query.bind(sku.clone());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| Ok(OrderId(row.try_get("id")?)))
        .collect()
}

/// Open time holds due at or before `now`: (hold id, order id).
pub async fn due_time_holds(conn: &mut AnyConnection, now: i64) -> Result<Vec<(i64, OrderId)>> {
    let rows = sqlx::query(
        "SELECT id, order_id FROM order_holds WHERE kind = 'TIME' AND released_at IS NULL \
         AND release_after <= $1 ORDER BY release_after, id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, OrderId(row.try_get("order_id")?))))
        .collect()
}

/// Open return-pickup holds waiting for the return of a client's channel order.
pub async fn return_pickup_holds(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    channel_order_id: &str,
) -> Result<Vec<(i64, OrderId)>> {
    let rows = sqlx::query(
        "SELECT h.id, h.order_id FROM order_holds h JOIN orders o ON o.id = h.order_id \
         WHERE h.event_ref = $1 AND h.kind = 'EVENT' AND h.released_at IS NULL \
         AND o.client_id = $2 AND o.channel = $3 ORDER BY h.id",
    )
    .bind(channel_order_id)
    .bind(client_id)
    .bind(channel)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, OrderId(row.try_get("order_id")?))))
        .collect()
}

/// The channel order ids that open return-pickup holds of a client's channel wait for, in
/// text order after `after_ref`, at most `limit`.
pub async fn awaited_returns(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    after_ref: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT h.event_ref FROM order_holds h JOIN orders o ON o.id = h.order_id \
         WHERE h.kind = 'EVENT' AND h.released_at IS NULL AND o.client_id = $1 \
         AND o.channel = $2 AND h.event_ref > $3 ORDER BY h.event_ref LIMIT $4",
    )
    .bind(client_id)
    .bind(channel)
    .bind(after_ref)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| row.try_get("event_ref")).collect()
}

/// The order a hold belongs to.
pub async fn hold_order(conn: &mut AnyConnection, hold_id: i64) -> Result<Option<OrderId>> {
    let row = sqlx::query("SELECT order_id FROM order_holds WHERE id = $1")
        .bind(hold_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(OrderId(row.try_get("order_id")?))),
        None => Ok(None),
    }
}

/// Orders of a client's channel not yet closed (to sync their channel status), with
/// their channel order ids, after id `after_id`.
pub async fn open_of_channel(
    conn: &mut AnyConnection,
    client_id: &str,
    channel: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<(OrderId, String)>> {
    let rows = sqlx::query(
        "SELECT id, channel_order_id FROM orders WHERE client_id = $1 AND channel = $2 \
         AND status NOT IN ('CANCELLED', 'DISPATCHED', 'COMPLETE') AND id > $3 \
         ORDER BY id LIMIT $4",
    )
    .bind(client_id)
    .bind(channel)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                OrderId(row.try_get("id")?),
                row.try_get("channel_order_id")?,
            ))
        })
        .collect()
}

/// Distinct clients with orders.
pub async fn clients(conn: &mut AnyConnection) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT client_id FROM orders ORDER BY client_id")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|row| row.try_get("client_id")).collect()
}

/// Orders of a client that believe they hold stock, after id `after_id`, for reconcile.
pub async fn holding_candidates(
    conn: &mut AnyConnection,
    client_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<OrderId>> {
    let rows = sqlx::query(
        "SELECT DISTINCT o.id FROM orders o JOIN order_lines l ON l.order_id = o.id \
         WHERE o.client_id = $1 AND o.id > $2 AND l.held > 0 ORDER BY o.id LIMIT $3",
    )
    .bind(client_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok(OrderId(row.try_get("id")?)))
        .collect()
}

// === writing ===

/// Fields of a new order besides its lines.
#[derive(Debug, Clone)]
pub struct NewOrderRow<'a> {
    /// The order (its id, lines and times are ignored; status as given).
    pub order: &'a Order,
    /// Fingerprint of the request, to tell a resend from a different order.
    pub fingerprint: &'a str,
    /// Allocation attempts made before the row was written.
    pub alloc_attempts: i64,
    /// When (µs).
    pub now: i64,
}

/// The columns an order is inserted with, and their values: 24 parameters.
const ORDER_INSERT: &str = "INSERT INTO orders (client_id, channel, channel_order_id, \
    channel_order_id_lc, parent_order_id, parent_order_id_lc, kind, status, fulfilment, grade, \
    marketplace_fulfilled, priority, order_time, dispatch_by, start_processing, dispatch_after, \
    replacement_for, pool, failure_reason, unknown_skus, channel_conflict, fingerprint, \
    alloc_attempts, waiting, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, '', $21, $22, $23, $24, $24) \
    RETURNING id";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_order<'q>(query: AnyQuery<'q>, new: &'q NewOrderRow<'_>) -> AnyQuery<'q> {
    let order = new.order;
    query
        .bind(order.client_id.as_str())
        .bind(order.channel.as_str())
        .bind(order.channel_order_id.as_str())
        .bind(order.channel_order_id.to_lowercase())
        .bind(order.parent_order_id.as_str())
        .bind(order.parent_order_id.to_lowercase())
        .bind(order.kind.as_str())
        .bind(order.status.as_str())
        .bind(order.fulfilment.as_str())
        .bind(order.grade.as_str())
        .bind(i64::from(order.marketplace_fulfilled))
        .bind(i64::from(order.priority))
        .bind(order.order_time)
        .bind(order.dispatch_by_opt)
        .bind(order.start_processing_opt)
        .bind(order.dispatch_after_opt)
        .bind(order.replacement_for.as_str())
        .bind(order.pool.as_str())
        .bind(order.failure_reason.as_str())
        .bind(order.unknown_skus.join("\n"))
        .bind(new.fingerprint)
        .bind(new.alloc_attempts)
        .bind(i64::from(is_waiting(order)))
        .bind(new.now)
}

fn bind_line<'q>(query: AnyQuery<'q>, line: &'q Line) -> AnyQuery<'q> {
    query
        .bind(i64::from(line.line_no))
        .bind(line.marketplace_sku.as_str())
        .bind(line.sku.as_str())
        .bind(line.quantity)
        .bind(line.price_paise_opt)
        .bind(line.cancelled)
        .bind(line.held)
        .bind(line.picked)
        .bind(line.packed)
        .bind(line.invoiced)
        .bind(line.dispatched)
}

/// The line columns after `order_id`, with the types their parameters are cast to.
const LINE_COLUMNS: [(&str, &str); 11] = [
    ("line_no", "BIGINT"),
    ("marketplace_sku", "TEXT"),
    ("sku", "TEXT"),
    ("quantity", "BIGINT"),
    ("price_paise", "BIGINT"),
    ("cancelled", "BIGINT"),
    ("held", "BIGINT"),
    ("picked", "BIGINT"),
    ("packed", "BIGINT"),
    ("invoiced", "BIGINT"),
    ("dispatched", "BIGINT"),
];

/// Inserts an order and its lines; the unique natural key makes a concurrent duplicate
/// fail with a unique violation, which the caller turns into "return the existing one".
pub async fn insert(conn: &mut AnyConnection, new: &NewOrderRow<'_>) -> Result<OrderId> {
    let id: i64 = bind_order(sqlx::query(ORDER_INSERT), new)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let columns: Vec<&str> = LINE_COLUMNS.iter().map(|(name, _)| *name).collect();
    let sql = format!(
        "INSERT INTO order_lines (order_id, {}) VALUES ($1, {})",
        columns.join(", "),
        (2..=LINE_COLUMNS.len() + 1)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for line in &new.order.lines {
        bind_line(sqlx::query(&sql).bind(id), line)
            .execute(&mut *conn)
            .await?;
    }
    Ok(OrderId(id))
}

/// One entry of an order's status history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub from_opt: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: String,
}

/// A new order with its first history entries, as [`insert_arrivals`] stores it.
pub struct NewArrival<'a> {
    pub row: NewOrderRow<'a>,
    pub actor: &'a str,
    pub history: &'a [HistoryEntry],
}

/// Inserts new orders with their lines and first history entries as one PostgreSQL
/// statement, which commits on its own: every order is stored whole, or none is. One round
/// trip replaces a transaction of five per order, and the statement's text is the same
/// for any number of orders (the rows travel as three JSON parameters), so its plan is
/// prepared once. Ids are given in the order of `arrivals` and returned in that order. A
/// natural key stored already fails the whole statement with a unique violation.
/// PostgreSQL only: SQLite has no data-modifying `WITH`.
pub async fn insert_arrivals(
    conn: &mut AnyConnection,
    arrivals: &[NewArrival<'_>],
) -> Result<Vec<OrderId>> {
    const SQL: &str = "WITH v AS (SELECT * FROM json_to_recordset(CAST($1 AS json)) AS v (\
          n BIGINT, client_id TEXT, channel TEXT, channel_order_id TEXT, \
          channel_order_id_lc TEXT, parent_order_id TEXT, parent_order_id_lc TEXT, kind TEXT, \
          status TEXT, fulfilment TEXT, grade TEXT, marketplace_fulfilled BIGINT, \
          priority BIGINT, order_time BIGINT, dispatch_by BIGINT, start_processing BIGINT, \
          dispatch_after BIGINT, replacement_for TEXT, pool TEXT, failure_reason TEXT, \
          unknown_skus TEXT, fingerprint TEXT, alloc_attempts BIGINT, waiting BIGINT, \
          created_at BIGINT)), \
        o AS (INSERT INTO orders (client_id, channel, channel_order_id, channel_order_id_lc, \
          parent_order_id, parent_order_id_lc, kind, status, fulfilment, grade, \
          marketplace_fulfilled, priority, order_time, dispatch_by, start_processing, \
          dispatch_after, replacement_for, pool, failure_reason, unknown_skus, \
          channel_conflict, fingerprint, alloc_attempts, waiting, created_at, updated_at) \
          SELECT client_id, channel, channel_order_id, channel_order_id_lc, parent_order_id, \
          parent_order_id_lc, kind, status, fulfilment, grade, marketplace_fulfilled, \
          priority, order_time, dispatch_by, start_processing, dispatch_after, \
          replacement_for, pool, failure_reason, unknown_skus, '', fingerprint, \
          alloc_attempts, waiting, created_at, created_at FROM v ORDER BY n \
          RETURNING id, client_id, channel, channel_order_id), \
        lv AS (SELECT * FROM json_to_recordset(CAST($2 AS json)) AS lv (client_id TEXT, \
          channel TEXT, channel_order_id TEXT, line_no BIGINT, marketplace_sku TEXT, \
          sku TEXT, quantity BIGINT, price_paise BIGINT, cancelled BIGINT, held BIGINT, \
          picked BIGINT, packed BIGINT, invoiced BIGINT, dispatched BIGINT)), \
        l AS (INSERT INTO order_lines (order_id, line_no, marketplace_sku, sku, quantity, \
          price_paise, cancelled, held, picked, packed, invoiced, dispatched) \
          SELECT o.id, lv.line_no, lv.marketplace_sku, lv.sku, lv.quantity, lv.price_paise, \
          lv.cancelled, lv.held, lv.picked, lv.packed, lv.invoiced, lv.dispatched \
          FROM lv JOIN o USING (client_id, channel, channel_order_id)), \
        hv AS (SELECT * FROM json_to_recordset(CAST($3 AS json)) AS hv (n BIGINT, \
          client_id TEXT, channel TEXT, channel_order_id TEXT, at BIGINT, actor TEXT, \
          from_status TEXT, to_status TEXT, reason TEXT)), \
        h AS (INSERT INTO order_history (order_id, at, actor, from_status, to_status, \
          reason) SELECT o.id, hv.at, hv.actor, hv.from_status, hv.to_status, hv.reason \
          FROM hv JOIN o USING (client_id, channel, channel_order_id) ORDER BY hv.n) \
        SELECT id, client_id, channel, channel_order_id FROM o";

    let mut orders = Vec::with_capacity(arrivals.len());
    let mut lines = Vec::new();
    let mut history = Vec::new();
    for (n, arrival) in arrivals.iter().enumerate() {
        let order = arrival.row.order;
        let key = (&order.client_id, &order.channel, &order.channel_order_id);
        orders.push(serde_json::json!({
            "n": n,
            "client_id": key.0,
            "channel": key.1,
            "channel_order_id": key.2,
            "channel_order_id_lc": order.channel_order_id.to_lowercase(),
            "parent_order_id": order.parent_order_id,
            "parent_order_id_lc": order.parent_order_id.to_lowercase(),
            "kind": order.kind.as_str(),
            "status": order.status.as_str(),
            "fulfilment": order.fulfilment.as_str(),
            "grade": order.grade.as_str(),
            "marketplace_fulfilled": i64::from(order.marketplace_fulfilled),
            "priority": i64::from(order.priority),
            "order_time": order.order_time,
            "dispatch_by": order.dispatch_by_opt,
            "start_processing": order.start_processing_opt,
            "dispatch_after": order.dispatch_after_opt,
            "replacement_for": order.replacement_for,
            "pool": order.pool,
            "failure_reason": order.failure_reason,
            "unknown_skus": order.unknown_skus.join("\n"),
            "fingerprint": arrival.row.fingerprint,
            "alloc_attempts": arrival.row.alloc_attempts,
            "waiting": i64::from(is_waiting(order)),
            "created_at": arrival.row.now,
        }));
        for line in &order.lines {
            lines.push(serde_json::json!({
                "client_id": key.0,
                "channel": key.1,
                "channel_order_id": key.2,
                "line_no": line.line_no,
                "marketplace_sku": line.marketplace_sku,
                "sku": line.sku,
                "quantity": line.quantity,
                "price_paise": line.price_paise_opt,
                "cancelled": line.cancelled,
                "held": line.held,
                "picked": line.picked,
                "packed": line.packed,
                "invoiced": line.invoiced,
                "dispatched": line.dispatched,
            }));
        }
        for entry in arrival.history {
            // Numbered so the ids keep the order the entries happened in.
            history.push(serde_json::json!({
                "n": history.len(),
                "client_id": key.0,
                "channel": key.1,
                "channel_order_id": key.2,
                "at": arrival.row.now,
                "actor": arrival.actor,
                "from_status": entry.from_opt.map(OrderStatus::as_str).unwrap_or_default(),
                "to_status": entry.to.as_str(),
                "reason": entry.reason,
            }));
        }
    }
    let rows = sqlx::query(SQL)
        .bind(serde_json::Value::Array(orders).to_string())
        .bind(serde_json::Value::Array(lines).to_string())
        .bind(serde_json::Value::Array(history).to_string())
        .fetch_all(&mut *conn)
        .await?;
    let mut ids = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let key: (String, String, String) = (
            row.try_get("client_id")?,
            row.try_get("channel")?,
            row.try_get("channel_order_id")?,
        );
        ids.insert(key, OrderId(row.try_get("id")?));
    }
    arrivals
        .iter()
        .map(|arrival| {
            let order = arrival.row.order;
            let key = (
                order.client_id.clone(),
                order.channel.clone(),
                order.channel_order_id.clone(),
            );
            ids.get(&key).copied().ok_or_else(|| {
                sqlx::Error::Protocol(format!(
                    "order `{}` was not returned by its insert",
                    order.channel_order_id
                ))
            })
        })
        .collect()
}

/// What [`arrival_checks`] looks up for one new order.
pub struct ArrivalQuery<'a> {
    /// Client, channel and channel order id.
    pub natural_key: (&'a str, &'a str, &'a str),
    pub grade: Grade,
    /// The order's client SKUs.
    pub skus: &'a [String],
}

/// [`arrival_check`] for many new orders in one PostgreSQL statement whose text does not
/// depend on how many orders it checks.
pub async fn arrival_checks(
    conn: &mut AnyConnection,
    queries: &[ArrivalQuery<'_>],
) -> Result<Vec<ArrivalCheck>> {
    // Each key is looked up through the natural key's index, and each SKU through the
    // index of lines still wanting stock (the LIMITs keep the planner from turning the
    // lookups into a scan of every order or line: it cannot tell how few keys the JSON
    // holds).
    const SQL: &str = "WITH k AS (SELECT * FROM json_to_recordset(CAST($1 AS json)) AS k (\
          client_id TEXT, channel TEXT, channel_order_id TEXT)), \
        w AS (SELECT DISTINCT * FROM json_to_recordset(CAST($2 AS json)) AS w (\
          client_id TEXT, grade TEXT, sku TEXT)) \
        SELECT 0 AS part, k.client_id AS a, k.channel AS b, k.channel_order_id AS c, \
          o.fingerprint AS d, o.id FROM k CROSS JOIN LATERAL (SELECT id, fingerprint \
          FROM orders WHERE client_id = k.client_id AND channel = k.channel \
          AND channel_order_id = k.channel_order_id LIMIT 1) AS o \
        UNION ALL \
        SELECT 1, w.client_id, w.grade, w.sku, '', CAST(0 AS BIGINT) FROM w \
          CROSS JOIN LATERAL (SELECT 1 FROM order_lines l JOIN orders o ON o.id = l.order_id \
          WHERE l.sku = w.sku AND l.quantity - l.cancelled - l.held - l.invoiced > 0 \
          AND o.waiting = 1 AND o.client_id = w.client_id AND o.grade = w.grade \
          LIMIT 1) AS x";

    let keys: Vec<serde_json::Value> = queries
        .iter()
        .map(|query| {
            serde_json::json!({
                "client_id": query.natural_key.0,
                "channel": query.natural_key.1,
                "channel_order_id": query.natural_key.2,
            })
        })
        .collect();
    let wanted: Vec<serde_json::Value> = queries
        .iter()
        .flat_map(|query| {
            query.skus.iter().map(|sku| {
                serde_json::json!({
                    "client_id": query.natural_key.0,
                    "grade": query.grade.as_str(),
                    "sku": sku,
                })
            })
        })
        .collect();
    let rows = sqlx::query(SQL)
        .bind(serde_json::Value::Array(keys).to_string())
        .bind(serde_json::Value::Array(wanted).to_string())
        .fetch_all(&mut *conn)
        .await?;

    let mut stored = std::collections::HashMap::new();
    let mut waiting = std::collections::HashSet::new();
    for row in &rows {
        let part: i32 = row.try_get("part")?;
        let a: String = row.try_get("a")?;
        let b: String = row.try_get("b")?;
        let c: String = row.try_get("c")?;
        if part == 0 {
            let found = (OrderId(row.try_get("id")?), row.try_get::<String, _>("d")?);
            stored.insert((a, b, c), found);
        } else {
            waiting.insert((a, b, c));
        }
    }
    Ok(queries
        .iter()
        .map(|query| {
            let (client_id, channel, channel_order_id) = query.natural_key;
            let key = (
                client_id.to_string(),
                channel.to_string(),
                channel_order_id.to_string(),
            );
            ArrivalCheck {
                existing_opt: stored.get(&key).cloned(),
                any_waiting: query.skus.iter().any(|sku| {
                    waiting.contains(&(
                        client_id.to_string(),
                        query.grade.as_str().to_string(),
                        sku.clone(),
                    ))
                }),
            }
        })
        .collect())
}

/// Writes an order's changeable fields and every line.
pub async fn save(conn: &mut AnyConnection, order: &Order, now: i64) -> Result<()> {
    debug_assert!(
        order.lines.iter().all(Line::is_consistent),
        "inconsistent line: {order:?}"
    );
    sqlx::query(
        "UPDATE orders SET status = $2, pool = $3, failure_reason = $4, unknown_skus = $5, \
         channel_conflict = $6, waiting = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(order.id.0)
    .bind(order.status.as_str())
    .bind(&order.pool)
    .bind(&order.failure_reason)
    .bind(order.unknown_skus.join("\n"))
    .bind(&order.channel_conflict)
    .bind(i64::from(is_waiting(order)))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for line in &order.lines {
        sqlx::query(
            "UPDATE order_lines SET sku = $3, cancelled = $4, held = $5, picked = $6, \
             packed = $7, invoiced = $8, dispatched = $9 WHERE order_id = $1 AND line_no = $2",
        )
        .bind(order.id.0)
        .bind(i64::from(line.line_no))
        .bind(&line.sku)
        .bind(line.cancelled)
        .bind(line.held)
        .bind(line.picked)
        .bind(line.packed)
        .bind(line.invoiced)
        .bind(line.dispatched)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Counts one more allocation attempt and returns its number (keys inventory requests).
pub async fn next_alloc_attempt(conn: &mut AnyConnection, id: OrderId) -> Result<i64> {
    sqlx::query_scalar(
        "UPDATE orders SET alloc_attempts = alloc_attempts + 1 WHERE id = $1 \
         RETURNING alloc_attempts",
    )
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await
}

/// Places holds on a new order; returns their ids in the same order.
pub async fn insert_holds(
    conn: &mut AnyConnection,
    id: OrderId,
    holds: &[NewHold],
    now: i64,
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(holds.len());
    for hold in holds {
        let hold_id: i64 = sqlx::query_scalar(
            "INSERT INTO order_holds (order_id, kind, release_after, event, event_ref, reason, \
             created_at, released_at, released_by, release_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, '', '') RETURNING id",
        )
        .bind(id.0)
        .bind(hold.kind.as_str())
        .bind(hold.release_after_opt)
        .bind(&hold.event)
        .bind(&hold.event_ref)
        .bind(&hold.reason)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        ids.push(hold_id);
    }
    Ok(ids)
}

/// Releases a hold if it is still open; false when it was released already (by a racing
/// release, which then recorded the transition).
pub async fn release_hold(
    conn: &mut AnyConnection,
    hold_id: i64,
    now: i64,
    released_by: &str,
    reason: &str,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE order_holds SET released_at = $2, released_by = $3, release_reason = $4 \
         WHERE id = $1 AND released_at IS NULL",
    )
    .bind(hold_id)
    .bind(now)
    .bind(released_by)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records one entry of an order's history.
pub async fn add_history(
    conn: &mut AnyConnection,
    id: OrderId,
    now: i64,
    actor: &str,
    from_opt: Option<OrderStatus>,
    to: OrderStatus,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_history (order_id, at, actor, from_status, to_status, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.0)
    .bind(now)
    .bind(actor)
    .bind(from_opt.map(OrderStatus::as_str).unwrap_or_default())
    .bind(to.as_str())
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the first two entries of a new order's history (arrival, then the outcome of
/// allocation on arrival) in one statement.
pub async fn add_arrival_history(
    conn: &mut AnyConnection,
    id: OrderId,
    now: i64,
    actor: &str,
    arrival: (OrderStatus, &str),
    allocation: (OrderStatus, &str),
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_history (order_id, at, actor, from_status, to_status, reason) \
         VALUES ($1, $2, $3, '', $4, $5), ($1, $2, $3, $4, $6, $7)",
    )
    .bind(id.0)
    .bind(now)
    .bind(actor)
    .bind(arrival.0.as_str())
    .bind(arrival.1)
    .bind(allocation.0.as_str())
    .bind(allocation.1)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds a packed shipment; returns its id.
pub async fn insert_shipment(
    conn: &mut AnyConnection,
    id: OrderId,
    sequence: i32,
    lines: &[(i32, i64)],
    now: i64,
) -> Result<i64> {
    let shipment_id: i64 = sqlx::query_scalar(
        "INSERT INTO shipments (order_id, sequence, status, invoice_number, packed_at, \
         invoiced_at, dispatched_at) VALUES ($1, $2, 'PACKED', '', $3, NULL, NULL) RETURNING id",
    )
    .bind(id.0)
    .bind(i64::from(sequence))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for (line_no, quantity) in lines {
        sqlx::query(
            "INSERT INTO shipment_lines (shipment_id, line_no, quantity) VALUES ($1, $2, $3)",
        )
        .bind(shipment_id)
        .bind(i64::from(*line_no))
        .bind(*quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(shipment_id)
}

/// The order and shipment sequence of another shipment of `client_id` invoiced as
/// `invoice_number` in any letter case, if there is one. On PostgreSQL the number is locked
/// for the rest of the transaction first, so two invoices with one number queue here and
/// the second sees the first (SQLite's write transactions queue anyway).
pub async fn invoice_number_holder(
    conn: &mut AnyConnection,
    backend: Backend,
    client_id: &str,
    invoice_number: &str,
    shipment_id: i64,
) -> Result<Option<(OrderId, i64)>> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)")
            .bind(format!(
                "invoice-number:{client_id}:{}",
                invoice_number.to_ascii_lowercase()
            ))
            .execute(&mut *conn)
            .await?;
    }
    let row_opt = sqlx::query(
        "SELECT s.order_id, s.sequence FROM shipments s JOIN orders o ON o.id = s.order_id \
         WHERE LOWER(s.invoice_number) = $1 AND s.invoice_number <> '' \
           AND o.client_id = $2 AND s.id <> $3 LIMIT 1",
    )
    .bind(invoice_number.to_ascii_lowercase())
    .bind(client_id)
    .bind(shipment_id)
    .fetch_optional(&mut *conn)
    .await?;
    row_opt
        .map(|row| Ok((OrderId(row.try_get("order_id")?), row.try_get("sequence")?)))
        .transpose()
}

/// Marks a shipment invoiced.
pub async fn mark_invoiced(
    conn: &mut AnyConnection,
    shipment_id: i64,
    invoice_number: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE shipments SET status = 'INVOICED', invoice_number = $2, invoiced_at = $3 \
         WHERE id = $1",
    )
    .bind(shipment_id)
    .bind(invoice_number)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a shipment dispatched.
pub async fn mark_dispatched(conn: &mut AnyConnection, shipment_id: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE shipments SET status = 'DISPATCHED', dispatched_at = $2 WHERE id = $1")
        .bind(shipment_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
