//! Reading a replay directory: the four files as the seller's own systems export them, and
//! their translation into the upload files the suite takes.
//!
//! Nothing here judges a value the services judge themselves (a blank or malformed SKU, a
//! SKU missing from the product master): such rows go into the upload files as they are,
//! so the services' dry runs report them with their row and column. What is translated is
//! only what the export spells differently from the templates: `design_no` is the style,
//! `Nill` is the spreadsheet's word for "no value", a cancelled marketplace line shows the
//! shipped quantity 0 where one unit was ordered, and B2B pieces listed on several lines
//! are summed per SKU because a PO may not repeat a SKU.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// File names inside a replay directory.
pub const PRODUCTS_FILE: &str = "products.csv";
/// The second client's product master, with per-channel MRPs.
pub const CHANNEL_MRP_FILE: &str = "channel-mrp.csv";
/// One day of marketplace orders with the channel's later statuses.
pub const MARKETPLACE_FILE: &str = "amazon-orders.csv";
/// Wholesale invoice lines.
pub const B2B_FILE: &str = "b2b-orders.csv";

/// How a spreadsheet export writes "no value" in the channel MRP file.
const NO_VALUE: &str = "nill";

/// The four files of a replay directory, read and grouped.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The first client's product master.
    pub products: Vec<ProductRow>,
    /// The second client's product master.
    pub channel_mrp: ChannelMrpFile,
    /// Marketplace orders in file order.
    pub marketplace_orders: Vec<MarketplaceOrder>,
    /// Marketplace lines read (an order may have several).
    pub marketplace_lines: usize,
    /// Bulk orders, one per (customer, date), in the order they first appear.
    pub b2b_groups: Vec<B2bGroup>,
    /// B2B lines read.
    pub b2b_lines: usize,
}

impl Dataset {
    /// Reads every file of `dir`; a missing file or column is an error naming it.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let products = read_products(&dir.join(PRODUCTS_FILE))?;
        let channel_mrp = read_channel_mrp(&dir.join(CHANNEL_MRP_FILE))?;
        let (marketplace_orders, marketplace_lines) =
            read_marketplace(&dir.join(MARKETPLACE_FILE))?;
        let (b2b_groups, b2b_lines) = read_b2b(&dir.join(B2B_FILE))?;
        Ok(Self {
            products,
            channel_mrp,
            marketplace_orders,
            marketplace_lines,
            b2b_groups,
            b2b_lines,
        })
    }
}

// === reading CSV ===

/// A CSV file read whole, with its columns found by name.
struct Table {
    path: PathBuf,
    columns: HashMap<String, usize>,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn read(path: &Path, required: &[&str]) -> anyhow::Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .with_context(|| format!("read {}", path.display()))?;
        let header = reader
            .headers()
            .with_context(|| format!("read the header of {}", path.display()))?;
        let columns: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(index, name)| (name.trim().to_ascii_lowercase(), index))
            .collect();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|name| !columns.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{}: missing column(s) {}",
                path.display(),
                missing.join(", ")
            );
        }
        let mut rows = Vec::new();
        for (index, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("{} row {}", path.display(), index + 2))?;
            rows.push(record);
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    /// The trimmed cell of `column` in `record`; empty when the row is short or the
    /// column absent.
    fn cell<'r>(&self, record: &'r csv::StringRecord, column: &str) -> &'r str {
        self.columns
            .get(column)
            .and_then(|index| record.get(*index))
            .map_or("", str::trim)
    }

    /// Column names present, lowercase, in no particular order.
    fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().map(String::as_str)
    }
}

/// Spreadsheet row number of the `index`-th data row (the header is row 1).
fn spreadsheet_row(index: usize) -> i64 {
    index as i64 + 2
}

// === products.csv ===

/// One row of the first client's product master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    /// Spreadsheet row in `products.csv`.
    pub row: i64,
    /// SKU as written.
    pub sku: String,
    /// Design number: the product's style.
    pub design_no: String,
    /// Units on hand, when the cell holds a positive whole number.
    pub stock_opt: Option<i64>,
    /// Category.
    pub category: String,
    /// Size.
    pub size: String,
    /// Colour.
    pub color: String,
}

