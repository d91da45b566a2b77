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

fn resolve_env(
    manifest: &Manifest,
    container: &Value,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = source["prefix"].as_str().unwrap_or("");
        let optional = |reference: &Value| reference["optional"].as_bool().unwrap_or(false);
        if let Some(reference) = source.get("configMapRef") {
            let name = reference["name"].as_str().unwrap_or("");
            match manifest.get("ConfigMap", name) {
                Some(config_map) => {
                    for (key, value) in config_map_data(config_map) {
                        env.insert(format!("{prefix}{key}"), value);
                    }
                }
                None if optional(reference) => {}
                None => report.push(format!(
                    "envFrom names ConfigMap `{name}`, which is not rendered"
                )),
            }
        } else if let Some(reference) = source.get("secretRef") {
            let name = reference["name"].as_str().unwrap_or("");
            match manifest.get("Secret", name) {
                Some(secret) => match secret_data(secret) {
                    Ok(data) => {
                        for (key, value) in data {
                            env.insert(format!("{prefix}{key}"), value);
                        }
                    }
                    Err(problem) => report.push(problem),
                },
                None if optional(reference) => {}
                None => report.push(format!(
                    "envFrom names Secret `{name}`, which is not rendered"
                )),
            }
        }
    }
    // Explicit entries win over envFrom, as in Kubernetes.
    for entry in container["env"].as_array().into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or("").to_string();
        if let Some(value) = entry.get("value") {
            env.insert(name, value.as_str().unwrap_or("").to_string());
            continue;
        }
        let from = &entry["valueFrom"];
        let resolved = if let Some(reference) = from.get("configMapKeyRef") {
            let (map, key) = (
                reference["name"].as_str().unwrap_or(""),
                reference["key"].as_str().unwrap_or(""),
            );
            manifest
                .get("ConfigMap", map)
                .and_then(|config_map| config_map_data(config_map).remove(key))
                .ok_or_else(|| format!("env {name}: ConfigMap `{map}` has no key `{key}`"))
        } else if let Some(reference) = from.get("secretKeyRef") {
            let (secret, key) = (
                reference["name"].as_str().unwrap_or(""),
                reference["key"].as_str().unwrap_or(""),
            );
            manifest
                .get("Secret", secret)
                .and_then(|object| secret_data(object).ok())
                .and_then(|mut data| data.remove(key))
                .ok_or_else(|| format!("env {name}: Secret `{secret}` has no key `{key}`"))
        } else {
            Err(format!(
                "env {name}: only values, ConfigMap and Secret keys can be run locally"
            ))
        };
        match resolved {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(problem) => report.push(problem),
        }
    }
    env
}

fn config_map_data(config_map: &Value) -> BTreeMap<String, String> {
    config_map["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_string()))
        .collect()
}

fn secret_data(secret: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut data = BTreeMap::new();
    for (key, value) in secret["data"].as_object().into_iter().flatten() {
        // kustomize wraps long values; Kubernetes' decoder skips the line breaks too.
        let encoded: String = value
            .as_str()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                format!(
                    "Secret `{}` key `{key}` is not base64 UTF-8",
                    object_name(secret)
                )
            })?;
        data.insert(key.clone(), decoded);
    }
    for (key, value) in secret["stringData"].as_object().into_iter().flatten() {
        data.insert(key.clone(), value.as_str().unwrap_or("").to_string());
    }
    Ok(data)
}

