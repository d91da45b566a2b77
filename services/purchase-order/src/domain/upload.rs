//! Reading PO upload files: every cell checked, rows grouped into POs, and every problem
//! kept with its row and column, before anything is stored.
//!
//! One row is one PO line. Rows sharing a PO number make one PO; the PO-level cells
//! (supplier, or customer, fulfilment type and QC grade) must agree on all its rows, and a
//! SKU may appear once per PO. Whether each SKU exists in the product master is checked
//! afterwards, for the whole file at once ([`Draft::check_products`]). Rows whose cells
//! are all blank (a spreadsheet's trailing lines) are skipped.

use std::collections::{BTreeMap, HashMap};

use kosha_proto::types::RowError;
use kosha_runtime::Error;
use kosha_runtime::upload::{Columns, CsvFile, CsvRow, row_error};

use super::ids::{PartyName, PoNumber, Sku};
use super::outward::{MAX_OUTWARD_LINES, NewOutwardLine, NewOutwardOrder, OutwardTerms};
use super::purchase_order::{MAX_PO_LINES, NewPoLine, NewPurchaseOrder};
use super::values::{ExpectedDate, FulfilmentType, QcGrade, Quantity, UnitCost};

/// Column names, as the template writes them (files may use any case).
pub mod column {
    /// The PO number.
    pub const PO_NUMBER: &str = "po_number";
    /// Inward: who delivers.
    pub const SUPPLIER: &str = "supplier";
    /// Outward: the B2B customer.
    pub const CUSTOMER: &str = "customer";
    /// The client's SKU.
    pub const SKU: &str = "sku";
    /// Units.
    pub const QUANTITY: &str = "quantity";
    /// Inward: cost of one unit.
    pub const UNIT_COST: &str = "unit_cost";
    /// Inward: expected delivery date.
    pub const EXPECTED_DATE: &str = "expected_date";
    /// Outward: PARTIAL or BLOCK_COMPLETE.
    pub const FULFILMENT_TYPE: &str = "fulfilment_type";
    /// Outward: PASS or FAIL.
    pub const QC_GRADE: &str = "qc_grade";
}

/// The stable reason codes of upload problems.
pub mod reason {
    /// A required cell is blank.
    pub const REQUIRED: &str = "REQUIRED";
    /// A PO number of the wrong format.
    pub const INVALID_PO_NUMBER: &str = "INVALID_PO_NUMBER";
    /// A SKU of the wrong format.
    pub const INVALID_SKU: &str = "INVALID_SKU";
    /// A name that is too long or holds control characters.
    pub const INVALID_TEXT: &str = "INVALID_TEXT";
    /// A quantity that is not a positive whole number.
    pub const NOT_A_QUANTITY: &str = "NOT_A_QUANTITY";
    /// A cost that is not a non-negative decimal.
    pub const NOT_A_DECIMAL: &str = "NOT_A_DECIMAL";
    /// A date that is not `YYYY-MM-DD` or not on the calendar.
    pub const NOT_A_DATE: &str = "NOT_A_DATE";
    /// Neither PARTIAL nor BLOCK_COMPLETE.
    pub const INVALID_FULFILMENT_TYPE: &str = "INVALID_FULFILMENT_TYPE";
    /// Neither PASS nor FAIL.
    pub const INVALID_QC_GRADE: &str = "INVALID_QC_GRADE";
    /// Rows of one PO disagree on a PO-level value (supplier, customer, …).
    pub const CONFLICTING_VALUE: &str = "CONFLICTING_VALUE";
    /// The same SKU on several rows of one PO.
    pub const DUPLICATE_SKU: &str = "DUPLICATE_SKU";
    /// A SKU that is not in the client's product master.
    pub const UNKNOWN_SKU: &str = "UNKNOWN_SKU";
    /// A SKU whose product is disabled.
    pub const INACTIVE_SKU: &str = "INACTIVE_SKU";
    /// A PO with more lines than one PO may have.
    pub const TOO_MANY_LINES: &str = "TOO_MANY_LINES";
    /// A row with more cells than the header has columns.
    pub const TOO_MANY_CELLS: &str = "TOO_MANY_CELLS";
    /// A file with a header and no data rows.
    pub const NO_ROWS: &str = "NO_ROWS";
    /// A PO number that is stored already with other content.
    pub const PO_EXISTS: &str = "PO_EXISTS";
}

