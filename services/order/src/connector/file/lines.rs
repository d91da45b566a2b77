//! The connector's CSV files, read one line at a time.
//!
//! The files are logs that grow while they are read, written by tools an operator does
//! not control. Read as one CSV stream, a quote left open on one row swallows every row
//! after it, for good, and a line still being written is read half. So each complete line
//! is one row, parsed on its own: a row with a quote it does not close is refused alone,
//! and a cell may not hold a line break, which no order or status needs.

/// Why a cell is refused that is not UTF-8 text.
const NOT_UTF8: &str = "not UTF-8 text";

/// The column names of a file, trimmed and in lower case.
pub(super) struct Header(Vec<String>);

impl Header {
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|header| header == name)
    }
}

/// One row's cells by column name. Cells are read as bytes so that one that is not UTF-8
/// is pinned on its row and column, and the row still belongs to its order.
pub(super) struct Cells<'a> {
    header: &'a Header,
    cells: Vec<String>,
    invalid_opt: Option<usize>,
}

impl Cells<'_> {
    /// The cell under `name`, trimmed; empty when the row is short or has no such column.
    pub(super) fn get(&self, name: &str) -> String {
        self.header
            .position(name)
            .and_then(|i| self.cells.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// Why the row holds more than its header names, if it does: cells beyond the last
    /// column that are not empty (an unquoted comma, or a line run into the next).
    pub(super) fn overflow(&self) -> Option<String> {
        let width = self.header.0.len();
        let beyond = self
            .cells
            .iter()
            .skip(width)
            .filter(|cell| !cell.is_empty());
        (beyond.count() > 0).then(|| {
            format!(
                "the row has {} cells, more than the {width} columns of the header (a comma \
                 that is not quoted, or a line that ran into the next?)",
                self.cells.len()
            )
        })
    }

    /// The first column holding bytes that are not UTF-8 text, with why.
    pub(super) fn invalid(&self) -> Option<(String, String)> {
        self.invalid_opt.map(|index| {
            let column = self
                .header
                .0
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("{}", index + 1));
            (column, NOT_UTF8.to_string())
        })
    }
}

/// A data row: its spreadsheet number (the header is row 1) and what it holds.
pub(super) struct Row<'a> {
    pub(super) number: usize,
    pub(super) content: Content<'a>,
}

/// What a data row holds.
pub(super) enum Content<'a> {
    /// Nothing: a blank line.
    Blank,
    /// Cells.
    Cells(Cells<'a>),
    /// A line that cannot be read as a row: why, and the order id it starts with when
    /// that much can be read.
    Broken { why: String, id_opt: Option<String> },
}

/// The complete lines of a file, split off its header.
pub(super) struct Lines<'a> {
    pub(super) header: Header,
    rows: Vec<&'a [u8]>,
}

impl<'a> Lines<'a> {
    /// The file's complete lines: `None` while not even the header line is complete (a
    /// file just created). A header that repeats a column is refused, since a row's cell
    /// under it could not be told apart.
    pub(super) fn of(bytes: &'a [u8]) -> Result<Option<Self>, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        // Lines end in LF or CRLF; a file with no LF at all may end them in CR alone.
        let breaker = if bytes.contains(&b'\n') { b'\n' } else { b'\r' };
        let Some(end) = bytes.iter().rposition(|byte| *byte == breaker) else {
            return Ok(None);
        };
        let mut lines = bytes[..end]
            .split(move |byte| *byte == breaker)
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let header_line = lines.next().unwrap_or_default();
        let names: Vec<String> = match parse_line(header_line) {
            Ok(Some(record)) => record
                .iter()
                .map(|name| String::from_utf8_lossy(name).trim().to_lowercase())
                .collect(),
            Ok(None) => Vec::new(),
            Err(why) => return Err(format!("the header row cannot be read: {why}")),
        };
        for (index, name) in names.iter().enumerate() {
            if !name.is_empty() && names[..index].contains(name) {
                return Err(format!("the header names column `{name}` twice"));
            }
        }
        Ok(Some(Self {
            header: Header(names),
            rows: lines.collect(),
        }))
    }

