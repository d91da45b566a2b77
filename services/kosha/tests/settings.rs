//! The real `kosha` binary with bad settings: every problem, the runner's and each
//! service's, is reported at once with the variable to change, the exit status is 64, and
//! no database file is created.

use std::process::Command;

#[test]
fn every_bad_setting_is_reported_at_once_before_any_file_is_created() {
    // Arrange: one bad setting of the runner and one of each of three services.
    let data_dir = tempfile::tempdir().unwrap();
    let suite_dir = data_dir.path().join("suite");

    // Act
    let output = Command::new(env!("CARGO_BIN_EXE_kosha"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "xml",
            "--data-dir",
        ])
        .arg(&suite_dir)
        .env("KOSHA_MAX_UPLOAD_BYTES", "100")
        .env("KOSHA_ORDER_HOLD_RULES", "garbage")
        .env("KOSHA_SCHEDULER_HORIZON_DAYS", "-3")
        .output()
        .unwrap();

    // Assert
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{said}");
    for expected in [
        "4 configuration problem(s)",
        "KOSHA_LOG_FORMAT",
        "catalog: KOSHA_MAX_UPLOAD_BYTES",
        "order: KOSHA_ORDER_HOLD_RULES",
        "scheduler: invalid value '-3' for 'KOSHA_SCHEDULER_HORIZON_DAYS'",
    ] {
        assert!(
            said.contains(expected),
            "`{expected}` missing from:\n{said}"
        );
    }
    assert!(
        !said.contains("--horizon-days"),
        "the runner takes no such flag:\n{said}"
    );
    assert!(
        !suite_dir.exists(),
        "nothing is created before the settings are good"
    );
}

/// The runner started with one variable set: its status and what it said, once it has
/// refused to start without creating its data directory.
fn refused_with(variable: &str, value: &str) -> String {
    let data_dir = tempfile::tempdir().unwrap();
    let suite_dir = data_dir.path().join("suite");
    let output = Command::new(env!("CARGO_BIN_EXE_kosha"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&suite_dir)
        .env(variable, value)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(64), "{said}");
    assert!(!suite_dir.exists(), "nothing is created: {said}");
    said
}

#[test]
fn extra_job_owners_of_the_scheduler_are_checked_too() {
    let said = refused_with("KOSHA_SCHEDULER_OWNERS", "garbage,billing=127.0.0.1:4000");

    assert!(
        said.contains("scheduler: KOSHA_SCHEDULER_OWNERS entry `garbage`: expected NAME=ADDR"),
        "{said}"
    );
    assert!(
        !said.contains("billing"),
        "a good entry is no problem:\n{said}"
    );
}

#[test]
fn a_value_that_does_not_parse_is_a_bad_setting_naming_its_variable() {
    let said = refused_with("KOSHA_REQUEST_TIMEOUT_SECS", "abc");

    assert!(said.contains("KOSHA_REQUEST_TIMEOUT_SECS"), "{said}");
}
