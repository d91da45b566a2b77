//! Bulk listing upload (`channel,marketplace_sku,sku`): validate the whole file, then
//! create or replace its listings in one transaction.
//!
//! The passes are those of the product upload: the first checks every row alone, finds
//! repeated (channel, marketplace SKU) keys, and checks the client SKUs (they must exist
//! and be active) [`CHUNK_ROWS`] rows at a time; the second, for a file with no problem,
//! reads the rows again and writes them [`INSERT_ROWS`] at a time.

use kosha_proto::types::{RowError, UploadReport};
use kosha_runtime::time::now_micros;
use kosha_runtime::upload::{CsvFile, row_error};
use kosha_runtime::{Db, Error, Result};
use sqlx::AnyConnection;

use super::product_upload::finish;
use super::tally::{Outcome, Repeat, Tally};
use crate::domain::listing_rows::{ListingLayout, ListingRow};
use crate::domain::{ChannelCode, ClientId, Sku};
use crate::store::{CHUNK_ROWS, INSERT_ROWS, listings, master, products};

/// Uploads a listing file; see the module docs.
#[tracing::instrument(name = "catalog.listing_upload", skip_all, fields(
    client_id = %client, dry_run = dry_run, bytes = bytes.len(),
))]
pub(super) async fn upload(
    db: &Db,
    client: &ClientId,
    dry_run: bool,
    bytes: &[u8],
) -> Result<UploadReport> {
    let started = std::time::Instant::now();
    let mut conn = db.pool().acquire().await?;
    if !master::client_exists(&mut conn, client).await? {
        return Err(Error::not_found("client", client));
    }
    let channels: Vec<ChannelCode> = master::all_channels(&mut conn)
        .await?
        .into_iter()
        .map(|channel| channel.code)
        .collect();
    let file = CsvFile::parse(bytes)?;

    // First pass: every problem, nothing written.
    let mut check = Check::new();
    let layout_opt = ListingLayout::resolve(&file.header, &mut check.errors);
    if let Some(layout) = &layout_opt {
        check
            .read(&mut conn, client, &file, layout, &channels)
            .await?;
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
    let report = apply(db, client, &file, &layout, &channels, report).await?;
    tracing::info!(
        client_id = %client,
        check_ms,
        total_ms = started.elapsed().as_millis() as u64,
        rows = report.rows,
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        "listing upload applied"
    );
    Ok(report)
}

/// The state of the first pass.
struct Check {
    errors: Vec<RowError>,
    rows: i64,
    tally: Tally<(String, String)>,
    batch: Vec<ListingRow>,
}

impl Check {
    fn new() -> Self {
        Self {
            errors: Vec::new(),
            rows: 0,
            tally: Tally::new(),
            batch: Vec::with_capacity(CHUNK_ROWS),
        }
    }

    async fn read(
        &mut self,
        conn: &mut AnyConnection,
        client: &ClientId,
        file: &CsvFile<'_>,
        layout: &ListingLayout,
        channels: &[ChannelCode],
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
            let parsed = layout.parse_row(&row, channels, &mut self.errors);
            if let Some((channel, marketplace_sku)) = &parsed.key_opt {
                self.note_repeat(channel, marketplace_sku, parsed.row, layout);
            }
            if parsed.sku_opt.is_some() {
                self.batch.push(parsed);
            }
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

    /// Reports every row of a (channel, marketplace SKU) that appears more than once.
    fn note_repeat(
        &mut self,
        channel: &ChannelCode,
        marketplace_sku: &Sku,
        row: i64,
        layout: &ListingLayout,
    ) {
        let key = (channel.to_string(), marketplace_sku.to_string());
        let Repeat::Again {
            first_row,
            first_report,
        } = self.tally.note(key, row)
        else {
            return;
        };
        let column = layout.marketplace_sku_column();
        let what = format!("`{marketplace_sku}` of channel `{channel}` appears more than once");
        if first_report {
            self.errors.push(row_error(
                first_row,
                column,
                marketplace_sku.as_str(),
                "DUPLICATE_LISTING",
                format!("{what}: again on row {row}"),
            ));
        }
        self.errors.push(row_error(
            row,
            column,
            marketplace_sku.as_str(),
            "DUPLICATE_LISTING",
            format!("{what}: first on row {first_row}"),
        ));
    }

    /// Checks one batch of rows with a valid client SKU against the database.
    async fn check_batch(
        &mut self,
        conn: &mut AnyConnection,
        client: &ClientId,
        layout: &ListingLayout,
    ) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        let skus: Vec<&str> = batch
            .iter()
            .filter_map(|row| row.sku_opt.as_ref())
            .map(Sku::as_str)
            .collect();
        let states = products::active_by_sku(conn, client, &skus).await?;
        let keys: Vec<(&ChannelCode, &Sku)> = batch
            .iter()
            .filter_map(|row| row.key_opt.as_ref())
            .map(|(c, m)| (c, m))
            .collect();
        let current = listings::current_skus(conn, client, &keys).await?;

        let column = layout.sku_column();
        for row in &batch {
            let Some(sku) = &row.sku_opt else { continue };
            match states.get(sku.as_str()) {
                None => {
                    self.errors.push(row_error(
                        row.row,
                        column,
                        sku.as_str(),
                        "UNKNOWN_SKU",
                        format!("SKU `{sku}` is not in the client's product master"),
                    ));
                    continue;
                }
                Some(false) => {
                    self.errors.push(row_error(
                        row.row,
                        column,
                        sku.as_str(),
                        "DISABLED_SKU",
                        format!("SKU `{sku}` is disabled; enable it before listing it"),
                    ));
                    continue;
                }
                Some(true) => {}
            }
            let Some((channel, marketplace_sku)) = &row.key_opt else {
                continue;
            };
            if !row.valid {
                continue;
            }
            let key = (channel.to_string(), marketplace_sku.to_string());
            let outcome = match current.get(&key) {
                None => Outcome::Created,
                Some(mapped) if mapped == sku.as_str() => Outcome::Unchanged,
                Some(_) => Outcome::Updated,
            };
            self.tally.count(&key, outcome);
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
// A product disabled by another call between the two passes still gets its listing; the
// listing then resolves with `active` false, which callers check anyway.
async fn apply(
    db: &Db,
    client: &ClientId,
    file: &CsvFile<'_>,
    layout: &ListingLayout,
    channels: &[ChannelCode],
    mut report: UploadReport,
) -> Result<UploadReport> {
    let now = now_micros();
    let mut tx = db.begin().await?;
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut batch: Vec<ListingRow> = Vec::with_capacity(INSERT_ROWS);
    let mut rows = file.rows().peekable();
    while let Some(record) = rows.next() {
        let row = record.map_err(|error| reread_failed(error.row))?;
        let mut errors = Vec::new();
        let parsed = layout.parse_row(&row, channels, &mut errors);
        if !errors.is_empty() || !parsed.valid {
            return Err(reread_failed(row.row));
        }
        batch.push(parsed);
        if batch.len() < INSERT_ROWS && rows.peek().is_some() {
            continue;
        }

        let mut entries: Vec<(&ChannelCode, &Sku, &Sku)> = Vec::with_capacity(batch.len());
        for row in &batch {
            let (Some((channel, marketplace_sku)), Some(sku)) = (&row.key_opt, &row.sku_opt) else {
                return Err(reread_failed(row.row));
            };
            entries.push((channel, marketplace_sku, sku));
        }
        let keys: Vec<(&ChannelCode, &Sku)> = entries.iter().map(|(c, m, _)| (*c, *m)).collect();
        let current = listings::current_skus(&mut tx, client, &keys).await?;
        let mut changed = Vec::with_capacity(entries.len());
        for (channel, marketplace_sku, sku) in entries {
            let key = (channel.to_string(), marketplace_sku.to_string());
            match current.get(&key) {
                None => created += 1,
                Some(mapped) if mapped == sku.as_str() => {
                    unchanged += 1;
                    continue;
                }
                Some(_) => updated += 1,
            }
            changed.push((channel, marketplace_sku, sku));
        }
        listings::upsert(&mut tx, client, &changed, now).await?;
        batch.clear();
    }
    super::commit_announced(tx, client).await?;

    report.applied = true;
    report.created = created;
    report.updated = updated;
    report.unchanged = unchanged;
    Ok(report)
}

fn reread_failed(row: i64) -> Error {
    Error::Internal(anyhow::anyhow!(
        "listing row {row} read differently on the second pass"
    ))
}
