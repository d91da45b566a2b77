//! The upload benchmark: how a bulk product create through the service compares with
//! loading the same rows with plain SQL, and how much memory the upload takes.
//!
//! It generates `rows` synthetic products, starts a catalog server in this process on a
//! fresh database (a SQLite file in a temporary directory, or a throwaway PostgreSQL
//! cluster), and times one create upload over the gRPC client stream. Then it times
//! loading the same rows into a fresh table of the same shape with plain SQL: `COPY … FROM
//! STDIN` on PostgreSQL, one transaction of multi-row inserts on SQLite. Peak resident
//! memory (`VmHWM`) is read before and after the upload; it covers the whole process, so
//! it includes the generator's copy of the file and the client's buffers too.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kosha_proto::kosha::catalog::v1 as pb;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_runtime::upload::DEFAULT_MAX_UPLOAD_BYTES;
use kosha_testkit::{PgCluster, TestServer, test_server_options};
use sqlx::Connection as _;

use crate::config::Settings;
use crate::startup::{self, Peers};

/// Bytes per upload message: well under the default message limit of 16 MiB.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Rows per multi-row `INSERT` of the plain SQLite load, as the service does.
const PLAIN_INSERT_ROWS: usize = 500;

/// The client the benchmark's products belong to.
const CLIENT: &str = "bench";

/// What one run measured.
#[derive(Debug, Clone)]
pub struct UploadBenchmark {
    /// Rows uploaded.
    pub rows: usize,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    /// Size of the CSV file.
    pub file_bytes: usize,
    /// The create upload through gRPC, from the first chunk sent to the report received.
    pub upload: Duration,
    /// The same rows loaded with plain SQL.
    pub plain_sql: Duration,
    /// Peak resident memory of the process before the upload, in KiB.
    pub peak_rss_before_kib_opt: Option<u64>,
    /// Peak resident memory of the process after the upload, in KiB.
    pub peak_rss_after_kib_opt: Option<u64>,
}

impl UploadBenchmark {
    /// How many times longer the upload took than plain SQL.
    pub fn ratio(&self) -> f64 {
        self.upload.as_secs_f64() / self.plain_sql.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for UploadBenchmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |value_opt: Option<u64>| {
            value_opt.map_or_else(
                || "unknown".to_string(),
                |kib| format!("{} MiB", kib / 1024),
            )
        };
        writeln!(
            f,
            "product create upload, {} rows ({:.1} MiB of CSV) on {}",
            self.rows,
            self.file_bytes as f64 / (1024.0 * 1024.0),
            self.store
        )?;
        writeln!(
            f,
            "  upload through gRPC: {:>8.3} s",
            self.upload.as_secs_f64()
        )?;
        let plain = match self.store {
            "postgres" => "COPY FROM STDIN",
            _ => "one transaction of multi-row INSERTs",
        };
        writeln!(
            f,
            "  plain SQL ({plain}): {:>8.3} s",
            self.plain_sql.as_secs_f64()
        )?;
        writeln!(f, "  ratio upload / plain SQL: {:.2}", self.ratio())?;
        write!(
            f,
            "  peak RSS of the process: {} before the upload, {} after",
            kib(self.peak_rss_before_kib_opt),
            kib(self.peak_rss_after_kib_opt)
        )
    }
}

