//! The replay of the real data against the whole suite: all-in-one on SQLite, and each
//! service as its own process on PostgreSQL; then every outcome the data implies is
//! checked through the public contracts. Also: the same input gives the same summary.

use std::collections::BTreeMap;

use kosha::replay::progress::{ProgressOutput, peak_memory_kib};
use kosha::replay::{LocalSuite, ReplayOptions, ReplayReport, replay};
use kosha_e2e::expected::Expectations;
use kosha_e2e::outcomes::check_real_data_outcomes;
use kosha_e2e::processes::{SERVICES, SeparateServices};
use kosha_e2e::{B2B_GROUPS_IN_TESTS, real_data_dir};
use kosha_testkit::{Store, TestDatabase, store_enabled};

/// The replay of the real data with the B2B slice of the tests. For measurements,
/// `KOSHA_E2E_B2B_GROUPS` sets the slice (`all` for the whole file).
fn real_data_options(connector_dir: &std::path::Path) -> ReplayOptions {
    let mut options = ReplayOptions::new(real_data_dir(), connector_dir.to_path_buf());
    options.b2b_groups_opt = match std::env::var("KOSHA_E2E_B2B_GROUPS").as_deref() {
        Ok("all") => None,
        Ok(groups) => Some(
            groups
                .parse()
                .expect("KOSHA_E2E_B2B_GROUPS: a number or `all`"),
        ),
        Err(_) => Some(B2B_GROUPS_IN_TESTS),
    };
    options
}

/// Prints what a run measured, for the test log, and writes the summary to the file
/// `KOSHA_E2E_SUMMARY_DIR/<store>.txt` when that directory is set, to compare runs.
fn print_measurements(store: &str, report: &ReplayReport, peaks: &[(&str, Option<u64>)]) {
    if let Ok(dir) = std::env::var("KOSHA_E2E_SUMMARY_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{store}.txt"));
        std::fs::write(&path, &report.summary).unwrap();
    }
    eprintln!("--- replay of the real data on {store} ---");
    eprint!("{}", report.render_timings(None));
    for (process, kib) in peaks {
        let mib = kib.map_or("unknown".to_string(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
        eprintln!("peak memory (VmHWM) of {process}: {mib}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_data_replays_through_the_all_in_one_suite_on_sqlite() {
    if !store_enabled(Store::Sqlite) {
        eprintln!("notice: SQLite left out by KOSHA_TEST_STORES: the replay on SQLite is not run");
        return;
    }
    // Arrange
    let data_dir = tempfile::tempdir().unwrap();
    let connector_dir = data_dir.path().join("channels");
    let suite = LocalSuite::start(data_dir.path(), &connector_dir)
        .await
        .unwrap();
    let expected =
        Expectations::read(&real_data_dir(), kosha::replay::DEFAULT_LATE_CATEGORY).unwrap();

    // Act
    let report = replay(&suite.endpoints(), &real_data_options(&connector_dir))
        .await
        .unwrap();

    // Assert
    print_measurements(
        "sqlite",
        &report,
        &[("the test process (suite and replay)", peak_memory_kib())],
    );
    check_real_data_outcomes(&suite.endpoints(), &report, &expected).await;
    assert!(report.facts.audit_clean && report.facts.reconciliation_balanced);
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_data_replays_through_separate_service_processes_on_postgres() {
    // Arrange: one database per service in one cluster, one process per service.
    let Some(first) = TestDatabase::create(Store::Postgres).await else {
        eprintln!("notice: no PostgreSQL for the replay across separate processes");
        return;
    };
    let mut databases = vec![first];
    for service in &SERVICES[1..] {
        databases.push(databases[0].sibling(service).await);
    }
    let urls: BTreeMap<&str, String> = SERVICES
        .iter()
        .zip(&databases)
        .map(|(service, db)| (*service, db.url.clone()))
        .collect();
    let connector_dir = databases[0].dir().join("channels");
    std::fs::create_dir_all(&connector_dir).unwrap();
    let services = SeparateServices::start(&urls, &connector_dir)
        .await
        .unwrap();
    let expected =
        Expectations::read(&real_data_dir(), kosha::replay::DEFAULT_LATE_CATEGORY).unwrap();

    // Act
    let outcome = replay(&services.endpoints, &real_data_options(&connector_dir)).await;

    // Assert
    let report = outcome.unwrap_or_else(|error| panic!("{error:#}\n{}", services.logs()));
    let mut peaks = services.peak_memory_kib();
    peaks.push(("the test process (replay)", peak_memory_kib()));
    print_measurements("postgres", &report, &peaks);
    check_real_data_outcomes(&services.endpoints, &report, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_data_replayed_twice_gives_the_same_summary() {
    if !store_enabled(Store::Sqlite) {
        eprintln!("notice: SQLite left out by KOSHA_TEST_STORES: the determinism check is not run");
        return;
    }
    // Arrange: a small generated dataset.
    let input = tempfile::tempdir().unwrap();
    kosha::sample_data::write(input.path(), 30).unwrap();

    // Act: two replays, each on a fresh suite.
    let mut summaries = Vec::new();
    for _ in 0..2 {
        let data_dir = tempfile::tempdir().unwrap();
        let connector_dir = data_dir.path().join("channels");
        let suite = LocalSuite::start(data_dir.path(), &connector_dir)
            .await
            .unwrap();
        let mut options = ReplayOptions::new(input.path().to_path_buf(), connector_dir);
        options.progress = ProgressOutput::Silent;
        let report = replay(&suite.endpoints(), &options).await.unwrap();
        suite.stop().await.unwrap();
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
        summaries.push(report.summary);
    }

    // Assert
    assert_eq!(summaries[0], summaries[1]);
    assert!(summaries[0].contains("audit: clean"), "{}", summaries[0]);
}
