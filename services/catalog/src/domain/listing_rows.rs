//! Reading the rows of a listing upload (`channel,marketplace_sku,sku`) and every problem a
//! row has on its own. Repeated listings and SKUs that do not exist are the upload's to
//! find.

use kosha_proto::types::RowError;
use kosha_runtime::upload::{Columns, CsvRow, row_error};

use super::ids::{ChannelCode, Sku};
use super::product_rows::{FileColumn, check_width};

/// The channel column.
pub const CHANNEL_COLUMN: &str = "channel";
/// The marketplace SKU column.
pub const MARKETPLACE_SKU_COLUMN: &str = "marketplace_sku";
/// The client SKU column.
pub const SKU_COLUMN: &str = "sku";

/// One data row, read.
#[derive(Debug, Clone)]
pub struct ListingRow {
    /// Spreadsheet row number.
    pub row: i64,
    /// Channel and marketplace SKU, when both cells are valid.
    pub key_opt: Option<(ChannelCode, Sku)>,
    /// The client SKU, when the cell holds a valid one.
    pub sku_opt: Option<Sku>,
    /// Whether the row has no problem of its own.
    pub valid: bool,
}

/// Where each listing column sits in an uploaded file.
#[derive(Debug, Clone)]
pub struct ListingLayout {
    width: usize,
    channel: FileColumn,
    marketplace_sku: FileColumn,
    sku: FileColumn,
}

impl ListingLayout {
    /// Reads the header. Problems go to `errors` as row-1 errors; `None` when a column is
    /// missing.
    pub fn resolve(header: &[String], errors: &mut Vec<RowError>) -> Option<Self> {
        let required = [CHANNEL_COLUMN, MARKETPLACE_SKU_COLUMN, SKU_COLUMN];
        let columns = Columns::resolve(header, &required, &[], |_| false, errors);
        Some(Self {
            width: header.len(),
            channel: FileColumn::find(&columns, header, CHANNEL_COLUMN)?,
            marketplace_sku: FileColumn::find(&columns, header, MARKETPLACE_SKU_COLUMN)?,
            sku: FileColumn::find(&columns, header, SKU_COLUMN)?,
        })
    }

    /// The marketplace SKU column's name as the file writes it.
    pub fn marketplace_sku_column(&self) -> &str {
        &self.marketplace_sku.name
    }

    /// The client SKU column's name as the file writes it.
    pub fn sku_column(&self) -> &str {
        &self.sku.name
    }

    /// Reads one data row against the channels that exist; problems go to `errors`.
    pub fn parse_row(
        &self,
        row: &CsvRow,
        channels: &[ChannelCode],
        errors: &mut Vec<RowError>,
    ) -> ListingRow {
        if check_width(row, self.width, errors) {
            return ListingRow {
                row: row.row,
                key_opt: None,
                sku_opt: None,
                valid: false,
            };
        }
        let errors_before = errors.len();

        let channel_opt = read_channel(row, &self.channel, channels, errors);
        let marketplace_sku_opt = read_sku(row, &self.marketplace_sku, errors);
        let sku_opt = read_sku(row, &self.sku, errors);

        let key_opt = channel_opt.zip(marketplace_sku_opt);
        ListingRow {
            row: row.row,
            key_opt,
            sku_opt,
            valid: errors.len() == errors_before,
        }
    }
}

fn read_channel(
    row: &CsvRow,
    column: &FileColumn,
    channels: &[ChannelCode],
    errors: &mut Vec<RowError>,
) -> Option<ChannelCode> {
    let text = row.cell(Some(column.index));
    if text.is_empty() {
        errors.push(row_error(
            row.row,
            &column.name,
            "",
            "REQUIRED",
            "the channel is blank",
        ));
        return None;
    }
    if let Some(problem) = ChannelCode::problem(text) {
        errors.push(row_error(
            row.row,
            &column.name,
            text,
            "INVALID_CHANNEL",
            problem,
        ));
        return None;
    }
    match channels.iter().find(|channel| channel.as_str() == text) {
        Some(channel) => Some(channel.clone()),
        None => {
            errors.push(row_error(
                row.row,
                &column.name,
                text,
                "UNKNOWN_CHANNEL",
                format!("channel `{text}` does not exist; register it first"),
            ));
            None
        }
    }
}

fn read_sku(row: &CsvRow, column: &FileColumn, errors: &mut Vec<RowError>) -> Option<Sku> {
    let text = row.cell(Some(column.index));
    if text.is_empty() {
        let message = format!("`{}` is blank", column.name);
        errors.push(row_error(row.row, &column.name, "", "REQUIRED", message));
        return None;
    }
    match Sku::parse_cell(text) {
        Ok(sku) => Some(sku),
        Err(problem) => {
            errors.push(row_error(
                row.row,
                &column.name,
                text,
                "INVALID_SKU",
                problem,
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ListingLayout {
        let header: Vec<String> = ["channel", "marketplace_sku", "sku"]
            .iter()
            .map(|name| name.to_string())
            .collect();
        let mut errors = Vec::new();
        let layout = ListingLayout::resolve(&header, &mut errors).unwrap();
        assert!(errors.is_empty());
        layout
    }

    fn row(cells: &[&str]) -> CsvRow {
        CsvRow {
            row: 5,
            cells: cells.iter().map(|cell| cell.to_string()).collect(),
        }
    }

    fn channels() -> Vec<ChannelCode> {
        vec![ChannelCode::from_stored("AMAZON".into())]
    }

    #[test]
    fn a_valid_row_gives_its_key_and_sku() {
        let mut errors = Vec::new();

        let parsed =
            layout().parse_row(&row(&["AMAZON", "B0-XYZ", "K-1"]), &channels(), &mut errors);

        assert!(parsed.valid && errors.is_empty());
        let (channel, marketplace_sku) = parsed.key_opt.unwrap();
        assert_eq!(
            (channel.as_str(), marketplace_sku.as_str()),
            ("AMAZON", "B0-XYZ")
        );
        assert_eq!(parsed.sku_opt.unwrap().as_str(), "K-1");
    }

    #[test]
    fn unknown_channels_and_bad_skus_are_reported_per_column() {
        let mut errors = Vec::new();

        let parsed = layout().parse_row(&row(&["MYNTRA", "", "#REF!"]), &channels(), &mut errors);

        assert!(!parsed.valid);
        let found: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.column.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("channel", "UNKNOWN_CHANNEL"),
                ("marketplace_sku", "REQUIRED"),
                ("sku", "INVALID_SKU")
            ]
        );
    }

    #[test]
    fn a_lowercase_channel_is_not_silently_uppercased() {
        let mut errors = Vec::new();

        layout().parse_row(&row(&["amazon", "B0", "K-1"]), &channels(), &mut errors);

        assert_eq!(errors[0].reason, "INVALID_CHANNEL");
    }

    #[test]
    fn a_missing_column_stops_the_rows_from_being_read() {
        let header = vec!["channel".to_string(), "sku".to_string()];
        let mut errors = Vec::new();

        assert!(ListingLayout::resolve(&header, &mut errors).is_none());
        assert_eq!(errors[0].reason, "MISSING_COLUMN");
    }
}
