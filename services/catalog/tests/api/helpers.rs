//! Starting the catalog in-process and talking to it over real gRPC.

use kosha_catalog::config::Settings;
use kosha_catalog::startup::{self, Peers};
use kosha_proto::kosha::catalog::v1 as pb;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::types::UploadReport;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_testkit::{TestDatabase, TestServer, test_server_options};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Chunk size of uploads in tests: small enough that every file of more than a few
/// rows arrives in several messages.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A catalog server and a client of it.
pub struct TestApp {
    /// The running server, kept alive as long as the app.
    _server: TestServer,
    /// The mounted catalog, listening for other replicas' changes as long as the app lives.
    pub mounted: startup::Mounted,
    /// A client of the catalog.
    pub catalog: CatalogServiceClient<Channel>,
}

/// The catalog with default settings on `db`.
pub async fn spawn_app(db: &TestDatabase) -> TestApp {
    spawn_app_with(db, Settings::default()).await
}

/// The catalog with `settings` on `db`.
pub async fn spawn_app_with(db: &TestDatabase, settings: Settings) -> TestApp {
    let store = Db::connect(&db.url, &DbOptions::default())
        .await
        .expect("connect");
    let mut server = Server::new(test_server_options());
    let mounted = startup::mount(&mut server, store, &settings, &Peers::default())
        .await
        .expect("mount");
    let server = TestServer::start(server).await;
    let catalog = CatalogServiceClient::new(server.channel().await)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    TestApp {
        _server: server,
        mounted,
        catalog,
    }
}

impl TestApp {
    /// Registers a client.
    pub async fn create_client(&mut self, client_id: &str) {
        let request = pb::CreateClientRequest {
            client_id: client_id.to_string(),
            display_name: String::new(),
        };
        self.catalog
            .create_client(request)
            .await
            .expect("create client");
    }

    /// Registers a channel.
    pub async fn create_channel(&mut self, code: &str, kind: pb::ChannelKind) {
        let request = pb::CreateChannelRequest {
            code: code.to_string(),
            display_name: String::new(),
            kind: kind.into(),
        };
        self.catalog
            .create_channel(request)
            .await
            .expect("create channel");
    }

    /// Creates a product with a category and an MRP.
    pub async fn create_product(&mut self, client_id: &str, sku: &str) -> pb::Product {
        let product = pb::Product {
            client_id: client_id.to_string(),
            sku: sku.to_string(),
            category: "kurta".to_string(),
            mrp: "999".to_string(),
            ..Default::default()
        };
        let request = pb::CreateProductRequest {
            product: Some(product),
        };
        self.catalog
            .create_product(request)
            .await
            .expect("create product")
            .into_inner()
            .product
            .unwrap()
    }

    /// Reads one product.
    pub async fn get_product(&mut self, client_id: &str, sku: &str) -> Result<pb::Product, Status> {
        let request = pb::GetProductRequest {
            client_id: client_id.to_string(),
            sku: sku.to_string(),
        };
        Ok(self
            .catalog
            .get_product(request)
            .await?
            .into_inner()
            .product
            .unwrap())
    }

    /// Every product of a client, disabled ones too, read page by page.
    pub async fn all_products(&mut self, client_id: &str) -> Vec<pb::Product> {
        let mut products = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListProductsRequest {
                client_id: client_id.to_string(),
                page_size: 1000,
                page_token: page_token.clone(),
                include_disabled: true,
                ..Default::default()
            };
            let page = self
                .catalog
                .list_products(request)
                .await
                .expect("list")
                .into_inner();
            products.extend(page.products);
            if page.next_page_token.is_empty() {
                return products;
            }
            page_token = page.next_page_token;
        }
    }

    /// How many products a client has.
    pub async fn count_products(&mut self, client_id: &str) -> usize {
        self.all_products(client_id).await.len()
    }

    /// Uploads a product file in [`CHUNK_BYTES`] chunks.
    pub async fn upload_products(
        &mut self,
        client_id: &str,
        mode: pb::UploadMode,
        dry_run: bool,
        bytes: &[u8],
    ) -> Result<UploadReport, Status> {
        upload_products(&mut self.catalog, client_id, mode, dry_run, bytes).await
    }

    /// Uploads a listing file in [`CHUNK_BYTES`] chunks.
    pub async fn upload_listings(
        &mut self,
        client_id: &str,
        dry_run: bool,
        bytes: &[u8],
    ) -> Result<UploadReport, Status> {
        let mut messages: Vec<pb::UploadListingsRequest> = bytes
            .chunks(CHUNK_BYTES)
            .map(|chunk| pb::UploadListingsRequest {
                chunk: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        if messages.is_empty() {
            messages.push(pb::UploadListingsRequest::default());
        }
        messages[0].client_id = client_id.to_string();
        messages[0].dry_run = dry_run;
        let response = self
            .catalog
            .upload_listings(tokio_stream::iter(messages))
            .await?;
        Ok(response.into_inner().report.expect("a report"))
    }
}

/// The fields named by a status's `BadRequest` details, after checking its code.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .expect("BadRequest details");
    bad_request
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

/// (row, column, reason) of every error of a report.
pub fn report_errors(report: &UploadReport) -> Vec<(i64, String, String)> {
    report
        .errors
        .iter()
        .map(|e| (e.row, e.column.clone(), e.reason.clone()))
        .collect()
}

/// Uploads a product file in [`CHUNK_BYTES`] chunks through `catalog`.
pub async fn upload_products(
    catalog: &mut CatalogServiceClient<Channel>,
    client_id: &str,
    mode: pb::UploadMode,
    dry_run: bool,
    bytes: &[u8],
) -> Result<UploadReport, Status> {
    let mut messages: Vec<pb::UploadProductsRequest> = bytes
        .chunks(CHUNK_BYTES)
        .map(|chunk| pb::UploadProductsRequest {
            chunk: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    if messages.is_empty() {
        messages.push(pb::UploadProductsRequest::default());
    }
    messages[0].client_id = client_id.to_string();
    messages[0].mode = mode.into();
    messages[0].dry_run = dry_run;
    let response = catalog
        .upload_products(tokio_stream::iter(messages))
        .await?;
    Ok(response.into_inner().report.expect("a report"))
}
