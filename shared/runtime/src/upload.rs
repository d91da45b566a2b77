//! CSV uploads: how every bulk file (products, listings, purchase orders) is received and
//! read.
//!
//! A file arrives as a client stream of chunks cut anywhere; the chunks are joined up to
//! a configured size (larger is `RESOURCE_EXHAUSTED`). The text must be UTF-8 (a leading
//! BOM is dropped), lines may end in CRLF, and quoting follows RFC 4180. Cells are trimmed.
//! Row numbers are those a spreadsheet shows: the header is row 1.

use std::collections::HashMap;

use futures::{Stream, StreamExt as _};
use kosha_proto::types::{RowError, UploadReport};

use crate::error::{Error, FieldViolation};

/// Default largest upload, in bytes. A 100,000-row product file is about 8 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Longest cell value echoed back in a report.
const MAX_ECHOED_VALUE: usize = 64;

/// Joins a stream of upload messages into the request header (from the first message) and
/// the file's bytes. `split` takes one message apart into its header fields and its chunk.
/// A later message whose header fields are set must repeat the first one's.
pub async fn collect<M, H, S>(
    mut messages: S,
    max_bytes: usize,
    split: impl Fn(M) -> (H, Vec<u8>),
) -> Result<(H, Vec<u8>), Error>
where
    S: Stream<Item = Result<M, tonic::Status>> + Unpin,
    H: PartialEq + Default,
{
    let mut header_opt: Option<H> = None;
    let mut bytes = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|status| match status.code() {
            // The transport refused a message over the server's size limit.
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => {
                Error::ResourceExhausted(format!(
                    "a message of the upload stream is larger than the server takes \
                     (KOSHA_MAX_MESSAGE_BYTES): {}; send the file in smaller chunks",
                    status.message()
                ))
            }
            _ => Error::InvalidArgument {
                message: format!("upload stream broke off: {}", status.message()),
                violations: Vec::new(),
            },
        })?;
        let (header, chunk) = split(message);
        match &header_opt {
            None => header_opt = Some(header),
            Some(first) if header == H::default() || header == *first => {}
            Some(first) if *first == H::default() => {
                return Err(Error::invalid(
                    "header",
                    "the first message of the stream names the client, mode and dry run; \
                     it named none, and a later one did",
                ));
            }
            Some(_) => {
                return Err(Error::invalid(
                    "header",
                    "a later chunk names another client, mode or dry run than the first",
                ));
            }
        }
        if bytes.len() + chunk.len() > max_bytes {
            return Err(Error::ResourceExhausted(format!(
                "upload is larger than the limit of {max_bytes} bytes; split the file"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let header =
        header_opt.ok_or_else(|| Error::invalid("chunk", "the upload stream was empty"))?;
    Ok((header, bytes))
}

/// An uploaded file, checked to be text, with its header read.
#[derive(Debug)]
pub struct CsvFile<'a> {
    text: &'a str,
    /// Column names as written (trimmed), in order, without the nameless columns at the end.
    pub header: Vec<String>,
    /// Nameless columns after the last named one: the trailing commas a spreadsheet writes
    /// for cells that once held something.
    nameless_tail: usize,
}

impl<'a> CsvFile<'a> {
    /// Checks that `bytes` is a CSV text file with a header line.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid(
                "file",
                "the file is empty: expected a CSV header line",
            ));
        }
        if let Some(position) = bytes.iter().position(|b| *b == 0) {
            return Err(Error::invalid(
                "file",
                format!("not a CSV text file: a NUL byte at offset {position} (binary data)"),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            let line = bytes[..error.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Error::invalid(
                "file",
                format!("not UTF-8 text: invalid bytes on line {line}"),
            )
        })?;

        if let Some(line) = unclosed_quote_line(bytes) {
            return Err(Error::invalid(
                "file",
                format!(
                    "a quoted cell opened on line {line} is never closed, so every line after \
                     it would be read as part of that cell; close the quote or remove it"
                ),
            ));
        }
        let mut reader = reader(text);
        let mut header: Vec<String> = reader
            .headers()
            .map_err(|error| Error::invalid("file", format!("unreadable header: {error}")))?
            .iter()
            .map(|name| name.trim().to_string())
            .collect();
        let named = header
            .iter()
            .rposition(|name| !name.is_empty())
            .map_or(0, |last| last + 1);
        let nameless_tail = header.len() - named;
        header.truncate(named);
        Ok(Self {
            text,
            header,
            nameless_tail,
        })
    }

    /// The data rows with their spreadsheet row numbers. A row that cannot be read (an
    /// unterminated quote) comes back as an error for that row.
    ///
    /// A spreadsheet shows a blank line as an empty row and a quoted cell with line breaks
    /// as one row, so the row number advances by the lines between two records' starts,
    /// less the line breaks inside the earlier record's cells.
    pub fn rows(&self) -> impl Iterator<Item = Result<CsvRow, RowError>> + 'a {
        let text = self.text;
        let (width, nameless_tail) = (self.header.len(), self.nameless_tail);
        let mut reader = reader(text);
        let header_breaks = reader.headers().map(breaks_inside).unwrap_or(0);
        let mut lines = LineCounter::default();
        let mut previous_line = 1_u64;
        let mut previous_row = 1_i64;
        let mut previous_breaks = header_breaks;
        reader.into_records().map(move |record| {
            let byte_opt = match &record {
                Ok(record) => record.position().map(csv::Position::byte),
                Err(error) => error.position().map(csv::Position::byte),
            };
            let line = match byte_opt {
                Some(byte) => lines.line_of_record_at(text, byte as usize),
                None => previous_line + 1 + previous_breaks,
            };
            let row = previous_row + line.saturating_sub(previous_line + previous_breaks) as i64;
            previous_line = line;
            previous_row = row;
            match record {
                Ok(record) => {
                    previous_breaks = breaks_inside(&record);
                    let mut cells: Vec<String> = record.iter().map(str::to_string).collect();
                    // Cells under the nameless columns must be empty; then they are dropped,
                    // and a row with more cells still is left for the caller to refuse.
                    let mut under_no_name =
                        cells.iter().enumerate().skip(width).take(nameless_tail);
                    if let Some((index, value)) = under_no_name.find(|(_, cell)| !cell.is_empty()) {
                        return Err(row_error(
                            row,
                            "",
                            value,
                            "VALUE_WITHOUT_COLUMN",
                            format!(
                                "cell {} holds a value under a column with no name in the \
                                 header",
                                index + 1
                            ),
                        ));
                    }
                    if cells.len() <= width + nameless_tail {
                        cells.truncate(width);
                    }
                    Ok(CsvRow { row, cells })
                }
                Err(error) => {
                    previous_breaks = 0;
                    Err(row_error(row, "", "", "UNREADABLE_ROW", error.to_string()))
                }
            }
        })
    }
}

