//! A rendered kustomize overlay: every object it produces, as JSON values.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Why an overlay could not be rendered.
#[derive(Debug)]
pub enum RenderError {
    /// `kubectl` is not installed: the caller decides whether that skips or fails.
    NoKubectl(String),
    /// `kubectl kustomize` ran and failed, or printed something that is not YAML.
    Failed(anyhow::Error),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoKubectl(why) => write!(f, "kubectl is not available: {why}"),
            Self::Failed(error) => write!(f, "{error:#}"),
        }
    }
}

/// Every object of one rendering, in the order kustomize printed them.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The objects.
    pub objects: Vec<Value>,
}

/// Renders the overlay in `dir` with `kubectl kustomize`.
pub fn render(dir: &Path) -> Result<Manifest, RenderError> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(error) => return Err(RenderError::NoKubectl(error.to_string())),
    };
    if !output.status.success() {
        return Err(RenderError::Failed(anyhow::anyhow!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|error| RenderError::Failed(anyhow::anyhow!("rendering is not UTF-8: {error}")))?;
    Manifest::parse(&text).map_err(RenderError::Failed)
}

impl Manifest {
    /// Reads a multi-document YAML stream; empty documents are dropped.
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        use serde::Deserialize as _;

        let mut objects = Vec::new();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
            let value = Value::deserialize(document)
                .with_context(|| format!("YAML document {} of the rendering", index + 1))?;
            match value {
                Value::Null => {}
                Value::Object(_) => objects.push(value),
                other => bail!("YAML document {} is not an object: {other}", index + 1),
            }
        }
        Ok(Self { objects })
    }

    /// Objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |object| object["kind"].as_str() == Some(kind))
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|object| object["kind"].as_str() == Some(kind) && object_name(object) == name)
    }

    /// The object of `kind` named `name`, to change it (tests of the checks do).
    pub fn get_mut(&mut self, kind: &str, name: &str) -> Option<&mut Value> {
        self.objects
            .iter_mut()
            .find(|object| object["kind"] == kind && object_name(object) == name)
    }

    /// The object of `kind` whose name starts with `prefix`: generated ConfigMaps and
    /// Secrets carry a content hash after their name.
    pub fn get_generated_mut(&mut self, kind: &str, prefix: &str) -> Option<&mut Value> {
        self.objects.iter_mut().find(|object| {
            object["kind"] == kind
                && object_name(object)
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
    }

    /// The namespace the objects are in (kustomize sets one for the whole overlay).
    pub fn namespace(&self) -> Option<&str> {
        self.objects
            .iter()
            .find_map(|object| object["metadata"]["namespace"].as_str())
    }
}

/// `metadata.name` of an object, or "" when it has none.
pub fn object_name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_read_in_order_and_empty_ones_dropped() {
        let yaml = "kind: A\nmetadata: {name: a}\n---\n---\nkind: B\nmetadata: {name: b}\n";

        let manifest = Manifest::parse(yaml).unwrap();

        assert_eq!(manifest.objects.len(), 2);
        assert_eq!(object_name(manifest.get("B", "b").unwrap()), "b");
        assert!(manifest.get("A", "b").is_none());
    }

    #[test]
    fn a_document_that_is_not_an_object_is_refused() {
        let error = Manifest::parse("kind: A\n---\n- 1\n- 2\n").unwrap_err();
        assert!(format!("{error:#}").contains("document 2"), "{error:#}");
    }

    #[test]
    fn generated_names_are_found_by_prefix_only_up_to_the_hash() {
        let yaml = "kind: ConfigMap\nmetadata: {name: kosha-order-abc123}\n---\n\
                    kind: ConfigMap\nmetadata: {name: kosha-purchase-order-def456}\n";
        let mut manifest = Manifest::parse(yaml).unwrap();

        let found = manifest
            .get_generated_mut("ConfigMap", "kosha-order")
            .unwrap();

        assert_eq!(object_name(found), "kosha-order-abc123");
    }
}
