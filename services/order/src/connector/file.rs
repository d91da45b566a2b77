//! The file connector: see the parent module for the directory layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::channel::v1::channel_connector_server::ChannelConnector;
use kosha_runtime::Error;
use kosha_runtime::time::to_timestamp;
use tonic::{Request, Response, Status};

/// Serves orders and statuses from files and records pushed availability in a file.
#[derive(Debug, Clone)]
pub struct FileConnector {
    root: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
struct JsonLine {
    marketplace_sku: String,
    quantity: i64,
    #[serde(default)]
    price: String,
}

#[derive(Debug, serde::Deserialize)]
struct JsonOrder {
    channel_order_id: String,
    #[serde(default)]
    parent_order_id: String,
    order_time: String,
    lines: Vec<JsonLine>,
    #[serde(default)]
    fulfilment_type: String,
    #[serde(default)]
    dispatch_by_time: String,
    #[serde(default)]
    dispatch_after_time: String,
    #[serde(default)]
    replacement_for_channel_order_id: String,
    #[serde(default)]
    priority: bool,
    #[serde(default)]
    marketplace_fulfilled: bool,
}

fn bad_file(
    path: &Path,
    row_opt: Option<usize>,
    column: &str,
    why: impl std::fmt::Display,
) -> Error {
    let place = match row_opt {
        Some(row) => format!("{} row {row} column `{column}`", path.display()),
        None => format!("{} `{column}`", path.display()),
    };
    Error::FailedPrecondition(format!("connector file {place}: {why}"))
}

fn parse_time(text: &str) -> Result<i64, String> {
    let instant = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("`{text}` is not an RFC 3339 time ({error})"))?;
    i64::try_from(instant.unix_timestamp_nanos() / 1_000)
        .map_err(|_| format!("`{text}` is out of range"))
}

fn parse_optional_time(text: &str) -> Result<Option<i64>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse_time(text.trim()).map(Some)
    }
}

fn parse_fulfilment(text: &str) -> Result<channel::ChannelFulfilmentType, String> {
    use channel::ChannelFulfilmentType as Kind;
    match text.trim() {
        "" => Ok(Kind::Unspecified),
        "BLOCK_COMPLETE" => Ok(Kind::BlockComplete),
        "MULTI_SHIPMENT_PARTIAL" => Ok(Kind::MultiShipmentPartial),
        "SINGLE_SHIPMENT_PARTIAL" => Ok(Kind::SingleShipmentPartial),
        other => Err(format!(
            "`{other}` is not a fulfilment type (BLOCK_COMPLETE, MULTI_SHIPMENT_PARTIAL, \
             SINGLE_SHIPMENT_PARTIAL)"
        )),
    }
}

fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// How far a client's files have been served: orders of `orders.json` and data rows of
/// `orders.csv`. Both files are logs that only grow, so a count of what was served is
/// enough to find what came after, whatever the new orders' times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Served {
    json_orders: usize,
    csv_rows: usize,
}

/// Marks a cursor written by [`Served::cursor`].
const CURSOR_PREFIX: &str = "files/";

impl Served {
    fn cursor(self) -> String {
        format!(
            "{CURSOR_PREFIX}json={}/csv={}",
            self.json_orders, self.csv_rows
        )
    }

    fn parse(text: &str) -> Result<Served, Error> {
        if text.is_empty() {
            return Ok(Served::default());
        }
        let bad = || Error::invalid("cursor", "not a cursor returned by this connector");
        let Some(rest) = text.strip_prefix(CURSOR_PREFIX) else {
            // Cursors written before positions were used held an order time and id. Such a
            // channel is served again from the start: the order service knows the orders it
            // took in by their ids, so they change nothing, and the ones that arrived late
            // with an earlier time, missed by those cursors, are taken in at last.
            let (time, _) = text.split_once('|').ok_or_else(bad)?;
            time.parse::<i64>().map_err(|_| bad())?;
            return Ok(Served::default());
        };
        let (json, csv) = rest.split_once('/').ok_or_else(bad)?;
        let count = |part: &str, name: &str| {
            part.strip_prefix(name)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(bad)
        };
        Ok(Served {
            json_orders: count(json, "json=")?,
            csv_rows: count(csv, "csv=")?,
        })
    }
}

