//! Mounting the catalog on a server, for its own binary and for the all-in-one runner.

use anyhow::Context as _;
use kosha_proto::kosha::catalog::v1::catalog_service_server::CatalogServiceServer;
use kosha_runtime::Db;
use kosha_runtime::changes::{self, Heard};
use kosha_runtime::server::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::NAME;
use crate::catalog::{CHANGES_TOPIC, Catalog};
use crate::config::Settings;
use crate::grpc::CatalogGrpc;
use crate::store::MIGRATIONS;

/// Addresses of the services the catalog calls: none. The catalog is master data that
/// every other service reads; it depends on nobody.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Peers {}

/// The mounted catalog and its one background task: listening for other replicas' changes
/// to listings, which it stops when shut down or dropped.
#[derive(Debug)]
pub struct Mounted {
    listener: JoinHandle<()>,
    stop_tx: watch::Sender<bool>,
    hearing_rx: watch::Receiver<bool>,
}

impl Mounted {
    /// Waits until other replicas' changes are heard, from when resolved listings are kept.
    pub async fn listening(&self) {
        let mut hearing_rx = self.hearing_rx.clone();
        let _ = hearing_rx.wait_for(|hearing| *hearing).await;
    }

    /// Stops listening for changes.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        if let Err(error) = self.listener.await {
            tracing::warn!(service = NAME, error = %error, "the change listener ended badly");
        }
        tracing::debug!(service = NAME, "stopped");
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

    let catalog = Catalog::new(db.clone(), settings.resolutions_kept);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (hearing_tx, hearing_rx) = watch::channel(false);
    let hearer = catalog.clone();
    let on_heard = move |heard: Heard| {
        let hearing = heard != Heard::Deaf;
        hearer.hear(heard);
        hearing_tx.send_replace(hearing);
    };
    let listener = changes::listen(&db, CHANGES_TOPIC, on_heard, stop_rx);

    let max_message_bytes = server.options().max_message_bytes;
    let service = CatalogGrpc::new(catalog, settings.max_upload_bytes);
    server.add_service(
        CatalogServiceServer::new(service)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes),
    );
    server.require_database(db);
    tracing::info!(
        service = NAME,
        max_upload_bytes = settings.max_upload_bytes,
        resolutions_kept = settings.resolutions_kept,
        "catalog mounted"
    );
    Ok(Mounted {
        listener,
        stop_tx,
        hearing_rx,
    })
}
