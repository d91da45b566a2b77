//! Reading the rows of a product upload: which column means what, and every problem a row
//! has on its own. Problems across rows (a repeated SKU, a SKU that exists or does not)
//! are the upload's to find.

use kosha_proto::types::RowError;
use kosha_runtime::upload::{Columns, CsvRow, row_error};

use super::ids::{ChannelCode, Sku};
use super::product::{Mrp, ProductAttributes, ProductPatch, TextField, text_problem};
use super::template::{CLEAR_TOKEN, MRP_COLUMN, SKU_COLUMN, UploadMode, channel_of_mrp_column};

/// A column of the uploaded file: where it is and how the file spells it.
#[derive(Debug, Clone)]
pub struct FileColumn {
    /// Position in the header.
    pub index: usize,
    /// Name as written in the header, used in reports.
    pub name: String,
}

impl FileColumn {
    /// The column `key` (lowercase) of `columns`, if the file has it.
    pub fn find(columns: &Columns, header: &[String], key: &str) -> Option<Self> {
        columns.index(key).map(|index| Self {
            index,
            name: header[index].clone(),
        })
    }
}

/// What a non-SKU cell asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Nothing written.
    Blank,
    /// The clear token.
    Clear,
    /// A value.
    Value(&'a str),
}

impl<'a> Cell<'a> {
    /// Classifies a (trimmed) cell.
    pub fn of(text: &'a str) -> Self {
        if text.is_empty() {
            Self::Blank
        } else if text.eq_ignore_ascii_case(CLEAR_TOKEN) {
            Self::Clear
        } else {
            Self::Value(text)
        }
    }
}

/// Reports a row with more cells than the header has columns; true when it had.
pub fn check_width(row: &CsvRow, width: usize, errors: &mut Vec<RowError>) -> bool {
    if row.cells.len() <= width {
        return false;
    }
    let extra = row.cells[width..].join(",");
    errors.push(row_error(
        row.row,
        "",
        &extra,
        "TOO_MANY_CELLS",
        format!(
            "the row has {} cells but the header has {width} columns; quote cells that \
             contain a comma",
            row.cells.len()
        ),
    ));
    true
}

/// The values of one valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowValues {
    /// Create mode: the new product's attributes.
    Create(ProductAttributes),
    /// Update mode: what changes.
    Update(ProductPatch),
}

/// One data row, read.
#[derive(Debug, Clone)]
pub struct ProductRow {
    /// Spreadsheet row number.
    pub row: i64,
    /// The SKU, when the cell holds a valid one.
    pub sku_opt: Option<Sku>,
    /// The values, when the row has no problem of its own.
    pub values_opt: Option<RowValues>,
}

/// Where each product column sits in an uploaded file.
#[derive(Debug, Clone)]
pub struct ProductLayout {
    mode: UploadMode,
    width: usize,
    sku: FileColumn,
    texts: Vec<(TextField, FileColumn)>,
    mrp_opt: Option<FileColumn>,
    channel_mrps: Vec<(ChannelCode, FileColumn)>,
}

