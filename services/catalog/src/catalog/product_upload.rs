//! Bulk product upload: validate the whole file, then apply it in one transaction.
//!
//! The file's bytes are held once. The first pass reads the rows one by one, checking
//! each on its own, remembering every SKU to find repeats, and checking existence
//! [`CHUNK_ROWS`] rows at a time. Only a file with no problem gets a second pass, which
//! reads the rows again and writes them [`INSERT_ROWS`] at a time inside one transaction.
//! Apart from the bytes and the set of SKUs, memory holds one batch of rows at a time,
//! whatever the size of the file.

use std::collections::HashMap;

use kosha_proto::types::{RowError, UploadReport};
use kosha_runtime::db::is_unique_violation;
use kosha_runtime::time::now_micros;
use kosha_runtime::upload::{CsvFile, reject_or_report, row_error};
use kosha_runtime::{Db, Error, Result};
use sqlx::AnyConnection;

use super::tally::{Outcome, Repeat, Tally};
use crate::domain::product_rows::{ProductLayout, ProductRow, RowValues};
use crate::domain::{ClientId, Product, ProductAttributes, Sku, UploadMode};
use crate::store::{CHUNK_ROWS, INSERT_ROWS, master, products};

/// Most problems listed in one report. A file with more is usually wrong as a whole
/// (a shifted column, the wrong template), and the first ten thousand show how; the rest
/// are counted in a last row-0 entry.
pub(super) const MAX_REPORTED_ERRORS: usize = 10_000;

/// Uploads a product file; see the module docs.
#[tracing::instrument(name = "catalog.product_upload", skip_all, fields(
    client_id = %client, ?mode, dry_run = dry_run, bytes = bytes.len(),
))]
pub(super) async fn upload(
    db: &Db,
    client: &ClientId,
    mode: UploadMode,
    dry_run: bool,
    bytes: &[u8],
) -> Result<UploadReport> {
    let started = std::time::Instant::now();
    let mut conn = db.pool().acquire().await?;
    if !master::client_exists(&mut conn, client).await? {
        return Err(Error::not_found("client", client));
    }
    let marketplaces = master::marketplaces(&mut conn).await?;
    let file = CsvFile::parse(bytes)?;

    // First pass: every problem, nothing written.
    let mut check = Check::new(mode);
    let layout_opt = ProductLayout::resolve(&file.header, mode, &marketplaces, &mut check.errors);
    if let Some(layout) = &layout_opt {
        check.read(&mut conn, client, &file, layout).await?;
    }
    drop(conn);
    let report = check.into_report(dry_run);
    tracing::debug!(
        rows = report.rows,
        errors = report.errors.len(),
        "upload checked"
    );
    let layout = match layout_opt {
        Some(layout) if report.errors.is_empty() && !dry_run => layout,
        _ => return finish(report),
    };

    // Second pass: write it all in one transaction.
    let check_ms = started.elapsed().as_millis() as u64;
    let report = apply(db, client, mode, &file, &layout, report).await?;
    tracing::info!(
        client_id = %client,
        check_ms,
        total_ms = started.elapsed().as_millis() as u64,
        rows = report.rows,
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        "product upload applied"
    );
    Ok(report)
}

/// The reply to a checked file that is not applied: the report of a dry run, or the
/// rejection of a file with problems.
pub(super) fn finish(mut report: UploadReport) -> Result<UploadReport> {
    let total = report.errors.len();
    if total > MAX_REPORTED_ERRORS {
        report
            .errors
            .sort_by(|a, b| (a.row, &a.column).cmp(&(b.row, &b.column)));
        report.errors.truncate(MAX_REPORTED_ERRORS);
        report.errors.push(row_error(
            0,
            "",
            "",
            "TOO_MANY_PROBLEMS",
            format!(
                "{} more problems are not listed; fix these first",
                total - MAX_REPORTED_ERRORS
            ),
        ));
    }
    reject_or_report(report)
}

/// The state of the first pass.
struct Check {
    mode: UploadMode,
    errors: Vec<RowError>,
    rows: i64,
    tally: Tally<String>,
    batch: Vec<ProductRow>,
}

impl Check {
    fn new(mode: UploadMode) -> Self {
        Self {
            mode,
            errors: Vec::new(),
            rows: 0,
            tally: Tally::new(),
            batch: Vec::with_capacity(CHUNK_ROWS),
        }
    }

