//! The file connector: see the parent module for the directory layout.

use std::collections::BTreeMap;
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

/// An order read from a file, with its time for sorting.
struct FileOrder {
    order_time: i64,
    order: channel::ChannelOrder,
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

impl FileConnector {
    /// A connector over `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn client_dir(&self, client_id: &str) -> Result<PathBuf, Error> {
        kosha_runtime::validate::client_id("client_id", client_id)?;
        Ok(self.root.join(client_id))
    }

    fn read_orders(&self, client_id: &str) -> Result<Vec<FileOrder>, Error> {
        let dir = self.client_dir(client_id)?;
        let mut orders = Vec::new();
        let json_path = dir.join("orders.json");
        if json_path.exists() {
            orders.extend(read_json_orders(&json_path)?);
        }
        let csv_path = dir.join("orders.csv");
        if csv_path.exists() {
            orders.extend(read_csv_orders(&csv_path)?);
        }
        orders.sort_by(|a, b| {
            (a.order_time, &a.order.channel_order_id)
                .cmp(&(b.order_time, &b.order.channel_order_id))
        });
        Ok(orders)
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
        let mut reader =
            csv::Reader::from_path(&path).map_err(|e| bad_file(&path, None, "file", e))?;
        for (index, record) in reader.records().enumerate() {
            let row = index + 2;
            let record = record.map_err(|e| bad_file(&path, Some(row), "row", e))?;
            let id = record.get(0).unwrap_or_default().trim().to_string();
            let state = match record.get(1).unwrap_or_default().trim() {
                "OPEN" => channel::ChannelOrderState::Open,
                "CANCELLED" => channel::ChannelOrderState::Cancelled,
                "RETURN_PICKED_UP" => channel::ChannelOrderState::ReturnPickedUp,
                "SHIPPED" => channel::ChannelOrderState::Shipped,
                other => {
                    return Err(bad_file(
                        &path,
                        Some(row),
                        "state",
                        format!("`{other}` is not a state"),
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

fn read_json_orders(path: &Path) -> Result<Vec<FileOrder>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_file(path, None, "file", e))?;
    let parsed: Vec<JsonOrder> =
        serde_json::from_str(&text).map_err(|e| bad_file(path, None, "json", e))?;
    let mut orders = Vec::with_capacity(parsed.len());
    for (index, order) in parsed.into_iter().enumerate() {
        let place = |field: &str| format!("[{index}].{field}");
        let order_time = parse_time(&order.order_time)
            .map_err(|e| bad_file(path, None, &place("order_time"), e))?;
        let dispatch_by = parse_optional_time(&order.dispatch_by_time)
            .map_err(|e| bad_file(path, None, &place("dispatch_by_time"), e))?;
        let dispatch_after = parse_optional_time(&order.dispatch_after_time)
            .map_err(|e| bad_file(path, None, &place("dispatch_after_time"), e))?;
        let fulfilment = parse_fulfilment(&order.fulfilment_type)
            .map_err(|e| bad_file(path, None, &place("fulfilment_type"), e))?;
        orders.push(FileOrder {
            order_time,
            order: channel::ChannelOrder {
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
            },
        });
    }
    Ok(orders)
}

fn read_csv_orders(path: &Path) -> Result<Vec<FileOrder>, Error> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad_file(path, None, "file", e))?;
    let headers = reader
        .headers()
        .map_err(|e| bad_file(path, Some(1), "header", e))?
        .clone();
    let column = |name: &str| headers.iter().position(|header| header.trim() == name);
    let required = [
        "channel_order_id",
        "order_time",
        "marketplace_sku",
        "quantity",
    ];
    for name in required {
        if column(name).is_none() {
            return Err(bad_file(path, Some(1), name, "required column is missing"));
        }
    }
    let mut by_id: BTreeMap<String, FileOrder> = BTreeMap::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let record = record.map_err(|e| bad_file(path, Some(row), "row", e))?;
        let cell = |name: &str| {
            column(name)
                .and_then(|i| record.get(i))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let id = cell("channel_order_id");
        if id.is_empty() {
            return Err(bad_file(path, Some(row), "channel_order_id", "blank"));
        }
        let quantity_text = cell("quantity");
        let quantity = kosha_runtime::validate::parse_quantity(&quantity_text)
            .map_err(|e| bad_file(path, Some(row), "quantity", e))?;
        let line = channel::ChannelOrderLine {
            marketplace_sku: cell("marketplace_sku"),
            quantity,
            price: cell("price"),
        };
        if let Some(existing) = by_id.get_mut(&id) {
            existing.order.lines.push(line);
            continue;
        }
        let order_time = parse_time(&cell("order_time"))
            .map_err(|e| bad_file(path, Some(row), "order_time", e))?;
        let dispatch_by = parse_optional_time(&cell("dispatch_by_time"))
            .map_err(|e| bad_file(path, Some(row), "dispatch_by_time", e))?;
        let dispatch_after = parse_optional_time(&cell("dispatch_after_time"))
            .map_err(|e| bad_file(path, Some(row), "dispatch_after_time", e))?;
        let fulfilment = parse_fulfilment(&cell("fulfilment_type"))
            .map_err(|e| bad_file(path, Some(row), "fulfilment_type", e))?;
        let priority =
            parse_flag(&cell("priority")).map_err(|e| bad_file(path, Some(row), "priority", e))?;
        let marketplace_fulfilled = parse_flag(&cell("marketplace_fulfilled"))
            .map_err(|e| bad_file(path, Some(row), "marketplace_fulfilled", e))?;
        by_id.insert(
            id.clone(),
            FileOrder {
                order_time,
                order: channel::ChannelOrder {
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
                },
            },
        );
    }
    Ok(by_id.into_values().collect())
}

/// The cursor after an order: its time and id.
fn cursor_of(order: &FileOrder) -> String {
    format!("{}|{}", order.order_time, order.order.channel_order_id)
}

fn parse_cursor(text: &str) -> Result<Option<(i64, String)>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("cursor", "not a cursor returned by this connector");
    let (time, id) = text.split_once('|').ok_or_else(bad)?;
    Ok(Some((time.parse().map_err(|_| bad())?, id.to_string())))
}

#[tonic::async_trait]
impl ChannelConnector for FileConnector {
    async fn fetch_orders(
        &self,
        request: Request<channel::FetchOrdersRequest>,
    ) -> Result<Response<channel::FetchOrdersResponse>, Status> {
        let request = request.into_inner();
        let page_size = kosha_runtime::page::page_size(request.page_size).map_err(Status::from)?;
        let after_opt = parse_cursor(&request.cursor).map_err(Status::from)?;
        let orders = self.read_orders(&request.client_id).map_err(Status::from)?;

        let mut remaining = orders.into_iter().filter(|order| match &after_opt {
            Some((time, id)) => (order.order_time, &order.order.channel_order_id) > (*time, id),
            None => true,
        });
        let mut page = Vec::new();
        let mut next_cursor = request.cursor.clone();
        for order in remaining.by_ref() {
            next_cursor = cursor_of(&order);
            page.push(order.order);
            if page.len() as i64 == page_size {
                break;
            }
        }
        let more = remaining.next().is_some();
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
        let known: std::collections::BTreeSet<String> = self
            .read_orders(&request.client_id)
            .map_err(Status::from)?
            .into_iter()
            .map(|order| order.order.channel_order_id)
            .collect();
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
    async fn orders_from_csv_and_json_are_served_oldest_first_page_by_page() {
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

    #[tokio::test]
    async fn a_bad_cell_is_reported_with_its_row_and_column() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("acme"),
            "orders.csv",
            "channel_order_id,order_time,marketplace_sku,quantity\nF-1,yesterday,M-1,1\n",
        );
        let connector = FileConnector::new(root.path());
        let request = channel::FetchOrdersRequest {
            client_id: "acme".into(),
            channel: "FLIPKART".into(),
            cursor: String::new(),
            page_size: 0,
        };

        let status = connector
            .fetch_orders(Request::new(request))
            .await
            .unwrap_err();

        assert!(
            status.message().contains("row 2 column `order_time`"),
            "{}",
            status.message()
        );
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