/// An order of a file, and how far the files are served once it is.
struct FileOrder {
    order: channel::ChannelOrder,
    served_after: Served,
}

/// An order no one can take in, for what is wrong with it.
fn unreadable(channel_order_id: String, reason: String) -> channel::ChannelOrder {
    channel::ChannelOrder {
        channel_order_id,
        unreadable_reason: reason,
        ..channel::ChannelOrder::default()
    }
}

impl FileConnector {
    /// A connector over `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The client's directory, which must exist: a missing one is far more often a wrong
    /// path or client than a client without orders, and saying "nothing new" would hide it.
    fn client_dir(&self, client_id: &str) -> Result<PathBuf, Error> {
        kosha_runtime::validate::client_id("client_id", client_id)?;
        if !self.root.is_dir() {
            return Err(Error::FailedPrecondition(format!(
                "connector directory {} does not exist",
                self.root.display()
            )));
        }
        let dir = self.root.join(client_id);
        if !dir.is_dir() {
            return Err(Error::FailedPrecondition(format!(
                "connector directory {} has no folder for client `{client_id}`; its orders go \
                 in {}/orders.csv or orders.json",
                self.root.display(),
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// Every order of a client's files after `served`: those of `orders.json`, then those of
    /// `orders.csv`, each file in its own order.
    fn orders_after(&self, client_id: &str, served: Served) -> Result<Vec<FileOrder>, Error> {
        let dir = self.client_dir(client_id)?;
        let mut orders = Vec::new();
        let json_path = dir.join("orders.json");
        let json_orders = if json_path.exists() {
            read_json_orders(&json_path)?
        } else {
            Vec::new()
        };
        let json_total = json_orders.len().max(served.json_orders);
        for (index, order) in json_orders.into_iter().enumerate().skip(served.json_orders) {
            orders.push(FileOrder {
                order,
                served_after: Served {
                    json_orders: index + 1,
                    csv_rows: served.csv_rows,
                },
            });
        }
        let csv_path = dir.join("orders.csv");
        if csv_path.exists() {
            for (rows, order) in read_csv_orders(&csv_path, served.csv_rows)? {
                orders.push(FileOrder {
                    order,
                    served_after: Served {
                        json_orders: json_total,
                        csv_rows: rows,
                    },
                });
            }
        }
        Ok(orders)
    }

    /// The ids of every order in a client's files.
    fn known_ids(&self, client_id: &str) -> Result<BTreeSet<String>, Error> {
        Ok(self
            .orders_after(client_id, Served::default())?
            .into_iter()
            .map(|order| order.order.channel_order_id)
            .collect())
    }

    fn read_statuses(
        &self,
        client_id: &str,
    ) -> Result<BTreeMap<String, channel::ChannelOrderState>, Error> {
        let path = self.client_dir(client_id)?.join("statuses.csv");
        let mut statuses = BTreeMap::new();
        if !path.exists() {
            return Ok(statuses);
        }
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .map_err(|e| bad_file(&path, None, "file", e))?;
        let (id_column, state_column) = {
            let headers = reader
                .headers()
                .map_err(|e| bad_file(&path, Some(1), "header", e))?;
            let column = |name: &str| {
                headers
                    .iter()
                    .position(|header| header.trim() == name)
                    .ok_or_else(|| {
                        bad_file(
                            &path,
                            Some(1),
                            name,
                            "missing: the first row names the columns, \
                             `channel_order_id,state`",
                        )
                    })
            };
            (column("channel_order_id")?, column("state")?)
        };
        for (index, record) in reader.records().enumerate() {
            let row = index + 2;
            let record = record.map_err(|e| bad_file(&path, Some(row), "row", e))?;
            let id = record.get(id_column).unwrap_or_default().trim().to_string();
            let state = match record.get(state_column).unwrap_or_default().trim() {
                "OPEN" => channel::ChannelOrderState::Open,
                "CANCELLED" => channel::ChannelOrderState::Cancelled,
                "RETURN_PICKED_UP" => channel::ChannelOrderState::ReturnPickedUp,
                "SHIPPED" => channel::ChannelOrderState::Shipped,
                other => {
                    return Err(bad_file(
                        &path,
                        Some(row),
                        "state",
                        format!(
                            "`{other}` is not a state (OPEN, CANCELLED, RETURN_PICKED_UP, \
                             SHIPPED)"
                        ),
                    ));
                }
            };
            if id.is_empty() {
                return Err(bad_file(&path, Some(row), "channel_order_id", "blank"));
            }
            // The file is a log: a later row for an order supersedes an earlier one.
            statuses.insert(id, state);
        }
        Ok(statuses)
    }
}

/// The orders of a JSON file, in the file's order. An order that cannot be read is kept,
/// as unreadable, so the others still go through; a file that is not a JSON array of
/// objects fails whole, since nothing in it can be told apart.
fn read_json_orders(path: &Path) -> Result<Vec<channel::ChannelOrder>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_file(path, None, "file", e))?;
    let parsed: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| bad_file(path, None, "json", e))?;
    Ok(parsed
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let id = value
                .get("channel_order_id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            json_order(value).unwrap_or_else(|(field, why)| {
                let place = format!("{} [{index}].{field}", path.display());
                unreadable(id, format!("connector file {place}: {why}"))
            })
        })
        .collect())
}

