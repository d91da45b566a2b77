//! Mounting the catalog on a server, for its own binary and for the all-in-one runner.

use anyhow::Context as _;
use kosha_proto::kosha::catalog::v1::catalog_service_server::CatalogServiceServer;
use kosha_runtime::Db;
use kosha_runtime::server::Server;

use crate::NAME;
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::grpc::CatalogGrpc;
use crate::store::MIGRATIONS;

/// Addresses of the services the catalog calls: none. The catalog is master data that
/// every other service reads; it depends on nobody.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Peers {}

/// The mounted catalog. It runs no background task, so shutting it down has nothing to
/// stop; the method exists so every service is shut down the same way.
#[derive(Debug)]
pub struct Mounted {
    _private: (),
}

impl Mounted {
    /// Stops background tasks (the catalog has none).
    pub async fn shutdown(self) {
        tracing::debug!(service = NAME, "nothing to stop");
    }
}

/// Migrates `db`, then adds the catalog service to `server` with readiness tied to `db`.
pub async fn mount(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    _peers: &Peers,
) -> anyhow::Result<Mounted> {
    let problems = settings.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "bad catalog settings: {}",
        problems.join("; ")
    );

    db.migrate(NAME, MIGRATIONS)
        .await
        .context("migrate the catalog database")?;

    let max_message_bytes = server.options().max_message_bytes;
    let service = CatalogGrpc::new(Catalog::new(db.clone()), settings.max_upload_bytes);
    server.add_service(
        CatalogServiceServer::new(service)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes),
    );
    server.require_database(db);
    tracing::info!(
        service = NAME,
        max_upload_bytes = settings.max_upload_bytes,
        "catalog mounted"
    );
    Ok(Mounted { _private: () })
}