fn read_products(path: &Path) -> anyhow::Result<Vec<ProductRow>> {
    let table = Table::read(
        path,
        &["sku", "design_no", "stock", "category", "size", "color"],
    )?;
    let mut rows = Vec::with_capacity(table.rows.len());
    for (index, record) in table.rows.iter().enumerate() {
        let stock_text = table.cell(record, "stock");
        rows.push(ProductRow {
            row: spreadsheet_row(index),
            sku: table.cell(record, "sku").to_string(),
            design_no: table.cell(record, "design_no").to_string(),
            stock_opt: stock_text.parse::<i64>().ok().filter(|stock| *stock > 0),
            category: table.cell(record, "category").to_string(),
            size: table.cell(record, "size").to_string(),
            color: table.cell(record, "color").to_string(),
        });
    }
    Ok(rows)
}

/// The product create upload for `rows`: one upload row per input row, in order, so the
/// upload's row numbers are the input's.
pub fn products_upload(rows: &[&ProductRow]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = ["sku", "style", "category", "size", "color"];
    writer.write_record(header).expect("writing to memory");
    for row in rows {
        let cells = [
            &row.sku,
            &row.design_no,
            &row.category,
            &row.size,
            &row.color,
        ];
        writer.write_record(cells).expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

// === channel-mrp.csv ===

/// The second client's product master: one row per SKU with its MRP per channel.
#[derive(Debug, Clone)]
pub struct ChannelMrpFile {
    /// Rows in file order.
    pub rows: Vec<ChannelMrpRow>,
    /// Channel codes that have an MRP column, e.g. `AMAZON_FBA` for `amazon_fba_mrp`.
    pub channels: Vec<String>,
    /// Cells that said `Nill` and were sent blank.
    pub no_value_cells: usize,
}

/// One SKU of the channel MRP file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMrpRow {
    /// Spreadsheet row.
    pub row: i64,
    /// SKU as written.
    pub sku: String,
    /// Style id.
    pub style: String,
    /// Catalog name, used as the product name.
    pub name: String,
    /// Category.
    pub category: String,
    /// MRP (the file's final MRP), blank when not known.
    pub mrp: String,
    /// MRP per channel code, as written (blank cells left out).
    pub channel_mrp: BTreeMap<String, String>,
}

/// Columns of the MRP file that end in `_mrp` but are not a channel's.
const NOT_CHANNEL_MRP_COLUMNS: &[&str] = &["mrp_old", "final_mrp_old"];

fn read_channel_mrp(path: &Path) -> anyhow::Result<ChannelMrpFile> {
    let table = Table::read(path, &["sku", "style_id", "category", "final_mrp_old"])?;
    let mut channel_columns: Vec<(String, String)> = table
        .column_names()
        .filter(|name| name.ends_with("_mrp") && !NOT_CHANNEL_MRP_COLUMNS.contains(name))
        .map(|name| {
            let code = name.trim_end_matches("_mrp").to_ascii_uppercase();
            (name.to_string(), code)
        })
        .collect();
    channel_columns.sort_by(|a, b| a.1.cmp(&b.1));

    let mut no_value_cells = 0;
    let mut value = |text: &str| -> String {
        if text.eq_ignore_ascii_case(NO_VALUE) {
            no_value_cells += 1;
            String::new()
        } else {
            text.to_string()
        }
    };
    let mut rows = Vec::with_capacity(table.rows.len());
    for (index, record) in table.rows.iter().enumerate() {
        let mut channel_mrp = BTreeMap::new();
        for (column, code) in &channel_columns {
            let mrp = value(table.cell(record, column));
            if !mrp.is_empty() {
                channel_mrp.insert(code.clone(), mrp);
            }
        }
        rows.push(ChannelMrpRow {
            row: spreadsheet_row(index),
            sku: table.cell(record, "sku").to_string(),
            style: value(table.cell(record, "style_id")),
            name: value(table.cell(record, "catalog")),
            category: value(table.cell(record, "category")),
            mrp: value(table.cell(record, "final_mrp_old")),
            channel_mrp,
        });
    }
    let channels = channel_columns.into_iter().map(|(_, code)| code).collect();
    Ok(ChannelMrpFile {
        rows,
        channels,
        no_value_cells,
    })
}

/// The product create upload for the MRP file: a channel's MRP is sent only where it
/// differs from the product's MRP, as the product master keeps it.
pub fn channel_mrp_upload(channels: &[String], rows: &[&ChannelMrpRow]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["sku", "name", "style", "category", "mrp"]
        .map(String::from)
        .to_vec();
    header.extend(
        channels
            .iter()
            .map(|code| format!("mrp_{}", code.to_ascii_lowercase())),
    );
    writer.write_record(&header).expect("writing to memory");
    for row in rows {
        let mut cells = vec![
            row.sku.clone(),
            row.name.clone(),
            row.style.clone(),
            row.category.clone(),
            row.mrp.clone(),
        ];
        for code in channels {
            let differs = row.channel_mrp.get(code).filter(|mrp| **mrp != row.mrp);
            cells.push(differs.cloned().unwrap_or_default());
        }
        writer.write_record(&cells).expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

// === amazon-orders.csv ===

/// What the channel says happened to an order after it was placed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChannelStatus {
    /// Shipped, no later news.
    Shipped,
    /// Shipped and delivered.
    Delivered,
    /// Cancelled before shipping.
    Cancelled,
    /// Shipped, then came back to the seller.
    ReturnedToSeller,
    /// Shipped, then refused by the buyer and sent back.
    RejectedByBuyer,
    /// A status this tool does not know, as written.
    Other(String),
}

impl ChannelStatus {
    fn parse(text: &str) -> Self {
        match text.trim() {
            "Shipped" => Self::Shipped,
            "Shipped - Delivered to Buyer" => Self::Delivered,
            "Cancelled" => Self::Cancelled,
            "Shipped - Returned to Seller" => Self::ReturnedToSeller,
            "Shipped - Rejected by Buyer" => Self::RejectedByBuyer,
            other => Self::Other(other.to_string()),
        }
    }

    /// The status as the export writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Shipped => "Shipped",
            Self::Delivered => "Shipped - Delivered to Buyer",
            Self::Cancelled => "Cancelled",
            Self::ReturnedToSeller => "Shipped - Returned to Seller",
            Self::RejectedByBuyer => "Shipped - Rejected by Buyer",
            Self::Other(text) => text,
        }
    }

    /// Whether the units left the warehouse.
    pub fn was_shipped(&self) -> bool {
        matches!(
            self,
            Self::Shipped | Self::Delivered | Self::ReturnedToSeller | Self::RejectedByBuyer
        )
    }

    /// Whether the units came back to the seller.
    pub fn came_back(&self) -> bool {
        matches!(self, Self::ReturnedToSeller | Self::RejectedByBuyer)
    }
}