/// The line (from 1) of a quoted cell that the text never closes. The CSV reader takes
/// such a cell to run to the end of the text, swallowing the rows after it, and reports
/// nothing.
pub fn unclosed_quote_line(bytes: &[u8]) -> Option<usize> {
    let mut at_cell_start = true;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' if at_cell_start => {
                let opened = index;
                index += 1;
                loop {
                    match bytes.get(index) {
                        None => {
                            let line = bytes[..opened].iter().filter(|b| **b == b'\n').count();
                            return Some(line + 1);
                        }
                        Some(b'"') if bytes.get(index + 1) == Some(&b'"') => index += 2,
                        Some(b'"') => break,
                        Some(_) => index += 1,
                    }
                }
                at_cell_start = false;
            }
            b',' | b'\n' | b'\r' => at_cell_start = true,
            _ => at_cell_start = false,
        }
        index += 1;
    }
    None
}

/// Finds the line a record starts on, counting forward only (each byte is read once).
#[derive(Debug, Default)]
struct LineCounter {
    scanned_to: usize,
    breaks_before: u64,
}

impl LineCounter {
    /// The parser reports a record at the end of the previous one, before the line breaks
    /// (and blank lines) it skipped; the record itself starts after them.
    fn line_of_record_at(&mut self, text: &str, byte: usize) -> u64 {
        let bytes = text.as_bytes();
        let mut start = byte.min(bytes.len());
        while start < bytes.len() && (bytes[start] == b'\n' || bytes[start] == b'\r') {
            start += 1;
        }
        if start > self.scanned_to {
            let newly_scanned = &bytes[self.scanned_to..start];
            self.breaks_before += newly_scanned.iter().filter(|b| **b == b'\n').count() as u64;
            self.scanned_to = start;
        }
        self.breaks_before + 1
    }
}

/// Line breaks inside a record's cells (quoted values spanning lines).
fn breaks_inside(record: &csv::StringRecord) -> u64 {
    record
        .iter()
        .map(|cell| cell.matches('\n').count() as u64)
        .sum()
}

fn reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
}

/// One data row.
#[derive(Debug, Clone)]
pub struct CsvRow {
    /// Spreadsheet row number (header is 1).
    pub row: i64,
    /// Cells in header order; a short row has fewer.
    pub cells: Vec<String>,
}

