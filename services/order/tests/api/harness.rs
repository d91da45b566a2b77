//! Starts catalog, inventory, the scheduler and the order service on one in-process
//! server (as the all-in-one runner does), each with its own database of the store under
//! test, plus a test channel connector; and helpers to arrange orders and stock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kosha_order::app::{App, Faults};
use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::channel::v1::channel_connector_server::{
    ChannelConnector, ChannelConnectorServer,
};
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1 as api;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_proto::kosha::scheduler::v1::job_handler_server::{JobHandler, JobHandlerServer};
use kosha_proto::kosha::scheduler::v1::{RunJobRequest, RunJobResponse};
use kosha_proto::types::QcGrade;
use kosha_runtime::Db;
use kosha_runtime::db::DbOptions;
use kosha_runtime::server::Server;
use kosha_testkit::{TestDatabase, test_server_options};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The seller every test uses.
pub const CLIENT: &str = "acme";

/// How a test wants the suite started.
pub struct Options {
    /// The order service's settings.
    pub settings: kosha_order::Settings,
    /// Channels served by the in-memory test connector.
    pub test_connector_channels: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: kosha_order::Settings {
                hold_rules: "FLIPKART=dispatch-after,PAYTM=return-pickup,MYNTRA=manual".into(),
                follow_interval_secs: 1,
                // Sweeps and reconcile run only when a test asks, so tests control them.
                hold_sweep_interval_secs: 3600,
                reconcile_interval_secs: 3600,
                outbox_interval_secs: 3600,
                ..kosha_order::Settings::default()
            },
            test_connector_channels: Vec::new(),
        }
    }
}

// === TestConnector ===

/// What the test connector serves: orders and statuses per channel, and what was pushed.
#[derive(Default)]
pub struct ConnectorState {
    /// Orders per channel, served in order.
    pub orders: BTreeMap<String, Vec<channel::ChannelOrder>>,
    /// Channel-side state per (channel, channel order id).
    pub states: BTreeMap<(String, String), channel::ChannelOrderState>,
    /// Pushed availability per channel.
    pub pushed: BTreeMap<String, Vec<channel::ListingAvailability>>,
}

/// An in-memory channel connector a test fills.
#[derive(Clone, Default)]
pub struct TestConnector {
    /// Shared with the test.
    pub state: Arc<Mutex<ConnectorState>>,
}

impl TestConnector {
    /// Makes the channel report an order in this state.
    pub fn set_state(
        &self,
        channel_code: &str,
        channel_order_id: &str,
        state: channel::ChannelOrderState,
    ) {
        let mut guard = self.state.lock().unwrap();
        guard.states.insert(
            (channel_code.to_string(), channel_order_id.to_string()),
            state,
        );
    }
}

#[tonic::async_trait]
impl ChannelConnector for TestConnector {
    async fn fetch_orders(
        &self,
        request: Request<channel::FetchOrdersRequest>,
    ) -> Result<Response<channel::FetchOrdersResponse>, Status> {
        let request = request.into_inner();
        let guard = self.state.lock().unwrap();
        let all = guard
            .orders
            .get(&request.channel)
            .cloned()
            .unwrap_or_default();
        let start: usize = request.cursor.parse().unwrap_or(0);
        let page: Vec<_> = all.iter().skip(start).take(100).cloned().collect();
        let next = start + page.len();
        Ok(Response::new(channel::FetchOrdersResponse {
            orders: page,
            next_cursor: next.to_string(),
            more: next < all.len(),
        }))
    }

    async fn fetch_order_statuses(
        &self,
        request: Request<channel::FetchOrderStatusesRequest>,
    ) -> Result<Response<channel::FetchOrderStatusesResponse>, Status> {
        let request = request.into_inner();
        let guard = self.state.lock().unwrap();
        let statuses = request
            .channel_order_ids
            .iter()
            .map(|id| channel::ChannelOrderStatus {
                channel_order_id: id.clone(),
                state: *guard
                    .states
                    .get(&(request.channel.clone(), id.clone()))
                    .unwrap_or(&channel::ChannelOrderState::Open) as i32,
                update_time: None,
            })
            .collect();
        Ok(Response::new(channel::FetchOrderStatusesResponse {
            statuses,
            unknown_channel_order_ids: Vec::new(),
            unreadable: Vec::new(),
        }))
    }

    async fn push_availability(
        &self,
        request: Request<channel::PushAvailabilityRequest>,
    ) -> Result<Response<channel::PushAvailabilityResponse>, Status> {
        let request = request.into_inner();
        let accepted = request.listings.len() as i64;
        self.state
            .lock()
            .unwrap()
            .pushed
            .insert(request.channel, request.listings);
        Ok(Response::new(channel::PushAvailabilityResponse {
            accepted,
            rejected_marketplace_skus: Vec::new(),
        }))
    }
}

