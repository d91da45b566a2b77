//! What a replay found: the summary printed at the end (the same run to run), the timings
//! printed apart from it, the checks that failed, and facts the end-to-end tests look up.

use std::fmt::Write as _;

use super::input::ChannelStatus;
use super::progress::StageTiming;

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// The summary: identical for identical input, whatever the machine and the store.
    pub summary: String,
    /// Time per stage; differs run to run, so it is kept out of the summary.
    pub timings: Vec<StageTiming>,
    /// Checks the replay made that did not hold, in words. Empty on a good run.
    pub findings: Vec<String>,
    /// Ids and figures the tests look up in the suite afterwards.
    pub facts: Facts,
}

impl ReplayReport {
    /// The timings as a table, with the peak memory when known.
    pub fn render_timings(&self, peak_memory_kib_opt: Option<u64>) -> String {
        let mut table = Table::new(&["stage", "items", "seconds", "items/s"]);
        let mut total = std::time::Duration::ZERO;
        for timing in &self.timings {
            total += timing.elapsed;
            table.row(vec![
                format!("{}. {}", timing.number, timing.name),
                format!("{} {}", thousands(timing.items as i64), timing.unit),
                format!("{:.1}", timing.elapsed.as_secs_f64()),
                format!("{:.1}", timing.rate()),
            ]);
        }
        table.row(vec![
            "total".into(),
            String::new(),
            format!("{:.1}", total.as_secs_f64()),
            String::new(),
        ]);
        let mut text = table.render();
        if let Some(kib) = peak_memory_kib_opt {
            writeln!(
                text,
                "peak memory of this process (VmHWM): {:.1} MiB",
                kib as f64 / 1024.0
            )
            .expect("writing to a string");
        }
        text
    }
}

/// Facts of a replay, for checks made afterwards against the suite.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The client of `products.csv`.
    pub seller: String,
    /// The client of `channel-mrp.csv`.
    pub second_client: String,
    /// The category whose listings were added late.
    pub late_category: String,
    /// Every marketplace order of the file, in file order.
    pub marketplace_orders: Vec<PlacedOrder>,
    /// Orders the channel cancelled, with what they held when it did.
    pub cancellations: Vec<CancellationCheck>,
    /// Seller-fulfilled orders that came back, with their re-GRN.
    pub returns: Vec<ReturnCheck>,
    /// Bulk orders, in PO order.
    pub bulk_orders: Vec<BulkOrderFact>,
    /// The bulk order completed after it was partly shipped.
    pub completed_bulk_order_opt: Option<String>,
    /// The order made UNFULFILLABLE on purpose, then unblocked by a pool move.
    pub unblocked_order_opt: Option<String>,
    /// Whether inventory's audit found nothing.
    pub audit_clean: bool,
    /// Whether every pool's books balance to the unit.
    pub reconciliation_balanced: bool,
}

/// A marketplace order as the replay sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    /// The channel's order id.
    pub channel_order_id: String,
    /// The suite's order id.
    pub order_id: String,
    /// What the channel says happened to it.
    pub channel_status: ChannelStatus,
    /// Fulfilled by the marketplace.
    pub marketplace_fulfilled: bool,
    /// Marketplace SKU and units per line.
    pub lines: Vec<(String, i64)>,
    /// Status right after it was taken in, e.g. `FULFILLABLE`.
    pub arrival_status: String,
}

impl PlacedOrder {
    /// Whether the order service stored the order (in any status, FAILED included).
    pub fn was_taken_in(&self) -> bool {
        !self.order_id.is_empty()
    }
}

/// A channel cancellation: what the order held and what went back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationCheck {
    /// The suite's order id.
    pub order_id: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Units allocated when the cancellation arrived.
    pub held_before: i64,
    /// Units released by the cancellation (from the ledger).
    pub released: i64,
    /// Status afterwards.
    pub status_after: String,
}

/// Units of a returned order brought back by a GRN without a PO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnCheck {
    /// The channel's order id.
    pub channel_order_id: String,
    /// The GRN number.
    pub grn_number: String,
    /// SKU and units received back.
    pub lines: Vec<(String, i64)>,
    /// Per line, COMMON's units (AVAILABLE and ALLOCATED) before and after the GRN.
    pub common_before_after: Vec<(i64, i64)>,
}

/// A bulk order made from an outward PO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOrderFact {
    /// The PO number.
    pub po_number: String,
    /// The suite's order id.
    pub order_id: String,
    /// `PARTIAL` or `BLOCK_COMPLETE`.
    pub fulfilment: String,
    /// Units ordered.
    pub ordered: i64,
    /// Units allocated after the first operator retry.
    pub allocated_first: i64,
    /// Units allocated after the second GRN, before the second retry.
    pub allocated_after_grn: i64,
    /// Units allocated after the second operator retry.
    pub allocated_second: i64,
    /// Status at the end.
    pub status: String,
}

// === Summary ===

/// The summary under construction: titled sections of lines.
#[derive(Debug, Default)]
pub struct Summary {
    text: String,
}

impl Summary {
    /// Starts a section.
    pub fn section(&mut self, title: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        writeln!(self.text, "{title}").expect("writing to a string");
        writeln!(self.text, "{}", "-".repeat(title.chars().count())).expect("writing to a string");
    }

    /// Adds a line to the current section.
    pub fn line(&mut self, line: impl AsRef<str>) {
        writeln!(self.text, "  {}", line.as_ref()).expect("writing to a string");
    }

    /// Adds a table to the current section, indented.
    pub fn table(&mut self, table: &Table) {
        for line in table.render().lines() {
            self.line(line);
        }
    }

    /// The text so far.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// A plain text table: columns padded to their widest cell, numbers right-aligned.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|name| name.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; short rows are padded with blanks.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len().max(cells.len()), String::new());
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines of text.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(|cell| cell.chars().count())
            .collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..columns)
            .map(|index| !self.rows.is_empty() && self.rows.iter().all(|row| is_count(&row[index])))
            .collect();
        let render_row = |cells: &[String]| -> String {
            let padded: Vec<String> = cells
                .iter()
                .take(columns)
                .enumerate()
                .map(|(index, cell)| {
                    if numeric[index] {
                        format!("{cell:>width$}", width = widths[index])
                    } else {
                        format!("{cell:<width$}", width = widths[index])
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut text = render_row(&self.header);
        text.push('\n');
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        text.push_str(&rule.join("  "));
        text.push('\n');
        for row in &self.rows {
            text.push_str(&render_row(row));
            text.push('\n');
        }
        text
    }
}

/// Whether a cell is blank or a count as [`thousands`] writes it.
fn is_count(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    cell.is_empty()
        || (digits.starts_with(|c: char| c.is_ascii_digit())
            && digits.chars().all(|c| c.is_ascii_digit() || c == ',')
            && digits.split(',').skip(1).all(|group| group.len() == 3))
}

/// A count with thousands separators: `242,037`.
pub fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(242_037), "242,037");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }

    #[test]
    fn tables_pad_text_left_and_numbers_right() {
        let mut table = Table::new(&["pool", "units"]);
        table.row(vec!["COMMON".into(), "1,200".into()]);
        table.row(vec!["MYNTRA-RESERVE".into(), "35".into()]);

        let text = table.render();

        assert_eq!(
            text,
            "pool            units\n\
             --------------  -----\n\
             COMMON          1,200\n\
             MYNTRA-RESERVE     35\n"
        );
    }
}