    /// Reads every row, checking it alone, against the others and against the database.
    async fn read(
        &mut self,
        conn: &mut AnyConnection,
        client: &ClientId,
        file: &CsvFile<'_>,
        layout: &ProductLayout,
    ) -> Result<()> {
        for record in file.rows() {
            self.rows += 1;
            let row = match record {
                Ok(row) => row,
                Err(unreadable) => {
                    self.errors.push(unreadable);
                    continue;
                }
            };
            let parsed = layout.parse_row(&row, &mut self.errors);
            let Some(sku) = &parsed.sku_opt else {
                continue;
            };
            self.note_repeat(sku, parsed.row, layout.sku_column());
            self.batch.push(parsed);
            if self.batch.len() == CHUNK_ROWS {
                self.check_batch(conn, client, layout).await?;
            }
        }
        self.check_batch(conn, client, layout).await?;

        if self.rows == 0 {
            self.errors.push(row_error(
                0,
                "",
                "",
                "NO_ROWS",
                "the file has a header but no data rows",
            ));
        }
        Ok(())
    }

    /// Reports every row of a SKU that appears more than once.
    fn note_repeat(&mut self, sku: &Sku, row: i64, column: &str) {
        let Repeat::Again {
            first_row,
            first_report,
        } = self.tally.note(sku.to_string(), row)
        else {
            return;
        };
        if first_report {
            self.errors.push(row_error(
                first_row,
                column,
                sku.as_str(),
                "DUPLICATE_SKU",
                format!("SKU `{sku}` appears more than once: again on row {row}"),
            ));
        }
        self.errors.push(row_error(
            row,
            column,
            sku.as_str(),
            "DUPLICATE_SKU",
            format!("SKU `{sku}` appears more than once: first on row {first_row}"),
        ));
    }

    /// Checks one batch of rows with a valid SKU against the database.
    async fn check_batch(
        &mut self,
        conn: &mut AnyConnection,
        client: &ClientId,
        layout: &ProductLayout,
    ) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let skus: Vec<&str> = batch
            .iter()
            .filter_map(|row| row.sku_opt.as_ref())
            .map(Sku::as_str)
            .collect();
        if skus.is_empty() {
            return Ok(());
        }
        let column = layout.sku_column();

        match self.mode {
            UploadMode::Create => {
                // A row that repeats a stored product exactly is a retried upload's, and
                // counts as unchanged, so that sending the same file again succeeds.
                let stored: HashMap<String, Product> = products::load(conn, client, &skus)
                    .await?
                    .into_iter()
                    .map(|product| (product.sku.to_string(), product))
                    .collect();
                for row in &batch {
                    let Some(sku) = &row.sku_opt else { continue };
                    if let Some(product) = stored.get(sku.as_str()) {
                        if let Some(RowValues::Create(attributes)) = &row.values_opt
                            && *attributes == product.attributes
                        {
                            self.tally.count(&sku.to_string(), Outcome::Unchanged);
                            continue;
                        }
                        self.errors.push(row_error(
                            row.row,
                            column,
                            sku.as_str(),
                            "SKU_EXISTS",
                            format!("SKU `{sku}` already exists; use update mode to change it"),
                        ));
                    } else if row.values_opt.is_some() {
                        self.tally.count(&sku.to_string(), Outcome::Created);
                    }
                }
            }
            UploadMode::Update => {
                let current: HashMap<String, Product> = products::load(conn, client, &skus)
                    .await?
                    .into_iter()
                    .map(|product| (product.sku.to_string(), product))
                    .collect();
                for row in &batch {
                    let Some(sku) = &row.sku_opt else { continue };
                    let Some(product) = current.get(sku.as_str()) else {
                        self.errors.push(row_error(
                            row.row,
                            column,
                            sku.as_str(),
                            "UNKNOWN_SKU",
                            format!("SKU `{sku}` does not exist; use create mode to add it"),
                        ));
                        continue;
                    };
                    if let Some(RowValues::Update(patch)) = &row.values_opt {
                        let changes = patch.apply(&product.attributes) != product.attributes;
                        let outcome = if changes {
                            Outcome::Updated
                        } else {
                            Outcome::Unchanged
                        };
                        self.tally.count(&sku.to_string(), outcome);
                    }
                }
            }
        }
        self.batch = batch;
        self.batch.clear();
        Ok(())
    }

    fn into_report(self, dry_run: bool) -> UploadReport {
        UploadReport {
            dry_run,
            applied: false,
            rows: self.rows,
            created: self.tally.created,
            updated: self.tally.updated,
            unchanged: self.tally.unchanged,
            errors: self.errors,
        }
    }
}

/// Writes a checked file in one transaction and returns the report of what was done.
async fn apply(
    db: &Db,
    client: &ClientId,
    mode: UploadMode,
    file: &CsvFile<'_>,
    layout: &ProductLayout,
    mut report: UploadReport,
) -> Result<UploadReport> {
    let now = now_micros();
    let mut tx = db.begin().await?;
    let mut written = Written::default();
    let mut batch: Vec<ProductRow> = Vec::with_capacity(INSERT_ROWS);
    for record in file.rows() {
        let row = record.map_err(|error| reread_failed(error.row))?;
        let mut errors = Vec::new();
        let parsed = layout.parse_row(&row, &mut errors);
        if !errors.is_empty() {
            return Err(reread_failed(row.row));
        }
        batch.push(parsed);
        if batch.len() == INSERT_ROWS {
            write_batch(&mut tx, db, client, mode, &batch, now, &mut written).await?;
            batch.clear();
        }
    }
    write_batch(&mut tx, db, client, mode, &batch, now, &mut written).await?;
    super::commit_announced(tx, client).await?;

    report.applied = true;
    report.created = written.created;
    report.updated = written.updated;
    report.unchanged = written.unchanged;
    Ok(report)
}