// === job dispatch ===

/// Routes each scheduler job to its owner's handler in this process.
#[derive(Clone)]
struct Dispatch {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

#[tonic::async_trait]
impl JobHandler for Dispatch {
    async fn run_job(
        &self,
        request: Request<RunJobRequest>,
    ) -> Result<Response<RunJobResponse>, Status> {
        let owner = request
            .get_ref()
            .job
            .as_ref()
            .map(|job| job.owner.clone())
            .unwrap_or_default();
        match self.handlers.get(&owner) {
            Some(handler) => handler.run_job(request).await,
            None => Err(Status::not_found(format!("no owner `{owner}` here"))),
        }
    }
}

// === TestApp ===

/// The running suite.
pub struct TestApp {
    /// Order service client.
    pub orders: OrderServiceClient<Channel>,
    /// Catalog client.
    pub catalog: CatalogServiceClient<Channel>,
    /// Inventory client.
    pub inventory: InventoryServiceClient<Channel>,
    /// The test connector's state.
    pub connector: TestConnector,
    /// The order service's failure injection points.
    pub faults: Arc<Faults>,
    /// The order service itself.
    pub app: App,
    stop_tx_opt: Option<oneshot::Sender<()>>,
    task_opt: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped with the test: their pools close their connections, so a test process
    // running many tests never runs out of PostgreSQL connections.
    _mounted: (
        kosha_catalog::startup::Mounted,
        kosha_order::Mounted,
        kosha_inventory::startup::Mounted,
        kosha_scheduler::Mounted,
    ),
    _databases: Vec<TestDatabase>,
}

/// Starts the suite on `db` (the order database) and siblings for the other services.
pub async fn spawn_app(db: TestDatabase, options: Options) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();

    let catalog_db = db.sibling("catalog").await;
    let inventory_db = db.sibling("inventory").await;
    let scheduler_db = db.sibling("scheduler").await;
    let connect =
        |url: String| async move { Db::connect(&url, &DbOptions::default()).await.unwrap() };
    let order_pool = connect(db.url.clone()).await;

    let mut server = Server::new(test_server_options());
    let catalog = kosha_catalog::startup::mount(
        &mut server,
        connect(catalog_db.url.clone()).await,
        &kosha_catalog::config::Settings::default(),
        &kosha_catalog::startup::Peers::default(),
    )
    .await
    .unwrap();
    let inventory = kosha_inventory::startup::mount(
        &mut server,
        connect(inventory_db.url.clone()).await,
        &kosha_inventory::config::Settings::default(),
        &kosha_inventory::startup::Peers {
            scheduler: address.clone(),
        },
    )
    .await
    .unwrap();
    let scheduler_settings = kosha_scheduler::Settings {
        poll_interval_ms: 100,
        ..kosha_scheduler::Settings::default()
    };
    let scheduler = kosha_scheduler::mount(
        &mut server,
        connect(scheduler_db.url.clone()).await,
        &scheduler_settings,
        &kosha_scheduler::Peers::all_in_one(address.clone()),
    )
    .await
    .unwrap();

    let connector = TestConnector::default();
    let mut settings = options.settings;
    let connectors: Vec<String> = options
        .test_connector_channels
        .iter()
        .map(|code| format!("{code}={address}"))
        .collect();
    if !connectors.is_empty() {
        settings.connectors = if settings.connectors.is_empty() {
            connectors.join(",")
        } else {
            format!("{},{}", settings.connectors, connectors.join(","))
        };
    }
    let order = kosha_order::mount(
        &mut server,
        order_pool,
        &settings,
        &kosha_order::Peers::all_at(&address),
    )
    .await
    .unwrap();
    let mut handlers: BTreeMap<String, Arc<dyn JobHandler>> = BTreeMap::new();
    handlers.insert("inventory".into(), inventory.job_handler());
    handlers.insert("order".into(), order.job_handler());
    server.add_unlisted_service(JobHandlerServer::new(Dispatch { handlers }));
    server.add_unlisted_service(ChannelConnectorServer::new(connector.clone()));

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stop_rx.await;
    }));
    let channel = connect_channel(&address).await;

    let app = order.app();
    let faults = order.faults();
    let test_app = TestApp {
        orders: OrderServiceClient::new(channel.clone()),
        catalog: CatalogServiceClient::new(channel.clone()),
        inventory: InventoryServiceClient::new(channel),
        connector,
        faults,
        app,
        stop_tx_opt: Some(stop_tx),
        task_opt: Some(task),
        _mounted: (catalog, order, inventory, scheduler),
        _databases: vec![db, catalog_db, inventory_db, scheduler_db],
    };
    test_app.seed().await;
    test_app
}

