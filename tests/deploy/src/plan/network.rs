//! Ports, probes and addresses: what must agree for calls to reach the service.

use super::*;

/// The container port named `grpc` (or the only port).
pub(super) fn grpc_port(container: &Value, report: &mut Report) -> Option<u16> {
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
pub(super) fn check_services_target(
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
pub(super) fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object().filter(|pairs| !pairs.is_empty()) else {
        return false;
    };
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// A Service port's target as a container port number (a name is looked up).
pub(super) fn resolve_target_port(service_port: &Value, container: &Value) -> Option<u16> {
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
pub(super) fn check_probes(
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
pub(super) fn check_listen(env: &BTreeMap<String, String>, port: u16, report: &mut Report) {
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

/// Every `host:port` in a setting that names a Service port, resolved to the Deployment
/// behind it. A `*_ADDR` setting must be exactly one such address.
pub(super) fn endpoints(
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
                Ok(deployment) => {
                    if let Some(named) = named_service(manifest, setting)
                        && named != deployment
                    {
                        report.push(format!(
                            "{setting}={value} reaches the {deployment} pods, not {named}"
                        ));
                    }
                    found.push(Endpoint {
                        setting: setting.clone(),
                        text: host_port.to_string(),
                        deployment,
                    });
                }
                Err(why) if is_address => report.push(format!("{setting}={value}: {why}")),
                Err(_) => {}
            }
        }
    }
    found
}

/// The Deployment a `KOSHA_<SERVICE>_ADDR` setting is named after, when the rendering has
/// one of that name (`KOSHA_PURCHASE_ORDER_ADDR` is `purchase-order`).
fn named_service(manifest: &Manifest, setting: &str) -> Option<String> {
    let service = setting.strip_prefix("KOSHA_")?.strip_suffix("_ADDR")?;
    let name = service.to_ascii_lowercase().replace('_', "-");
    manifest.get("Deployment", &name).map(|_| name)
}

/// The Deployment behind Service address `host:port`.
pub(super) fn service_endpoint(
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
pub(super) fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}