/// One line of a marketplace order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketplaceLine {
    /// Spreadsheet row.
    pub row: i64,
    /// The marketplace SKU (the seller lists each product under its own SKU).
    pub sku: String,
    /// Units ordered: the shipped quantity, or 1 for a cancelled line showing 0.
    pub quantity: i64,
    /// Price of one unit as a decimal with two decimals, when the export has an amount.
    pub price: String,
}

/// A marketplace order: the lines of one order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketplaceOrder {
    /// Position in the file (0 for the first order), which orders the replay.
    pub index: usize,
    /// The channel's order id.
    pub order_id: String,
    /// Date placed, `YYYY-MM-DD`.
    pub date: String,
    /// The channel's status (of the first line; every line of an order carries one).
    pub status: ChannelStatus,
    /// Fulfilled by the marketplace from its own warehouse.
    pub marketplace_fulfilled: bool,
    /// Lines in file order.
    pub lines: Vec<MarketplaceLine>,
}

fn read_marketplace(path: &Path) -> anyhow::Result<(Vec<MarketplaceOrder>, usize)> {
    let table = Table::read(
        path,
        &["order_id", "date", "status", "fulfilment", "sku", "qty"],
    )?;
    let mut orders: Vec<MarketplaceOrder> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (index, record) in table.rows.iter().enumerate() {
        let row = spreadsheet_row(index);
        let order_id = table.cell(record, "order_id").to_string();
        if order_id.is_empty() {
            bail!("{} row {row}: `order_id` is blank", table.path.display());
        }
        let status = ChannelStatus::parse(table.cell(record, "status"));
        let shipped_text = table.cell(record, "qty");
        let shipped: i64 = shipped_text.parse().with_context(|| {
            format!("{} row {row}: `qty` `{shipped_text}`", table.path.display())
        })?;
        // The export records what was shipped; a cancelled line was ordered as one unit.
        let quantity = if shipped == 0 && status == ChannelStatus::Cancelled {
            1
        } else {
            shipped
        };
        if quantity <= 0 {
            bail!(
                "{} row {row}: `qty` 0 on a line that is not cancelled",
                table.path.display()
            );
        }
        let line = MarketplaceLine {
            row,
            sku: table.cell(record, "sku").to_string(),
            quantity,
            price: unit_price(table.cell(record, "amount"), shipped),
        };

        let order_index = *position.entry(order_id.clone()).or_insert_with(|| {
            orders.push(MarketplaceOrder {
                index: orders.len(),
                order_id: order_id.clone(),
                date: table.cell(record, "date").to_string(),
                status,
                marketplace_fulfilled: table
                    .cell(record, "fulfilment")
                    .eq_ignore_ascii_case("amazon"),
                lines: Vec::new(),
            });
            orders.len() - 1
        });
        orders[order_index].lines.push(line);
    }
    Ok((orders, table.rows.len()))
}

