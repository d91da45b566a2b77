//! A running inventory server per test, and request helpers.

use kosha_inventory::config::Settings;
use kosha_inventory::startup::{Mounted, Peers, mount};
use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::types::QcGrade;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::Server;
use kosha_testkit::{TestDatabase, TestServer, test_server_options};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The client every test uses unless it needs two.
pub const CLIENT: &str = "acme";
/// PASS, as the wire carries it.
pub const PASS: i32 = QcGrade::Pass as i32;
/// FAIL, as the wire carries it.
pub const FAIL: i32 = QcGrade::Fail as i32;

/// A scheduler address nothing listens on (port 9, discard, is never bound here).
pub const NO_SCHEDULER: &str = "127.0.0.1:9";

/// An inventory server on a test database.
pub struct TestApp {
    pub server: TestServer,
    pub client: InventoryServiceClient<Channel>,
    pub mounted: Mounted,
    pub db: Db,
}

/// Starts inventory on `db` with default settings and no scheduler.
pub async fn spawn_app(db: &TestDatabase) -> TestApp {
    spawn_app_with(db, Settings::default(), NO_SCHEDULER).await
}

/// Starts inventory on `db`.
pub async fn spawn_app_with(db: &TestDatabase, settings: Settings, scheduler: &str) -> TestApp {
    let options = DbOptions {
        max_connections: 8,
        ..DbOptions::default()
    };
    let database = Db::connect(&db.url, &options).await.expect("connect");
    let mut server = Server::new(test_server_options());
    let peers = Peers {
        scheduler: scheduler.to_string(),
    };
    let mounted = mount(&mut server, database.clone(), &settings, &peers)
        .await
        .expect("mount");
    let server = TestServer::start(server).await;
    let client = InventoryServiceClient::new(server.channel().await);
    TestApp {
        server,
        client,
        mounted,
        db: database,
    }
}

/// A fresh idempotency key.
pub fn key() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Asserts an error code and that the message names `needle` (a field, a pool, ...).
pub fn assert_error(result: Result<impl std::fmt::Debug, Status>, code: Code, needle: &str) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "`{}` does not mention `{needle}`",
        status.message()
    );
}

impl TestApp {
    /// Rows in every table that a call may write, to check that a refused call wrote
    /// nothing.
    pub async fn footprint(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in [
            "stock",
            "ledger",
            "allocations",
            "idempotency",
            "stock_changes",
            "pools",
            "outbox",
        ] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            counts.push(
                sqlx::query_scalar(&sql)
                    .fetch_one(self.db.pool())
                    .await
                    .unwrap(),
            );
        }
        let stock: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(available + allocated + recycle), 0) AS BIGINT) FROM stock",
        )
        .fetch_one(self.db.pool())
        .await
        .unwrap();
        counts.push(stock);
        counts
    }

    /// Asserts that `Audit` finds nothing wrong.
    pub async fn assert_books_clean(&mut self) {
        let audit = self
            .client
            .clone()
            .audit(pb::AuditRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(
            audit.clean,
            "audit found differences: {:#?}",
            audit.discrepancies
        );
    }

    /// Receives units into COMMON.
    pub async fn receive(&mut self, sku: &str, grade: i32, quantity: i64) -> pb::ReceiveResponse {
        self.client
            .receive(pb::ReceiveRequest {
                client_id: CLIENT.into(),
                reference: format!("GRN-{}", key()),
                lines: vec![pb::ReceiveLine {
                    sku: sku.into(),
                    grade,
                    quantity,
                }],
                idempotency_key: key(),
                actor: "test".into(),
            })
            .await
            .expect("receive")
            .into_inner()
    }

    /// Creates a reserve pool serving `channels`.
    pub async fn create_pool(&mut self, name: &str, channels: &[&str]) -> pb::Pool {
        self.client
            .create_pool(pb::CreatePoolRequest {
                client_id: CLIENT.into(),
                name: name.into(),
                channels: channels.iter().map(|c| c.to_string()).collect(),
                idempotency_key: key(),
                actor: "test".into(),
                ..Default::default()
            })
            .await
            .expect("create pool")
            .into_inner()
            .pool
            .unwrap()
    }

    /// Moves PASS units between pools.
    pub async fn move_stock(&mut self, from: &str, to: &str, sku: &str, quantity: i64) {
        self.client
            .move_stock(move_request(from, to, sku, quantity))
            .await
            .expect("move stock");
    }

    /// AVAILABLE/ALLOCATED/RECYCLE of one SKU, pool and grade.
    pub async fn totals(&mut self, sku: &str, pool: &str, grade: i32) -> (i64, i64, i64) {
        let response = self
            .client
            .get_stock(pb::GetStockRequest {
                client_id: CLIENT.into(),
                skus: vec![sku.into()],
                pool: pool.into(),
                grade,
            })
            .await
            .expect("get stock")
            .into_inner();
        response
            .levels
            .first()
            .and_then(|level| level.totals)
            .map(|t| (t.available, t.allocated, t.recycle))
            .unwrap_or_default()
    }

    /// Allocates PASS units of `lines` (line id, SKU, quantity) from `pool`.
    pub async fn allocate(
        &mut self,
        order_ref: &str,
        pool: &str,
        mode: pb::AllocationMode,
        lines: &[(&str, &str, i64)],
    ) -> Result<pb::AllocateResponse, Status> {
        self.client
            .allocate(allocate_request(order_ref, pool, mode, lines, false))
            .await
            .map(|response| response.into_inner())
    }
}

/// A PASS move of one SKU.
pub fn move_request(from: &str, to: &str, sku: &str, quantity: i64) -> pb::MoveStockRequest {
    pb::MoveStockRequest {
        client_id: CLIENT.into(),
        from_pool: from.into(),
        to_pool: to.into(),
        lines: vec![pb::MoveStockLine {
            sku: sku.into(),
            grade: PASS,
            quantity,
        }],
        dry_run: false,
        reason: "test".into(),
        idempotency_key: key(),
        actor: "test".into(),
    }
}

/// An allocation request of PASS units.
pub fn allocate_request(
    order_ref: &str,
    pool: &str,
    mode: pb::AllocationMode,
    lines: &[(&str, &str, i64)],
    top_up: bool,
) -> pb::AllocateRequest {
    pb::AllocateRequest {
        client_id: CLIENT.into(),
        order_ref: order_ref.into(),
        pool: pool.into(),
        channel: String::new(),
        grade: PASS,
        mode: mode as i32,
        lines: lines
            .iter()
            .map(|(line_id, sku, quantity)| pb::AllocateLine {
                line_id: line_id.to_string(),
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        top_up,
        idempotency_key: key(),
        actor: "test".into(),
    }
}