/// One order of a JSON file, or the field that is wrong and why.
fn json_order(value: serde_json::Value) -> Result<channel::ChannelOrder, (&'static str, String)> {
    let order: JsonOrder =
        serde_json::from_value(value).map_err(|error| ("order", error.to_string()))?;
    if order.channel_order_id.trim().is_empty() {
        return Err(("channel_order_id", "blank".into()));
    }
    let order_time = parse_time(&order.order_time).map_err(|e| ("order_time", e))?;
    let dispatch_by =
        parse_optional_time(&order.dispatch_by_time).map_err(|e| ("dispatch_by_time", e))?;
    let dispatch_after =
        parse_optional_time(&order.dispatch_after_time).map_err(|e| ("dispatch_after_time", e))?;
    let fulfilment =
        parse_fulfilment(&order.fulfilment_type).map_err(|e| ("fulfilment_type", e))?;
    Ok(channel::ChannelOrder {
        channel_order_id: order.channel_order_id,
        parent_order_id: order.parent_order_id,
        order_time: Some(to_timestamp(order_time)),
        lines: order
            .lines
            .into_iter()
            .map(|line| channel::ChannelOrderLine {
                marketplace_sku: line.marketplace_sku,
                quantity: line.quantity,
                price: line.price,
            })
            .collect(),
        fulfilment_type: fulfilment as i32,
        dispatch_by_time: dispatch_by.map(to_timestamp),
        dispatch_after_time: dispatch_after.map(to_timestamp),
        replacement_for_channel_order_id: order.replacement_for_channel_order_id,
        priority: order.priority,
        marketplace_fulfilled: order.marketplace_fulfilled,
        unreadable_reason: String::new(),
    })
}

/// The columns of a CSV order file, by name.
struct CsvColumns(csv::StringRecord);

impl CsvColumns {
    const REQUIRED: [&'static str; 4] = [
        "channel_order_id",
        "order_time",
        "marketplace_sku",
        "quantity",
    ];

