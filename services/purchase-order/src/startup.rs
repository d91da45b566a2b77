//! Mounting the service on a server: migrations, the gRPC service, background redelivery.
//! Used by this service's own binary and by the all-in-one runner alike.

use kosha_proto::kosha::purchase_order::v1::purchase_order_service_server as pb_server;
use kosha_runtime::Db;
use kosha_runtime::config::DEFAULT_LISTEN;
use kosha_runtime::server::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::NAME;
use crate::clients::Dependencies;
use crate::config::Settings;
use crate::grpc::PurchaseOrderGrpc;
use crate::service::{PurchaseOrders, redelivery};
use crate::store::MIGRATIONS;

/// Addresses of the services this one calls.
#[derive(Debug, Clone, clap::Args)]
pub struct Peers {
    /// Catalog (product master).
    #[arg(long = "catalog-addr", env = "KOSHA_CATALOG_ADDR", default_value = DEFAULT_LISTEN)]
    pub catalog: String,
    /// Inventory (goods receipt).
    #[arg(long = "inventory-addr", env = "KOSHA_INVENTORY_ADDR", default_value = DEFAULT_LISTEN)]
    pub inventory: String,
    /// Order service (bulk orders).
    #[arg(long = "order-addr", env = "KOSHA_ORDER_ADDR", default_value = DEFAULT_LISTEN)]
    pub order: String,
}

impl Default for Peers {
    /// Every peer at the default address, where the all-in-one runner serves them all.
    fn default() -> Self {
        Self {
            catalog: DEFAULT_LISTEN.to_string(),
            inventory: DEFAULT_LISTEN.to_string(),
            order: DEFAULT_LISTEN.to_string(),
        }
    }
}

/// The mounted service's background work.
pub struct Mounted {
    shutdown_tx: watch::Sender<bool>,
    redelivery: JoinHandle<()>,
}

impl Mounted {
    /// Stops the background redelivery (after its current round) and waits for it.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.redelivery.await;
    }
}

/// Runs the migrations, adds the gRPC service to `server` (with readiness on `db`), and
/// starts the background redelivery, calling the peers over gRPC.
pub async fn mount(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    peers: &Peers,
) -> anyhow::Result<Mounted> {
    let dependencies = Dependencies::connect(peers)?;
    info!(catalog = %peers.catalog, inventory = %peers.inventory, order = %peers.order, "peers");
    mount_with(server, db, settings, dependencies).await
}

/// [`mount`] with the dependencies given, e.g. real clients wrapped to inject faults.
pub async fn mount_with(
    server: &mut Server,
    db: Db,
    settings: &Settings,
    dependencies: Dependencies,
) -> anyhow::Result<Mounted> {
    let problems = settings.problems();
    if !problems.is_empty() {
        anyhow::bail!("bad {NAME} settings: {}", problems.join("; "));
    }
    db.migrate(NAME, MIGRATIONS).await?;

    let service = PurchaseOrders::new(db.clone(), dependencies, settings.clone());
    let max_message_bytes = server.options().max_message_bytes;
    let grpc = pb_server::PurchaseOrderServiceServer::new(PurchaseOrderGrpc::new(service.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    server.add_service(grpc).require_database(db);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let redelivery = redelivery::spawn(service, settings.redelivery_interval(), shutdown_rx);
    info!(
        excess_grn_clients = %settings.excess_grn_client_ids().collect::<Vec<_>>().join(","),
        max_upload_bytes = settings.max_upload_bytes,
        redelivery_interval_ms = settings.redelivery_interval_ms,
        "purchase-order service mounted"
    );
    Ok(Mounted {
        shutdown_tx,
        redelivery,
    })
}