/// The container port named `grpc` (or the only port).
fn grpc_port(container: &Value, report: &mut Report) -> Option<u16> {
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    let chosen = ports
        .iter()
        .find(|port| port["name"] == "grpc")
        .or_else(|| {
            if ports.len() == 1 {
                ports.first()
            } else {
                None
            }
        });
    let port = chosen
        .and_then(|port| port["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok());
    if port.is_none() {
        report.push("no container port named `grpc`");
    }
    port
}

/// Every Service selecting this Deployment's pods must route to the gRPC port.
fn check_services_target(
    manifest: &Manifest,
    deployment: &Value,
    container: &Value,
    port: u16,
    report: &mut Report,
) {
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let mut selected = false;
    for service in manifest.of_kind("Service") {
        if !selects(&service["spec"]["selector"], labels) {
            continue;
        }
        selected = true;
        for service_port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = resolve_target_port(service_port, container);
            if target != Some(port) {
                report.push(format!(
                    "Service `{}` port {} targets {}, but the gRPC container port is {port}",
                    object_name(service),
                    service_port["port"],
                    service_port
                        .get("targetPort")
                        .unwrap_or(&service_port["port"]),
                ));
            }
        }
    }
    if !selected {
        report.push("no Service selects its pods");
    }
}

/// Whether a Service `selector` matches pod `labels` (every selector pair present).
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object().filter(|pairs| !pairs.is_empty()) else {
        return false;
    };
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// A Service port's target as a container port number (a name is looked up).
fn resolve_target_port(service_port: &Value, container: &Value) -> Option<u16> {
    let target = service_port
        .get("targetPort")
        .unwrap_or(&service_port["port"]);
    let number = match target {
        Value::Number(number) => number.as_u64(),
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|port| port["name"] == name.as_str())
            .and_then(|port| port["containerPort"].as_u64()),
        _ => None,
    };
    number.and_then(|n| u16::try_from(n).ok())
}

/// Readiness asks for the service's own health name, liveness for the empty name, both
/// (and the start-up probe) on the gRPC port.
fn check_probes(
    container: &Value,
    port: u16,
    grpc_services: &BTreeSet<String>,
    report: &mut Report,
) -> (String, String) {
    let mut names = Vec::new();
    for (probe, required) in [
        ("readinessProbe", true),
        ("livenessProbe", true),
        ("startupProbe", false),
    ] {
        let grpc = &container[probe]["grpc"];
        if grpc.is_null() {
            if required {
                report.push(format!("{probe} is not a native gRPC probe"));
            }
            names.push(String::new());
            continue;
        }
        if grpc["port"].as_u64() != Some(u64::from(port)) {
            report.push(format!(
                "{probe} probes port {}, the gRPC port is {port}",
                grpc["port"]
            ));
        }
        names.push(grpc["service"].as_str().unwrap_or("").to_string());
    }
    let readiness = names[0].clone();
    let liveness = names[1].clone();
    if readiness.is_empty() {
        report.push("readinessProbe must name the service (the empty name is the whole server)");
    } else if !grpc_services.contains(&readiness) {
        report.push(format!(
            "readinessProbe names `{readiness}`, which no proto declares"
        ));
    }
    if !liveness.is_empty() {
        report.push(format!(
            "livenessProbe names `{liveness}`; liveness asks the whole server (the empty name)"
        ));
    }
    if !names[2].is_empty() {
        report.push("startupProbe should ask the whole server (the empty name)");
    }
    (readiness, liveness)
}