/// One column of an upload template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateColumn {
    /// Header name.
    pub name: &'static str,
    /// Whether the file must have it.
    pub required: bool,
    /// What goes in it.
    pub description: &'static str,
}

/// What differs between inward and outward files.
pub trait PoFormat {
    /// The rest of a line beyond its SKU.
    type Rest: Clone;
    /// The PO built from checked rows.
    type Order;
    /// Every column, required ones first.
    const TEMPLATE: &'static [TemplateColumn];
    /// PO-level columns: every row of a PO must agree on them.
    const TERM_COLUMNS: &'static [&'static str];
    /// Most lines per PO.
    const MAX_LINES: usize;

    /// Normalises a PO-level cell, or says why it is wrong (reason code, problem).
    fn read_term(column: &str, text: &str) -> Result<String, (&'static str, String)>;
    /// Reads the line cells beyond the SKU; problems go into `cells`.
    fn read_rest(cells: &mut RowCells<'_>) -> Option<Self::Rest>;
    /// Builds the PO from normalised terms (in [`PoFormat::TERM_COLUMNS`] order) and lines.
    fn build(
        po_number: PoNumber,
        terms: &[String],
        lines: Vec<(Sku, Self::Rest)>,
    ) -> Result<Self::Order, String>;

    /// The required column names.
    fn required_columns() -> Vec<&'static str> {
        Self::TEMPLATE
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name)
            .collect()
    }

    /// The optional column names.
    fn optional_columns() -> Vec<&'static str> {
        Self::TEMPLATE
            .iter()
            .filter(|c| !c.required)
            .map(|c| c.name)
            .collect()
    }
}

// === impl RowCells ===

/// The cells of one row, read by column name, with the problems found so far.
pub struct RowCells<'a> {
    row: &'a CsvRow,
    columns: &'a Columns,
    header: &'a [String],
    errors: &'a mut Vec<RowError>,
}

impl RowCells<'_> {
    /// The cell of `column` ("" when the file has no such column or the row is short).
    pub fn text(&self, column: &str) -> &str {
        self.row.cell(self.columns.index(column))
    }

    /// The column's name as the file's header writes it.
    fn header_name(&self, column: &str) -> String {
        self.columns
            .index(column)
            .and_then(|index| self.header.get(index))
            .cloned()
            .unwrap_or_else(|| column.to_string())
    }

    /// Records a problem with the cell of `column`.
    pub fn problem(&mut self, column: &str, reason: &str, message: impl Into<String>) {
        let value = self.text(column).to_string();
        let name = self.header_name(column);
        self.errors
            .push(row_error(self.row.row, &name, &value, reason, message));
    }

    /// Reads a cell that must not be blank.
    pub fn required<T>(
        &mut self,
        column: &str,
        reason: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.text(column).is_empty() {
            self.problem(column, reason::REQUIRED, format!("`{column}` is required"));
            return None;
        }
        self.optional(column, reason, parse)
    }

    /// Reads a cell; `parse` decides what a blank means.
    pub fn optional<T>(
        &mut self,
        column: &str,
        reason: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(self.text(column)) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.problem(column, reason, problem);
                None
            }
        }
    }
}

// === impl Draft ===

/// One checked line of a PO and the row it came from.
#[derive(Debug, Clone)]
pub struct DraftLine<R> {
    /// Spreadsheet row.
    pub row: i64,
    /// SKU.
    pub sku: Sku,
    /// The other cells.
    pub rest: R,
}

/// The rows of one PO number.
#[derive(Debug, Clone)]
pub struct DraftPo<R> {
    /// PO number.
    pub po_number: PoNumber,
    /// Its first row in the file.
    pub first_row: i64,
    /// Rows naming it.
    pub rows: Vec<i64>,
    /// Per term column: the first valid value and its row.
    terms: Vec<Option<(String, i64)>>,
    /// Lines whose cells are all valid.
    lines: Vec<DraftLine<R>>,
}

