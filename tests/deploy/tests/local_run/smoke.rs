//! A smoke flow across the locally running services: a seller and a product in catalog,
//! stock received in inventory, an order taken by the order service and allocated from
//! that stock. Each step runs when the services it needs run, and says so.

use std::collections::BTreeMap;
use std::time::Duration;

use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::inventory::v1 as inventory;
use kosha_proto::kosha::order::v1 as order;
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
    for level in levels {
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