/// The listen address must be every interface on the gRPC port.
fn check_listen(env: &BTreeMap<String, String>, port: u16, report: &mut Report) {
    let Some(listen) = env.get(LISTEN) else {
        report.push(format!(
            "{LISTEN} is not set; the service would listen on loopback only"
        ));
        return;
    };
    match listen.parse::<SocketAddr>() {
        Ok(address) if address.port() != port => report.push(format!(
            "{LISTEN}={listen} listens on port {}, the gRPC container port is {port}",
            address.port()
        )),
        Ok(address) if !address.ip().is_unspecified() => report.push(format!(
            "{LISTEN}={listen} is not reachable from other pods; listen on 0.0.0.0"
        )),
        Ok(_) => {}
        Err(error) => report.push(format!("{LISTEN}={listen}: {error}")),
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

/// The file a `*_FILE` setting points at, which must lie in a mounted Secret.
fn secret_file(
    manifest: &Manifest,
    pod: &Value,
    container: &Value,
    env: &BTreeMap<String, String>,
    setting: &str,
    report: &mut Report,
) -> Option<SecretFile> {
    let Some(path) = env.get(setting) else {
        report.push(format!(
            "{setting} is not set; the service would use a SQLite file"
        ));
        return None;
    };
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|mount| {
            let mount_path = mount["mountPath"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('/');
            !mount_path.is_empty() && path.starts_with(&format!("{mount_path}/"))
        });
    let Some(mount) = mount else {
        report.push(format!("{setting}={path} is under no volume mount"));
        return None;
    };
    let mount_path = mount["mountPath"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('/');
    let relative_path = path[mount_path.len() + 1..].to_string();
    let volume_name = mount["name"].as_str().unwrap_or("");
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == volume_name);
    let Some(secret_name) = volume.and_then(|v| v["secret"]["secretName"].as_str()) else {
        report.push(format!(
            "{setting}={path}: volume `{volume_name}` is not a Secret"
        ));
        return None;
    };
    let items = volume
        .map(|v| &v["secret"]["items"])
        .and_then(Value::as_array);
    let key = match items {
        Some(items) => match items
            .iter()
            .find(|item| item["path"] == relative_path.as_str())
        {
            Some(item) => item["key"].as_str().unwrap_or("").to_string(),
            None => {
                report.push(format!(
                    "{setting}={path}: Secret volume `{volume_name}` maps no item to \
                     `{relative_path}`"
                ));
                return None;
            }
        },
        None => relative_path.clone(),
    };
    let Some(secret) = manifest.get("Secret", secret_name) else {
        report.push(format!(
            "{setting}: Secret `{secret_name}` is not in the rendering"
        ));
        return None;
    };
    let value = match secret_data(secret) {
        Ok(mut data) => data.remove(&key),
        Err(problem) => {
            report.push(problem);
            return None;
        }
    };
    let Some(value) = value else {
        report.push(format!(
            "{setting}: Secret `{secret_name}` has no key `{key}`"
        ));
        return None;
    };
    Some(SecretFile {
        setting: setting.to_string(),
        secret: secret_name.to_string(),
        key,
        relative_path,
        value,
    })
}

/// Every `host:port` in a setting that names a Service port, resolved to the Deployment
/// behind it. A `*_ADDR` setting must be exactly one such address.
fn endpoints(
    manifest: &Manifest,
    env: &BTreeMap<String, String>,
    report: &mut Report,
) -> Vec<Endpoint> {
    let namespace = manifest.namespace().unwrap_or("default");
    let mut found = Vec::new();
    for (setting, value) in env {
        if setting == LISTEN {
            continue;
        }
        let is_address = setting.ends_with("_ADDR");
        let tokens: Vec<&str> = if is_address {
            vec![value.as_str()]
        } else {
            value
                .split([',', '=', ' '])
                .filter(|token| token.contains(':'))
                .collect()
        };
        for token in tokens {
            let host_port = token.split_once("://").map_or(token, |(_, rest)| rest);
            let host_port = host_port.trim_end_matches('/');
            match service_endpoint(manifest, namespace, host_port) {
                Ok(deployment) => found.push(Endpoint {
                    setting: setting.clone(),
                    text: host_port.to_string(),
                    deployment,
                }),
                Err(why) if is_address => report.push(format!("{setting}={value}: {why}")),
                Err(_) => {}
            }
        }
    }
    found
}

/// The Deployment behind Service address `host:port`.
fn service_endpoint(
    manifest: &Manifest,
    namespace: &str,
    host_port: &str,
) -> Result<String, String> {
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err("expected host:port".to_string());
    };
    let port: u64 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port"))?;
    let service = manifest
        .of_kind("Service")
        .find(|service| {
            service_dns_names(object_name(service), namespace).contains(&host.to_string())
        })
        .ok_or_else(|| format!("`{host}` is not the DNS name of any Service in the rendering"))?;
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !ports.iter().any(|p| p["port"].as_u64() == Some(port)) {
        let offered: Vec<String> = ports.iter().map(|p| p["port"].to_string()).collect();
        return Err(format!(
            "Service `{}` has no port {port} (it has {})",
            object_name(service),
            offered.join(", ")
        ));
    }
    let selector = &service["spec"]["selector"];
    let backing: Vec<&str> = manifest
        .of_kind("Deployment")
        .filter(|d| selects(selector, &d["spec"]["template"]["metadata"]["labels"]))
        .map(object_name)
        .collect();
    match backing.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "Service `{}` selects no Deployment",
            object_name(service)
        )),
        many => Err(format!(
            "Service `{}` selects several Deployments: {many:?}",
            object_name(service)
        )),
    }
}

