//! The container's environment and files: ConfigMap and Secret references resolved from
//! the rendering, and files read from mounted Secrets.

use super::*;

pub(super) fn resolve_env(
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

pub(super) fn config_map_data(config_map: &Value) -> BTreeMap<String, String> {
    config_map["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_string()))
        .collect()
}

pub(super) fn secret_data(secret: &Value) -> Result<BTreeMap<String, String>, String> {
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

/// The file a `*_FILE` setting points at, which must lie in a mounted Secret.
pub(super) fn secret_file(
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
