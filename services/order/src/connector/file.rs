//! The file connector: see the parent module for the directory layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::channel::v1::channel_connector_server::ChannelConnector;
use kosha_runtime::Error;
use kosha_runtime::page::stable_hash;
use kosha_runtime::time::to_timestamp;

use lines::{Cells, Content, Lines};

mod lines;
use tonic::{Request, Response, Status};

/// Serves orders and statuses from files and records pushed availability in a file.
#[derive(Debug, Clone)]
pub struct FileConnector {
    root: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    marketplace_sku: String,
    quantity: i64,
    #[serde(default)]
    price: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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

/// A problem with a whole file, named by its client folder and name (not the server's
/// path).
fn bad_file(path: &Path, why: impl std::fmt::Display) -> Error {
    let mut parts: Vec<String> = path
        .iter()
        .rev()
        .take(2)
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    parts.reverse();
    Error::FailedPrecondition(format!("connector file {}: {why}", parts.join("/")))
}

fn parse_time(text: &str) -> Result<i64, String> {
    let instant = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("`{}` is not an RFC 3339 time ({error})", cut(text)))?;
    i64::try_from(instant.unix_timestamp_nanos() / 1_000)
        .map_err(|_| format!("`{}` is out of range", cut(text)))
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
            "`{}` is not a fulfilment type (BLOCK_COMPLETE, MULTI_SHIPMENT_PARTIAL, \
             SINGLE_SHIPMENT_PARTIAL)",
            cut(other)
        )),
    }
}

fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(format!("`{}` is not true or false", cut(other))),
    }
}

/// How far a client's files have been served: orders of `orders.json` and data rows of
/// `orders.csv`, each with a mark of the last one served. Both files are logs that only
/// grow, so a count of what was served is enough to find what came after, whatever the new
/// orders' times; the mark tells when a file was replaced instead (an export rotated, say),
/// and then the file is served again from its start. The order service knows the orders it
/// took in by their ids, so those change nothing, and the new ones are not lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Served {
    json: Position,
    csv: Position,
}

/// How far one file was served: a count, and a stable hash of the last item served (0 for
/// none, or for cursors written before marks were kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    count: usize,
    mark: u64,
}

impl Position {
    fn text(self) -> String {
        format!("{}.{:016x}", self.count, self.mark)
    }

    fn parse(text: &str) -> Option<Position> {
        let (count, mark) = match text.split_once('.') {
            Some((count, mark)) => (count, u64::from_str_radix(mark, 16).ok()?),
            None => (text, 0),
        };
        Some(Position {
            count: count.parse().ok()?,
            mark,
        })
    }

    /// Where to read on from, given the mark of the item at `count - 1` as the file is now
    /// (`None` when the file holds fewer): from the start when the file is not the one
    /// served.
    fn resume(self, file: &str, mark_now_opt: Option<u64>) -> usize {
        if self.count == 0 {
            return 0;
        }
        let same = match mark_now_opt {
            None => false,
            Some(mark_now) => self.mark == 0 || self.mark == mark_now,
        };
        if same {
            self.count
        } else {
            tracing::warn!(
                file,
                served = self.count,
                "connector file replaced since it was last read; it is served again from its \
                 start, and the orders already taken in change nothing"
            );
            0
        }
    }
}

/// Marks a cursor written by [`Served::cursor`].
const CURSOR_PREFIX: &str = "files/";