    fn cell(&self, record: &csv::StringRecord, name: &str) -> String {
        self.0
            .iter()
            .position(|header| header.trim() == name)
            .and_then(|i| record.get(i))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// The orders of a CSV file that start after its first `skip` data rows, each with the
/// count of data rows up to its last. An order is a run of consecutive rows with one order
/// id; the same id further down is the order sent again (corrected, say). A row that cannot
/// be read makes its order unreadable, and the rest of the file still goes through; a file
/// without the required columns fails whole.
fn read_csv_orders(path: &Path, skip: usize) -> Result<Vec<(usize, channel::ChannelOrder)>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| bad_file(path, None, "file", e))?;
    let columns = CsvColumns(
        reader
            .headers()
            .map_err(|e| bad_file(path, Some(1), "header", e))?
            .clone(),
    );
    for name in CsvColumns::REQUIRED {
        if !columns.0.iter().any(|header| header.trim() == name) {
            return Err(bad_file(path, Some(1), name, "required column is missing"));
        }
    }
    // Each order with the index of its first data row and the count of data rows up to its
    // last.
    let mut orders: Vec<(usize, usize, channel::ChannelOrder)> = Vec::new();
    // Whether the last order read may take more lines: an unreadable row ends it.
    let mut open = false;
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let rows = index + 1;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                if index >= skip {
                    let reason = bad_file(path, Some(row), "row", error).to_string();
                    orders.push((index, rows, unreadable(String::new(), reason)));
                }
                open = false;
                continue;
            }
        };
        let id = columns.cell(&record, "channel_order_id");
        let line_result = csv_line(&columns, &record);
        let same_order = open
            && !id.is_empty()
            && orders
                .last()
                .is_some_and(|(_, _, order)| order.channel_order_id == id);
        if same_order {
            let (_, end, order) = orders.last_mut().expect("the order this row continues");
            *end = rows;
            match line_result {
                Ok(line) if order.unreadable_reason.is_empty() => order.lines.push(line),
                Ok(_) => {}
                Err((column, why)) => {
                    if order.unreadable_reason.is_empty() {
                        order.unreadable_reason =
                            bad_file(path, Some(row), column, why).to_string();
                    }
                }
            }
            continue;
        }
        open = true;
        if index < skip {
            // Served before: kept only so that its later rows are known as its own. Rows
            // added to an order after it was served are not read: a channel does not add
            // lines to an order it has sent.
            orders.push((
                index,
                rows,
                channel::ChannelOrder {
                    channel_order_id: id,
                    ..channel::ChannelOrder::default()
                },
            ));
            continue;
        }
        let order = line_result
            .and_then(|line| csv_order(&columns, &record, id.clone(), line))
            .unwrap_or_else(|(column, why)| {
                unreadable(id, bad_file(path, Some(row), column, why).to_string())
            });
        orders.push((index, rows, order));
    }
    Ok(orders
        .into_iter()
        .filter(|(start, _, _)| *start >= skip)
        .map(|(_, end, order)| (end, order))
        .collect())
}

/// The order line of a CSV row, or the column that is wrong and why.
fn csv_line(
    columns: &CsvColumns,
    record: &csv::StringRecord,
) -> Result<channel::ChannelOrderLine, (&'static str, String)> {
    let quantity = kosha_runtime::validate::parse_quantity(&columns.cell(record, "quantity"))
        .map_err(|e| ("quantity", e.to_string()))?;
    Ok(channel::ChannelOrderLine {
        marketplace_sku: columns.cell(record, "marketplace_sku"),
        quantity,
        price: columns.cell(record, "price"),
    })
}

/// The order a CSV row starts, or the column that is wrong and why.
fn csv_order(
    columns: &CsvColumns,
    record: &csv::StringRecord,
    id: String,
    line: channel::ChannelOrderLine,
) -> Result<channel::ChannelOrder, (&'static str, String)> {
    if id.is_empty() {
        return Err(("channel_order_id", "blank".into()));
    }
    let cell = |name: &str| columns.cell(record, name);
    let order_time = parse_time(&cell("order_time")).map_err(|e| ("order_time", e))?;
    let dispatch_by =
        parse_optional_time(&cell("dispatch_by_time")).map_err(|e| ("dispatch_by_time", e))?;
    let dispatch_after = parse_optional_time(&cell("dispatch_after_time"))
        .map_err(|e| ("dispatch_after_time", e))?;
    let fulfilment =
        parse_fulfilment(&cell("fulfilment_type")).map_err(|e| ("fulfilment_type", e))?;
    let priority = parse_flag(&cell("priority")).map_err(|e| ("priority", e))?;
    let marketplace_fulfilled =
        parse_flag(&cell("marketplace_fulfilled")).map_err(|e| ("marketplace_fulfilled", e))?;
    Ok(channel::ChannelOrder {
        channel_order_id: id,
        parent_order_id: cell("parent_order_id"),
        order_time: Some(to_timestamp(order_time)),
        lines: vec![line],
        fulfilment_type: fulfilment as i32,
        dispatch_by_time: dispatch_by.map(to_timestamp),
        dispatch_after_time: dispatch_after.map(to_timestamp),
        replacement_for_channel_order_id: cell("replacement_for"),
        priority,
        marketplace_fulfilled,
        unreadable_reason: String::new(),
    })
}