async fn connect_channel(address: &str) -> Channel {
    let uri = format!("http://{address}");
    for _ in 0..200 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(uri.clone())
            .unwrap()
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the test server never accepted a connection");
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop_tx) = self.stop_tx_opt.take() {
            let _ = stop_tx.send(());
        }
        if let Some(task) = self.task_opt.take() {
            task.abort();
        }
    }
}

/// A marketplace order of `channel` with lines of (marketplace SKU, quantity).
pub fn order(
    channel: &str,
    channel_order_id: &str,
    lines: &[(&str, i64)],
) -> api::CreateOrderRequest {
    api::CreateOrderRequest {
        client_id: CLIENT.into(),
        channel: channel.into(),
        channel_order_id: channel_order_id.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| api::NewOrderLine {
                marketplace_sku: sku.to_string(),
                quantity: *quantity,
                price: "499.00".into(),
                ..Default::default()
            })
            .collect(),
        actor: "test".into(),
        ..Default::default()
    }
}

/// A bulk order of INTERNAL with lines of (client SKU, quantity).
pub fn bulk_order(reference: &str, lines: &[(&str, i64)]) -> api::CreateBulkOrderRequest {
    api::CreateBulkOrderRequest {
        client_id: CLIENT.into(),
        reference: reference.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| api::NewOrderLine {
                sku: sku.to_string(),
                quantity: *quantity,
                ..Default::default()
            })
            .collect(),
        actor: "test".into(),
        ..Default::default()
    }
}

/// A timestamp `seconds` from now.
pub fn seconds_from_now(seconds: i64) -> prost_types::Timestamp {
    kosha_runtime::time::to_timestamp(kosha_runtime::time::now_micros() + seconds * 1_000_000)
}

