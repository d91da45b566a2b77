//! The scheduler benchmark as a test that fails when due-to-run lag reaches a second.
//! Slow (it builds a backlog of 10,000 jobs on each store), so it runs only when asked:
//! `cargo test -p kosha-scheduler --test bench -- --ignored --nocapture`.

use kosha_scheduler::bench::{BenchOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored"]
async fn due_jobs_run_within_a_second_with_ten_thousand_pending() {
    // Arrange
    let options = BenchOptions::default();

    // Act
    let report = run(&options).await.expect("benchmark ran");

    // Assert
    println!("{report}");
    assert!(
        report.lag_within_a_second(),
        "lag reached a second:\n{report}"
    );
}
