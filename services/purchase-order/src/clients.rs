//! The services this one calls — catalog, inventory and order — behind one small trait
//! each, so the workflows read in domain terms and tests can stand a fault between this
//! service and a real dependency.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kosha_proto::kosha::catalog::v1::BatchGetProductsRequest;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::inventory::v1::ReceiveRequest;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1::CreateBulkOrderRequest;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_runtime::Error;
use kosha_runtime::client::{TracedChannel, connect_lazy};

use crate::startup::Peers;

/// Most SKUs the catalog answers in one batch call.
pub const CATALOG_BATCH_SKUS: usize = 10_000;

/// Largest response accepted from another service: a batch of 10,000 products is a few
/// megabytes, above tonic's default of four.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The client's product master, as far as POs need it.
pub trait ProductMaster: Send + Sync {
    /// Which of `skus` exist for the client, each with whether it is active; a SKU that
    /// does not exist is left out. One catalog call per 10,000 SKUs.
    fn lookup<'a>(
        &'a self,
        client_id: &'a str,
        skus: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, bool>, Error>>;
}

/// Where received units go: inventory's goods receipt.
pub trait StockReceiver: Send + Sync {
    /// Puts units into COMMON. Idempotent by the request's key.
    fn receive(&self, request: ReceiveRequest) -> BoxFuture<'_, Result<(), Error>>;
}

/// Where outward POs become orders: the order service's bulk orders.
pub trait BulkOrders: Send + Sync {
    /// Creates (or finds, by client, channel and reference) a bulk order; returns its id.
    fn create_bulk_order(
        &self,
        request: CreateBulkOrderRequest,
    ) -> BoxFuture<'_, Result<String, Error>>;
}

/// Everything this service calls.
#[derive(Clone)]
pub struct Dependencies {
    /// Catalog.
    pub products: Arc<dyn ProductMaster>,
    /// Inventory.
    pub stock: Arc<dyn StockReceiver>,
    /// Order service.
    pub orders: Arc<dyn BulkOrders>,
}

impl Dependencies {
    /// gRPC clients of the peers, connected lazily: this service starts before them.
    pub fn connect(peers: &Peers) -> anyhow::Result<Self> {
        let catalog = CatalogServiceClient::new(connect_lazy(&peers.catalog)?)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let inventory = InventoryServiceClient::new(connect_lazy(&peers.inventory)?)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let orders = OrderServiceClient::new(connect_lazy(&peers.order)?)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Self {
            products: Arc::new(GrpcCatalog(catalog)),
            stock: Arc::new(GrpcInventory(inventory)),
            orders: Arc::new(GrpcOrders(orders)),
        })
    }
}

// === impl GrpcCatalog ===

struct GrpcCatalog(CatalogServiceClient<TracedChannel>);

impl ProductMaster for GrpcCatalog {
    fn lookup<'a>(
        &'a self,
        client_id: &'a str,
        skus: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, bool>, Error>> {
        Box::pin(async move {
            let mut client = self.0.clone();
            let mut products = HashMap::with_capacity(skus.len());
            for batch in skus.chunks(CATALOG_BATCH_SKUS) {
                let request = BatchGetProductsRequest {
                    client_id: client_id.to_string(),
                    skus: batch.to_vec(),
                };
                let response = client.batch_get_products(request).await?.into_inner();
                for product in response.products {
                    products.insert(product.sku, product.active);
                }
            }
            Ok(products)
        })
    }
}

// === impl GrpcInventory ===

struct GrpcInventory(InventoryServiceClient<TracedChannel>);

impl StockReceiver for GrpcInventory {
    fn receive(&self, request: ReceiveRequest) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.0.clone().receive(request).await?;
            Ok(())
        })
    }
}

// === impl GrpcOrders ===

struct GrpcOrders(OrderServiceClient<TracedChannel>);

impl BulkOrders for GrpcOrders {
    fn create_bulk_order(
        &self,
        request: CreateBulkOrderRequest,
    ) -> BoxFuture<'_, Result<String, Error>> {
        Box::pin(async move {
            let response = self
                .0
                .clone()
                .create_bulk_order(request)
                .await?
                .into_inner();
            let order = response.order.ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("CreateBulkOrder answered without an order"))
            })?;
            Ok(order.order_id)
        })
    }
}