impl Served {
    fn cursor(self) -> String {
        format!(
            "{CURSOR_PREFIX}json={}/csv={}",
            self.json.text(),
            self.csv.text()
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
        let position = |part: &str, name: &str| {
            part.strip_prefix(name)
                .and_then(Position::parse)
                .ok_or_else(bad)
        };
        Ok(Served {
            json: position(json, "json=")?,
            csv: position(csv, "csv=")?,
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
    /// `orders.csv`, each file in its own order. A file that cannot be read at all (cut off
    /// while written, say) comes back as one unreadable order that moves the cursor past
    /// nothing, so it is reported on every pull until it reads, and the other file still
    /// goes through.
    fn orders_after(&self, client_id: &str, served: Served) -> Result<Vec<FileOrder>, Error> {
        let dir = self.client_dir(client_id)?;
        let mut orders = Vec::new();
        let whole_file = |name: &str, reason: String| {
            let mut order = unreadable(String::new(), reason);
            order.origin = name.to_string();
            order
        };
        let mut json_end = served.json;
        match read_json_orders(&dir.join(JSON_FILE), served.json) {
            Ok((end, json_orders)) => {
                json_end = end;
                for (position, order) in json_orders {
                    orders.push(FileOrder {
                        order,
                        served_after: Served {
                            json: position,
                            csv: served.csv,
                        },
                    });
                }
            }
            Err(reason) => orders.push(FileOrder {
                order: whole_file(JSON_FILE, reason),
                served_after: served,
            }),
        }
        match read_csv_orders(&dir.join(CSV_FILE), served.csv) {
            Ok(csv_orders) => {
                for (position, order) in csv_orders {
                    orders.push(FileOrder {
                        order,
                        served_after: Served {
                            json: json_end,
                            csv: position,
                        },
                    });
                }
            }
            Err(reason) => orders.push(FileOrder {
                order: whole_file(CSV_FILE, reason),
                served_after: Served {
                    json: json_end,
                    csv: served.csv,
                },
            }),
        }
        Ok(orders)
    }

    /// The ids of every order in a client's files.
    fn known_ids(&self, client_id: &str) -> Result<BTreeSet<String>, Error> {
        Ok(self
            .orders_after(client_id, Served::default())?
            .into_iter()
            .map(|order| order.order.channel_order_id)
            .filter(|id| !id.is_empty())
            .collect())
    }

    /// Each order's last state in `statuses.csv`, or why its last row cannot be read. A bad
    /// row holds up only the order it names; one without an order id is skipped (with a
    /// warning), since it holds up no one.
    fn read_statuses(&self, client_id: &str) -> Result<BTreeMap<String, StatusRow>, Error> {
        let path = self.client_dir(client_id)?.join(STATUS_FILE);
        let mut statuses = BTreeMap::new();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(statuses),
            Err(error) => return Err(bad_file(&path, error)),
        };
        let Some(lines) = Lines::of(&bytes).map_err(|why| bad_file(&path, why))? else {
            return Ok(statuses);
        };
        for name in ["channel_order_id", "state"] {
            if lines.header.position(name).is_none() {
                return Err(bad_file(
                    &path,
                    format!(
                        "the header lacks column `{name}`: the first row names the columns, \
                         `channel_order_id,state`"
                    ),
                ));
            }
        }
        for row in lines.rows_after(0) {
            let cells = match row.content {
                Content::Cells(cells) => cells,
                Content::Blank => continue,
                // A row whose id can be read is that order's last word, unreadable; one
                // whose id cannot holds up no order it could be told to belong to.
                Content::Broken { why, id_opt } => {
                    match id_opt {
                        Some(id) => {
                            let reason = format!("{STATUS_FILE} row {}: {why}", row.number);
                            statuses.insert(id, Err(reason));
                        }
                        None => tracing::warn!(
                            file = %path.display(),
                            row = row.number,
                            %why,
                            "status row skipped"
                        ),
                    }
                    continue;
                }
            };
            let id = cells.get("channel_order_id");
            if id.is_empty() {
                tracing::warn!(
                    file = %path.display(),
                    row = row.number,
                    "status row without an order id"
                );
                continue;
            }
            let place =
                |column: &str| format!("{STATUS_FILE} row {} column `{column}`", row.number);
            let state = match (cells.invalid(), cells.get("state").as_str()) {
                (Some((column, why)), _) => Err(format!("{}: {why}", place(&column))),
                (None, "OPEN") => Ok(channel::ChannelOrderState::Open),
                (None, "CANCELLED") => Ok(channel::ChannelOrderState::Cancelled),
                (None, "RETURN_PICKED_UP") => Ok(channel::ChannelOrderState::ReturnPickedUp),
                (None, "SHIPPED") => Ok(channel::ChannelOrderState::Shipped),
                (None, other) => Err(format!(
                    "{}: `{}` is not a state (OPEN, CANCELLED, RETURN_PICKED_UP, SHIPPED)",
                    place("state"),
                    cut(other)
                )),
            };
            // The file is a log: a later row for an order supersedes an earlier one.
            statuses.insert(id, state);
        }
        Ok(statuses)
    }
}

/// The files of a client's folder.
const JSON_FILE: &str = "orders.json";
const CSV_FILE: &str = "orders.csv";
const STATUS_FILE: &str = "statuses.csv";

/// An order's last row in `statuses.csv`: its state, or why the row cannot be read.
type StatusRow = Result<channel::ChannelOrderState, String>;

/// Longest cell value quoted in a reason.
const MOST_QUOTED_CHARS: usize = 80;

/// `text` cut for quoting in a reason.
fn cut(text: &str) -> String {
    kosha_runtime::validate::cut_to(text, MOST_QUOTED_CHARS, "…")
}

/// The position after a JSON file's last order, and its orders still to serve, each with
/// the position after it.
type JsonRead = (Position, Vec<(Position, channel::ChannelOrder)>);

/// The orders of a JSON file after what was `served`, each with the position after it, and
/// the position after the file's last order. An order that cannot be read is kept, as
/// unreadable, so the others still go through; a file that is not a JSON array fails whole,
/// since nothing in it can be told apart. A missing or empty file holds none, and moves the
/// position nowhere.
fn read_json_orders(path: &Path, served: Position) -> Result<JsonRead, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((served, Vec::new()));
        }
        Err(error) => return Err(error.to_string()),
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok((served, Vec::new()));
    }
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|error| format!("not a JSON array of orders: {error}"))?;
    let mark_of = |value: &serde_json::Value| stable_hash(value.to_string().as_bytes());
    let marks: Vec<u64> = parsed.iter().map(mark_of).collect();
    let skip = served.resume(
        JSON_FILE,
        served
            .count
            .checked_sub(1)
            .and_then(|i| marks.get(i).copied()),
    );
    let end = Position {
        count: parsed.len(),
        mark: marks.last().copied().unwrap_or(0),
    };
    let orders = parsed
        .into_iter()
        .zip(marks)
        .enumerate()
        .skip(skip)
        .map(|(index, (value, mark))| {
            let id = value
                .get("channel_order_id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut order = json_order(value)
                .unwrap_or_else(|(field, why)| unreadable(cut(&id), format!("`{field}`: {why}")));
            order.origin = format!("{JSON_FILE} [{index}]");
            let position = Position {
                count: index + 1,
                mark,
            };
            (position, order)
        })
        .collect();
    Ok((end, orders))
}