/// A PO of a clean file, ready to store.
#[derive(Debug, Clone)]
pub struct ReadyPo<O> {
    /// Its first row in the file (where a problem with the whole PO is reported).
    pub first_row: i64,
    /// Rows it was built from.
    pub row_count: i64,
    /// The PO.
    pub order: O,
}

/// A file read and checked cell by cell, not yet against the product master or storage.
#[derive(Debug)]
pub struct Draft<R> {
    /// Data rows read (the header not counted).
    pub rows: i64,
    /// Every problem found so far.
    pub errors: Vec<RowError>,
    /// POs in the order their numbers first appear.
    pub pos: Vec<DraftPo<R>>,
    /// Every row with a well-formed SKU.
    sku_rows: Vec<(i64, Sku)>,
    /// The SKU column's name as the file writes it.
    sku_header: String,
    /// The PO number column's name as the file writes it.
    po_number_header: String,
}

/// Reads and checks a whole upload file. File-level problems (not text, no header) are
/// errors; everything else is collected in the draft.
pub fn read_file<F: PoFormat>(bytes: &[u8]) -> Result<Draft<F::Rest>, Error> {
    let file = CsvFile::parse(bytes)?;
    let required = F::required_columns();
    let optional = F::optional_columns();
    let mut errors = Vec::new();
    let columns = Columns::resolve(&file.header, &required, &optional, |_| false, &mut errors);
    let mut draft = Draft {
        rows: 0,
        errors,
        pos: Vec::new(),
        sku_rows: Vec::new(),
        sku_header: header_name(&columns, &file.header, column::SKU),
        po_number_header: header_name(&columns, &file.header, column::PO_NUMBER),
    };

    // Without a required column every row would repeat the same problem: report the header.
    let missing_required = required.iter().any(|name| columns.index(name).is_none());
    if missing_required {
        draft.rows = file.rows().count() as i64;
        return Ok(draft);
    }

    let mut po_index_by_number: HashMap<PoNumber, usize> = HashMap::new();
    let mut rows_by_po_and_sku: BTreeMap<(usize, Sku), Vec<i64>> = BTreeMap::new();
    let mut data_rows = 0_i64;
    for row_result in file.rows() {
        draft.rows += 1;
        let row = match row_result {
            Ok(row) => row,
            Err(problem) => {
                draft.errors.push(problem);
                continue;
            }
        };
        if row.cells.iter().all(String::is_empty) {
            continue;
        }
        data_rows += 1;
        if row.cells.len() > file.header.len() {
            let extra = row.cells[file.header.len()..].join(",");
            draft.errors.push(row_error(
                row.row,
                "",
                &extra,
                reason::TOO_MANY_CELLS,
                format!(
                    "the row has {} cells but the header has {} columns",
                    row.cells.len(),
                    file.header.len()
                ),
            ));
        }

        // Every cell of the row, each problem recorded.
        let mut cells = RowCells {
            row: &row,
            columns: &columns,
            header: &file.header,
            errors: &mut draft.errors,
        };
        let po_number_opt = cells.required(
            column::PO_NUMBER,
            reason::INVALID_PO_NUMBER,
            PoNumber::parse,
        );
        let sku_opt = cells.required(column::SKU, reason::INVALID_SKU, Sku::parse);
        let mut term_values = Vec::with_capacity(F::TERM_COLUMNS.len());
        for name in F::TERM_COLUMNS {
            let value_opt = match F::read_term(name, cells.text(name)) {
                Ok(value) => Some(value),
                Err((code, problem)) => {
                    cells.problem(name, code, problem);
                    None
                }
            };
            term_values.push(value_opt);
        }
        let rest_opt = F::read_rest(&mut cells);
        if let Some(sku) = &sku_opt {
            draft.sku_rows.push((row.row, sku.clone()));
        }

        // Group by PO number; the first valid value of each PO-level column wins.
        let Some(po_number) = po_number_opt else {
            continue;
        };
        let index = *po_index_by_number
            .entry(po_number.clone())
            .or_insert_with(|| {
                draft.pos.push(DraftPo {
                    po_number: po_number.clone(),
                    first_row: row.row,
                    rows: Vec::new(),
                    terms: vec![None; F::TERM_COLUMNS.len()],
                    lines: Vec::new(),
                });
                draft.pos.len() - 1
            });
        let po = &mut draft.pos[index];
        po.rows.push(row.row);
        for (position, value_opt) in term_values.into_iter().enumerate() {
            let Some(value) = value_opt else {
                continue;
            };
            match &po.terms[position] {
                None => po.terms[position] = Some((value, row.row)),
                Some((first, first_row)) if *first != value => {
                    let name = F::TERM_COLUMNS[position];
                    let message = format!(
                        "PO `{po_number}` has {name} `{first}` on row {first_row}; every row of \
                         one PO must have the same {name}"
                    );
                    let mut cells = RowCells {
                        row: &row,
                        columns: &columns,
                        header: &file.header,
                        errors: &mut draft.errors,
                    };
                    cells.problem(name, reason::CONFLICTING_VALUE, message);
                }
                Some(_) => {}
            }
        }
        if let Some(sku) = sku_opt {
            rows_by_po_and_sku
                .entry((index, sku.clone()))
                .or_default()
                .push(row.row);
            if let Some(rest) = rest_opt {
                po.lines.push(DraftLine {
                    row: row.row,
                    sku,
                    rest,
                });
            }
        }
    }

    // A SKU repeated within one PO: every row of the repeat is reported.
    for ((index, sku), rows) in &rows_by_po_and_sku {
        if rows.len() < 2 {
            continue;
        }
        let po_number = &draft.pos[*index].po_number;
        let row_list: Vec<String> = rows.iter().map(i64::to_string).collect();
        for row in rows {
            draft.errors.push(row_error(
                *row,
                &draft.sku_header,
                sku.as_str(),
                reason::DUPLICATE_SKU,
                format!(
                    "SKU `{sku}` appears {} times in PO `{po_number}` (rows {}); list each SKU \
                     once per PO, with the quantities added up",
                    rows.len(),
                    row_list.join(", ")
                ),
            ));
        }
    }

    // A PO longer than allowed: reported once, at its first row past the limit.
    for po in &draft.pos {
        if po.rows.len() > F::MAX_LINES {
            draft.errors.push(row_error(
                po.rows[F::MAX_LINES],
                &draft.po_number_header,
                po.po_number.as_str(),
                reason::TOO_MANY_LINES,
                format!(
                    "PO `{}` has {} lines; one PO may have at most {}",
                    po.po_number,
                    po.rows.len(),
                    F::MAX_LINES
                ),
            ));
        }
    }

    if data_rows == 0 {
        draft.errors.push(row_error(
            0,
            "",
            "",
            reason::NO_ROWS,
            "the file has a header but no data rows",
        ));
    }
    Ok(draft)
}