impl TestApp {
    /// The client, channels, products SKU-1..SKU-6 and a listing of each on every
    /// marketplace: `<PREFIX>-<n>` (AM, FK, PT, MY) -> `SKU-<n>`.
    async fn seed(&self) {
        let mut catalog = self.catalog.clone();
        catalog
            .create_client(catalog::CreateClientRequest {
                client_id: CLIENT.into(),
                display_name: "Acme".into(),
            })
            .await
            .unwrap();
        for (code, kind) in [
            ("AMAZON", catalog::ChannelKind::Marketplace),
            ("FLIPKART", catalog::ChannelKind::Marketplace),
            ("PAYTM", catalog::ChannelKind::Marketplace),
            ("MYNTRA", catalog::ChannelKind::Marketplace),
            ("WHOLESALE", catalog::ChannelKind::B2b),
        ] {
            catalog
                .create_channel(catalog::CreateChannelRequest {
                    code: code.into(),
                    display_name: code.into(),
                    kind: kind as i32,
                })
                .await
                .unwrap();
        }
        for n in 1..=6 {
            catalog
                .create_product(catalog::CreateProductRequest {
                    product: Some(catalog::Product {
                        client_id: CLIENT.into(),
                        sku: format!("SKU-{n}"),
                        name: format!("Kurta {n}"),
                        mrp: "999".into(),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap();
            for (channel_code, prefix) in [
                ("AMAZON", "AM"),
                ("FLIPKART", "FK"),
                ("PAYTM", "PT"),
                ("MYNTRA", "MY"),
            ] {
                self.add_listing(channel_code, &format!("{prefix}-{n}"), &format!("SKU-{n}"))
                    .await;
            }
        }
    }

    /// Maps a marketplace SKU of a channel to a client SKU.
    pub async fn add_listing(&self, channel_code: &str, marketplace_sku: &str, sku: &str) {
        self.catalog
            .clone()
            .create_listing(catalog::CreateListingRequest {
                listing: Some(catalog::Listing {
                    client_id: CLIENT.into(),
                    channel: channel_code.into(),
                    marketplace_sku: marketplace_sku.into(),
                    sku: sku.into(),
                    update_time: None,
                }),
            })
            .await
            .unwrap();
    }

    /// A GRN of `quantity` units of `sku` in `grade` into COMMON.
    pub async fn receive(&self, sku: &str, quantity: i64, grade: QcGrade) {
        self.inventory
            .clone()
            .receive(inv::ReceiveRequest {
                client_id: CLIENT.into(),
                reference: format!("GRN-{}", uuid::Uuid::new_v4()),
                lines: vec![inv::ReceiveLine {
                    sku: sku.into(),
                    grade: grade as i32,
                    quantity,
                }],
                idempotency_key: format!("grn:{}", uuid::Uuid::new_v4()),
                actor: "test".into(),
            })
            .await
            .unwrap();
    }

    /// Creates a marketplace order; panics on error.
    pub async fn create(&self, request: api::CreateOrderRequest) -> api::Order {
        self.orders
            .clone()
            .create_order(request)
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
    }

    /// Reads an order.
    pub async fn get(&self, order_id: &str) -> api::Order {
        self.orders
            .clone()
            .get_order(api::GetOrderRequest {
                order_id: order_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
    }

    /// Waits (up to `seconds`) until the order has `status`; returns it.
    pub async fn wait_for_status(
        &self,
        order_id: &str,
        status: api::OrderStatus,
        seconds: u64,
    ) -> api::Order {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let order = self.get(order_id).await;
            if order.status() == status {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} is {:?}, not {status:?}, after {seconds}s",
                order.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Allocates `quantity` units of `sku` (PASS, from AMAZON's pool) to line 1 of
    /// `order_ref` straight in inventory, under idempotency key `key`, as a caller other
    /// than the order service would.
    pub async fn allocate_directly(&self, order_ref: &str, sku: &str, quantity: i64, key: &str) {
        self.inventory
            .clone()
            .allocate(inv::AllocateRequest {
                client_id: CLIENT.into(),
                order_ref: order_ref.into(),
                channel: "AMAZON".into(),
                grade: QcGrade::Pass as i32,
                mode: inv::AllocationMode::Partial as i32,
                lines: vec![inv::AllocateLine {
                    line_id: "1".into(),
                    sku: sku.into(),
                    quantity,
                }],
                top_up: true,
                idempotency_key: key.into(),
                actor: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Runs ReconcileOrders for the test client.
    pub async fn reconcile(&self, dry_run: bool) -> api::ReconcileOrdersResponse {
        self.orders
            .clone()
            .reconcile_orders(api::ReconcileOrdersRequest {
                client_id: CLIENT.into(),
                dry_run,
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Runs SyncOrderStatus for every open order of the test client's `channel`.
    pub async fn sync_channel_statuses(&self, channel: &str) -> api::SyncOrderStatusResponse {
        self.orders
            .clone()
            .sync_order_status(api::SyncOrderStatusRequest {
                target: Some(api::sync_order_status_request::Target::ChannelScope(
                    api::ChannelScope {
                        client_id: CLIENT.into(),
                        channel: channel.into(),
                    },
                )),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// `GetOrderHoldings` of one order: per line, what inventory holds and what it should.
    pub async fn holdings(&self, order_id: &str) -> Vec<api::LineHolding> {
        self.orders
            .clone()
            .get_order_holdings(api::GetOrderHoldingsRequest {
                order_ids: vec![order_id.into()],
            })
            .await
            .unwrap()
            .into_inner()
            .holdings
    }

    /// Units inventory holds open for an order, by line id.
    pub async fn held(&self, order_ref: &str) -> BTreeMap<String, i64> {
        let response = self
            .inventory
            .clone()
            .list_allocations(inv::ListAllocationsRequest {
                client_id: CLIENT.into(),
                order_ref: order_ref.into(),
                open_only: false,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut held = BTreeMap::new();
        for allocation in response.allocations {
            *held.entry(allocation.line_id).or_insert(0) += allocation.quantity;
        }
        held
    }

    /// AVAILABLE units of a SKU in COMMON (PASS).
    pub async fn available(&self, sku: &str) -> i64 {
        let response = self
            .inventory
            .clone()
            .get_stock(inv::GetStockRequest {
                client_id: CLIENT.into(),
                skus: vec![sku.into()],
                pool: "COMMON".into(),
                grade: QcGrade::Pass as i32,
            })
            .await
            .unwrap()
            .into_inner();
        response
            .levels
            .iter()
            .filter_map(|level| level.totals.as_ref())
            .map(|totals| totals.available)
            .sum()
    }

    /// Asserts inventory's audit is clean.
    pub async fn assert_audit_clean(&self) {
        let audit = self
            .inventory
            .clone()
            .audit(inv::AuditRequest {
                client_id: CLIENT.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            audit.clean,
            "inventory audit found differences: {:?}",
            audit.discrepancies
        );
    }

    /// The order's history reasons, oldest first.
    pub async fn history(&self, order_id: &str) -> Vec<api::HistoryEntry> {
        self.orders
            .clone()
            .get_order_history(api::GetOrderHistoryRequest {
                order_id: order_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// Explains an order.
    pub async fn explain(&self, order_id: &str) -> api::ExplainOrderResponse {
        self.orders
            .clone()
            .explain_order(api::ExplainOrderRequest {
                order_id: order_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

/// Asserts that a call was refused with `code` and a message that says `part`.
pub fn assert_refused(status: &tonic::Status, code: tonic::Code, part: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(part),
        "`{part}` not in: {}",
        status.message()
    );
}