/// The price of one unit from a line's amount and shipped quantity, in whole paise written
/// with two decimals; empty when either is missing.
fn unit_price(amount: &str, shipped: i64) -> String {
    if shipped <= 0 {
        return String::new();
    }
    let Some(paise) = amount_paise(amount) else {
        return String::new();
    };
    let unit = paise / shipped;
    format!("{}.{:02}", unit / 100, unit % 100)
}

fn amount_paise(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 2 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<2}").parse().ok()?
    };
    Some(whole * 100 + fraction)
}

// === b2b-orders.csv ===

/// Lines of one B2B customer on one date: one bulk order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2bGroup {
    /// Position among groups, by first appearance in the file.
    pub index: usize,
    /// The customer.
    pub customer: String,
    /// Invoice date, `YYYY-MM-DD`.
    pub date: String,
    /// Pieces per SKU as written (trimmed; blank SKUs under the empty key), summed over
    /// the lines that repeat a SKU, in the order each SKU first appears.
    pub skus: Vec<B2bSku>,
    /// Lines of the file in this group.
    pub lines: usize,
}

/// Pieces of one SKU in a B2B group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2bSku {
    /// SKU as written.
    pub sku: String,
    /// Pieces summed over the group's lines of this SKU, or the first unreadable cell as
    /// written (sent as is, for the dry run to report).
    pub pieces: Pieces,
    /// Lines summed into it.
    pub lines: usize,
}

/// A quantity of pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pieces {
    /// A whole number.
    Whole(i64),
    /// A cell that is not a whole number, as written.
    Unreadable(String),
}

impl B2bGroup {
    /// The outward PO number of this group: date and customer.
    pub fn po_number(&self) -> String {
        format!("B2B-{}-{}", self.date.replace('-', ""), self.customer)
    }
}