/// Runs the benchmark with `rows` products on SQLite, or on PostgreSQL when `postgres`.
pub async fn upload_benchmark(rows: usize, postgres: bool) -> anyhow::Result<UploadBenchmark> {
    anyhow::ensure!(rows > 0, "the benchmark needs at least one row");

    // A fresh database: a SQLite file, or a database in a throwaway cluster.
    let dir = tempfile::Builder::new().prefix("kosha-bench-").tempdir()?;
    let (store, url, _cluster_opt) = if postgres {
        let cluster = PgCluster::start().map_err(|why| anyhow::anyhow!("PostgreSQL: {why}"))?;
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
        sqlx::query("CREATE DATABASE kosha_bench")
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        ("postgres", cluster.url("kosha_bench"), Some(cluster))
    } else {
        (
            "sqlite",
            format!("sqlite://{}/catalog.db", dir.path().display()),
            None,
        )
    };

    // The file, then a server able to take it.
    let file = Arc::new(synthetic_file(rows));
    let settings = Settings {
        max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES.max(file.len()),
        ..Settings::default()
    };
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .context("connect")?;
    let mut server = Server::new(test_server_options());
    let mounted = startup::mount(&mut server, db, &settings, &Peers::default()).await?;
    let server = TestServer::start(server).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await)
        .max_decoding_message_size(64 * 1024 * 1024);
    let create_client = pb::CreateClientRequest {
        client_id: CLIENT.to_string(),
        display_name: String::new(),
    };
    catalog.create_client(create_client).await?;

    // The upload, timed.
    let peak_rss_before_kib_opt = peak_rss_kib();
    let started = Instant::now();
    let report = catalog
        .upload_products(upload_messages(Arc::clone(&file)))
        .await
        .context("upload")?
        .into_inner()
        .report
        .context("no report")?;
    let upload = started.elapsed();
    let peak_rss_after_kib_opt = peak_rss_kib();
    anyhow::ensure!(
        report.applied && report.created == rows as i64,
        "the upload did not create every row: {report:?}"
    );
    server.stop().await;
    mounted.shutdown().await;

    // The same rows with plain SQL, timed.
    let plain_sql = if postgres {
        copy_postgres(&url, rows).await?
    } else {
        insert_sqlite(&url, rows).await?
    };

    Ok(UploadBenchmark {
        rows,
        store,
        file_bytes: file.len(),
        upload,
        plain_sql,
        peak_rss_before_kib_opt,
        peak_rss_after_kib_opt,
    })
}

/// One synthetic product; the same function feeds the CSV file and the plain SQL load.
struct SyntheticProduct {
    sku: String,
    name: String,
    style: String,
    category: String,
    color: String,
    size: &'static str,
    mrp_paise: i64,
}

fn synthetic_product(index: usize) -> SyntheticProduct {
    const SIZES: [&str; 6] = ["XS", "S", "M", "L", "XL", "XXL"];
    SyntheticProduct {
        sku: format!("BENCH-{index:07}-{}", SIZES[index % SIZES.len()]),
        name: format!("Cotton kurta, design {}", index / SIZES.len()),
        style: format!("ST-{:06}", index / SIZES.len()),
        category: format!("category {}", index % 23),
        color: format!("colour {}", index % 11),
        size: SIZES[index % SIZES.len()],
        mrp_paise: 49_900 + (index % 400) as i64 * 500,
    }
}

fn synthetic_file(rows: usize) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows * 96));
    let header = ["sku", "name", "style", "category", "color", "size", "mrp"];
    writer.write_record(header).expect("writing to memory");
    for index in 0..rows {
        let product = synthetic_product(index);
        let mrp = kosha_runtime::validate::format_money(product.mrp_paise);
        let record = [
            product.sku.as_str(),
            &product.name,
            &product.style,
            &product.category,
            &product.color,
            product.size,
            &mrp,
        ];
        writer.write_record(record).expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

/// The file as a stream of upload messages, each chunk copied only when it is sent.
fn upload_messages(file: Arc<Vec<u8>>) -> impl futures::Stream<Item = pb::UploadProductsRequest> {
    let chunks = file.len().div_ceil(CHUNK_BYTES);
    futures::stream::iter((0..chunks).map(move |index| {
        let start = index * CHUNK_BYTES;
        let end = (start + CHUNK_BYTES).min(file.len());
        let is_first = index == 0;
        pb::UploadProductsRequest {
            client_id: if is_first {
                CLIENT.to_string()
            } else {
                String::new()
            },
            mode: if is_first {
                pb::UploadMode::Create.into()
            } else {
                0
            },
            dry_run: false,
            chunk: file[start..end].to_vec(),
        }
    }))
}

/// The table the plain load fills: the products table's shape, without foreign keys.
const PLAIN_TABLE: &str = "CREATE TABLE bench_products (
    client_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, style TEXT NOT NULL,
    category TEXT NOT NULL, color TEXT NOT NULL, size TEXT NOT NULL, mrp_paise BIGINT,
    active BIGINT NOT NULL, create_time BIGINT NOT NULL, update_time BIGINT NOT NULL,
    PRIMARY KEY (client_id, sku))";

