//! Catalog, inventory, order and purchase-order servers in this process, each on its own
//! database of the store under test, talking to each other over real gRPC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kosha_proto::kosha::catalog::v1 as catalog_pb;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::inventory::v1 as inventory_pb;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1::CreateBulkOrderRequest;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_proto::kosha::purchase_order::v1::purchase_order_service_client as po_client;
use kosha_proto::types::{QcGrade, UploadReport};
use kosha_purchase_order::clients::{BulkOrders, Dependencies, ProductMaster, StockReceiver};
use kosha_purchase_order::config::Settings;
use kosha_purchase_order::startup::{self, Peers};
use kosha_runtime::Error;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_testkit::{TestDatabase, TestServer, test_server_options};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Chunk size of uploads in tests: every file of more than a few rows arrives in several
/// messages.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Largest message the test clients send or accept.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The client every test works for.
pub const CLIENT: &str = "acme";

/// A failure to inject once between this service and a real dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail without calling the dependency, as if the process died before the call.
    BeforeCall,
    /// Make the call, then fail, as if the process died before recording the answer.
    AfterCall,
    /// Fail without calling, as the dependency does when it refuses the request.
    Refused,
}

/// A dependency call with a fault that fires once when armed.
#[derive(Default)]
pub struct FaultSwitch {
    armed: Mutex<Option<Fault>>,
}

impl FaultSwitch {
    /// Makes the next call fail with `fault`.
    pub fn arm(&self, fault: Fault) {
        *self.armed.lock().unwrap() = Some(fault);
    }

    fn take(&self) -> Option<Fault> {
        self.armed.lock().unwrap().take()
    }
}

fn injected(fault: Fault) -> Error {
    match fault {
        Fault::Refused => Error::FailedPrecondition("injected refusal".to_string()),
        _ => Error::Unavailable(format!("injected fault: {fault:?}")),
    }
}

/// Inventory's `Receive`, with a fault in between.
struct FaultyStock {
    inner: Arc<dyn StockReceiver>,
    switch: Arc<FaultSwitch>,
}

impl StockReceiver for FaultyStock {
    fn receive(&self, request: inventory_pb::ReceiveRequest) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            match self.switch.take() {
                Some(fault @ (Fault::BeforeCall | Fault::Refused)) => Err(injected(fault)),
                Some(Fault::AfterCall) => {
                    self.inner.receive(request).await?;
                    Err(injected(Fault::AfterCall))
                }
                None => self.inner.receive(request).await,
            }
        })
    }
}

/// The order service's `CreateBulkOrder`, with a fault in between.
struct FaultyOrders {
    inner: Arc<dyn BulkOrders>,
    switch: Arc<FaultSwitch>,
}

impl BulkOrders for FaultyOrders {
    fn create_bulk_order(
        &self,
        request: CreateBulkOrderRequest,
    ) -> BoxFuture<'_, Result<String, Error>> {
        Box::pin(async move {
            match self.switch.take() {
                Some(fault @ (Fault::BeforeCall | Fault::Refused)) => Err(injected(fault)),
                Some(Fault::AfterCall) => {
                    self.inner.create_bulk_order(request).await?;
                    Err(injected(Fault::AfterCall))
                }
                None => self.inner.create_bulk_order(request).await,
            }
        })
    }
}

/// The catalog's product lookups, counted.
struct CountedProducts {
    inner: Arc<dyn ProductMaster>,
    calls: Arc<AtomicUsize>,
}

impl ProductMaster for CountedProducts {
    fn lookup<'a>(
        &'a self,
        client_id: &'a str,
        skus: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, bool>, Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(client_id, skus)
    }
}