impl ProductLayout {
    /// Reads the header against the template of `mode`. Problems go to `errors` as row-1
    /// errors; `None` when the rows cannot be read at all (no SKU column).
    pub fn resolve(
        header: &[String],
        mode: UploadMode,
        marketplaces: &[ChannelCode],
        errors: &mut Vec<RowError>,
    ) -> Option<Self> {
        let mut optional: Vec<&str> = TextField::ALL.iter().map(|field| field.name()).collect();
        optional.push(MRP_COLUMN);
        let is_channel_mrp = |key: &str| channel_of_mrp_column(key, marketplaces).is_some();
        let first_new_error = errors.len();
        let columns = Columns::resolve(header, &[SKU_COLUMN], &optional, is_channel_mrp, errors);
        // The fixed list the shared check names leaves out the per-channel MRP columns.
        let channel_columns: Vec<String> = marketplaces
            .iter()
            .map(|code| format!("mrp_{}", code.as_str().to_ascii_lowercase()))
            .collect();
        for error in &mut errors[first_new_error..] {
            if error.reason != "UNKNOWN_COLUMN" {
                continue;
            }
            if error.value.to_ascii_lowercase().starts_with("mrp_") {
                error.message = format!(
                    "unknown column `{}`: an MRP column names a marketplace channel registered \
                     in catalog; they are {}",
                    error.value,
                    if channel_columns.is_empty() {
                        "none yet".to_string()
                    } else {
                        channel_columns.join(", ")
                    }
                );
            } else if !channel_columns.is_empty() {
                error.message = format!(
                    "{}, and one MRP column per marketplace channel: {}",
                    error.message,
                    channel_columns.join(", ")
                );
            }
        }

        let sku = FileColumn::find(&columns, header, SKU_COLUMN)?;
        let texts: Vec<(TextField, FileColumn)> = TextField::ALL
            .into_iter()
            .filter_map(|field| Some((field, FileColumn::find(&columns, header, field.name())?)))
            .collect();
        let mrp_opt = FileColumn::find(&columns, header, MRP_COLUMN);
        let mut channel_mrps: Vec<(ChannelCode, FileColumn)> = columns
            .present()
            .filter_map(|(key, index)| {
                let channel = channel_of_mrp_column(key, marketplaces)?;
                Some((
                    channel.clone(),
                    FileColumn {
                        index,
                        name: header[index].clone(),
                    },
                ))
            })
            .collect();
        channel_mrps.sort_by_key(|(_, column)| column.index);

        let changes_nothing = texts.is_empty() && mrp_opt.is_none() && channel_mrps.is_empty();
        if mode == UploadMode::Update && changes_nothing {
            errors.push(row_error(
                1,
                "",
                "",
                "NOTHING_TO_UPDATE",
                "an update file needs at least one column to change besides `sku`",
            ));
        }
        Some(Self {
            mode,
            width: header.len(),
            sku,
            texts,
            mrp_opt,
            channel_mrps,
        })
    }

    /// The SKU column's name as the file writes it.
    pub fn sku_column(&self) -> &str {
        &self.sku.name
    }

    /// Reads one data row; its problems go to `errors`.
    pub fn parse_row(&self, row: &CsvRow, errors: &mut Vec<RowError>) -> ProductRow {
        if check_width(row, self.width, errors) {
            return ProductRow {
                row: row.row,
                sku_opt: None,
                values_opt: None,
            };
        }
        let errors_before = errors.len();

        let sku_cell = row.cell(Some(self.sku.index));
        let sku_opt = if sku_cell.is_empty() {
            errors.push(row_error(
                row.row,
                &self.sku.name,
                "",
                "REQUIRED",
                "the SKU is blank",
            ));
            None
        } else {
            match Sku::parse_cell(sku_cell) {
                Ok(sku) => Some(sku),
                Err(problem) => {
                    errors.push(row_error(
                        row.row,
                        &self.sku.name,
                        sku_cell,
                        "INVALID_SKU",
                        problem,
                    ));
                    None
                }
            }
        };

        let mut attributes = ProductAttributes::default();
        let mut patch = ProductPatch::default();
        for (field, column) in &self.texts {
            let text = row.cell(Some(column.index));
            match self.read_cell(row.row, column, text, errors) {
                Cell::Blank => {}
                Cell::Clear => patch.texts.push((*field, String::new())),
                Cell::Value(value) => match text_problem(value) {
                    Some(problem) => {
                        errors.push(row_error(
                            row.row,
                            &column.name,
                            value,
                            "INVALID_TEXT",
                            problem,
                        ));
                    }
                    None => {
                        *attributes.text_mut(*field) = value.to_string();
                        patch.texts.push((*field, value.to_string()));
                    }
                },
            }
        }
        if let Some(column) = &self.mrp_opt {
            match self.read_mrp(row.row, column, row.cell(Some(column.index)), errors) {
                Some(MrpCell::Set(mrp)) => {
                    attributes.mrp_opt = Some(mrp);
                    patch.mrp_opt = Some(Some(mrp));
                }
                Some(MrpCell::Clear) => patch.mrp_opt = Some(None),
                Some(MrpCell::Blank) | None => {}
            }
        }
        for (channel, column) in &self.channel_mrps {
            match self.read_mrp(row.row, column, row.cell(Some(column.index)), errors) {
                Some(MrpCell::Set(mrp)) => {
                    attributes.channel_mrp.insert(channel.clone(), mrp);
                    patch.channel_mrp.push((channel.clone(), Some(mrp)));
                }
                Some(MrpCell::Clear) => patch.channel_mrp.push((channel.clone(), None)),
                Some(MrpCell::Blank) | None => {}
            }
        }

        let values = match self.mode {
            UploadMode::Create => RowValues::Create(attributes),
            UploadMode::Update => RowValues::Update(patch),
        };
        let values_opt = (errors.len() == errors_before).then_some(values);
        ProductRow {
            row: row.row,
            sku_opt,
            values_opt,
        }
    }