fn header_name(columns: &Columns, header: &[String], column: &str) -> String {
    columns
        .index(column)
        .and_then(|index| header.get(index))
        .cloned()
        .unwrap_or_else(|| column.to_string())
}

impl<R> Draft<R> {
    /// The distinct well-formed SKUs of the file, plus, for a SKU ending in `.`, the SKU
    /// without it (to suggest the fix): one product-master lookup answers them all.
    pub fn skus_to_look_up(&self) -> Vec<String> {
        let mut skus: Vec<String> = Vec::new();
        for (_, sku) in &self.sku_rows {
            skus.push(sku.as_str().to_string());
            let trimmed = sku.as_str().trim_end_matches('.');
            if trimmed.len() != sku.as_str().len() && !trimmed.is_empty() {
                skus.push(trimmed.to_string());
            }
        }
        skus.sort_unstable();
        skus.dedup();
        skus
    }

    /// Reports every row whose SKU is missing from the product master or disabled there.
    /// `products` maps each SKU found to whether its product is active.
    pub fn check_products(&mut self, client_id: &str, products: &HashMap<String, bool>) {
        for (row, sku) in &self.sku_rows {
            match products.get(sku.as_str()) {
                Some(true) => {}
                Some(false) => self.errors.push(row_error(
                    *row,
                    &self.sku_header,
                    sku.as_str(),
                    reason::INACTIVE_SKU,
                    format!("product `{sku}` is disabled in the product master; enable it first"),
                )),
                None => {
                    let trimmed = sku.as_str().trim_end_matches('.');
                    let hint = if trimmed != sku.as_str() && products.contains_key(trimmed) {
                        format!("; it ends in a stray `.`: did you mean `{trimmed}`?")
                    } else {
                        String::new()
                    };
                    self.errors.push(row_error(
                        *row,
                        &self.sku_header,
                        sku.as_str(),
                        reason::UNKNOWN_SKU,
                        format!(
                            "SKU `{sku}` is not in the product master of client `{client_id}`{hint}"
                        ),
                    ));
                }
            }
        }
    }

