//! Traces across service hops: with an OTLP endpoint configured, one CreateOrder on the
//! all-in-one suite is one trace whose spans cover the order service and the calls it
//! makes to catalog and inventory, each hop a child of the caller's span.
//!
//! The suite exports to a trace receiver inside this test (the collector's side of
//! OTLP/gRPC). This file holds one test: the tracing subscriber is global to a process.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kosha::replay::LocalSuite;
use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::inventory::v1 as inv;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::order::v1 as ord;
use kosha_proto::kosha::order::v1::order_service_client::OrderServiceClient;
use kosha_proto::types::QcGrade;
use kosha_runtime::telemetry::{self, LogFormat};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};

/// The collector side of OTLP/gRPC: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().expect("not poisoned").extend(spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("not poisoned").clone()
    }
}

#[test]
fn one_create_order_is_one_trace_across_order_catalog_and_inventory() {
    if !kosha_testkit::store_enabled(kosha_testkit::Store::Sqlite) {
        eprintln!("notice: SQLite left out by KOSHA_TEST_STORES: the tracing test is not run");
        return;
    }
    // Arrange: the receiver's port first, since the exporter reads its endpoint from the
    // environment when the subscriber is installed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // SAFETY: no other thread exists yet in this process (this file has one test, and the
    // runtime is built below), so nothing reads the environment while it changes.
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    runtime.block_on(async move {
        let receiver = Receiver::default();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(
            tokio::net::TcpListener::from_std(listener).unwrap(),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .serve_with_incoming(incoming),
        );
        let telemetry = telemetry::init("kosha", LogFormat::Text).unwrap();

        let data_dir = tempfile::tempdir().unwrap();
        let suite = LocalSuite::start(data_dir.path(), &data_dir.path().join("channels"))
            .await
            .unwrap();
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", suite.address()))
                .unwrap()
                .connect_lazy();
        seed_a_listed_product_in_stock(channel.clone()).await;

        // Act
        let request = ord::CreateOrderRequest {
            client_id: "trace".into(),
            channel: "AMAZON".into(),
            channel_order_id: "408-0000000-0000001".into(),
            lines: vec![ord::NewOrderLine {
                marketplace_sku: "TRACE-1".into(),
                quantity: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let created = OrderServiceClient::new(channel)
            .create_order(request)
            .await
            .unwrap();
        let status = created.into_inner().order.unwrap().status;
        // Dropping the guard flushes what the exporter still holds.
        tokio::task::spawn_blocking(move || drop(telemetry))
            .await
            .unwrap();

        // Assert
        assert_eq!(status, ord::OrderStatus::Fulfillable as i32);
        let trace = wait_for_trace_of(&receiver, "kosha.order.v1.OrderService/CreateOrder").await;
        let names: BTreeSet<&str> = trace.iter().map(|span| span.name.as_str()).collect();
        eprintln!("spans of the CreateOrder trace: {names:?}");
        assert!(
            names.contains("kosha.catalog.v1.CatalogService/ResolveListings"),
            "no catalog hop in {names:?}"
        );
        assert!(
            names.contains("kosha.inventory.v1.InventoryService/Allocate"),
            "no inventory hop in {names:?}"
        );
        let root = trace
            .iter()
            .find(|span| span.name == "kosha.order.v1.OrderService/CreateOrder")
            .unwrap();
        assert!(
            root.parent_span_id.is_empty(),
            "CreateOrder starts the trace"
        );
        let ids: BTreeSet<&[u8]> = trace.iter().map(|span| span.span_id.as_slice()).collect();
        for span in trace.iter().filter(|span| span.span_id != root.span_id) {
            assert!(
                ids.contains(span.parent_span_id.as_slice()),
                "span {} has a parent outside the trace",
                span.name
            );
        }
        suite.stop().await.unwrap();
    });
}

/// A client with one product listed on AMAZON and five units of it in COMMON.
async fn seed_a_listed_product_in_stock(channel: tonic::transport::Channel) {
    let mut catalog = CatalogServiceClient::new(channel.clone());
    catalog
        .create_client(cat::CreateClientRequest {
            client_id: "trace".into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    catalog
        .create_channel(cat::CreateChannelRequest {
            code: "AMAZON".into(),
            display_name: String::new(),
            kind: cat::ChannelKind::Marketplace as i32,
        })
        .await
        .unwrap();
    let product = cat::Product {
        client_id: "trace".into(),
        sku: "TRACE-1".into(),
        category: "kurta".into(),
        ..Default::default()
    };
    catalog
        .create_product(cat::CreateProductRequest {
            product: Some(product),
        })
        .await
        .unwrap();
    let listing = cat::Listing {
        client_id: "trace".into(),
        channel: "AMAZON".into(),
        marketplace_sku: "TRACE-1".into(),
        sku: "TRACE-1".into(),
        update_time: None,
    };
    catalog
        .create_listing(cat::CreateListingRequest {
            listing: Some(listing),
        })
        .await
        .unwrap();
    let receipt = inv::ReceiveRequest {
        client_id: "trace".into(),
        reference: "GRN-TRACE-1".into(),
        lines: vec![inv::ReceiveLine {
            sku: "TRACE-1".into(),
            grade: QcGrade::Pass as i32,
            quantity: 5,
        }],
        idempotency_key: "grn:GRN-TRACE-1".into(),
        actor: "test".into(),
    };
    InventoryServiceClient::new(channel)
        .receive(receipt)
        .await
        .unwrap();
}

/// Every span of the trace that holds a span named `root_name`, once the receiver has it.
async fn wait_for_trace_of(receiver: &Receiver, root_name: &str) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.spans();
        if let Some(root) = spans.iter().find(|span| span.name == root_name) {
            let trace_id = root.trace_id.clone();
            return spans
                .into_iter()
                .filter(|span| span.trace_id == trace_id)
                .collect();
        }
        assert!(Instant::now() < deadline, "no span `{root_name}` received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