/// What the second pass wrote.
#[derive(Debug, Default)]
struct Written {
    created: i64,
    updated: i64,
    unchanged: i64,
}

async fn write_batch(
    conn: &mut AnyConnection,
    db: &Db,
    client: &ClientId,
    mode: UploadMode,
    batch: &[ProductRow],
    now: i64,
    written: &mut Written,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    match mode {
        UploadMode::Create => {
            let skus: Vec<&str> = batch
                .iter()
                .filter_map(|row| row.sku_opt.as_ref())
                .map(Sku::as_str)
                .collect();
            let stored: HashMap<String, Product> = products::load(conn, client, &skus)
                .await?
                .into_iter()
                .map(|product| (product.sku.to_string(), product))
                .collect();
            let mut new_products: Vec<(&Sku, &ProductAttributes)> = Vec::with_capacity(batch.len());
            for row in batch {
                let (Some(sku), Some(RowValues::Create(attributes))) =
                    (&row.sku_opt, &row.values_opt)
                else {
                    return Err(reread_failed(row.row));
                };
                match stored.get(sku.as_str()) {
                    Some(product) if product.attributes == *attributes => written.unchanged += 1,
                    Some(_) => {
                        return Err(Error::Aborted(format!(
                            "another call created SKU `{sku}` with other values while the \
                             upload ran; nothing was stored; upload again to see the rows"
                        )));
                    }
                    None => new_products.push((sku, attributes)),
                }
            }
            match products::insert(conn, client, &new_products, now).await {
                Ok(()) => written.created += new_products.len() as i64,
                Err(error) if is_unique_violation(&error) => {
                    return Err(Error::Aborted(
                        "another call created some of these SKUs while the upload ran; \
                         nothing was stored; upload again to see which"
                            .to_string(),
                    ));
                }
                Err(error) => return Err(error.into()),
            }
        }
        UploadMode::Update => {
            let skus: Vec<&str> = batch
                .iter()
                .filter_map(|row| row.sku_opt.as_ref())
                .map(Sku::as_str)
                .collect();
            products::lock(conn, client, &skus, db.for_update()).await?;
            let mut current: HashMap<String, Product> = products::load(conn, client, &skus)
                .await?
                .into_iter()
                .map(|product| (product.sku.to_string(), product))
                .collect();

            let mut changed = Vec::new();
            for row in batch {
                let (Some(sku), Some(RowValues::Update(patch))) = (&row.sku_opt, &row.values_opt)
                else {
                    return Err(reread_failed(row.row));
                };
                // Products are never deleted, so a SKU checked in the first pass is here.
                let Some(mut product) = current.remove(sku.as_str()) else {
                    return Err(reread_failed(row.row));
                };
                let next = patch.apply(&product.attributes);
                if next == product.attributes {
                    written.unchanged += 1;
                    continue;
                }
                product.attributes = next;
                product.update_time = now;
                changed.push(product);
            }
            products::write_attributes(conn, client, &changed).await?;
            written.updated += changed.len() as i64;
        }
    }
    Ok(())
}

/// The second pass read a row differently from the first: a bug, since both read the same
/// bytes with the same rules.
fn reread_failed(row: i64) -> Error {
    Error::Internal(anyhow::anyhow!(
        "row {row} read differently on the second pass"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with_errors(count: usize, dry_run: bool) -> UploadReport {
        let errors = (0..count)
            .map(|index| row_error(index as i64 + 2, "sku", "", "REQUIRED", "the SKU is blank"))
            .collect();
        UploadReport {
            dry_run,
            rows: count as i64,
            errors,
            ..UploadReport::default()
        }
    }

    #[test]
    fn a_huge_report_lists_the_first_problems_and_counts_the_rest() {
        let report = finish(report_with_errors(MAX_REPORTED_ERRORS + 5, true)).unwrap();

        assert_eq!(report.errors.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(report.errors[0].reason, "TOO_MANY_PROBLEMS");
        assert!(report.errors[0].message.starts_with("5 more problems"));
        assert_eq!(report.errors[1].row, 2);
    }

    #[test]
    fn a_real_upload_with_problems_is_refused() {
        let error = finish(report_with_errors(3, false)).unwrap_err();

        assert!(error.to_string().contains("nothing stored"), "{error}");
    }
}