impl CsvRow {
    /// The cell at `index`, or "" when the row is short.
    pub fn cell(&self, index_opt: Option<usize>) -> &str {
        index_opt
            .and_then(|index| self.cells.get(index))
            .map_or("", String::as_str)
    }
}

/// Where each known column sits in a file's header.
#[derive(Debug, Default)]
pub struct Columns {
    positions: HashMap<String, usize>,
}

impl Columns {
    /// Matches the header against the known columns (case-insensitive). Unknown,
    /// repeated and missing required columns are reported as row-1 errors. `is_known`
    /// accepts names beyond the fixed list (e.g. one MRP column per channel).
    pub fn resolve(
        header: &[String],
        required: &[&str],
        optional: &[&str],
        is_known: impl Fn(&str) -> bool,
        errors: &mut Vec<RowError>,
    ) -> Self {
        let mut positions = HashMap::new();
        for (index, name) in header.iter().enumerate() {
            let key = name.to_ascii_lowercase();
            let known = required.contains(&key.as_str())
                || optional.contains(&key.as_str())
                || is_known(&key);
            if !known {
                let mut expected: Vec<&str> = required.iter().chain(optional).copied().collect();
                expected.sort_unstable();
                errors.push(row_error(
                    1,
                    name,
                    name,
                    "UNKNOWN_COLUMN",
                    format!(
                        "unknown column `{name}`; known columns: {}",
                        expected.join(", ")
                    ),
                ));
                continue;
            }
            if positions.insert(key, index).is_some() {
                errors.push(row_error(
                    1,
                    name,
                    name,
                    "DUPLICATE_COLUMN",
                    format!("column `{name}` appears twice"),
                ));
            }
        }
        for name in required {
            if !positions.contains_key(*name) {
                errors.push(row_error(
                    1,
                    name,
                    "",
                    "MISSING_COLUMN",
                    format!("required column `{name}` is missing"),
                ));
            }
        }
        Self { positions }
    }

    /// Index of a column, if the file has it.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// Every column present, lowercased, with its index.
    pub fn present(&self) -> impl Iterator<Item = (&str, usize)> {
        self.positions
            .iter()
            .map(|(name, index)| (name.as_str(), *index))
    }
}