    /// Classifies a cell, refusing the clear token in create mode.
    fn read_cell<'a>(
        &self,
        row: i64,
        column: &FileColumn,
        text: &'a str,
        errors: &mut Vec<RowError>,
    ) -> Cell<'a> {
        let cell = Cell::of(text);
        if cell == Cell::Clear && self.mode == UploadMode::Create {
            errors.push(row_error(
                row,
                &column.name,
                text,
                "CLEAR_IN_CREATE",
                format!("`{CLEAR_TOKEN}` clears a value in update mode; leave the cell blank"),
            ));
            return Cell::Blank;
        }
        cell
    }

    /// Reads an MRP cell; a value that is not a positive decimal is reported and gives
    /// `None`.
    fn read_mrp(
        &self,
        row: i64,
        column: &FileColumn,
        text: &str,
        errors: &mut Vec<RowError>,
    ) -> Option<MrpCell> {
        let errors_before = errors.len();
        match self.read_cell(row, column, text, errors) {
            Cell::Blank if errors.len() > errors_before => None,
            Cell::Blank => Some(MrpCell::Blank),
            Cell::Clear => Some(MrpCell::Clear),
            Cell::Value(value) => match Mrp::parse(value) {
                Ok(mrp) => Some(MrpCell::Set(mrp)),
                Err(problem) => {
                    errors.push(row_error(
                        row,
                        &column.name,
                        value,
                        problem.reason(),
                        problem.message(),
                    ));
                    None
                }
            },
        }
    }
}

