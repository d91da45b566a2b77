//! What each Deployment of a rendering would run, and every check that its pieces agree.
//!
//! [`plan`] reads, per Deployment, the container's command, arguments and environment
//! (ConfigMap and Secret references resolved from the same rendering), its gRPC port and
//! probes, the Services in front of it and the Secret file its database URL comes from.
//! It returns every problem it finds at once, each naming the Deployment and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use base64::Engine as _;
use serde_json::Value;

use crate::manifest::{Manifest, object_name};
use crate::settings::Settings;

mod database;
mod env;
mod network;

use database::{database_workload, init_scripts};
use env::{resolve_env, secret_file};
use network::{check_listen, check_probes, check_services_target, endpoints, grpc_port};

/// The setting every service listens on.
pub const LISTEN: &str = "KOSHA_LISTEN";
/// The setting naming the file with the database URL.
pub const DATABASE_URL_FILE: &str = "KOSHA_DATABASE_URL_FILE";
/// Where the PostgreSQL image runs first-start scripts from.
const POSTGRES_INIT_DIR: &str = "/docker-entrypoint-initdb.d";

/// Everything a rendering would run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One entry per Deployment running a Kosha service.
    pub services: Vec<ServicePlan>,
    /// The in-cluster database server, when the rendering has one with init scripts.
    pub database_opt: Option<DatabasePlan>,
}

/// One Deployment's container, as the kubelet would start it.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// The Deployment's name.
    pub deployment: String,
    /// The program, by file name (`command[0]` without its directory).
    pub binary: String,
    /// `command[1..]` followed by `args`.
    pub args: Vec<String>,
    /// The environment, every reference resolved.
    pub env: BTreeMap<String, String>,
    /// The gRPC port: container port, Service target port, probe port and listen port.
    pub port: u16,
    /// The readiness probe's gRPC service name.
    pub readiness_service: String,
    /// The liveness probe's gRPC service name (empty: the server as a whole).
    pub liveness_service: String,
    /// `terminationGracePeriodSeconds`.
    pub grace_secs: u64,
    /// Where the database URL comes from.
    pub database_url: SecretFile,
    /// Settings whose value names a Service, to be pointed at local ports.
    pub endpoints: Vec<Endpoint>,
}

/// A file the container reads from a mounted Secret.
#[derive(Debug, Clone)]
pub struct SecretFile {
    /// The setting holding the path.
    pub setting: String,
    /// The Secret.
    pub secret: String,
    /// The key within the Secret.
    pub key: String,
    /// The file's path below the mount point.
    pub relative_path: String,
    /// The Secret's value.
    pub value: String,
}

/// A `host:port` inside a setting's value that names a Service of the rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The setting.
    pub setting: String,
    /// The exact `host:port` text in the value.
    pub text: String,
    /// The Deployment behind the Service.
    pub deployment: String,
}

/// The database server of a development rendering.
#[derive(Debug, Clone)]
pub struct DatabasePlan {
    /// The StatefulSet (or Deployment) running it.
    pub workload: String,
    /// First-start SQL scripts, by file name, in the order the image runs them.
    pub init_scripts: Vec<(String, String)>,
}

/// Settings of each binary, by binary name; a binary missing here is not checked against.
pub type KnownSettings = BTreeMap<String, Settings>;

/// Builds the plan of `manifest`, or returns every problem found.
pub fn plan(manifest: &Manifest, settings: &KnownSettings) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let grpc_services = grpc_service_names();
    let mut services = Vec::new();
    let mut database_workloads = BTreeSet::new();

    let deployments: Vec<&Value> = manifest.of_kind("Deployment").collect();
    if deployments.is_empty() {
        problems.push("the rendering has no Deployment".to_string());
    }
    for deployment in deployments {
        let mut report = Report {
            name: object_name(deployment).to_string(),
            problems: vec![],
        };
        if let Some(service) =
            plan_deployment(manifest, deployment, settings, &grpc_services, &mut report)
        {
            if let Some(workload) = database_workload(manifest, &service.database_url, &mut report)
            {
                database_workloads.insert(workload);
            }
            services.push(service);
        }
        problems.extend(report.problems);
    }

    let database_opt = match database_workloads.len() {
        0 => None,
        1 => {
            let workload = database_workloads.into_iter().next().unwrap_or_default();
            let init_scripts = init_scripts(manifest, &workload, &mut problems);
            (!init_scripts.is_empty()).then_some(DatabasePlan {
                workload,
                init_scripts,
            })
        }
        _ => {
            problems.push(format!(
                "the services' database URLs point at different servers: {database_workloads:?}"
            ));
            None
        }
    };

    if problems.is_empty() {
        Ok(Plan {
            services,
            database_opt,
        })
    } else {
        Err(problems)
    }
}

/// Problems of one object, each prefixed with its name.
struct Report {
    name: String,
    problems: Vec<String>,
}

impl Report {
    fn push(&mut self, problem: impl std::fmt::Display) {
        self.problems
            .push(format!("Deployment {}: {problem}", self.name));
    }
}

