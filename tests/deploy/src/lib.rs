//! Checks that the Kubernetes manifests under `k8s/` run the services they describe.
//!
//! The manifests are rendered with `kubectl kustomize`, exactly as `kubectl apply -k` would
//! render them, and read back as plain objects. From the development overlay a launch plan
//! is built for every Deployment: its binary, arguments and environment (ConfigMaps and
//! Secrets resolved from the rendering), its ports and probes. Building the plan checks
//! that everything which must agree does: container port, Service target port, probe
//! ports and the port the service listens on; every address setting names a Service port;
//! the database URL file lies in a mounted Secret; every setting is one the binary knows.
//! The integration test then starts the locally built binaries with those environments on
//! loopback ports against a throwaway PostgreSQL, waits for the readiness probes through
//! `grpc.health.v1`, and drives a smoke flow across the services.
//!
//! # Layout
//!
//! - [`manifest`]: rendering an overlay and looking objects up in the rendering.
//! - [`settings`]: the settings a service binary accepts, read from its `--help`.
//! - [`plan`]: the launch plan of each Deployment and every consistency check.
//! - [`launch`]: starting the planned processes locally and waiting for their probes.

pub mod launch;
pub mod manifest;
pub mod plan;
pub mod settings;

/// Path of the workspace root (where `k8s/` is).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