/// The JSON type each field of an order must have, for a refusal to name the field that
/// has another: the parser's own message names only the types.
fn json_type_problem(value: &serde_json::Value) -> Option<(String, String)> {
    use serde_json::Value;
    let Value::Object(fields) = value else {
        return Some(("order".into(), "is not a JSON object".into()));
    };
    let expect = |name: &str, value: &Value, wanted: &str| -> Option<(String, String)> {
        let fits = match wanted {
            "a string" => value.is_string(),
            "a boolean" => value.is_boolean(),
            "a whole number" => value.is_i64(),
            _ => value.is_array(),
        };
        (!fits).then(|| (name.to_string(), format!("must be {wanted}, not {value}")))
    };
    for (name, field) in fields {
        let problem = match name.as_str() {
            "priority" | "marketplace_fulfilled" => expect(name, field, "a boolean"),
            "lines" => expect(name, field, "an array"),
            _ => expect(name, field, "a string"),
        };
        if problem.is_some() {
            return problem;
        }
    }
    let lines = fields.get("lines").and_then(Value::as_array)?;
    for (index, line) in lines.iter().enumerate() {
        let Value::Object(line_fields) = line else {
            return Some((format!("lines[{index}]"), "is not a JSON object".into()));
        };
        for (name, field) in line_fields {
            let wanted = if name == "quantity" {
                "a whole number"
            } else {
                "a string"
            };
            let problem = expect(&format!("lines[{index}].{name}"), field, wanted);
            if problem.is_some() {
                return problem;
            }
        }
    }
    None
}

