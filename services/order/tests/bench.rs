//! The CreateOrder benchmark runs end to end on a small load.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_order_benchmark_runs_end_to_end_on_a_small_load_on_postgres() {
    // Arrange
    if !kosha_testkit::store_enabled(kosha_testkit::Store::Postgres) {
        eprintln!("notice: the benchmark runs on PostgreSQL, which KOSHA_TEST_STORES leaves out");
        return;
    }
    if kosha_testkit::postgres::bin_dir().is_none() {
        kosha_testkit::skip_or_fail("PostgreSQL", "its binaries are not installed");
        return;
    }
    let options = kosha_order::bench::BenchOptions {
        orders: 64,
        clients: vec![8],
        skus: 10,
    };

    // Act
    let report = kosha_order::bench::run(&options).await.unwrap();

    // Assert
    println!("{report}");
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].orders, 64);
    assert!(report.runs[0].pgbench_tps > 0.0);
    assert_eq!(report.runs[0].service_rates.len(), 5, "five service runs");
    assert_eq!(report.runs[0].pgbench_rates.len(), 5, "five pgbench runs");
    assert!(report.to_string().contains("ratio"));
}