/// Loads the rows with `COPY … FROM STDIN`; the data is prepared before the clock starts.
async fn copy_postgres(url: &str, rows: usize) -> anyhow::Result<Duration> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(PLAIN_TABLE).execute(&mut conn).await?;
    let now = kosha_runtime::time::now_micros();
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows * 128));
    for index in 0..rows {
        let product = synthetic_product(index);
        writer.serialize((
            CLIENT,
            &product.sku,
            &product.name,
            &product.style,
            &product.category,
            &product.color,
            product.size,
            product.mrp_paise,
            1,
            now,
            now,
        ))?;
    }
    let data = writer
        .into_inner()
        .map_err(|error| anyhow::anyhow!("{error}"))?;

    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bench_products FROM STDIN WITH (FORMAT csv)")
        .await?;
    copy.send(data.as_slice()).await?;
    let copied = copy.finish().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(copied == rows as u64, "COPY loaded {copied} rows of {rows}");
    conn.close().await?;
    Ok(elapsed)
}

/// Loads the rows in one transaction of multi-row inserts, on a connection set up as the
/// service's are (WAL, normal sync).
async fn insert_sqlite(url: &str, rows: usize) -> anyhow::Result<Duration> {
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .execute(&mut conn)
        .await?;
    sqlx::query(PLAIN_TABLE).execute(&mut conn).await?;
    let now = kosha_runtime::time::now_micros();

    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut first = 0;
    while first < rows {
        let count = PLAIN_INSERT_ROWS.min(rows - first);
        // `?` rather than `$N`: SQLite looks a named parameter up by a linear search each
        // time it binds one, which makes wide statements quadratic.
        let tuple = format!("({})", ["?"; 11].join(", "));
        let tuples = vec![tuple.as_str(); count];
        let sql = format!("INSERT INTO bench_products VALUES {}", tuples.join(", "));
        let mut query = sqlx::query(&sql);
        for index in first..first + count {
            let product = synthetic_product(index);
            query = query
                .bind(CLIENT)
                .bind(product.sku)
                .bind(product.name)
                .bind(product.style)
                .bind(product.category)
                .bind(product.color)
                .bind(product.size)
                .bind(product.mrp_paise)
                .bind(1_i64)
                .bind(now)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
        first += count;
    }
    tx.commit().await?;
    let elapsed = started.elapsed();
    conn.close().await?;
    Ok(elapsed)
}

/// Peak resident memory of this process so far (`VmHWM`), in KiB, where Linux tells.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_file_has_a_header_and_one_line_per_row_with_distinct_skus() {
        let file = String::from_utf8(synthetic_file(12)).unwrap();

        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 13);
        assert_eq!(lines[0], "sku,name,style,category,color,size,mrp");
        let skus: std::collections::HashSet<&str> = lines[1..]
            .iter()
            .map(|line| line.split(',').next().unwrap())
            .collect();
        assert_eq!(skus.len(), 12);
        assert!(
            lines[1].contains("\"Cotton kurta, design 0\""),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn peak_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_benchmark_on_sqlite_reports_both_timings() {
        let report = upload_benchmark(1200, false).await.unwrap();

        assert_eq!((report.rows, report.store), (1200, "sqlite"));
        assert!(report.upload > Duration::ZERO && report.plain_sql > Duration::ZERO);
        assert!(report.to_string().contains("ratio upload / plain SQL"));
    }
}