/// One order of a JSON file, or the field that is wrong and why.
fn json_order(value: serde_json::Value) -> Result<channel::ChannelOrder, (String, String)> {
    if let Some(problem) = json_type_problem(&value) {
        return Err(problem);
    }
    let order: JsonOrder =
        serde_json::from_value(value).map_err(|error| ("order".to_string(), error.to_string()))?;
    fn field(name: &'static str) -> impl Fn(String) -> (String, String) {
        move |why| (name.to_string(), why)
    }
    if order.channel_order_id.trim().is_empty() {
        return Err(("channel_order_id".into(), "is blank".into()));
    }
    let order_time = parse_time(&order.order_time).map_err(field("order_time"))?;
    let dispatch_by =
        parse_optional_time(&order.dispatch_by_time).map_err(field("dispatch_by_time"))?;
    let dispatch_after =
        parse_optional_time(&order.dispatch_after_time).map_err(field("dispatch_after_time"))?;
    let fulfilment = parse_fulfilment(&order.fulfilment_type).map_err(field("fulfilment_type"))?;
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
        origin: String::new(),
    })
}

/// The columns an order file must have.
const REQUIRED_ORDER_COLUMNS: [&str; 4] = [
    "channel_order_id",
    "order_time",
    "marketplace_sku",
    "quantity",
];

/// The columns that describe a whole order, which every row of it must repeat or leave
/// blank.
const ORDER_COLUMNS: [&str; 8] = [
    "order_time",
    "parent_order_id",
    "fulfilment_type",
    "dispatch_by_time",
    "dispatch_after_time",
    "replacement_for",
    "priority",
    "marketplace_fulfilled",
];

/// An order being read from consecutive rows.
struct CsvOrder {
    order: channel::ChannelOrder,
    first_row: usize,
    last_row: usize,
    /// The order-level cells of its first row, which later rows must agree with.
    order_cells: Vec<String>,
}

impl CsvOrder {
    /// Makes the order unreadable for `why`, unless it already is for an earlier row: it is
    /// refused whole, never taken in short of a line.
    fn spoil(&mut self, why: String) {
        if self.order.unreadable_reason.is_empty() {
            self.order.unreadable_reason = why;
            self.order.lines.clear();
        }
    }
}