/// The names a Service answers to from a pod of the same namespace.
fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The workload serving a database URL's host, checked against its Service's ports.
fn database_workload(manifest: &Manifest, url: &SecretFile, report: &mut Report) -> Option<String> {
    let parsed = match url::Url::parse(&url.value) {
        Ok(parsed) => parsed,
        Err(error) => {
            report.push(format!(
                "Secret `{}` key `{}` is not a URL: {error}",
                url.secret, url.key
            ));
            return None;
        }
    };
    if parsed.scheme() != "postgres" && parsed.scheme() != "postgresql" {
        report.push(format!(
            "Secret `{}`: the database URL is not a PostgreSQL URL",
            url.secret
        ));
        return None;
    }
    let host = parsed.host_str().unwrap_or("");
    let port = u64::from(parsed.port().unwrap_or(5432));
    let namespace = manifest.namespace().unwrap_or("default");
    let Some(service) = manifest.of_kind("Service").find(|service| {
        service_dns_names(object_name(service), namespace).contains(&host.to_string())
    }) else {
        // A server outside the rendering (production's operator-managed cluster).
        return None;
    };
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !ports.iter().any(|p| p["port"].as_u64() == Some(port)) {
        report.push(format!(
            "Secret `{}`: the database URL uses port {port}, Service `{host}` does not expose it",
            url.secret
        ));
    }
    let selector = &service["spec"]["selector"];
    let workload = manifest
        .objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
        .find(|o| selects(selector, &o["spec"]["template"]["metadata"]["labels"]));
    match workload {
        Some(workload) => Some(format!(
            "{}/{}",
            workload["kind"].as_str().unwrap_or(""),
            object_name(workload)
        )),
        None => {
            report.push(format!(
                "Secret `{}`: Service `{host}` selects no workload",
                url.secret
            ));
            None
        }
    }
}

/// The SQL files the database image runs on first start: the ConfigMap mounted at its
/// init directory, in file name order.
fn init_scripts(
    manifest: &Manifest,
    workload: &str,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let (kind, name) = workload.split_once('/').unwrap_or(("", workload));
    let Some(object) = manifest.get(kind, name) else {
        return Vec::new();
    };
    let pod = &object["spec"]["template"]["spec"];
    let mut scripts = Vec::new();
    for container in pod["containers"].as_array().into_iter().flatten() {
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            if mount["mountPath"].as_str().map(|p| p.trim_end_matches('/'))
                != Some(POSTGRES_INIT_DIR)
            {
                continue;
            }
            let volume_name = &mount["name"];
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| &v["name"] == volume_name);
            let Some(map_name) = volume.and_then(|v| v["configMap"]["name"].as_str()) else {
                problems.push(format!(
                    "{workload}: {POSTGRES_INIT_DIR} is not a ConfigMap volume"
                ));
                continue;
            };
            match manifest.get("ConfigMap", map_name) {
                Some(config_map) => scripts.extend(
                    config_map_data(config_map)
                        .into_iter()
                        .filter(|(file, _)| file.ends_with(".sql")),
                ),
                None => problems.push(format!(
                    "{workload}: ConfigMap `{map_name}` is not rendered"
                )),
            }
        }
    }
    scripts
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
mod tests {
    //! Each test changes one thing in the real rendering of an overlay, the way a careless
    //! edit of the base would, and expects the plan to name that thing.

    use serde_json::json;

    use super::*;
    use crate::manifest::{RenderError, render};

    /// The rendered overlay, or `None` (with a notice) when kubectl is missing.
    fn rendered(overlay: &str) -> Option<Manifest> {
        let dir = crate::workspace_root().join("k8s/overlays").join(overlay);
        match render(&dir) {
            Ok(manifest) => Some(manifest),
            Err(RenderError::NoKubectl(why)) => {
                kosha_testkit::skip_or_fail("kubectl", &why);
                None
            }
            Err(error) => panic!("render {overlay}: {error}"),
        }
    }

    /// What the catalog binary reads, known without building it: the common settings.
    fn catalog_settings() -> KnownSettings {
        use clap::Args as _;
        let command = kosha_runtime::config::CommonArgs::augment_args(clap::Command::new("c"));
        BTreeMap::from([("kosha-catalog".to_string(), Settings::of_command(&command))])
    }