fn read_b2b(path: &Path) -> anyhow::Result<(Vec<B2bGroup>, usize)> {
    let table = Table::read(path, &["date", "customer", "sku", "pcs"])?;
    let mut groups: Vec<B2bGroup> = Vec::new();
    let mut position: HashMap<(String, String), usize> = HashMap::new();
    for record in &table.rows {
        let customer = table.cell(record, "customer").to_string();
        let date = table.cell(record, "date").to_string();
        let group_index = *position
            .entry((customer.clone(), date.clone()))
            .or_insert_with(|| {
                groups.push(B2bGroup {
                    index: groups.len(),
                    customer,
                    date,
                    skus: Vec::new(),
                    lines: 0,
                });
                groups.len() - 1
            });
        let group = &mut groups[group_index];
        group.lines += 1;

        let sku = table.cell(record, "sku").to_string();
        let pieces_text = table.cell(record, "pcs");
        let pieces = match whole_pieces(pieces_text) {
            Some(pieces) => Pieces::Whole(pieces),
            None => Pieces::Unreadable(pieces_text.to_string()),
        };
        match group.skus.iter_mut().find(|entry| entry.sku == sku) {
            Some(entry) => {
                entry.lines += 1;
                if let (Pieces::Whole(sum), Pieces::Whole(more)) = (&mut entry.pieces, &pieces) {
                    *sum += more;
                } else if matches!(entry.pieces, Pieces::Whole(_)) {
                    entry.pieces = pieces;
                }
            }
            None => group.skus.push(B2bSku {
                sku,
                pieces,
                lines: 1,
            }),
        }
    }
    Ok((groups, table.rows.len()))
}

/// `3`, `3.0` and `3.00` are 3 pieces; anything else is not a whole number.
fn whole_pieces(text: &str) -> Option<i64> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => text,
    };
    whole.parse().ok()
}

/// How an outward PO's bulk order is allocated: every fifth group (the first, sixth, …)
/// asks for complete delivery, the rest take what there is.
pub fn b2b_fulfilment(group: &B2bGroup) -> &'static str {
    if group.index.is_multiple_of(5) {
        "BLOCK_COMPLETE"
    } else {
        "PARTIAL"
    }
}

/// The header of an outward PO upload.
pub const OUTWARD_HEADER: &str = "po_number,customer,sku,quantity,fulfilment_type";

/// One row of an outward PO upload, and the group it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutwardRow {
    /// Index of the group (bulk order).
    pub group: usize,
    /// The row as CSV, without its line end.
    pub line: String,
}

/// The rows of the outward PO upload of `groups`: one per (group, SKU) with the summed
/// pieces, groups in order.
pub fn outward_rows(groups: &[B2bGroup]) -> Vec<OutwardRow> {
    let mut rows = Vec::new();
    for group in groups {
        for entry in &group.skus {
            let quantity = match &entry.pieces {
                Pieces::Whole(pieces) => pieces.to_string(),
                Pieces::Unreadable(text) => text.clone(),
            };
            let cells = [
                group.po_number(),
                group.customer.clone(),
                entry.sku.clone(),
                quantity,
                b2b_fulfilment(group).to_string(),
            ];
            let line = cells
                .iter()
                .map(|cell| csv_cell(cell))
                .collect::<Vec<_>>()
                .join(",");
            rows.push(OutwardRow {
                group: group.index,
                line,
            });
        }
    }
    rows
}

/// An outward PO upload file of `rows`; its row `n + 2` is `rows[n]`.
pub fn outward_file(rows: &[&OutwardRow]) -> Vec<u8> {
    let mut text = String::from(OUTWARD_HEADER);
    text.push('\n');
    for row in rows {
        writeln!(text, "{}", row.line).expect("writing to a string");
    }
    text.into_bytes()
}

