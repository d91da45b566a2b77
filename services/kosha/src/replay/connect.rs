//! Where the replay sends its calls: the five services' addresses, one gRPC client each,
//! and the all-in-one suite started in this process when no address is given.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_proto::kosha::purchase_order::v1::purchase_order_service_client as po_client;
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::suite::{Suite, SuiteOptions};

/// Largest message the replay sends or accepts: a dry-run report of a big file is large.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long one call may take. The longest are whole-file uploads and the audit.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The address of each service; the same address five times for an all-in-one suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Catalog.
    pub catalog: String,
    /// Inventory.
    pub inventory: String,
    /// Order.
    pub order: String,
    /// Purchase order.
    pub purchase_order: String,
    /// Scheduler.
    pub scheduler: String,
}

impl Endpoints {
    /// Every service at one address.
    pub fn all_in_one(address: &str) -> Self {
        Self {
            catalog: address.to_string(),
            inventory: address.to_string(),
            order: address.to_string(),
            purchase_order: address.to_string(),
            scheduler: address.to_string(),
        }
    }
}

/// One client per service.
#[derive(Clone)]
pub struct Clients {
    /// Catalog.
    pub catalog: CatalogServiceClient<Channel>,
    /// Inventory.
    pub inventory: InventoryServiceClient<Channel>,
    /// Order.
    pub order: OrderServiceClient<Channel>,
    /// Purchase order.
    pub purchase_order: po_client::PurchaseOrderServiceClient<Channel>,
    /// Scheduler.
    pub scheduler: SchedulerServiceClient<Channel>,
}

impl Clients {
    /// Lazily connected clients: a service that is not up yet fails its first call with
    /// `UNAVAILABLE`, naming the call.
    pub fn connect(endpoints: &Endpoints) -> anyhow::Result<Self> {
        Ok(Self {
            catalog: CatalogServiceClient::new(channel(&endpoints.catalog)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            inventory: InventoryServiceClient::new(channel(&endpoints.inventory)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            order: OrderServiceClient::new(channel(&endpoints.order)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            purchase_order: po_client::PurchaseOrderServiceClient::new(channel(
                &endpoints.purchase_order,
            )?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
            scheduler: SchedulerServiceClient::new(channel(&endpoints.scheduler)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        })
    }
}

fn channel(address: &str) -> anyhow::Result<Channel> {
    let uri = kosha_runtime::config::service_uri(address);
    let endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("bad service address `{uri}`"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Names the call in the error of a gRPC result and unwraps the response.
pub trait CallResult<T> {
    /// The response message, or an error saying which call failed, with its code.
    fn during(self, call: impl Display) -> anyhow::Result<T>;
}

impl<T> CallResult<T> for Result<tonic::Response<T>, tonic::Status> {
    fn during(self, call: impl Display) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner).map_err(|status| {
            anyhow::anyhow!("{call} failed: {:?}: {}", status.code(), status.message())
        })
    }
}

// === LocalSuite ===

/// The all-in-one suite serving from this process on `127.0.0.1:<free port>`.
pub struct LocalSuite {
    address: SocketAddr,
    stop_tx_opt: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl LocalSuite {
    /// Starts every service with its SQLite file under `data_dir`, the AMAZON channel's
    /// connector reading the files under `connector_dir`, and the change feed read every
    /// second so that waiting orders fill soon after stock arrives.
    pub async fn start(data_dir: &Path, connector_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(connector_dir)
            .with_context(|| format!("create {}", connector_dir.display()))?;
        let mut options = SuiteOptions::from_env(data_dir.to_path_buf())?;
        options.order.connectors = format!("AMAZON=dir:{}", connector_dir.display());
        options.order.follow_interval_secs = 1;
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
        let suite = Suite::start(listen, options).await?;
        let address = suite.address();

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(suite.serve(async {
            let _ = stop_rx.await;
        }));
        Ok(Self {
            address,
            stop_tx_opt: Some(stop_tx),
            task,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every service at the suite's address.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::all_in_one(&self.address.to_string())
    }

    /// Drains and stops the suite.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop_tx) = self.stop_tx_opt.take() {
            let _ = stop_tx.send(());
        }
        (&mut self.task).await.context("the suite task panicked")?
    }
}

/// The default connector directory of a local suite.
pub fn default_connector_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("channels")
}