/// The orders of a CSV file that start after its first `skip` data rows, each with the
/// count of data rows up to its last. Only complete lines are read, one row each.
///
/// An order is a run of consecutive rows with one order id, among the rows not served
/// before. Rows with an order's id after it was served are a new sending of that order:
/// pulled again, a corrected one after a refusal is taken in, and one that differs from
/// the order taken in is refused by the order service, so no row is dropped unseen. A row
/// that cannot be read makes its order unreadable, and the rest of the file still goes
/// through; a file without the required columns fails whole.
fn read_csv_orders(
    path: &Path,
    served: Position,
) -> Result<Vec<(Position, channel::ChannelOrder)>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.to_string()),
    };
    let Some(lines) = Lines::of(&bytes)? else {
        return Ok(Vec::new());
    };
    for name in REQUIRED_ORDER_COLUMNS {
        if lines.header.position(name).is_none() {
            return Err(format!("the header lacks the required column `{name}`"));
        }
    }
    let mark_of = |index: usize| lines.raw(index).map(stable_hash);
    let skip = served.resume(CSV_FILE, served.count.checked_sub(1).and_then(mark_of));
    let mut orders: Vec<CsvOrder> = Vec::new();
    // Whether the last order read takes the rows with its id that follow: a row that
    // belongs to no order ends it. Blank lines neither end an order nor start one.
    let mut open = false;
    for row in lines.rows_after(skip) {
        let number = row.number;
        let place = |column: &str| format!("row {number} column `{column}`");
        // What the row says: its order id, and its cells or why they cannot be read.
        let (id, read) = match row.content {
            Content::Blank => continue,
            Content::Broken { why, id_opt } => (
                id_opt.unwrap_or_default(),
                Err(format!("row {number}: {why}")),
            ),
            Content::Cells(cells) => (cells.get("channel_order_id"), Ok(cells)),
        };
        let last_open = orders.last_mut().filter(|_| open);
        match last_open {
            // A row without an id amid an order: whether it was meant as one of its lines
            // cannot be told, so the order is not taken in short.
            Some(last) if id.is_empty() => {
                last.last_row = number;
                last.spoil(format!("row {number}: the row has no channel_order_id"));
                continue;
            }
            Some(last) if last.order.channel_order_id == id => {
                last.last_row = number;
                let cells = match read {
                    Ok(cells) => cells,
                    Err(why) => {
                        last.spoil(why);
                        continue;
                    }
                };
                let order_cells: Vec<String> =
                    ORDER_COLUMNS.iter().map(|name| cells.get(name)).collect();
                // A later row may leave an order-level cell blank, not say otherwise.
                let disagreement = ORDER_COLUMNS
                    .iter()
                    .zip(order_cells.iter().zip(&last.order_cells))
                    .find(|(_, (cell, first))| !cell.is_empty() && cell != first)
                    .map(|(name, (cell, first))| {
                        (
                            (*name).to_string(),
                            format!(
                                "`{}` differs from `{}` on the order's first row {}",
                                cut(cell),
                                cut(first),
                                last.first_row
                            ),
                        )
                    });
                let line_result = match (cells.overflow(), cells.invalid(), disagreement) {
                    (Some(why), _, _) => Err(format!("row {number}: {why}")),
                    (None, Some((column, why)), _) | (None, None, Some((column, why))) => {
                        Err(format!("{}: {why}", place(&column)))
                    }
                    (None, None, None) => csv_line(&cells)
                        .map_err(|(column, why)| format!("{}: {why}", place(column))),
                };
                match line_result {
                    Ok(line) if last.order.unreadable_reason.is_empty() => {
                        last.order.lines.push(line);
                    }
                    Ok(_) => {}
                    Err(why) => last.spoil(why),
                }
                continue;
            }
            _ => {}
        }
        open = !id.is_empty();
        let order_cells: Vec<String> = match &read {
            Ok(cells) => ORDER_COLUMNS.iter().map(|name| cells.get(name)).collect(),
            Err(_) => Vec::new(),
        };
        let order = match read {
            Err(why) => unreadable(cut(&id), why),
            Ok(cells) => {
                let checked = match (cells.overflow(), cells.invalid()) {
                    (Some(why), _) => Err(format!("row {number}: {why}")),
                    (None, Some((column, why))) => Err(format!("{}: {why}", place(&column))),
                    (None, None) => csv_line(&cells)
                        .and_then(|line| csv_order(&cells, id.clone(), line))
                        .map_err(|(column, why)| format!("{}: {why}", place(column))),
                };
                checked.unwrap_or_else(|why| unreadable(cut(&id), why))
            }
        };
        orders.push(CsvOrder {
            order,
            first_row: number,
            last_row: number,
            order_cells,
        });
    }
    Ok(orders
        .into_iter()
        .map(|mut read| {
            read.order.origin = if read.first_row == read.last_row {
                format!("{CSV_FILE} row {}", read.first_row)
            } else {
                format!("{CSV_FILE} rows {}-{}", read.first_row, read.last_row)
            };
            // Data rows up to the order's last: the header is row 1.
            let count = read.last_row - 1;
            let position = Position {
                count,
                mark: mark_of(count - 1).unwrap_or(0),
            };
            (position, read.order)
        })
        .collect())
}

/// The order line of a CSV row, or the column that is wrong and why.
fn csv_line(cells: &Cells) -> Result<channel::ChannelOrderLine, (&'static str, String)> {
    let quantity_text = cells.get("quantity");
    let quantity = kosha_runtime::validate::parse_quantity(&quantity_text)
        .map_err(|why| ("quantity", cut(&why)))?;
    Ok(channel::ChannelOrderLine {
        marketplace_sku: cells.get("marketplace_sku"),
        quantity,
        price: cells.get("price"),
    })
}

