//! A smoke flow across the locally running services: a seller and a product in catalog,
//! stock received in inventory, an order taken by the order service and allocated from
//! that stock. Each step runs when the services it needs run, and says so.

use std::collections::BTreeMap;
use std::time::Duration;

use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::inventory::v1 as inventory;
use kosha_proto::kosha::order::v1 as order;
use kosha_proto::kosha::purchase_order::v1 as purchase_order;
use kosha_proto::kosha::scheduler::v1 as scheduler;
use kosha_proto::types::QcGrade;
use tonic::transport::Channel;

const CLIENT: &str = "deploy-smoke";
const CHANNEL: &str = "DEPLOYSHOP";
const SKU: &str = "KURTA-RED-M";

/// Which steps ran and which were skipped (with the missing services).
#[derive(Debug, Default)]
pub struct Report {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
}

impl Report {
    /// Whether every one of `services` runs; records a skip otherwise.
    fn can_run(
        &mut self,
        step: &str,
        services: &[&str],
        running: &BTreeMap<String, String>,
    ) -> bool {
        let missing: Vec<&str> = services
            .iter()
            .copied()
            .filter(|s| !running.contains_key(*s))
            .collect();
        if missing.is_empty() {
            self.ran.push(step.to_string());
            true
        } else {
            self.skipped
                .push(format!("{step} (needs {})", missing.join(", ")));
            false
        }
    }
}

/// Runs every step the running services allow; `running` maps Deployment to URI.
pub async fn run(running: &BTreeMap<String, String>) -> Report {
    let mut report = Report::default();

    if report.can_run(
        "catalog: seller, channel and product",
        &["catalog"],
        running,
    ) {
        catalog_step(&running["catalog"]).await;
    }
    if report.can_run(
        "scheduler: schedule and cancel a job",
        &["scheduler"],
        running,
    ) {
        scheduler_step(&running["scheduler"]).await;
    }
    if report.can_run(
        "inventory: goods receipt into COMMON",
        &["inventory"],
        running,
    ) {
        inventory_step(&running["inventory"]).await;
    }
    if report.can_run(
        "order: order allocated from received stock",
        &["catalog", "inventory", "order"],
        running,
    ) {
        order_step(&running["order"], &running["inventory"]).await;
    }
    let step = "order -> scheduler -> order: recurring jobs registered and one run on demand";
    if report.can_run(step, &["scheduler", "order"], running) {
        recurring_job_step(&running["scheduler"], "order").await;
    }
    let step = "inventory -> scheduler -> inventory: a pool's expiry job run when due";
    if report.can_run(step, &["inventory", "scheduler"], running) {
        pool_expiry_step(&running["inventory"], &running["scheduler"]).await;
    }
    let step = "purchase-order -> catalog, inventory: inward PO and its GRN into stock";
    if report.can_run(step, &["catalog", "inventory", "purchase-order"], running) {
        purchase_order_step(&running["purchase-order"], &running["inventory"]).await;
    }
    let step = "purchase-order -> order: outward PO becomes a bulk order";
    if report.can_run(step, &["catalog", "order", "purchase-order"], running) {
        outward_purchase_order_step(&running["purchase-order"], &running["order"]).await;
    }
    report
}