    /// Reports that the PO starting at `first_row` is stored with other content.
    pub fn reject_existing(&mut self, first_row: i64, po_number: &str) {
        self.errors.push(row_error(
            first_row,
            &self.po_number_header,
            po_number,
            reason::PO_EXISTS,
            format!(
                "PO `{po_number}` exists with other content; an upload never changes a stored \
                 PO: use a new PO number"
            ),
        ));
    }

    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Builds the POs of a clean draft.
pub fn ready_pos<F: PoFormat>(draft: &Draft<F::Rest>) -> Result<Vec<ReadyPo<F::Order>>, Error> {
    debug_assert!(draft.is_clean());
    let mut ready = Vec::with_capacity(draft.pos.len());
    for po in &draft.pos {
        let terms: Vec<String> = po
            .terms
            .iter()
            .map(|term_opt| {
                term_opt
                    .as_ref()
                    .map(|(value, _)| value.clone())
                    .unwrap_or_default()
            })
            .collect();
        let lines = po
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.rest.clone()))
            .collect();
        let order = F::build(po.po_number.clone(), &terms, lines).map_err(|problem| {
            Error::Internal(anyhow::anyhow!(
                "PO `{}` of a clean file: {problem}",
                po.po_number
            ))
        })?;
        ready.push(ReadyPo {
            first_row: po.first_row,
            row_count: po.rows.len() as i64,
            order,
        });
    }
    Ok(ready)
}

// === impl InwardFormat ===

/// Inward PO files: `po_number,supplier,sku,quantity,unit_cost[,expected_date]`.
pub struct InwardFormat;

impl PoFormat for InwardFormat {
    type Rest = (Quantity, UnitCost, ExpectedDate);
    type Order = NewPurchaseOrder;

