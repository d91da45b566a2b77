//! The development overlay, run on this machine: every Deployment's binary started with the
//! environment its manifest gives it, a throwaway PostgreSQL set up by the overlay's own
//! init script standing in for the StatefulSet, the readiness and liveness probes asked
//! through `grpc.health.v1`, a smoke flow across the services, and a SIGTERM that each
//! process must survive within its pod's grace period.
//!
//! The service binaries are other crates' binaries, which cargo does not build for this
//! test: build them first (`cargo build --workspace --bins`). A service whose binary does
//! nothing yet (no settings in its `--help`) is reported and left out, with the smoke
//! steps that need it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kosha_deploy_tests::launch::{self, Process};
use kosha_deploy_tests::manifest::{Manifest, RenderError, render};
use kosha_deploy_tests::plan::{self, KnownSettings, Plan};
use kosha_deploy_tests::settings::Settings;
use kosha_deploy_tests::workspace_root;
use kosha_testkit::{PgCluster, Store};

mod smoke;

/// How long a service may take from start to SERVING (migrations included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_overlay_runs_locally_on_postgres_and_serves_a_smoke_flow() {
    // Arrange: the rendering, the binaries it names, and a database set up as the
    // overlay's PostgreSQL would be.
    if !kosha_testkit::store_enabled(Store::Postgres) {
        eprintln!(
            "notice: the local run of the dev overlay needs PostgreSQL; \
             KOSHA_TEST_STORES leaves it out"
        );
        return;
    }
    let Some(manifest) = rendered_dev() else {
        return;
    };
    let binaries = Binaries::find(&manifest);
    let plan = plan::plan(&manifest, &binaries.settings).unwrap_or_else(|problems| {
        panic!("the dev overlay is inconsistent:\n{}", problems.join("\n"))
    });
    let cluster = match PgCluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            kosha_testkit::skip_or_fail("PostgreSQL", &why);
            return;
        }
    };
    let work = tempfile::Builder::new()
        .prefix("kosha-deploy-")
        .tempdir()
        .expect("temp dir");
    let database_urls = set_up_database(&cluster, &plan, work.path());

    // Act: start every implemented service with its manifest's environment.
    let ports: BTreeMap<String, u16> = plan
        .services
        .iter()
        .map(|service| {
            (
                service.deployment.clone(),
                launch::free_port().expect("free port"),
            )
        })
        .collect();
    let mut running: Vec<(Process, &plan::ServicePlan)> = Vec::new();
    for service in &plan.services {
        if binaries.not_implemented.contains(&service.binary) {
            continue;
        }
        let env = launch::local_env(service, &ports, &database_urls[&service.deployment])
            .expect("local environment");
        let process = Process::start(
            &service.deployment,
            &binaries.paths[&service.binary],
            &service.args,
            &env,
            ports[&service.deployment],
            work.path().join(format!("{}.log", service.deployment)),
        )
        .expect("start service");
        running.push((process, service));
    }

    // Assert: every probe passes, the smoke flow runs, and SIGTERM drains in time.
    for (process, service) in &mut running {
        process
            .wait_serving(&service.readiness_service, READY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        process
            .wait_serving(&service.liveness_service, READY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "deploy: {} ready: readiness `{}` and liveness `{}` SERVING on 127.0.0.1:{}",
            service.deployment, service.readiness_service, service.liveness_service, process.port
        );
    }
    let addresses: BTreeMap<String, String> = running
        .iter()
        .map(|(process, service)| {
            (
                service.deployment.clone(),
                format!("http://127.0.0.1:{}", process.port),
            )
        })
        .collect();
    // On a failed step, the services' own logs say why: print them before failing.
    let report = match tokio::spawn(async move { smoke::run(&addresses).await }).await {
        Ok(report) => report,
        Err(failure) => {
            for (process, _) in &running {
                eprintln!(
                    "--- {} log (end) ---\n{}",
                    process.deployment,
                    process.log_tail()
                );
            }
            std::panic::resume_unwind(failure.into_panic());
        }
    };
    for (process, _) in &running {
        if let Some(kib) = process.peak_rss_kib() {
            eprintln!(
                "deploy: {} peak resident memory {:.1} MiB",
                process.deployment,
                kib as f64 / 1024.0
            );
        }
    }
    let stopping = Instant::now();
    for (process, _) in &running {
        process.send_sigterm().expect("SIGTERM");
    }
    for (process, service) in &mut running {
        let deadline = stopping + Duration::from_secs(service.grace_secs);
        let status = process
            .wait_exit(deadline)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            service.deployment,
            process.log_tail()
        );
        let log = std::fs::read_to_string(&process.log).unwrap_or_default();
        assert!(
            log.contains("NOT_SERVING"),
            "{} did not report NOT_SERVING while draining",
            service.deployment
        );
    }
    eprintln!(
        "deploy: every service drained and exited {:?} after SIGTERM",
        stopping.elapsed()
    );

    let started: Vec<&str> = running.iter().map(|(_, s)| s.deployment.as_str()).collect();
    eprintln!("deploy: services run from the dev overlay: {started:?}");
    if !binaries.not_implemented.is_empty() {
        eprintln!(
            "notice: not run, their binaries do nothing yet: {:?}",
            binaries.not_implemented
        );
    }
    eprintln!("deploy: smoke steps run: {:?}", report.ran);
    if !report.skipped.is_empty() {
        eprintln!("notice: smoke steps skipped: {:?}", report.skipped);
    }
    assert!(
        !started.is_empty(),
        "no service of the dev overlay could be run"
    );
}