fn plan_deployment(
    manifest: &Manifest,
    deployment: &Value,
    known_settings: &KnownSettings,
    grpc_services: &BTreeSet<String>,
    report: &mut Report,
) -> Option<ServicePlan> {
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let [container] = containers.as_slice() else {
        report.push(format!(
            "expected one container, found {}",
            containers.len()
        ));
        return None;
    };

    // The program: command (the image's entrypoint is not visible here, so it must be set).
    let command: Vec<String> = strings(&container["command"]);
    let Some(program) = command.first() else {
        report.push("the container sets no `command`; the local run needs the program name");
        return None;
    };
    let binary = program.rsplit('/').next().unwrap_or(program).to_string();
    let mut args: Vec<String> = command[1..].to_vec();
    args.extend(strings(&container["args"]));
    check_image(container, &binary, report);

    let env = resolve_env(manifest, container, report);
    let port = grpc_port(container, report)?;
    check_services_target(manifest, deployment, container, port, report);
    let (readiness_service, liveness_service) =
        check_probes(container, port, grpc_services, report);
    check_listen(&env, port, report);

    if let Some(settings) = known_settings.get(&binary) {
        check_settings(&env, &binary, settings, report);
    }
    let grace_secs = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    check_grace(&env, known_settings.get(&binary), grace_secs, report);

    let database_url = secret_file(manifest, pod, container, &env, DATABASE_URL_FILE, report)?;
    let endpoints = endpoints(manifest, &env, report);

    Some(ServicePlan {
        deployment: report.name.clone(),
        binary,
        args,
        env,
        port,
        readiness_service,
        liveness_service,
        grace_secs,
        database_url,
        endpoints,
    })
}

/// Each image holds one binary, named like the image (see the Dockerfile's targets).
fn check_image(container: &Value, binary: &str, report: &mut Report) {
    let image = container["image"].as_str().unwrap_or("");
    let repository = image.split(['@']).next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => repository,
    };
    let image_name = repository.rsplit('/').next().unwrap_or(repository);
    if image_name != binary {
        report.push(format!(
            "the command runs `{binary}` but the image `{image}` holds `{image_name}` only"
        ));
    }
}

/// Every `KOSHA_*` variable set is one the binary reads, and every setting whose default
/// is a loopback address is set.
fn check_settings(
    env: &BTreeMap<String, String>,
    binary: &str,
    settings: &Settings,
    report: &mut Report,
) {
    for name in env.keys().filter(|name| name.starts_with("KOSHA_")) {
        if !settings.knows(name) {
            report.push(format!("{name} is not a setting of {binary}"));
        }
    }
    for name in settings.loopback_defaults() {
        if !env.contains_key(name) {
            report.push(format!(
                "{name} is not set; {binary} would use its loopback default inside the pod"
            ));
        }
    }
}

/// The pod's grace period outlasts the whole shutdown: the pause before the listener
/// closes, the drain of in-flight calls, and any drain of background work a service does
/// after that (settings named `KOSHA_*_DRAIN_SECS`).
fn check_grace(
    env: &BTreeMap<String, String>,
    settings_opt: Option<&Settings>,
    grace_secs: u64,
    report: &mut Report,
) {
    let value = |name: &str, fallback: u64| -> u64 {
        env.get(name)
            .cloned()
            .or_else(|| settings_opt.and_then(|s| s.defaults.get(name).cloned().flatten()))
            .and_then(|text| text.parse().ok())
            .unwrap_or(fallback)
    };
    let delay_ms = value("KOSHA_SHUTDOWN_DELAY_MS", 500);
    let mut needed_secs = value("KOSHA_DRAIN_DEADLINE_SECS", 20) + delay_ms.div_ceil(1000);
    let mut parts = vec!["KOSHA_SHUTDOWN_DELAY_MS", "KOSHA_DRAIN_DEADLINE_SECS"];
    let background: Vec<String> = settings_opt
        .map(|settings| {
            settings
                .defaults
                .keys()
                .filter(|name| name.ends_with("_DRAIN_SECS"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for name in &background {
        needed_secs += value(name, 0);
        parts.push(name);
    }
    if grace_secs <= needed_secs {
        report.push(format!(
            "terminationGracePeriodSeconds {grace_secs} must exceed {} = {needed_secs} s",
            parts.join(" + ")
        ));
    }
}

/// `package.Service` of every gRPC service the protos declare.
pub fn grpc_service_names() -> BTreeSet<String> {
    use prost::Message as _;

    let Ok(set) = prost_types::FileDescriptorSet::decode(kosha_proto::FILE_DESCRIPTOR_SET) else {
        return BTreeSet::new();
    };
    set.file
        .iter()
        .flat_map(|file| {
            let package = file.package().to_string();
            file.service
                .iter()
                .map(move |service| format!("{package}.{}", service.name()))
        })
        .collect()
}

/// The strings of a JSON array (missing: empty).
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| item.as_str().unwrap_or("").to_string())
        .collect()
}

#[cfg(test)]
mod tests;