    const TEMPLATE: &'static [TemplateColumn] = &[
        TemplateColumn {
            name: column::PO_NUMBER,
            required: true,
            description: "PO number, 1-64 of letters, digits, `-`, `_`, `.`, `/`; rows with the \
                          same number make one PO",
        },
        TemplateColumn {
            name: column::SUPPLIER,
            required: true,
            description: "who delivers, the same on every row of a PO",
        },
        TemplateColumn {
            name: column::SKU,
            required: true,
            description: "an active SKU of the product master, once per PO",
        },
        TemplateColumn {
            name: column::QUANTITY,
            required: true,
            description: "units ordered, a positive whole number (`12` or `12.00`)",
        },
        TemplateColumn {
            name: column::UNIT_COST,
            required: true,
            description: "cost of one unit, a decimal with at most two decimals, e.g. 499.50",
        },
        TemplateColumn {
            name: column::EXPECTED_DATE,
            required: false,
            description: "expected delivery date YYYY-MM-DD; blank when not known",
        },
    ];
    const TERM_COLUMNS: &'static [&'static str] = &[column::SUPPLIER];
    const MAX_LINES: usize = MAX_PO_LINES;

    fn read_term(column: &str, text: &str) -> Result<String, (&'static str, String)> {
        debug_assert_eq!(column, column::SUPPLIER);
        if text.is_empty() {
            return Err((reason::REQUIRED, format!("`{column}` is required")));
        }
        PartyName::parse("supplier", text)
            .map(|name| name.as_str().to_string())
            .map_err(|problem| (reason::INVALID_TEXT, problem))
    }

    fn read_rest(cells: &mut RowCells<'_>) -> Option<Self::Rest> {
        let quantity_opt =
            cells.required(column::QUANTITY, reason::NOT_A_QUANTITY, Quantity::parse);
        let cost_opt = cells.required(column::UNIT_COST, reason::NOT_A_DECIMAL, UnitCost::parse);
        let date_opt = cells.optional(
            column::EXPECTED_DATE,
            reason::NOT_A_DATE,
            ExpectedDate::parse,
        );
        Some((quantity_opt?, cost_opt?, date_opt?))
    }

    fn build(
        po_number: PoNumber,
        terms: &[String],
        lines: Vec<(Sku, Self::Rest)>,
    ) -> Result<Self::Order, String> {
        let supplier = PartyName::parse("supplier", terms.first().map_or("", String::as_str))?;
        let lines = lines
            .into_iter()
            .map(|(sku, (quantity, unit_cost, expected_date))| NewPoLine {
                sku,
                quantity,
                unit_cost,
                expected_date,
            })
            .collect();
        Ok(NewPurchaseOrder::new(po_number, supplier, lines))
    }
}

// === impl OutwardFormat ===

/// Outward PO files: `po_number,customer,sku,quantity[,fulfilment_type][,qc_grade]`.
pub struct OutwardFormat;

impl PoFormat for OutwardFormat {
    type Rest = Quantity;
    type Order = NewOutwardOrder;