/// The order a CSV row starts, or the column that is wrong and why.
fn csv_order(
    cells: &Cells,
    id: String,
    line: channel::ChannelOrderLine,
) -> Result<channel::ChannelOrder, (&'static str, String)> {
    if id.is_empty() {
        return Err(("channel_order_id", "blank".into()));
    }
    let cell = |name: &str| cells.get(name);
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
        origin: String::new(),
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
        let mut position = served;
        for order in orders.into_iter().take(page_size as usize) {
            position = order.served_after;
            page.push(order.order);
        }
        // A page of nothing but an unreadable file leaves the cursor as it was.
        let next_cursor = if position == served {
            request.cursor.clone()
        } else {
            position.cursor()
        };
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
                Some(Ok(state)) => response.statuses.push(channel::ChannelOrderStatus {
                    channel_order_id: id,
                    state: *state as i32,
                    update_time: None,
                }),
                Some(Err(reason)) => response.unreadable.push(channel::UnreadableStatus {
                    channel_order_id: id,
                    reason: reason.clone(),
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
        std::fs::create_dir_all(&dir).map_err(|e| Status::from(bad_file(&dir, e)))?;
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
        std::fs::write(&partial, text).map_err(|e| Status::from(bad_file(&partial, e)))?;
        std::fs::rename(&partial, &path).map_err(|e| Status::from(bad_file(&path, e)))?;
        Ok(Response::new(channel::PushAvailabilityResponse {
            accepted: request.listings.len() as i64,
            rejected_marketplace_skus: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `text` says `part`.
    fn says(text: &str, part: &str) {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }

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
                    F-4,2026-01-01T11:00:00Z,M-1,2\n\
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
        assert_eq!(
            reasons[3],
            ("F-4", "row 7: the row has no channel_order_id"),
            "a row without an id amid an order spoils it rather than leave it short"
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

    fn append(dir: &Path, name: &str, bytes: &[u8]) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(name))
            .unwrap();
        file.write_all(bytes).unwrap();
    }

    /// A connector over a folder whose `orders.csv` has a header and nothing else.
    fn csv_folder() -> (tempfile::TempDir, PathBuf, FileConnector) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("acme");
        write(
            &dir,
            "orders.csv",
            "channel_order_id,order_time,marketplace_sku,quantity\n",
        );
        let connector = FileConnector::new(root.path());
        (root, dir, connector)
    }

    async fn pull(connector: &FileConnector, cursor: &str) -> channel::FetchOrdersResponse {
        connector
            .fetch_orders(ask(cursor))
            .await
            .unwrap()
            .into_inner()
    }

    #[tokio::test]
    async fn rows_written_after_a_pull_are_a_new_sending_and_half_lines_wait() {
        let (_root, dir, connector) = csv_folder();

        // A refused order, then its correction right under it after the pull.
        append(&dir, "orders.csv", b"A6,2026-12-01T10:00:00Z,M1,zero\n");
        let refused = pull(&connector, "").await;
        append(&dir, "orders.csv", b"A6,2026-12-01T10:00:00Z,M1,1\n");
        // An order's second row written after a pull, and a line cut off mid-write.
        append(
            &dir,
            "orders.csv",
            b"A7,2026-12-01T10:00:00Z,M1,1\nA8,2026-12-01T1",
        );
        let corrected = pull(&connector, &refused.next_cursor).await;
        append(
            &dir,
            "orders.csv",
            b"0:00:00Z,M1,3\nA7,2026-12-01T10:00:00Z,M2,1\n",
        );
        let finished = pull(&connector, &corrected.next_cursor).await;

        assert!(!refused.orders[0].unreadable_reason.is_empty());
        let ids = |page: &channel::FetchOrdersResponse| {
            page.orders
                .iter()
                .map(|o| (o.channel_order_id.clone(), o.lines.len(), o.origin.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&corrected),
            [
                ("A6".to_string(), 1, "orders.csv row 3".to_string()),
                ("A7".to_string(), 1, "orders.csv row 4".to_string())
            ],
            "the correction is served; the half-written line is not read yet"
        );
        assert!(corrected.orders[0].unreadable_reason.is_empty());
        assert_eq!(
            ids(&finished),
            [
                ("A8".to_string(), 1, "orders.csv row 5".to_string()),
                ("A7".to_string(), 1, "orders.csv row 6".to_string())
            ],
            "a row of an order pulled before is sent on its own, to be refused if it differs"
        );
        assert_eq!(finished.orders[0].lines[0].quantity, 3);
    }

    #[tokio::test]
    async fn a_row_that_is_not_utf8_keeps_its_order_whole_and_a_broken_file_blocks_no_other() {
        let (_root, dir, connector) = csv_folder();
        append(
            &dir,
            "orders.csv",
            b"D1,2026-12-01T10:00:00Z,M1,1\nD1,2026-12-01T10:00:00Z,M\xff2,1\n\
              D1,2026-12-01T10:00:00Z,M3,1\nD2,2026-12-01T10:00:00Z,M1,1\n",
        );
        // Cut off while being rewritten.
        write(
            &dir,
            "orders.json",
            r#"[{"channel_order_id": "J1", "order_time": "#,
        );
        write(
            &dir,
            "statuses.csv",
            "channel_order_id,state\nD1,cancelled\nD2,CANCELLED\n",
        );
        let statuses = |ids: &[&str]| {
            let request = channel::FetchOrderStatusesRequest {
                client_id: "acme".into(),
                channel: "FLIPKART".into(),
                channel_order_ids: ids.iter().map(|id| id.to_string()).collect(),
            };
            let connector = connector.clone();
            async move { connector.fetch_order_statuses(Request::new(request)).await }
        };

        let first = pull(&connector, "").await;
        let again = pull(&connector, &first.next_cursor).await;
        let of_d2 = statuses(&["D2"]).await.unwrap().into_inner();
        let of_d1 = statuses(&["D1"]).await.unwrap().into_inner();

        let summary: Vec<(&str, usize, bool)> = first
            .orders
            .iter()
            .map(|o| {
                let readable = o.unreadable_reason.is_empty();
                (o.channel_order_id.as_str(), o.lines.len(), readable)
            })
            .collect();
        assert_eq!(summary, [("", 0, false), ("D1", 0, false), ("D2", 1, true)]);
        assert_eq!(first.orders[0].origin, "orders.json");
        says(&first.orders[0].unreadable_reason, "not a JSON array");
        says(
            &first.orders[1].unreadable_reason,
            "row 3 column `marketplace_sku`: not UTF-8 text",
        );
        assert_eq!(first.orders[1].origin, "orders.csv rows 2-4");
        assert_eq!(
            again.orders.len(),
            1,
            "the broken file is reported until it reads"
        );
        assert_eq!(again.next_cursor, first.next_cursor);
        assert_eq!(
            of_d2.statuses[0].state(),
            channel::ChannelOrderState::Cancelled
        );
        assert!(of_d1.statuses.is_empty());
        assert_eq!(of_d1.unreadable[0].channel_order_id, "D1");
        assert!(
            of_d1.unreadable[0]
                .reason
                .contains("`cancelled` is not a state"),
            "{of_d1:?}"
        );
    }

    #[tokio::test]
    async fn an_open_quote_or_rows_that_disagree_spoil_one_order_and_a_new_file_is_read_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("acme");
        write(
            &dir,
            "orders.csv",
            "Channel_Order_ID,ORDER_TIME,marketplace_sku,quantity,parent_order_id\n\
             Q-1,2026-12-04T10:00:00Z,M1,1,P-1\n\
             Q-2,2026-12-04T10:00:00Z,\"M1,1,P-2\n\
             Q-3,2026-12-04T10:00:00Z,M1,1,P-3\n\
             Q-3,2026-12-04T10:00:00Z,M2,1,P-OTHER\n\
             Q-4,2026-12-04T10:00:00Z,M1,1,\n",
        );
        write(
            &dir,
            "orders.json",
            r#"[{"channel_order_id": "J1", "order_time": "2026-12-04T10:00:00Z",
                 "lines": [{"marketplace_sku": "M1", "quantity": 1, "price": 499}]},
                {"channel_order_id": "J2", "order_time": "2026-12-04T10:00:00Z",
                 "lines": [{"marketplace_sku": "M1", "quantity": 1}]}]"#,
        );
        let connector = FileConnector::new(root.path());

        let first = pull(&connector, "").await;
        // Rotated: a new file, as long as the old one, with other orders.
        write(
            &dir,
            "orders.json",
            r#"[{"channel_order_id": "J3", "order_time": "2026-12-05T10:00:00Z",
                 "lines": [{"marketplace_sku": "M1", "quantity": 1}]},
                {"channel_order_id": "J4", "order_time": "2026-12-05T10:00:00Z",
                 "lines": [{"marketplace_sku": "M1", "quantity": 2}]}]"#,
        );
        let after_rotation = pull(&connector, &first.next_cursor).await;

        let seen: Vec<(&str, &str, bool)> = first
            .orders
            .iter()
            .map(|o| {
                let readable = o.unreadable_reason.is_empty();
                (o.channel_order_id.as_str(), o.origin.as_str(), readable)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("J1", "orders.json [0]", false),
                ("J2", "orders.json [1]", true),
                ("Q-1", "orders.csv row 2", true),
                ("Q-2", "orders.csv row 3", false),
                ("Q-3", "orders.csv rows 4-5", false),
                ("Q-4", "orders.csv row 6", true),
            ]
        );
        says(
            &first.orders[0].unreadable_reason,
            "`lines[0].price`: must be a string",
        );
        says(
            &first.orders[3].unreadable_reason,
            "a quoted cell is not closed",
        );
        says(
            &first.orders[4].unreadable_reason,
            "row 5 column `parent_order_id`: `P-OTHER` differs",
        );
        let rotated: Vec<&str> = after_rotation
            .orders
            .iter()
            .map(|order| order.channel_order_id.as_str())
            .collect();
        assert_eq!(
            rotated,
            ["J3", "J4"],
            "a replaced file is read from its start"
        );
    }

    #[tokio::test]
    async fn an_order_is_never_taken_in_short_or_with_cells_run_together() {
        let (_root, dir, connector) = csv_folder();
        append(
            &dir,
            "orders.csv",
            b"E8,2026-12-01T10:00:00Z,M1,1\n\nE8,2026-12-01T10:00:00Z,M2,1\n\
              E13,2026-12-01T10:00:00Z,M1,1\nE13,2026-12-01T10:00:00Z,\"M2,1\n\
              E13,2026-12-01T10:00:00Z,M3,1\n\
              A1,2026-12-01T10:00:00Z,M1,1,299.00\n\
              F1,2026-12-01T10:00:00Z,M1,1",
        );
        write(
            &dir,
            "statuses.csv",
            "channel_order_id,state\nE8,OPEN\nE8,\"CANCELLED\n",
        );

        let first = pull(&connector, "").await;
        append(&dir, "orders.csv", b"F2,2026-12-01T10:00:00Z,M2,3\n");
        let run_together = pull(&connector, &first.next_cursor).await;
        std::fs::remove_file(dir.join("orders.csv")).unwrap();
        let after_removal = pull(&connector, &run_together.next_cursor).await;
        write(
            &dir,
            "orders.csv",
            "channel_order_id,order_time,marketplace_sku,quantity\nN1,2026-12-05T10:00:00Z,M1,1\n",
        );
        let after_new_file = pull(&connector, &after_removal.next_cursor).await;
        let statuses = connector
            .fetch_order_statuses(Request::new(channel::FetchOrderStatusesRequest {
                client_id: "acme".into(),
                channel: "FLIPKART".into(),
                channel_order_ids: vec!["E8".into()],
            }))
            .await
            .unwrap()
            .into_inner();

        let seen: Vec<(&str, usize, bool)> = first
            .orders
            .iter()
            .map(|o| {
                let readable = o.unreadable_reason.is_empty();
                (o.channel_order_id.as_str(), o.lines.len(), readable)
            })
            .collect();
        assert_eq!(
            seen,
            [("E8", 2, true), ("E13", 0, false), ("A1", 0, false)],
            "a blank line splits no order, a broken row spoils its order whole, and a cell \
             past the header is refused"
        );
        assert!(
            first.orders[2]
                .unreadable_reason
                .contains("more than the 4 columns")
        );
        assert_eq!(run_together.orders.len(), 1);
        assert_eq!(run_together.orders[0].channel_order_id, "F1");
        assert!(!run_together.orders[0].unreadable_reason.is_empty());
        assert!(after_removal.orders.is_empty());
        assert_eq!(after_removal.next_cursor, run_together.next_cursor);
        assert_eq!(
            after_new_file.orders.len(),
            1,
            "a new file is read from its start"
        );
        assert_eq!(after_new_file.orders[0].channel_order_id, "N1");
        assert_eq!(statuses.unreadable[0].channel_order_id, "E8");
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