    fn problems_of(manifest: &Manifest) -> Vec<String> {
        match plan(manifest, &catalog_settings()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    fn assert_reported(manifest: &Manifest, expected: &str) {
        let problems = problems_of(manifest);
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "expected a problem containing {expected:?}, got {problems:#?}"
        );
    }

    fn container<'a>(manifest: &'a mut Manifest, deployment: &str) -> &'a mut Value {
        let object = manifest
            .get_mut("Deployment", deployment)
            .expect("deployment");
        &mut object["spec"]["template"]["spec"]["containers"][0]
    }

    fn config_map<'a>(
        manifest: &'a mut Manifest,
        prefix: &str,
    ) -> &'a mut serde_json::Map<String, Value> {
        manifest
            .get_generated_mut("ConfigMap", prefix)
            .expect("config map")["data"]
            .as_object_mut()
            .expect("data")
    }

    #[test]
    fn the_dev_overlay_as_committed_passes_every_check() {
        let Some(manifest) = rendered("dev") else {
            return;
        };

        let plan = plan(&manifest, &catalog_settings()).unwrap_or_else(|p| panic!("{p:#?}"));

        let names: Vec<&str> = plan
            .services
            .iter()
            .map(|s| s.deployment.as_str())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        let catalog = plan
            .services
            .iter()
            .find(|s| s.deployment == "catalog")
            .unwrap();
        assert_eq!(catalog.binary, "kosha-catalog");
        assert_eq!(catalog.port, 50051);
        assert_eq!(catalog.readiness_service, "kosha.catalog.v1.CatalogService");
        assert_eq!(catalog.liveness_service, "");
        assert!(
            catalog
                .database_url
                .value
                .starts_with("postgres://kosha_catalog:")
        );
        let database = plan
            .database_opt
            .expect("the dev overlay has its own database");
        assert_eq!(database.workload, "StatefulSet/postgres");
        assert!(
            database
                .init_scripts
                .iter()
                .any(|(_, sql)| sql.contains("CREATE DATABASE"))
        );
    }

    #[test]
    fn every_address_setting_resolves_to_the_deployment_behind_its_service() {
        let Some(manifest) = rendered("dev") else {
            return;
        };

        let plan = plan(&manifest, &KnownSettings::new()).unwrap_or_else(|p| panic!("{p:#?}"));

        let order = plan
            .services
            .iter()
            .find(|s| s.deployment == "order")
            .unwrap();
        let targets: BTreeSet<&str> = order
            .endpoints
            .iter()
            .map(|e| e.deployment.as_str())
            .collect();
        assert_eq!(
            targets,
            BTreeSet::from(["catalog", "inventory", "scheduler"])
        );
        let scheduler = plan
            .services
            .iter()
            .find(|s| s.deployment == "scheduler")
            .unwrap();
        let targets: BTreeSet<&str> = scheduler
            .endpoints
            .iter()
            .map(|e| e.deployment.as_str())
            .collect();
        assert_eq!(
            targets,
            BTreeSet::from(["inventory", "order", "purchase-order"])
        );
    }

    #[test]
    fn the_prod_overlay_passes_with_the_secrets_its_operator_provides() {
        let Some(mut manifest) = rendered("prod") else {
            return;
        };
        let namespace = manifest.namespace().unwrap_or("kosha").to_string();
        for service in [
            "catalog",
            "inventory",
            "scheduler",
            "order",
            "purchase-order",
        ] {
            let role = format!("kosha_{}", service.replace('-', "_"));
            manifest.objects.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": format!("kosha-{service}-database"), "namespace": namespace},
                "stringData": {
                    "url": format!("postgres://{role}:pw@kosha-postgres-rw:5432/{role}")
                },
            }));
        }

        let plan = plan(&manifest, &catalog_settings()).unwrap_or_else(|p| panic!("{p:#?}"));

        assert_eq!(plan.services.len(), 5);
        assert!(
            plan.database_opt.is_none(),
            "the prod database is the operator's cluster"
        );
    }

    #[test]
    fn a_container_port_the_service_does_not_target_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "inventory")["ports"][0]["containerPort"] = json!(50052);

        assert_reported(
            &manifest,
            "Deployment inventory: readinessProbe probes port 50051",
        );
        assert_reported(
            &manifest,
            "KOSHA_LISTEN=0.0.0.0:50051 listens on port 50051",
        );
    }

    #[test]
    fn a_service_target_port_other_than_the_grpc_port_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        let service = manifest.get_mut("Service", "order").unwrap();
        service["spec"]["ports"][0]["targetPort"] = json!(8080);

        assert_reported(&manifest, "Service `order` port 50051 targets 8080");
    }

    #[test]
    fn a_readiness_probe_on_another_port_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "scheduler")["readinessProbe"]["grpc"]["port"] = json!(50052);

        assert_reported(
            &manifest,
            "Deployment scheduler: readinessProbe probes port 50052",
        );
    }

    #[test]
    fn a_readiness_probe_naming_no_grpc_service_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "catalog")["readinessProbe"]["grpc"]["service"] =
            json!("kosha.catalog.v1.Catalog");

        assert_reported(
            &manifest,
            "`kosha.catalog.v1.Catalog`, which no proto declares",
        );
    }

    #[test]
    fn a_liveness_probe_asking_for_the_service_name_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "order")["livenessProbe"]["grpc"]["service"] =
            json!("kosha.order.v1.OrderService");

        assert_reported(
            &manifest,
            "livenessProbe names `kosha.order.v1.OrderService`",
        );
    }

    #[test]
    fn a_listen_port_other_than_the_container_port_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        config_map(&mut manifest, "kosha-common")
            .insert("KOSHA_LISTEN".into(), json!("0.0.0.0:50061"));

        assert_reported(
            &manifest,
            "Deployment catalog: KOSHA_LISTEN=0.0.0.0:50061 listens on port 50061",
        );
    }

    #[test]
    fn a_loopback_listen_address_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        config_map(&mut manifest, "kosha-common")
            .insert("KOSHA_LISTEN".into(), json!("127.0.0.1:50051"));

        assert_reported(&manifest, "is not reachable from other pods");
    }

    #[test]
    fn a_misspelt_setting_name_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        let data = config_map(&mut manifest, "kosha-common");
        let value = data.remove("KOSHA_LISTEN").unwrap();
        data.insert("KOSHA_LISTN".into(), value);

        assert_reported(
            &manifest,
            "Deployment catalog: KOSHA_LISTN is not a setting of kosha-catalog",
        );
        assert_reported(&manifest, "Deployment catalog: KOSHA_LISTEN is not set");
    }

    #[test]
    fn an_address_naming_no_service_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        config_map(&mut manifest, "kosha-inventory")
            .insert("KOSHA_SCHEDULER_ADDR".into(), json!("schedular:50051"));

        assert_reported(&manifest, "`schedular` is not the DNS name of any Service");
    }

    #[test]
    fn an_address_on_a_port_the_service_does_not_expose_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        config_map(&mut manifest, "kosha-order").insert(
            "KOSHA_CATALOG_ADDR".into(),
            json!("catalog.kosha-dev.svc.cluster.local:50052"),
        );

        assert_reported(
            &manifest,
            "Service `catalog` has no port 50052 (it has 50051)",
        );
    }

    #[test]
    fn a_database_url_file_outside_the_secret_mount_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        config_map(&mut manifest, "kosha-common")
            .insert("KOSHA_DATABASE_URL_FILE".into(), json!("/etc/kosha/db/url"));

        assert_reported(
            &manifest,
            "KOSHA_DATABASE_URL_FILE=/etc/kosha/db/url is under no volume mount",
        );
    }

    #[test]
    fn a_secret_item_mapped_to_another_file_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        let deployment = manifest.get_mut("Deployment", "purchase-order").unwrap();
        deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"][0]["path"] =
            json!("database-url");

        assert_reported(&manifest, "maps no item to `url`");
    }

    #[test]
    fn a_database_url_on_a_port_the_database_service_lacks_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        let secret = manifest
            .get_generated_mut("Secret", "kosha-catalog-database")
            .unwrap();
        secret["data"] = json!({});
        secret["stringData"] =
            json!({"url": "postgres://kosha_catalog:x@postgres:5433/kosha_catalog"});

        assert_reported(&manifest, "the database URL uses port 5433");
    }

    #[test]
    fn a_grace_period_shorter_than_the_drain_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        let deployment = manifest.get_mut("Deployment", "catalog").unwrap();
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(20);

        assert_reported(&manifest, "terminationGracePeriodSeconds 20 must exceed");
    }

    #[test]
    fn a_command_the_image_does_not_hold_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "order")["command"] = json!(["/usr/local/bin/kosha-catalog"]);

        assert_reported(&manifest, "the command runs `kosha-catalog` but the image");
    }

    #[test]
    fn a_config_map_reference_that_is_not_rendered_is_reported() {
        let Some(mut manifest) = rendered("dev") else {
            return;
        };
        container(&mut manifest, "scheduler")["envFrom"][1]["configMapRef"]["name"] =
            json!("kosha-schedular");

        assert_reported(&manifest, "envFrom names ConfigMap `kosha-schedular`");
    }
}