    const TEMPLATE: &'static [TemplateColumn] = &[
        TemplateColumn {
            name: column::PO_NUMBER,
            required: true,
            description: "PO number, 1-64 of letters, digits, `-`, `_`, `.`, `/`; rows with the \
                          same number make one PO and one bulk order",
        },
        TemplateColumn {
            name: column::CUSTOMER,
            required: true,
            description: "the B2B customer, the same on every row of a PO",
        },
        TemplateColumn {
            name: column::SKU,
            required: true,
            description: "an active SKU of the product master, once per PO",
        },
        TemplateColumn {
            name: column::QUANTITY,
            required: true,
            description: "units ordered, a positive whole number (`12` or `12.00`)",
        },
        TemplateColumn {
            name: column::FULFILMENT_TYPE,
            required: false,
            description: "PARTIAL (allocate what is there; the default when blank) or \
                          BLOCK_COMPLETE (allocate only when every line can be), the same on \
                          every row of a PO",
        },
        TemplateColumn {
            name: column::QC_GRADE,
            required: false,
            description: "PASS (the default when blank) or FAIL: the stock the order is served \
                          from, the same on every row of a PO",
        },
    ];
    const TERM_COLUMNS: &'static [&'static str] =
        &[column::CUSTOMER, column::FULFILMENT_TYPE, column::QC_GRADE];
    const MAX_LINES: usize = MAX_OUTWARD_LINES;

    fn read_term(column: &str, text: &str) -> Result<String, (&'static str, String)> {
        match column {
            column::CUSTOMER if text.is_empty() => {
                Err((reason::REQUIRED, format!("`{column}` is required")))
            }
            column::CUSTOMER => PartyName::parse("customer", text)
                .map(|name| name.as_str().to_string())
                .map_err(|problem| (reason::INVALID_TEXT, problem)),
            column::FULFILMENT_TYPE if text.is_empty() => {
                Ok(FulfilmentType::Partial.as_str().to_string())
            }
            column::FULFILMENT_TYPE => FulfilmentType::parse(text)
                .map(|kind| kind.as_str().to_string())
                .map_err(|problem| (reason::INVALID_FULFILMENT_TYPE, problem)),
            column::QC_GRADE if text.is_empty() => Ok(QcGrade::Pass.as_str().to_string()),
            _ => QcGrade::parse(text)
                .map(|grade| grade.as_str().to_string())
                .map_err(|problem| (reason::INVALID_QC_GRADE, problem)),
        }
    }

    fn read_rest(cells: &mut RowCells<'_>) -> Option<Self::Rest> {
        cells.required(column::QUANTITY, reason::NOT_A_QUANTITY, Quantity::parse)
    }

    fn build(
        po_number: PoNumber,
        terms: &[String],
        lines: Vec<(Sku, Self::Rest)>,
    ) -> Result<Self::Order, String> {
        let [customer, fulfilment_type, qc_grade] = terms else {
            return Err(format!("expected 3 PO-level values, got {}", terms.len()));
        };
        let terms = OutwardTerms {
            customer: PartyName::parse("customer", customer)?,
            fulfilment_type: FulfilmentType::parse(fulfilment_type)?,
            qc_grade: QcGrade::parse(qc_grade)?,
        };
        let lines = lines
            .into_iter()
            .map(|(sku, quantity)| NewOutwardLine { sku, quantity })
            .collect();
        Ok(NewOutwardOrder::new(po_number, terms, lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(draft: &Draft<impl Sized>) -> Vec<(i64, String, String)> {
        let mut found: Vec<(i64, String, String)> = draft
            .errors
            .iter()
            .map(|e| (e.row, e.column.clone(), e.reason.clone()))
            .collect();
        found.sort();
        found
    }

    fn row(row: i64, column: &str, reason: &str) -> (i64, String, String) {
        (row, column.to_string(), reason.to_string())
    }

    #[test]
    fn a_clean_inward_file_groups_rows_into_pos_with_sorted_lines() {
        let file = b"po_number,supplier,sku,quantity,unit_cost,expected_date\n\
                     PO-1,Weaver,B-2,2.00,10,2024-05-01\n\
                     PO-1,Weaver,A-1,3,0,\n\
                     PO-2,Dyer,A-1,1,99.5,\n";

        let draft = read_file::<InwardFormat>(file).unwrap();
        let ready = ready_pos::<InwardFormat>(&draft).unwrap();

        assert!(draft.is_clean(), "{:?}", draft.errors);
        assert_eq!(draft.rows, 3);
        assert_eq!(ready.len(), 2);
        let first = &ready[0].order;
        assert_eq!(first.po_number.as_str(), "PO-1");
        assert_eq!(ready[0].row_count, 2);
        let skus: Vec<&str> = first.lines.iter().map(|line| line.sku.as_str()).collect();
        assert_eq!(skus, ["A-1", "B-2"]);
        assert_eq!(first.lines[1].expected_date.to_text(), "2024-05-01");
        assert_eq!(draft.skus_to_look_up(), ["A-1", "B-2"]);
    }

    #[test]
    fn every_bad_cell_is_reported_with_its_row_and_column() {
        let file = b"PO_Number,Supplier,SKU,Quantity,Unit_Cost,Expected_Date\n\
                     PO-1,Weaver,A-1,\"1,000\",10,\n\
                     PO-1,Weaver,B-2,12.5,abc,2024-02-30\n\
                     ,Weaver,#REF!,-3,-1,\n\
                     PO-1,Other,C-3,0,1,\n";

        let draft = read_file::<InwardFormat>(file).unwrap();

        assert_eq!(
            reasons(&draft),
            [
                row(2, "Quantity", reason::NOT_A_QUANTITY),
                row(3, "Expected_Date", reason::NOT_A_DATE),
                row(3, "Quantity", reason::NOT_A_QUANTITY),
                row(3, "Unit_Cost", reason::NOT_A_DECIMAL),
                row(4, "PO_Number", reason::REQUIRED),
                row(4, "Quantity", reason::NOT_A_QUANTITY),
                row(4, "SKU", reason::INVALID_SKU),
                row(4, "Unit_Cost", reason::NOT_A_DECIMAL),
                row(5, "Quantity", reason::NOT_A_QUANTITY),
                row(5, "Supplier", reason::CONFLICTING_VALUE),
            ]
        );
    }

    #[test]
    fn every_row_of_a_repeated_sku_is_reported() {
        let file = b"po_number,customer,sku,quantity\n\
                     B-1,CUST-1,A-1,1.00\n\
                     B-1,CUST-1,A-2,1.00\n\
                     B-1,CUST-1,A-1,2.00\n\
                     B-2,CUST-1,A-1,1.00\n\
                     B-1,CUST-1,A-1,1.00\n";

        let draft = read_file::<OutwardFormat>(file).unwrap();

        assert_eq!(
            reasons(&draft),
            [
                row(2, "sku", reason::DUPLICATE_SKU),
                row(4, "sku", reason::DUPLICATE_SKU),
                row(6, "sku", reason::DUPLICATE_SKU),
            ]
        );
        assert!(
            draft.errors[0].message.contains("rows 2, 4, 6"),
            "{}",
            draft.errors[0].message
        );
    }

    #[test]
    fn header_problems_stop_before_the_rows_and_a_header_alone_is_no_upload() {
        let unknown =
            read_file::<InwardFormat>(b"po_number,supplier,sku,qty,unit_cost\nP,S,A,1,1\n")
                .unwrap();
        assert_eq!(
            reasons(&unknown),
            [
                row(1, "qty", "UNKNOWN_COLUMN"),
                row(1, "quantity", "MISSING_COLUMN")
            ]
        );

        let header_only =
            read_file::<InwardFormat>(b"po_number,supplier,sku,quantity,unit_cost\r\n").unwrap();
        assert_eq!(reasons(&header_only), [row(0, "", reason::NO_ROWS)]);
    }

    #[test]
    fn blank_rows_are_skipped_and_extra_cells_reported() {
        let file = b"po_number,customer,sku,quantity\nB-1,C,A-1,1\n,,,\nB-1,C,A-2,1,surprise\n";

        let draft = read_file::<OutwardFormat>(file).unwrap();

        assert_eq!(reasons(&draft), [row(4, "", reason::TOO_MANY_CELLS)]);
    }

    #[test]
    fn unknown_and_disabled_skus_are_reported_with_a_hint_for_a_stray_dot() {
        let file =
            b"po_number,customer,sku,quantity\nB-1,C,SET-S.,1\nB-1,C,SHIPPING,1\nB-1,C,OLD,1\n";
        let mut draft = read_file::<OutwardFormat>(file).unwrap();
        assert_eq!(
            draft.skus_to_look_up(),
            ["OLD", "SET-S", "SET-S.", "SHIPPING"]
        );
        let products = HashMap::from([("SET-S".to_string(), true), ("OLD".to_string(), false)]);

        draft.check_products("acme", &products);

        assert_eq!(
            reasons(&draft),
            [
                row(2, "sku", reason::UNKNOWN_SKU),
                row(3, "sku", reason::UNKNOWN_SKU),
                row(4, "sku", reason::INACTIVE_SKU),
            ]
        );
        assert!(draft.errors[0].message.contains("did you mean `SET-S`?"));
    }

    #[test]
    fn outward_terms_default_and_must_agree_per_po() {
        let file = b"po_number,customer,sku,quantity,fulfilment_type,qc_grade\n\
                     B-1,C,A-1,1,,\n\
                     B-1,C,A-2,1,BLOCK_COMPLETE,pass\n\
                     B-2,C,A-1,1,block complete,FAIL\n";

        let draft = read_file::<OutwardFormat>(file).unwrap();
        assert_eq!(
            reasons(&draft),
            [row(3, "fulfilment_type", reason::CONFLICTING_VALUE)]
        );

        let clean = b"po_number,customer,sku,quantity,fulfilment_type,qc_grade\n\
                      B-2,C,A-1,1,block complete,FAIL\n";
        let draft = read_file::<OutwardFormat>(clean).unwrap();
        let ready = ready_pos::<OutwardFormat>(&draft).unwrap();
        assert_eq!(
            ready[0].order.terms.fulfilment_type,
            FulfilmentType::BlockComplete
        );
        assert_eq!(ready[0].order.terms.qc_grade, QcGrade::Fail);
    }
}