/// A problem in one cell.
pub fn row_error(
    row: i64,
    column: &str,
    value: &str,
    reason: &str,
    message: impl Into<String>,
) -> RowError {
    let mut value = value.to_string();
    if value.len() > MAX_ECHOED_VALUE {
        let mut cut = MAX_ECHOED_VALUE;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    RowError {
        row,
        column: column.to_string(),
        value,
        reason: reason.to_string(),
        message: message.into(),
    }
}

/// The reply to an upload with problems: the full report for a dry run, otherwise
/// `INVALID_ARGUMENT` naming each row and column.
pub fn reject_or_report(mut report: UploadReport) -> Result<UploadReport, Error> {
    report
        .errors
        .sort_by(|a, b| (a.row, &a.column).cmp(&(b.row, &b.column)));
    if report.dry_run {
        return Ok(report);
    }
    let rows_with_errors = {
        let mut rows: Vec<i64> = report.errors.iter().map(|e| e.row).collect();
        rows.dedup();
        rows.len()
    };
    let violations = report
        .errors
        .iter()
        .map(|error| {
            let field = if error.column.is_empty() {
                format!("rows[{}]", error.row)
            } else {
                format!("rows[{}].{}", error.row, error.column)
            };
            FieldViolation::new(field, format!("{}: {}", error.reason, error.message))
        })
        .collect();
    Err(Error::invalid_many(
        format!(
            "upload rejected, nothing stored: {} problem(s) in {rows_with_errors} row(s)",
            report.errors.len()
        ),
        violations,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(
        messages: Vec<Result<(String, &'static [u8]), tonic::Status>>,
    ) -> impl Stream<Item = Result<(String, Vec<u8>), tonic::Status>> + Unpin {
        futures::stream::iter(
            messages
                .into_iter()
                .map(|message| message.map(|(header, chunk)| (header, chunk.to_vec()))),
        )
    }

    #[tokio::test]
    async fn a_stream_says_which_message_broke_the_rules() {
        let unnamed_first = collect(
            stream_of(vec![
                Ok((String::new(), b"sku\n")),
                Ok(("acme".into(), b"A\n")),
            ]),
            1000,
            |message| message,
        )
        .await
        .unwrap_err();
        let too_large = collect(
            stream_of(vec![
                Ok(("acme".into(), b"sku\n")),
                Err(tonic::Status::out_of_range(
                    "decoded message length too large",
                )),
            ]),
            1000,
            |message| message,
        )
        .await
        .unwrap_err();
        let (header, bytes) = collect(
            stream_of(vec![
                Ok(("acme".into(), b"sku\n")),
                Ok((String::new(), b"A\n")),
            ]),
            1000,
            |message| message,
        )
        .await
        .unwrap();

        assert!(
            unnamed_first.to_string().contains("it named none"),
            "{unnamed_first}"
        );
        assert!(
            matches!(too_large, Error::ResourceExhausted(_)),
            "{too_large:?}"
        );
        assert_eq!(
            (header.as_str(), bytes.as_slice()),
            ("acme", &b"sku\nA\n"[..])
        );
    }

    #[test]
    fn nameless_columns_at_the_end_are_ignored_while_their_cells_are_empty() {
        let file = CsvFile::parse(b"sku,name,,\nA,x,,\nB,y\nC,z,,oops\nD,w,,,\n").unwrap();

        let rows: Vec<Result<Vec<String>, String>> = file
            .rows()
            .map(|row| row.map(|row| row.cells).map_err(|error| error.reason))
            .collect();

        assert_eq!(file.header, ["sku", "name"]);
        assert_eq!(rows[0], Ok(vec!["A".to_string(), "x".to_string()]));
        assert_eq!(rows[1], Ok(vec!["B".to_string(), "y".to_string()]));
        assert_eq!(rows[2], Err("VALUE_WITHOUT_COLUMN".to_string()));
        assert_eq!(
            rows[3].as_ref().map(Vec::len),
            Ok(5),
            "a row longer than the header with its commas is left to the caller"
        );
    }

    #[test]
    fn a_quote_left_open_is_refused_with_its_line() {
        let at_end = CsvFile::parse(b"sku,name,mrp\nQ-1,\"unterminated,1\n").unwrap_err();
        let in_the_middle =
            CsvFile::parse(b"sku,name,mrp\nQ-2,ok,1\nQ-3,\"unterm,1\nQ-4,x,2\n").unwrap_err();

        assert!(at_end.to_string().contains("opened on line 2"), "{at_end}");
        assert!(
            in_the_middle.to_string().contains("opened on line 3"),
            "{in_the_middle}"
        );
        assert!(CsvFile::parse(b"sku,name\nQ-5,\"say \"\"hi\"\", twice\"\n").is_ok());
        assert!(CsvFile::parse(b"sku,name\nQ-6,5\" screen\n").is_ok());
    }

    #[test]
    fn bom_crlf_and_quotes_are_read() {
        let bytes = b"\xEF\xBB\xBFsku,name\r\nA-1,\"Kurta, red\"\r\n\"B-2\",\"say \"\"hi\"\"\"\r\n";
        let file = CsvFile::parse(bytes).unwrap();
        assert_eq!(file.header, ["sku", "name"]);
        let rows: Vec<CsvRow> = file.rows().map(Result::unwrap).collect();
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].cells, ["A-1", "Kurta, red"]);
        assert_eq!(rows[1].cells, ["B-2", "say \"hi\""]);
    }

    #[test]
    fn row_numbers_count_blank_lines_and_not_line_breaks_inside_cells() {
        let bytes = b"sku,name\nA-1,one\n\nB-2,\"two\nlines\"\nC-3,three\n";
        let file = CsvFile::parse(bytes).unwrap();
        let rows: Vec<(i64, String)> = file
            .rows()
            .map(|row| row.unwrap())
            .map(|row| (row.row, row.cells[0].clone()))
            .collect();
        assert_eq!(
            rows,
            [(2, "A-1".into()), (4, "B-2".into()), (5, "C-3".into())]
        );
    }

    #[test]
    fn binary_and_empty_files_are_refused() {
        assert!(CsvFile::parse(b"").is_err());
        assert!(CsvFile::parse(b"\xEF\xBB\xBF \r\n").is_err());
        assert!(
            CsvFile::parse(b"sku\n\x00\x01\x02")
                .unwrap_err()
                .to_string()
                .contains("NUL")
        );
        assert!(
            CsvFile::parse(b"sku\n\xff\xfe")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
    }

    #[test]
    fn unknown_missing_and_repeated_columns_are_row_one_errors() {
        let header = vec!["SKU".to_string(), "colour".to_string(), "sku".to_string()];
        let mut errors = Vec::new();
        Columns::resolve(
            &header,
            &["sku", "name"],
            &["color"],
            |_| false,
            &mut errors,
        );
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["UNKNOWN_COLUMN", "DUPLICATE_COLUMN", "MISSING_COLUMN"]
        );
        assert!(errors.iter().all(|e| e.row == 1));
    }
}