    /// The bytes of data row `index` (from 0), as written.
    pub(super) fn raw(&self, index: usize) -> Option<&[u8]> {
        self.rows.get(index).copied()
    }

    /// The data rows after the first `skip`.
    pub(super) fn rows_after(&self, skip: usize) -> impl Iterator<Item = Row<'_>> {
        self.rows
            .iter()
            .enumerate()
            .skip(skip)
            .map(move |(index, line)| Row {
                number: index + 2,
                content: match parse_line(line) {
                    Ok(None) => Content::Blank,
                    Ok(Some(record)) => Content::Cells(cells_of(&self.header, &record)),
                    Err(why) => Content::Broken {
                        why,
                        id_opt: self.leading_id(line),
                    },
                },
            })
    }

    /// The order id of a line that cannot be read as a whole, when the id is its first
    /// column and comes before anything quoted.
    fn leading_id(&self, line: &[u8]) -> Option<String> {
        if self.header.position("channel_order_id") != Some(0) {
            return None;
        }
        let first = line.split(|byte| *byte == b',').next()?;
        let id = std::str::from_utf8(first).ok()?.trim();
        (!id.is_empty() && !id.contains('"')).then(|| id.to_string())
    }
}

fn cells_of<'h>(header: &'h Header, record: &csv::ByteRecord) -> Cells<'h> {
    let invalid_opt = record
        .iter()
        .position(|cell| std::str::from_utf8(cell).is_err());
    let cells = record
        .iter()
        .map(|cell| String::from_utf8_lossy(cell).trim().to_string())
        .collect();
    Cells {
        header,
        cells,
        invalid_opt,
    }
}

/// One line as a CSV record; `None` for a blank line.
fn parse_line(line: &[u8]) -> Result<Option<csv::ByteRecord>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if kosha_runtime::upload::unclosed_quote_line(line).is_some() {
        return Err("a quoted cell is not closed on this row".to_string());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line);
    match reader.byte_records().next() {
        Some(Ok(record)) => Ok(Some(record)),
        Some(Err(error)) => Err(error.to_string()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(lines: &Lines) -> Vec<String> {
        lines
            .rows_after(0)
            .map(|row| match row.content {
                Content::Blank => format!("{} blank", row.number),
                Content::Cells(cells) => format!("{} {}", row.number, cells.get("id")),
                Content::Broken { why, .. } => format!("{} broken: {why}", row.number),
            })
            .collect()
    }

    #[test]
    fn each_complete_line_is_one_row_and_an_open_quote_breaks_only_its_own() {
        let text = b"\xEF\xBB\xBFID,Name\r\nA,\"x, y\"\n\nB,\"open\nC,z\nD,half";

        let lines = Lines::of(text).unwrap().unwrap();

        assert_eq!(
            kinds(&lines),
            [
                "2 A",
                "3 blank",
                "4 broken: a quoted cell is not closed on this row",
                "5 C"
            ]
        );
        assert_eq!(lines.raw(3), Some(&b"C,z"[..]));
        assert_eq!(lines.raw(4), None, "the half-written last line waits");
    }

    #[test]
    fn lines_may_end_in_a_carriage_return_alone() {
        let lines = Lines::of(b"id,name\rA,x\rB,y\r").unwrap().unwrap();

        assert_eq!(kinds(&lines), ["2 A", "3 B"]);
    }

    #[test]
    fn a_file_without_a_whole_header_line_holds_nothing_yet() {
        assert!(Lines::of(b"").unwrap().is_none());
        assert!(Lines::of(b"channel_order_id,order_ti").unwrap().is_none());
        assert!(Lines::of(b"id,quantity,QUANTITY\n").is_err());
    }
}
