//! Runs the upload benchmark by hand:
//! `cargo run -p kosha-catalog --example upload_bench -- [ROWS] [sqlite|postgres]`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|text| text.parse())
        .transpose()?
        .unwrap_or(100_000);
    let postgres = match args.next().as_deref() {
        None | Some("sqlite") => false,
        Some("postgres") => true,
        Some(other) => anyhow::bail!("unknown store `{other}`: sqlite or postgres"),
    };

    let format = kosha_runtime::telemetry::LogFormat::Text;
    let _telemetry = kosha_runtime::telemetry::init("upload-bench", format)?;
    let report = kosha_catalog::bench::upload_benchmark(rows, postgres).await?;
    println!("{report}");
    Ok(())
}
