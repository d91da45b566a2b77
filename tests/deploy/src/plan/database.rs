//! The database server a development rendering brings, and its first-start scripts.

use super::env::config_map_data;
use super::network::{selects, service_dns_names};
use super::*;

/// The workload serving a database URL's host, checked against its Service's ports.
pub(super) fn database_workload(
    manifest: &Manifest,
    url: &SecretFile,
    report: &mut Report,
) -> Option<String> {
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
pub(super) fn init_scripts(
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