/// A CSV cell, quoted when it has to be.
pub fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_cancelled_line_with_no_shipped_quantity_counts_as_one_unit_ordered() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            MARKETPLACE_FILE,
            "order_id,date,status,fulfilment,sku,qty,amount\n\
             A-1,2022-04-30,Cancelled,Merchant,S-1,0,\n\
             A-2,2022-04-30,Shipped,Amazon,S-2,2,1000.50\n\
             A-2,2022-04-30,Shipped,Amazon,S-3,1,10\n",
        );

        let (orders, lines) = read_marketplace(&dir.path().join(MARKETPLACE_FILE)).unwrap();

        assert_eq!(lines, 3);
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0].lines[0].quantity, 1);
        assert_eq!(orders[0].status, ChannelStatus::Cancelled);
        assert!(!orders[0].marketplace_fulfilled);
        assert!(orders[1].marketplace_fulfilled);
        assert_eq!(orders[1].lines.len(), 2);
        assert_eq!(orders[1].lines[0].price, "500.25");
        assert_eq!(orders[1].lines[1].row, 4);
    }

    #[test]
    fn b2b_pieces_are_summed_per_sku_within_a_customer_and_date() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            B2B_FILE,
            "date,customer,style,sku,size,pcs\n\
             2021-06-05,C-1,X,S-1,M,1.00\n\
             2021-06-06,C-2,X,S-1,M,2.00\n\
             2021-06-05,C-1,X,S-1,M,3.00\n\
             2021-06-05,C-1,X,,M,1.00\n",
        );

        let (groups, lines) = read_b2b(&dir.path().join(B2B_FILE)).unwrap();
        let rows = outward_rows(&groups);
        let file = outward_file(&rows.iter().collect::<Vec<_>>());

        assert_eq!(lines, 4);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].po_number(), "B2B-20210605-C-1");
        assert_eq!(groups[0].skus[0].pieces, Pieces::Whole(4));
        assert_eq!(groups[0].skus[0].lines, 2);
        assert_eq!(groups[0].lines, 3);
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "po_number,customer,sku,quantity,fulfilment_type\n\
             B2B-20210605-C-1,C-1,S-1,4,BLOCK_COMPLETE\n\
             B2B-20210605-C-1,C-1,,1,BLOCK_COMPLETE\n\
             B2B-20210606-C-2,C-2,S-1,2,PARTIAL\n"
        );
        assert_eq!(
            rows.iter().map(|row| row.group).collect::<Vec<_>>(),
            vec![0, 0, 1]
        );
    }

    #[test]
    fn nill_cells_go_blank_and_channel_mrps_equal_to_the_mrp_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            CHANNEL_MRP_FILE,
            "sku,style_id,catalog,category,mrp_old,final_mrp_old,amazon_mrp,amazon_fba_mrp\n\
             Os1_S,Os1,Mix,Kurta,900,999,999,1099\n\
             Os2_S,Os2,Nill,Nill,Nill,Nill,Nill,Nill\n",
        );

        let file = read_channel_mrp(&dir.path().join(CHANNEL_MRP_FILE)).unwrap();
        let rows: Vec<&ChannelMrpRow> = file.rows.iter().collect();
        let upload = String::from_utf8(channel_mrp_upload(&file.channels, &rows)).unwrap();

        assert_eq!(
            file.channels,
            vec!["AMAZON".to_string(), "AMAZON_FBA".to_string()]
        );
        assert_eq!(file.no_value_cells, 5);
        assert_eq!(
            upload,
            "sku,name,style,category,mrp,mrp_amazon,mrp_amazon_fba\n\
             Os1_S,Mix,Os1,Kurta,999,,1099\n\
             Os2_S,,Os2,,,,\n"
        );
    }

    #[test]
    fn products_keep_their_row_numbers_and_only_positive_stock() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            PRODUCTS_FILE,
            "sku,design_no,stock,category,size,color\n\
             A-1,A,5,KURTA,M,Red\n\
             ,B,3,TOP,S,Blue\n\
             A-2,A,,KURTA,L,Red\n",
        );

        let rows = read_products(&dir.path().join(PRODUCTS_FILE)).unwrap();

        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].row, rows[0].stock_opt), (2, Some(5)));
        assert_eq!((rows[1].row, rows[1].sku.as_str()), (3, ""));
        assert_eq!(rows[2].stock_opt, None);
        let upload = String::from_utf8(products_upload(&rows.iter().collect::<Vec<_>>())).unwrap();
        assert_eq!(upload.lines().nth(2), Some(",B,TOP,S,Blue"));
    }
}