#[tonic::async_trait]
impl ChannelConnector for FileConnector {
    async fn fetch_orders(
        &self,
        request: Request<channel::FetchOrdersRequest>,
    ) -> Result<Response<channel::FetchOrdersResponse>, Status> {
        let request = request.into_inner();
        let page_size = kosha_runtime::page::page_size(request.page_size).map_err(Status::from)?;
        let served = Served::parse(&request.cursor).map_err(Status::from)?;
        let orders = self
            .orders_after(&request.client_id, served)
            .map_err(Status::from)?;

        let more = orders.len() as i64 > page_size;
        let mut page = Vec::new();
        let mut next_cursor = request.cursor.clone();
        for order in orders.into_iter().take(page_size as usize) {
            next_cursor = order.served_after.cursor();
            page.push(order.order);
        }
        Ok(Response::new(channel::FetchOrdersResponse {
            orders: page,
            next_cursor,
            more,
        }))
    }

    async fn fetch_order_statuses(
        &self,
        request: Request<channel::FetchOrderStatusesRequest>,
    ) -> Result<Response<channel::FetchOrderStatusesResponse>, Status> {
        let request = request.into_inner();
        let statuses = self
            .read_statuses(&request.client_id)
            .map_err(Status::from)?;
        let known = self.known_ids(&request.client_id).map_err(Status::from)?;
        let mut response = channel::FetchOrderStatusesResponse::default();
        for id in request.channel_order_ids {
            match statuses.get(&id) {
                Some(state) => response.statuses.push(channel::ChannelOrderStatus {
                    channel_order_id: id,
                    state: *state as i32,
                    update_time: None,
                }),
                None if known.contains(&id) => {
                    response.statuses.push(channel::ChannelOrderStatus {
                        channel_order_id: id,
                        state: channel::ChannelOrderState::Open as i32,
                        update_time: None,
                    })
                }
                None => response.unknown_channel_order_ids.push(id),
            }
        }
        Ok(Response::new(response))
    }