#[test]
fn a_misspelt_setting_in_the_dev_overlay_is_caught_against_each_built_binary() {
    // Arrange: every implemented service's container gets one setting its binary lacks.
    let Some(mut manifest) = rendered_dev() else {
        return;
    };
    let binaries = Binaries::find(&manifest);
    let mut expected = Vec::new();
    for deployment in manifest
        .objects
        .iter_mut()
        .filter(|o| o["kind"] == "Deployment")
    {
        let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
        let program = container["command"][0]
            .as_str()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        if binaries.settings.contains_key(&program) {
            let env = container["env"].as_array().cloned().unwrap_or_default();
            let mut env = env;
            env.push(serde_json::json!({"name": "KOSHA_LISTEN_ADDRESS", "value": "0.0.0.0:50051"}));
            container["env"] = serde_json::Value::Array(env);
            expected.push(format!(
                "KOSHA_LISTEN_ADDRESS is not a setting of {program}"
            ));
        }
    }

    // Act
    let problems = plan::plan(&manifest, &binaries.settings)
        .err()
        .unwrap_or_default();

    // Assert
    assert!(!expected.is_empty(), "no service binary is implemented yet");
    for problem in &expected {
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "missing {problem:?} in {problems:#?}"
        );
    }
}

/// The rendered dev overlay, or `None` after a notice when kubectl is missing (a failure
/// under CI).
fn rendered_dev() -> Option<Manifest> {
    match render(&workspace_root().join("k8s/overlays/dev")) {
        Ok(manifest) => Some(manifest),
        Err(RenderError::NoKubectl(why)) => {
            kosha_testkit::skip_or_fail("kubectl", &why);
            None
        }
        Err(error) => panic!("{error}"),
    }
}

/// The service binaries the rendering names, with the settings each reads.
struct Binaries {
    paths: BTreeMap<String, PathBuf>,
    settings: KnownSettings,
    not_implemented: Vec<String>,
}

impl Binaries {
    /// Finds every binary; a missing one fails the test with the command that builds it.
    fn find(manifest: &Manifest) -> Self {
        let mut binaries = Self {
            paths: BTreeMap::new(),
            settings: KnownSettings::new(),
            not_implemented: vec![],
        };
        for deployment in manifest.of_kind("Deployment") {
            let program = deployment["spec"]["template"]["spec"]["containers"][0]["command"][0]
                .as_str()
                .unwrap_or("");
            let name = program.rsplit('/').next().unwrap_or(program).to_string();
            let path = launch::locate_binary(&name).unwrap_or_else(|e| panic!("{e:#}"));
            match Settings::of_binary(&path).unwrap_or_else(|e| panic!("{e:#}")) {
                Some(settings) => {
                    binaries.settings.insert(name.clone(), settings);
                }
                None => {
                    eprintln!(
                        "notice: {name} lists no settings: its service is not implemented yet"
                    );
                    binaries.not_implemented.push(name.clone());
                }
            }
            binaries.paths.insert(name, path);
        }
        binaries
    }
}

/// Runs the overlay's init scripts on `cluster`, checks each service's role can log in to
/// its database, and writes each service's database URL file (the Secret's URL, pointed at
/// the local server). Returns the file of each Deployment.
fn set_up_database(
    cluster: &PgCluster,
    plan: &Plan,
    dir: &std::path::Path,
) -> BTreeMap<String, PathBuf> {
    let database = plan
        .database_opt
        .as_ref()
        .expect("the dev overlay runs its own PostgreSQL with init scripts");
    for (file, sql) in &database.init_scripts {
        let path = dir.join(file);
        std::fs::write(&path, sql).expect("write init script");
        psql(
            cluster,
            &cluster.url("postgres"),
            &["-v", "ON_ERROR_STOP=1", "-f", &path.display().to_string()],
        );
        eprintln!("deploy: ran {file} from {}", database.workload);
    }

    let mut files = BTreeMap::new();
    for service in &plan.services {
        let mut url = url::Url::parse(&service.database_url.value).expect("database URL");
        let (user, database_name) = (
            url.username().to_string(),
            url.path().trim_start_matches('/').to_string(),
        );
        url.set_host(Some("localhost")).expect("host");
        url.set_port(None).expect("port");
        url.set_query(Some(&format!(
            "host={}&port={}",
            cluster.dir.display(),
            cluster.port
        )));
        let local = url.to_string();

        let who = psql(
            cluster,
            &local,
            &[
                "-tA",
                "-c",
                "SELECT current_user || '/' || current_database()",
            ],
        );
        assert_eq!(
            who.trim(),
            format!("{user}/{database_name}"),
            "{}: the URL's role and database",
            service.deployment
        );

        let file = dir
            .join(&service.deployment)
            .join(&service.database_url.relative_path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("secret dir");
        std::fs::write(&file, format!("{local}\n")).expect("write URL file");
        files.insert(service.deployment.clone(), file);
    }
    files
}

/// Runs `psql` against `url` and returns its output; fails the test on an error.
fn psql(cluster: &PgCluster, url: &str, args: &[&str]) -> String {
    let output = Command::new(cluster.bin_dir.join("psql"))
        .arg("-X")
        .arg("--no-password")
        .arg(url)
        .args(args)
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