/// The four services and clients of them.
pub struct TestApp {
    /// The purchase-order service.
    pub po: po_client::PurchaseOrderServiceClient<Channel>,
    /// The catalog.
    pub catalog: CatalogServiceClient<Channel>,
    /// Inventory.
    pub inventory: InventoryServiceClient<Channel>,
    /// The order service.
    pub orders: OrderServiceClient<Channel>,
    /// Arms a fault between the purchase-order service and inventory.
    pub stock_faults: Arc<FaultSwitch>,
    /// Arms a fault between the purchase-order service and the order service.
    pub order_faults: Arc<FaultSwitch>,
    /// Product-master lookups the purchase-order service made (each one catalog call per
    /// 10,000 SKUs).
    pub product_lookups: Arc<AtomicUsize>,
    servers: Vec<TestServer>,
    po_mounted: Option<startup::Mounted>,
    /// Keeps the catalog listening for changes to listings.
    _catalog_mounted: kosha_catalog::startup::Mounted,
    _databases: Vec<TestDatabase>,
}

/// The four services with default purchase-order settings.
pub async fn spawn_app(db: &TestDatabase) -> TestApp {
    spawn_app_with(db, Settings::default()).await
}

/// The four services, the purchase-order service with `settings`.
pub async fn spawn_app_with(db: &TestDatabase, settings: Settings) -> TestApp {
    let catalog_db = db.sibling("catalog").await;
    let inventory_db = db.sibling("inventory").await;
    let order_db = db.sibling("order").await;

    // Catalog, then inventory, then the order service that calls both.
    let mut server = Server::new(test_server_options());
    let store = connect(&catalog_db).await;
    let catalog_mounted = kosha_catalog::startup::mount(
        &mut server,
        store,
        &kosha_catalog::config::Settings::default(),
        &kosha_catalog::startup::Peers::default(),
    )
    .await
    .expect("mount catalog");
    let catalog_server = TestServer::start(server).await;

    // No scheduler runs here: inventory only needs it for pool expiry, which these
    // tests do not use, and its calls go nowhere.
    let nowhere = "127.0.0.1:9".to_string();
    let mut server = Server::new(test_server_options());
    let store = connect(&inventory_db).await;
    kosha_inventory::startup::mount(
        &mut server,
        store,
        &kosha_inventory::config::Settings::default(),
        &kosha_inventory::startup::Peers {
            scheduler: nowhere.clone(),
        },
    )
    .await
    .expect("mount inventory");
    let inventory_server = TestServer::start(server).await;

    let mut server = Server::new(test_server_options());
    let store = connect(&order_db).await;
    let order_settings = kosha_order::config::Settings {
        register_jobs: false,
        ..Default::default()
    };
    let order_peers = kosha_order::peers::Peers {
        catalog: catalog_server.address_string(),
        inventory: inventory_server.address_string(),
        scheduler: nowhere,
    };
    kosha_order::startup::mount(&mut server, store, &order_settings, &order_peers)
        .await
        .expect("mount order");
    let order_server = TestServer::start(server).await;

    // The service under test, its real dependencies behind fault switches.
    let peers = Peers {
        catalog: catalog_server.address_string(),
        inventory: inventory_server.address_string(),
        order: order_server.address_string(),
    };
    let real = Dependencies::connect(&peers).expect("clients");
    let stock_faults = Arc::new(FaultSwitch::default());
    let order_faults = Arc::new(FaultSwitch::default());
    let product_lookups = Arc::new(AtomicUsize::new(0));
    let dependencies = Dependencies {
        products: Arc::new(CountedProducts {
            inner: real.products.clone(),
            calls: product_lookups.clone(),
        }),
        stock: Arc::new(FaultyStock {
            inner: real.stock.clone(),
            switch: stock_faults.clone(),
        }),
        orders: Arc::new(FaultyOrders {
            inner: real.orders.clone(),
            switch: order_faults.clone(),
        }),
    };
    let mut server = Server::new(test_server_options());
    let store = connect(db).await;
    let po_mounted = startup::mount_with(&mut server, store, &settings, dependencies)
        .await
        .expect("mount purchase-order");
    let po_server = TestServer::start(server).await;

    let mut app = TestApp {
        po: po_client::PurchaseOrderServiceClient::new(po_server.channel().await)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        catalog: CatalogServiceClient::new(catalog_server.channel().await)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        inventory: InventoryServiceClient::new(inventory_server.channel().await)
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        orders: OrderServiceClient::new(order_server.channel().await)
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        stock_faults,
        order_faults,
        product_lookups,
        servers: vec![po_server, order_server, inventory_server, catalog_server],
        po_mounted: Some(po_mounted),
        _catalog_mounted: catalog_mounted,
        _databases: vec![catalog_db, inventory_db, order_db],
    };
    app.create_client(CLIENT).await;
    app
}