    async fn push_availability(
        &self,
        request: Request<channel::PushAvailabilityRequest>,
    ) -> Result<Response<channel::PushAvailabilityResponse>, Status> {
        let request = request.into_inner();
        let dir = self.client_dir(&request.client_id).map_err(Status::from)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Status::from(bad_file(&dir, None, "directory", e)))?;
        let path = dir.join("availability.csv");
        let mut text = String::from("marketplace_sku,sku,quantity\n");
        for listing in &request.listings {
            text.push_str(&format!(
                "{},{},{}\n",
                listing.marketplace_sku,
                listing.sku,
                listing.quantity.max(0)
            ));
        }
        // Write a sibling file and rename it, so a reader never sees half a file.
        let partial = dir.join("availability.csv.partial");
        std::fs::write(&partial, text)
            .map_err(|e| Status::from(bad_file(&partial, None, "file", e)))?;
        std::fs::rename(&partial, &path)
            .map_err(|e| Status::from(bad_file(&path, None, "file", e)))?;
        Ok(Response::new(channel::PushAvailabilityResponse {
            accepted: request.listings.len() as i64,
            rejected_marketplace_skus: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[tokio::test]
    async fn orders_from_json_then_csv_are_served_page_by_page() {
        let root = tempfile::tempdir().unwrap();
        let client_dir = root.path().join("acme");
        write(
            &client_dir,
            "orders.csv",
            "channel_order_id,parent_order_id,order_time,marketplace_sku,quantity\n\
             F-2,OD1,2026-01-01T10:00:00Z,MSKU-1,1\n\
             F-2,OD1,2026-01-01T10:00:00Z,MSKU-2,2\n",
        );
        write(
            &client_dir,
            "orders.json",
            r#"[{"channel_order_id": "F-1", "order_time": "2026-01-01T09:00:00+05:30",
                 "lines": [{"marketplace_sku": "MSKU-1", "quantity": 3}], "priority": true}]"#,
        );
        let connector = FileConnector::new(root.path());
        let ask = |cursor: &str| channel::FetchOrdersRequest {
            client_id: "acme".into(),
            channel: "FLIPKART".into(),
            cursor: cursor.into(),
            page_size: 1,
        };

        let first = connector
            .fetch_orders(Request::new(ask("")))
            .await
            .unwrap()
            .into_inner();
        let second = connector
            .fetch_orders(Request::new(ask(&first.next_cursor)))
            .await
            .unwrap()
            .into_inner();
        let third = connector
            .fetch_orders(Request::new(ask(&second.next_cursor)))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(first.orders[0].channel_order_id, "F-1");
        assert!(first.orders[0].priority);
        assert!(first.more);
        assert_eq!(second.orders[0].channel_order_id, "F-2");
        assert_eq!(second.orders[0].lines.len(), 2);
        assert!(!second.more);
        assert!(third.orders.is_empty());
        assert_eq!(third.next_cursor, second.next_cursor);
    }

    fn ask(cursor: &str) -> Request<channel::FetchOrdersRequest> {
        Request::new(channel::FetchOrdersRequest {
            client_id: "acme".into(),
            channel: "FLIPKART".into(),
            cursor: cursor.into(),
            page_size: 0,
        })
    }

    #[tokio::test]
    async fn a_bad_cell_makes_its_order_unreadable_and_holds_back_no_other() {
        let root = tempfile::tempdir().unwrap();
        let client_dir = root.path().join("acme");
        let header = "channel_order_id,order_time,marketplace_sku,quantity\n";
        let rows = "F-1,yesterday,M-1,1\n\
                    F-2,2026-01-01T10:00:00Z,M-1,1\n\
                    F-2,2026-01-01T10:00:00Z,M-2,x\n\
                    F-3,2026-01-01T11:00:00Z,M-1,2\n\
                    ,2026-01-01T11:00:00Z,M-1,2\n";
        write(&client_dir, "orders.csv", &format!("{header}{rows}"));
        let connector = FileConnector::new(root.path());

        let first = connector.fetch_orders(ask("")).await.unwrap().into_inner();
        write(
            &client_dir,
            "orders.csv",
            &format!("{header}{rows}F-1,2026-01-01T09:00:00Z,M-1,1\n"),
        );
        let resent = connector
            .fetch_orders(ask(&first.next_cursor))
            .await
            .unwrap()
            .into_inner();

        let reasons: Vec<(&str, &str)> = first
            .orders
            .iter()
            .map(|o| (o.channel_order_id.as_str(), o.unreadable_reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].1.contains("row 2 column `order_time`"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1].0, "F-2");
        assert!(
            reasons[1].1.contains("row 4 column `quantity`"),
            "{reasons:?}"
        );
        assert_eq!(
            reasons[2],
            ("F-3", ""),
            "a good order after bad ones is served"
        );
        assert!(
            reasons[3].1.contains("row 6 column `channel_order_id`"),
            "{reasons:?}"
        );
        assert_eq!(resent.orders.len(), 1, "only the corrected order is new");
        assert_eq!(resent.orders[0].channel_order_id, "F-1");
        assert!(resent.orders[0].unreadable_reason.is_empty());
    }

    #[tokio::test]
    async fn an_order_added_late_with_an_earlier_time_is_still_served() {
        let root = tempfile::tempdir().unwrap();
        let client_dir = root.path().join("acme");
        let header = "channel_order_id,order_time,marketplace_sku,quantity\n";
        write(
            &client_dir,
            "orders.csv",
            &format!("{header}F-2,2026-01-02T10:00:00Z,M-1,1\n"),
        );
        let connector = FileConnector::new(root.path());

        let first = connector.fetch_orders(ask("")).await.unwrap().into_inner();
        write(
            &client_dir,
            "orders.csv",
            &format!(
                "{header}F-2,2026-01-02T10:00:00Z,M-1,1\n\
                 F-1,2026-01-01T10:00:00Z,M-1,1\nF-1,2026-01-01T10:00:00Z,M-2,1\n"
            ),
        );
        let second = connector
            .fetch_orders(ask(&first.next_cursor))
            .await
            .unwrap()
            .into_inner();
        let third = connector
            .fetch_orders(ask(&second.next_cursor))
            .await
            .unwrap()
            .into_inner();
        let from_an_old_cursor = connector
            .fetch_orders(ask("1767261600000000|F-2"))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(first.orders.len(), 1);
        assert_eq!(second.orders.len(), 1);
        assert_eq!(second.orders[0].channel_order_id, "F-1");
        assert_eq!(second.orders[0].lines.len(), 2);
        assert!(third.orders.is_empty());
        assert_eq!(
            from_an_old_cursor.orders.len(),
            2,
            "a cursor of the order-time kind starts again from the beginning"
        );
    }

    #[tokio::test]
    async fn a_missing_folder_or_status_header_is_named() {
        let root = tempfile::tempdir().unwrap();
        let connector = FileConnector::new(root.path());
        let statuses = |connector: FileConnector| async move {
            connector
                .fetch_order_statuses(Request::new(channel::FetchOrderStatusesRequest {
                    client_id: "acme".into(),
                    channel: "FLIPKART".into(),
                    channel_order_ids: vec!["F-1".into()],
                }))
                .await
        };

        let no_folder = connector.fetch_orders(ask("")).await.unwrap_err();
        write(
            &root.path().join("acme"),
            "statuses.csv",
            "F-1,CANCELLED\nF-2,CANCELLED\n",
        );
        let no_header = statuses(connector.clone()).await.unwrap_err();
        let no_root = FileConnector::new(&root.path().join("nowhere"))
            .fetch_orders(ask(""))
            .await
            .unwrap_err();

        assert_eq!(no_folder.code(), tonic::Code::FailedPrecondition);
        assert!(
            no_folder.message().contains("no folder for client `acme`"),
            "{no_folder:?}"
        );
        assert!(
            no_header.message().contains("`channel_order_id,state`"),
            "{no_header:?}"
        );
        assert!(no_root.message().contains("does not exist"), "{no_root:?}");
    }

    #[tokio::test]
    async fn statuses_default_to_open_for_known_orders_and_pushes_land_in_a_file() {
        let root = tempfile::tempdir().unwrap();
        let client_dir = root.path().join("acme");
        write(
            &client_dir,
            "orders.csv",
            "channel_order_id,order_time,marketplace_sku,quantity\n\
             F-1,2026-01-01T10:00:00Z,M-1,1\nF-2,2026-01-01T10:00:00Z,M-1,1\n",
        );
        write(
            &client_dir,
            "statuses.csv",
            "channel_order_id,state\nF-2,OPEN\nF-1,OPEN\nF-2,CANCELLED\n",
        );
        let connector = FileConnector::new(root.path());

        let statuses = connector
            .fetch_order_statuses(Request::new(channel::FetchOrderStatusesRequest {
                client_id: "acme".into(),
                channel: "FLIPKART".into(),
                channel_order_ids: vec!["F-1".into(), "F-2".into(), "F-9".into()],
            }))
            .await
            .unwrap()
            .into_inner();
        connector
            .push_availability(Request::new(channel::PushAvailabilityRequest {
                client_id: "acme".into(),
                channel: "FLIPKART".into(),
                listings: vec![channel::ListingAvailability {
                    marketplace_sku: "M-1".into(),
                    sku: "SKU-1".into(),
                    quantity: 4,
                }],
            }))
            .await
            .unwrap();

        assert_eq!(
            statuses.statuses[0].state(),
            channel::ChannelOrderState::Open
        );
        assert_eq!(
            statuses.statuses[1].state(),
            channel::ChannelOrderState::Cancelled
        );
        assert_eq!(statuses.unknown_channel_order_ids, vec!["F-9".to_string()]);
        let pushed = std::fs::read_to_string(client_dir.join("availability.csv")).unwrap();
        assert_eq!(pushed, "marketplace_sku,sku,quantity\nM-1,SKU-1,4\n");
    }
}