async fn connect(uri: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(uri.to_string())
        .expect("uri")
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

async fn catalog_step(uri: &str) {
    let mut client = catalog::catalog_service_client::CatalogServiceClient::new(connect(uri).await);
    client
        .create_client(catalog::CreateClientRequest {
            client_id: CLIENT.into(),
            display_name: "Deploy smoke".into(),
        })
        .await
        .expect("CreateClient");
    client
        .create_channel(catalog::CreateChannelRequest {
            code: CHANNEL.into(),
            display_name: "Deploy shop".into(),
            kind: catalog::ChannelKind::Marketplace.into(),
        })
        .await
        .expect("CreateChannel");
    client
        .create_product(catalog::CreateProductRequest {
            product: Some(catalog::Product {
                client_id: CLIENT.into(),
                sku: SKU.into(),
                category: "kurta".into(),
                mrp: "1299".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("CreateProduct");

    let product = client
        .get_product(catalog::GetProductRequest {
            client_id: CLIENT.into(),
            sku: SKU.into(),
        })
        .await
        .expect("GetProduct")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        (product.client_id.as_str(), product.sku.as_str()),
        (CLIENT, SKU)
    );
    assert_eq!(product.mrp.parse::<f64>().ok(), Some(1299.0), "{product:?}");
    eprintln!("deploy: smoke: catalog holds {CLIENT}/{SKU}");
}

async fn inventory_step(uri: &str) {
    let mut client =
        inventory::inventory_service_client::InventoryServiceClient::new(connect(uri).await);
    client
        .receive(inventory::ReceiveRequest {
            client_id: CLIENT.into(),
            reference: "GRN-DEPLOY-1".into(),
            lines: vec![inventory::ReceiveLine {
                sku: SKU.into(),
                grade: QcGrade::Pass.into(),
                quantity: 5,
            }],
            idempotency_key: "grn:GRN-DEPLOY-1".into(),
            actor: "deploy-test".into(),
        })
        .await
        .expect("Receive");

    let totals = stock_totals(&mut client).await;
    assert_eq!(totals.available, 5, "{totals:?}");
    eprintln!("deploy: smoke: inventory holds 5 available of {SKU}");
}

async fn order_step(order_uri: &str, inventory_uri: &str) {
    let mut client = order::order_service_client::OrderServiceClient::new(connect(order_uri).await);
    let created = client
        .create_order(order::CreateOrderRequest {
            client_id: CLIENT.into(),
            channel: CHANNEL.into(),
            channel_order_id: "DEPLOY-ORDER-1".into(),
            lines: vec![order::NewOrderLine {
                sku: SKU.into(),
                quantity: 2,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("CreateOrder")
        .into_inner()
        .order
        .expect("order");

    let stored = client
        .get_order(order::GetOrderRequest {
            order_id: created.order_id.clone(),
        })
        .await
        .expect("GetOrder")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        stored.status(),
        order::OrderStatus::Fulfillable,
        "{stored:?}"
    );
    assert_eq!(stored.lines[0].allocated_quantity, 2, "{stored:?}");
    let mut stock = inventory::inventory_service_client::InventoryServiceClient::new(
        connect(inventory_uri).await,
    );
    let totals = stock_totals(&mut stock).await;
    assert_eq!((totals.available, totals.allocated), (3, 2), "{totals:?}");
    eprintln!(
        "deploy: smoke: order {} allocated 2 of {SKU}; inventory agrees",
        stored.order_id
    );
}

/// The PASS-grade stock of the smoke SKU, summed over pools.
async fn stock_totals(
    client: &mut inventory::inventory_service_client::InventoryServiceClient<Channel>,
) -> inventory::StockTotals {
    let levels = client
        .get_stock(inventory::GetStockRequest {
            client_id: CLIENT.into(),
            skus: vec![SKU.into()],
            ..Default::default()
        })
        .await
        .expect("GetStock")
        .into_inner()
        .levels;
    let mut totals = inventory::StockTotals::default();
    for level in levels
        .into_iter()
        .filter(|level| level.grade() == QcGrade::Pass)
    {
        let level_totals = level.totals.unwrap_or_default();
        totals.available += level_totals.available;
        totals.allocated += level_totals.allocated;
        totals.recycle += level_totals.recycle;
    }
    totals
}

type SchedulerClient = scheduler::scheduler_service_client::SchedulerServiceClient<Channel>;

async fn scheduler_step(uri: &str) {
    let mut client = SchedulerClient::new(connect(uri).await);
    let in_a_day = std::time::SystemTime::now() + Duration::from_secs(86_400);
    let job = client
        .schedule_job(scheduler::ScheduleJobRequest {
            owner: "order".into(),
            kind: "deploy-smoke".into(),
            due_time: Some(in_a_day.into()),
            idempotency_key: "deploy-smoke-1".into(),
            ..Default::default()
        })
        .await
        .expect("ScheduleJob")
        .into_inner()
        .job
        .expect("job");
    assert_eq!(job.state(), scheduler::JobState::Pending, "{job:?}");

    let cancelled = client
        .cancel_job(scheduler::CancelJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .expect("CancelJob")
        .into_inner()
        .job
        .expect("job");
    assert_eq!(
        cancelled.state(),
        scheduler::JobState::Cancelled,
        "{cancelled:?}"
    );
    eprintln!(
        "deploy: smoke: scheduler stored and cancelled job {}",
        job.job_id
    );
}

/// The owner registered its recurring jobs with the scheduler at start (owner to
/// scheduler); one of them, run now, comes back through the owner's JobHandler at the
/// address the scheduler's manifest gives (scheduler to owner).
async fn recurring_job_step(uri: &str, owner: &str) {
    let mut client = SchedulerClient::new(connect(uri).await);
    let recurring = wait_for(Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let listed = client
                .list_recurring_jobs(scheduler::ListRecurringJobsRequest {
                    owner: owner.into(),
                    ..Default::default()
                })
                .await
                .expect("ListRecurringJobs")
                .into_inner()
                .recurring_jobs;
            // A reconcile or sweep changes nothing when there is nothing to do.
            listed
                .iter()
                .find(|job| job.kind.contains("reconcile") || job.kind.contains("sweep"))
                .or(listed.first())
                .cloned()
        }
    })
    .await
    .unwrap_or_else(|| panic!("{owner} registered no recurring job with the scheduler"));

    let run = client
        .run_now(scheduler::RunNowRequest {
            job_id: recurring.recurring_job_id.clone(),
        })
        .await
        .expect("RunNow")
        .into_inner()
        .job
        .expect("job");
    let finished = wait_for(Duration::from_secs(60), || {
        let mut client = client.clone();
        let job_id = run.job_id.clone();
        async move {
            let job = client
                .get_job(scheduler::GetJobRequest { job_id })
                .await
                .expect("GetJob")
                .into_inner()
                .job
                .expect("job");
            let done = matches!(
                job.state(),
                scheduler::JobState::Succeeded | scheduler::JobState::Failed
            );
            done.then_some(job)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the run of {owner}/{} did not finish", recurring.kind));
    assert_eq!(
        finished.state(),
        scheduler::JobState::Succeeded,
        "{finished:?}"
    );
    eprintln!(
        "deploy: smoke: {owner}/{} ran through the scheduler and {owner}'s JobHandler",
        recurring.kind
    );
}

/// Polls `probe` until it returns something or `timeout` passes.
async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type InventoryClient = inventory::inventory_service_client::InventoryServiceClient<Channel>;

/// A pool created with an expiry a few seconds ahead: inventory hands the expiry job to
/// the scheduler (inventory to scheduler), which runs it when due through inventory's
/// JobHandler (scheduler to inventory).
async fn pool_expiry_step(inventory_uri: &str, scheduler_uri: &str) {
    let mut pools = InventoryClient::new(connect(inventory_uri).await);
    let expire = std::time::SystemTime::now() + Duration::from_secs(3);
    pools
        .create_pool(inventory::CreatePoolRequest {
            client_id: CLIENT.into(),
            name: "DEPLOY-FLASH-SALE".into(),
            expire_time: Some(expire.into()),
            idempotency_key: "deploy-pool-1".into(),
            actor: "deploy-test".into(),
            ..Default::default()
        })
        .await
        .expect("CreatePool");

    let jobs = SchedulerClient::new(connect(scheduler_uri).await);
    let finished = wait_for(Duration::from_secs(60), || {
        let mut jobs = jobs.clone();
        async move {
            let listed = jobs
                .list_jobs(scheduler::ListJobsRequest {
                    owner: "inventory".into(),
                    ..Default::default()
                })
                .await
                .expect("ListJobs")
                .into_inner()
                .jobs;
            listed.into_iter().find(|job| {
                matches!(
                    job.state(),
                    scheduler::JobState::Succeeded | scheduler::JobState::Failed
                )
            })
        }
    })
    .await
    .expect("inventory's pool expiry job did not run within a minute");
    assert_eq!(
        finished.state(),
        scheduler::JobState::Succeeded,
        "{finished:?}"
    );
    eprintln!(
        "deploy: smoke: inventory/{} ran when due through inventory's JobHandler",
        finished.kind
    );
}

/// An inward PO names a catalog SKU (purchase-order to catalog); its GRN's passed units
/// reach inventory's COMMON pool (purchase-order to inventory).
async fn purchase_order_step(purchase_order_uri: &str, inventory_uri: &str) {
    let mut client = purchase_order::purchase_order_service_client::PurchaseOrderServiceClient::new(
        connect(purchase_order_uri).await,
    );
    let mut stock = InventoryClient::new(connect(inventory_uri).await);
    let before = stock_totals(&mut stock).await;
    client
        .create_purchase_order(purchase_order::CreatePurchaseOrderRequest {
            client_id: CLIENT.into(),
            po_number: "PO-DEPLOY-1".into(),
            supplier: "Deploy Supplier".into(),
            lines: vec![purchase_order::NewPurchaseOrderLine {
                sku: SKU.into(),
                quantity: 10,
                unit_cost: "499".into(),
                ..Default::default()
            }],
            actor: "deploy-test".into(),
        })
        .await
        .expect("CreatePurchaseOrder");

    client
        .receive_grn(purchase_order::ReceiveGrnRequest {
            client_id: CLIENT.into(),
            grn_number: "GRN-DEPLOY-2".into(),
            po_number: "PO-DEPLOY-1".into(),
            lines: vec![purchase_order::GrnLine {
                sku: SKU.into(),
                passed_quantity: 4,
                failed_quantity: 1,
            }],
            actor: "deploy-test".into(),
            ..Default::default()
        })
        .await
        .expect("ReceiveGrn");

    // Delivery to inventory may finish in the background; it converges within a round.
    let after = wait_for(Duration::from_secs(60), || {
        let mut stock = stock.clone();
        async move {
            let totals = stock_totals(&mut stock).await;
            (totals.available == before.available + 4).then_some(totals)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the GRN's 4 passed units never reached inventory ({before:?})"));
    eprintln!(
        "deploy: smoke: GRN-DEPLOY-2 took PASS stock of {SKU} from {} to {} available",
        before.available, after.available
    );
}

/// An outward (B2B) PO becomes a bulk order in the order service.
async fn outward_purchase_order_step(purchase_order_uri: &str, order_uri: &str) {
    let client = purchase_order::purchase_order_service_client::PurchaseOrderServiceClient::new(
        connect(purchase_order_uri).await,
    );
    client
        .clone()
        .create_outward_purchase_order(purchase_order::CreateOutwardPurchaseOrderRequest {
            client_id: CLIENT.into(),
            po_number: "OPO-DEPLOY-1".into(),
            customer: "Deploy Wholesale".into(),
            lines: vec![purchase_order::OutwardPurchaseOrderLine {
                sku: SKU.into(),
                quantity: 1,
            }],
            actor: "deploy-test".into(),
            ..Default::default()
        })
        .await
        .expect("CreateOutwardPurchaseOrder");

    let linked = wait_for(Duration::from_secs(60), || {
        let mut client = client.clone();
        async move {
            let po = client
                .get_outward_purchase_order(purchase_order::GetOutwardPurchaseOrderRequest {
                    client_id: CLIENT.into(),
                    po_number: "OPO-DEPLOY-1".into(),
                })
                .await
                .expect("GetOutwardPurchaseOrder")
                .into_inner()
                .outward_purchase_order
                .expect("outward purchase order");
            (po.order_link() == purchase_order::OrderLink::Linked).then_some(po)
        }
    })
    .await
    .expect("the outward PO was not linked to a bulk order within a minute");

    let mut orders = order::order_service_client::OrderServiceClient::new(connect(order_uri).await);
    let bulk = orders
        .get_order(order::GetOrderRequest {
            order_id: linked.order_id.clone(),
        })
        .await
        .expect("GetOrder")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(bulk.channel_order_id, "OPO-DEPLOY-1", "{bulk:?}");
    eprintln!(
        "deploy: smoke: outward PO OPO-DEPLOY-1 is bulk order {}",
        bulk.order_id
    );
}