async fn connect(db: &TestDatabase) -> Db {
    Db::connect(&db.url, &DbOptions::default())
        .await
        .expect("connect")
}

impl TestApp {
    /// Product-master lookups made so far.
    pub fn lookups(&self) -> usize {
        self.product_lookups.load(Ordering::SeqCst)
    }

    /// Stops the background redelivery and every server.
    pub async fn stop(mut self) {
        if let Some(mounted) = self.po_mounted.take() {
            mounted.shutdown().await;
        }
        for server in self.servers.drain(..) {
            server.stop().await;
        }
    }

    /// Registers a client in the catalog.
    pub async fn create_client(&mut self, client_id: &str) {
        let request = catalog_pb::CreateClientRequest {
            client_id: client_id.to_string(),
            display_name: String::new(),
        };
        self.catalog
            .create_client(request)
            .await
            .expect("create client");
    }

    /// Adds products (SKU and style only) to a client's master in one upload.
    pub async fn add_products(&mut self, client_id: &str, skus: &[&str]) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["sku", "style"]).unwrap();
        for sku in skus {
            writer.write_record([*sku, "STYLE"]).unwrap();
        }
        let file = writer.into_inner().unwrap();
        self.upload_products(client_id, &file).await;
    }

    /// Uploads a product file (create mode) to the catalog; every row must be created.
    pub async fn upload_products(&mut self, client_id: &str, file: &[u8]) -> UploadReport {
        let mut messages: Vec<catalog_pb::UploadProductsRequest> = file
            .chunks(CHUNK_BYTES)
            .map(|chunk| catalog_pb::UploadProductsRequest {
                chunk: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        messages[0].client_id = client_id.to_string();
        messages[0].mode = catalog_pb::UploadMode::Create.into();
        let report = self
            .catalog
            .upload_products(tokio_stream::iter(messages))
            .await
            .expect("product upload")
            .into_inner()
            .report
            .unwrap();
        assert!(
            report.applied && report.errors.is_empty(),
            "{:?}",
            report.errors.first()
        );
        report
    }

    /// Disables a product in the catalog.
    pub async fn disable_product(&mut self, client_id: &str, sku: &str) {
        let request = catalog_pb::DisableProductRequest {
            client_id: client_id.to_string(),
            sku: sku.to_string(),
        };
        self.catalog
            .disable_product(request)
            .await
            .expect("disable");
    }

    /// Uploads an inward PO file in [`CHUNK_BYTES`] chunks.
    pub async fn upload_inward(
        &mut self,
        client_id: &str,
        dry_run: bool,
        file: &[u8],
    ) -> Result<pb::UploadPurchaseOrdersResponse, Status> {
        let mut messages: Vec<pb::UploadPurchaseOrdersRequest> = file
            .chunks(CHUNK_BYTES)
            .map(|chunk| pb::UploadPurchaseOrdersRequest {
                chunk: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        if messages.is_empty() {
            messages.push(pb::UploadPurchaseOrdersRequest::default());
        }
        messages[0].client_id = client_id.to_string();
        messages[0].dry_run = dry_run;
        Ok(self
            .po
            .upload_purchase_orders(tokio_stream::iter(messages))
            .await?
            .into_inner())
    }

    /// Uploads an outward PO file in [`CHUNK_BYTES`] chunks.
    pub async fn upload_outward(
        &mut self,
        client_id: &str,
        dry_run: bool,
        file: &[u8],
    ) -> Result<pb::UploadOutwardPurchaseOrdersResponse, Status> {
        let mut messages: Vec<pb::UploadOutwardPurchaseOrdersRequest> = file
            .chunks(CHUNK_BYTES)
            .map(|chunk| pb::UploadOutwardPurchaseOrdersRequest {
                chunk: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        if messages.is_empty() {
            messages.push(pb::UploadOutwardPurchaseOrdersRequest::default());
        }
        messages[0].client_id = client_id.to_string();
        messages[0].dry_run = dry_run;
        Ok(self
            .po
            .upload_outward_purchase_orders(tokio_stream::iter(messages))
            .await?
            .into_inner())
    }

    /// Creates an inward PO of `(sku, quantity)` lines at unit cost 10.
    pub async fn create_po(
        &mut self,
        po_number: &str,
        lines: &[(&str, i64)],
    ) -> Result<pb::PurchaseOrder, Status> {
        let request = pb::CreatePurchaseOrderRequest {
            client_id: CLIENT.to_string(),
            po_number: po_number.to_string(),
            supplier: "Weaver & Sons".to_string(),
            lines: lines
                .iter()
                .map(|(sku, quantity)| pb::NewPurchaseOrderLine {
                    sku: sku.to_string(),
                    quantity: *quantity,
                    unit_cost: "10".to_string(),
                    expected_date: String::new(),
                })
                .collect(),
            actor: String::new(),
        };
        let response = self.po.create_purchase_order(request).await?.into_inner();
        Ok(response.purchase_order.unwrap())
    }

    /// Receives `(sku, passed, failed)` lines under a GRN number, against a PO or not.
    pub async fn receive(
        &mut self,
        grn_number: &str,
        po_number: &str,
        reason: &str,
        lines: &[(&str, i64, i64)],
    ) -> Result<pb::ReceiveGrnResponse, Status> {
        let request = grn_request(grn_number, po_number, reason, lines);
        Ok(self.po.receive_grn(request).await?.into_inner())
    }

    /// One inward PO.
    pub async fn get_po(&mut self, po_number: &str) -> pb::PurchaseOrder {
        let request = pb::GetPurchaseOrderRequest {
            client_id: CLIENT.to_string(),
            po_number: po_number.to_string(),
        };
        self.po
            .get_purchase_order(request)
            .await
            .expect("get PO")
            .into_inner()
            .purchase_order
            .unwrap()
    }

    /// One GRN.
    pub async fn get_grn(&mut self, grn_number: &str) -> pb::Grn {
        let request = pb::GetGrnRequest {
            client_id: CLIENT.to_string(),
            grn_number: grn_number.to_string(),
        };
        self.po
            .get_grn(request)
            .await
            .expect("get GRN")
            .into_inner()
            .grn
            .unwrap()
    }

    /// How many inward POs the client has.
    pub async fn count_pos(&mut self) -> usize {
        let request = pb::ListPurchaseOrdersRequest {
            client_id: CLIENT.to_string(),
            page_size: 1000,
            ..Default::default()
        };
        self.po
            .list_purchase_orders(request)
            .await
            .unwrap()
            .into_inner()
            .purchase_orders
            .len()
    }

    /// How many outward POs the client has.
    pub async fn count_outward_pos(&mut self) -> usize {
        let request = pb::ListOutwardPurchaseOrdersRequest {
            client_id: CLIENT.to_string(),
            page_size: 1000,
            ..Default::default()
        };
        let response = self
            .po
            .list_outward_purchase_orders(request)
            .await
            .unwrap()
            .into_inner();
        response.outward_purchase_orders.len()
    }

    /// Available units of one SKU in COMMON, by grade: (PASS, FAIL).
    pub async fn common_stock(&mut self, sku: &str) -> (i64, i64) {
        let request = inventory_pb::GetStockRequest {
            client_id: CLIENT.to_string(),
            skus: vec![sku.to_string()],
            pool: "COMMON".to_string(),
            grade: QcGrade::Unspecified.into(),
        };
        let levels = self
            .inventory
            .get_stock(request)
            .await
            .expect("stock")
            .into_inner()
            .levels;
        let mut by_grade = HashMap::new();
        for level in levels {
            let available = level.totals.map_or(0, |totals| totals.available);
            *by_grade.entry(level.grade).or_insert(0) += available;
        }
        (
            by_grade
                .get(&i32::from(QcGrade::Pass))
                .copied()
                .unwrap_or(0),
            by_grade
                .get(&i32::from(QcGrade::Fail))
                .copied()
                .unwrap_or(0),
        )
    }

    /// The receipt transfers of one SKU in inventory's ledger.
    pub async fn receipts_of(&mut self, sku: &str) -> Vec<inventory_pb::Transfer> {
        let request = inventory_pb::ListLedgerRequest {
            client_id: CLIENT.to_string(),
            sku: sku.to_string(),
            page_size: 1000,
            ..Default::default()
        };
        let transfers = self
            .inventory
            .list_ledger(request)
            .await
            .expect("ledger")
            .into_inner();
        transfers
            .transfers
            .into_iter()
            .filter(|transfer| transfer.reason == i32::from(inventory_pb::TransferReason::Receive))
            .collect()
    }

    /// Waits (at most ten seconds) until inventory confirmed a GRN's units.
    pub async fn wait_until_delivered(&mut self, grn_number: &str) -> pb::Grn {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let grn = self.get_grn(grn_number).await;
            if grn.inventory_delivery == i32::from(pb::InventoryDelivery::Delivered) {
                return grn;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GRN never delivered: {grn:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most ten seconds) until an outward PO has its bulk order.
    pub async fn wait_until_linked(&mut self, po_number: &str) -> pb::OutwardPurchaseOrder {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let request = pb::GetOutwardPurchaseOrderRequest {
                client_id: CLIENT.to_string(),
                po_number: po_number.to_string(),
            };
            let po = self
                .po
                .get_outward_purchase_order(request)
                .await
                .expect("get outward PO")
                .into_inner()
                .outward_purchase_order
                .unwrap();
            if po.order_link == i32::from(pb::OrderLink::Linked) {
                return po;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PO never linked: {po:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Available units in COMMON over every SKU, by grade: (PASS, FAIL).
    pub async fn common_totals(&mut self) -> (i64, i64) {
        let (mut passed, mut failed) = (0, 0);
        let mut page_token = String::new();
        loop {
            let request = inventory_pb::ListStockRequest {
                client_id: CLIENT.to_string(),
                pool: "COMMON".to_string(),
                grade: QcGrade::Unspecified.into(),
                page_size: 1000,
                page_token: page_token.clone(),
            };
            let page = self
                .inventory
                .list_stock(request)
                .await
                .expect("stock")
                .into_inner();
            for level in page.levels {
                let available = level.totals.map_or(0, |totals| totals.available);
                if level.grade == i32::from(QcGrade::Pass) {
                    passed += available;
                } else {
                    failed += available;
                }
            }
            if page.next_page_token.is_empty() {
                return (passed, failed);
            }
            page_token = page.next_page_token;
        }
    }

    /// Inventory's audit of the client.
    pub async fn audit(&mut self) -> inventory_pb::AuditResponse {
        let request = inventory_pb::AuditRequest {
            client_id: CLIENT.to_string(),
        };
        self.inventory
            .audit(request)
            .await
            .expect("audit")
            .into_inner()
    }
}

/// A ReceiveGrn request for the test client.
pub fn grn_request(
    grn_number: &str,
    po_number: &str,
    reason: &str,
    lines: &[(&str, i64, i64)],
) -> pb::ReceiveGrnRequest {
    pb::ReceiveGrnRequest {
        client_id: CLIENT.to_string(),
        grn_number: grn_number.to_string(),
        po_number: po_number.to_string(),
        reason: reason.to_string(),
        lines: lines
            .iter()
            .map(|(sku, passed, failed)| pb::GrnLine {
                sku: sku.to_string(),
                passed_quantity: *passed,
                failed_quantity: *failed,
            })
            .collect(),
        actor: String::new(),
    }
}

/// The fields a status's `BadRequest` details name.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    details
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `(row, column, reason)` of every error of a report, sorted.
pub fn report_problems(report: &UploadReport) -> Vec<(i64, String, String)> {
    let mut problems: Vec<(i64, String, String)> = report
        .errors
        .iter()
        .map(|error| (error.row, error.column.clone(), error.reason.clone()))
        .collect();
    problems.sort();
    problems
}