/// What an MRP cell asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MrpCell {
    Blank,
    Clear,
    Set(Mrp),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn row(number: i64, cells: &[&str]) -> CsvRow {
        CsvRow {
            row: number,
            cells: cells.iter().map(|cell| cell.to_string()).collect(),
        }
    }

    fn marketplaces() -> Vec<ChannelCode> {
        vec![ChannelCode::from_stored("AMAZON".into())]
    }

    fn layout(mode: UploadMode, names: &[&str]) -> ProductLayout {
        let mut errors = Vec::new();
        let layout = ProductLayout::resolve(&header(names), mode, &marketplaces(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        layout.unwrap()
    }

    #[test]
    fn a_create_row_becomes_attributes_with_channel_prices() {
        let layout = layout(UploadMode::Create, &["SKU", "name", "mrp", "mrp_amazon"]);
        let mut errors = Vec::new();

        let parsed = layout.parse_row(&row(2, &["K-1", "Kurta", "1299.5", "1400"]), &mut errors);

        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(parsed.sku_opt.unwrap().as_str(), "K-1");
        let Some(RowValues::Create(attributes)) = parsed.values_opt else {
            panic!("no values")
        };
        assert_eq!(attributes.name, "Kurta");
        assert_eq!(attributes.mrp_opt, Some(Mrp::from_paise(129_950)));
        assert_eq!(
            attributes.channel_mrp.values().next(),
            Some(&Mrp::from_paise(140_000))
        );
    }

    #[test]
    fn every_problem_of_a_row_is_reported_with_its_column() {
        let layout = layout(UploadMode::Create, &["sku", "color", "mrp", "mrp_amazon"]);
        let mut errors = Vec::new();

        let parsed = layout.parse_row(&row(7, &["#REF!", "#CLEAR", "1,800", "0"]), &mut errors);

        assert!(parsed.sku_opt.is_none() && parsed.values_opt.is_none());
        let found: Vec<(i64, &str, &str)> = errors
            .iter()
            .map(|e| (e.row, e.column.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (7, "sku", "INVALID_SKU"),
                (7, "color", "CLEAR_IN_CREATE"),
                (7, "mrp", "NOT_A_DECIMAL"),
                (7, "mrp_amazon", "NOT_POSITIVE"),
            ]
        );
    }

    #[test]
    fn a_blank_sku_is_a_missing_required_value_but_the_rest_is_still_checked() {
        let layout = layout(UploadMode::Create, &["sku", "mrp"]);
        let mut errors = Vec::new();

        layout.parse_row(&row(3, &["", "abc"]), &mut errors);

        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["REQUIRED", "NOT_A_DECIMAL"]);
    }

    #[test]
    fn an_update_row_keeps_blanks_and_clears_the_clear_token() {
        let layout = layout(
            UploadMode::Update,
            &["sku", "name", "color", "mrp", "mrp_amazon"],
        );
        let mut errors = Vec::new();

        let parsed = layout.parse_row(&row(2, &["K-1", "", "#clear", "#CLEAR", "99"]), &mut errors);

        assert!(errors.is_empty(), "{errors:?}");
        let Some(RowValues::Update(patch)) = parsed.values_opt else {
            panic!("no patch")
        };
        assert_eq!(patch.texts, [(TextField::Color, String::new())]);
        assert_eq!(patch.mrp_opt, Some(None));
        assert_eq!(patch.channel_mrp.len(), 1);
        assert_eq!(patch.channel_mrp[0].1, Some(Mrp::from_paise(9_900)));
    }

    #[test]
    fn a_row_with_more_cells_than_columns_is_refused_whole() {
        let layout = layout(UploadMode::Create, &["sku", "mrp"]);
        let mut errors = Vec::new();

        let parsed = layout.parse_row(&row(4, &["K-1", "1", "800"]), &mut errors);

        assert!(parsed.values_opt.is_none());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].reason.as_str(), errors[0].value.as_str()),
            ("TOO_MANY_CELLS", "800")
        );
    }

    #[test]
    fn a_short_row_reads_its_missing_cells_as_blank() {
        let layout = layout(UploadMode::Create, &["sku", "name", "mrp"]);
        let mut errors = Vec::new();

        let parsed = layout.parse_row(&row(2, &["K-1"]), &mut errors);

        assert!(errors.is_empty());
        assert!(parsed.values_opt.is_some());
    }

    #[test]
    fn an_update_file_with_only_a_sku_column_changes_nothing_and_is_refused() {
        let mut errors = Vec::new();

        ProductLayout::resolve(&header(&["sku"]), UploadMode::Update, &[], &mut errors);

        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].row, errors[0].reason.as_str()),
            (1, "NOTHING_TO_UPDATE")
        );
    }

    #[test]
    fn mrp_columns_of_unknown_channels_are_unknown_columns() {
        let mut errors = Vec::new();

        let layout_opt = ProductLayout::resolve(
            &header(&["sku", "mrp_myntra"]),
            UploadMode::Create,
            &marketplaces(),
            &mut errors,
        );

        assert!(layout_opt.is_some());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].column.as_str(), errors[0].reason.as_str()),
            ("mrp_myntra", "UNKNOWN_COLUMN")
        );
        assert!(
            errors[0].message.contains("they are mrp_amazon"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn an_unknown_column_is_told_the_channel_mrp_columns_too() {
        let mut errors = Vec::new();

        ProductLayout::resolve(
            &header(&["sku", "colour"]),
            UploadMode::Create,
            &marketplaces(),
            &mut errors,
        );

        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("size, sku, style")
                && errors[0]
                    .message
                    .ends_with("one MRP column per marketplace channel: mrp_amazon"),
            "{}",
            errors[0].message
        );
    }
}
