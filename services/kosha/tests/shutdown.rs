//! Graceful shutdown of the real `kosha` binary: on SIGTERM health turns NOT_SERVING while
//! the listener still accepts, a call already in flight completes, then the process exits
//! cleanly.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::catalog::v1::{CreateClientRequest, UploadMode, UploadProductsRequest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reports_not_serving_first_and_lets_an_in_flight_upload_finish() {
    // Arrange: a running suite with a client to upload for.
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kosha"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("KOSHA_SHUTDOWN_DELAY_MS", "1500")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let address = banner
        .trim()
        .strip_prefix("kosha: serving on ")
        .unwrap()
        .to_string();
    let uri = format!("http://{address}");
    let channel = connect_when_serving(&uri).await;
    let mut catalog = CatalogServiceClient::new(channel.clone());
    catalog
        .create_client(CreateClientRequest {
            client_id: "drain".into(),
            display_name: String::new(),
        })
        .await
        .unwrap();

    // Act: start an upload, then SIGTERM while its stream is still open.
    let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel::<UploadProductsRequest>(4);
    let upload = tokio::spawn({
        let mut catalog = catalog.clone();
        async move {
            catalog
                .upload_products(tokio_stream::wrappers::ReceiverStream::new(chunk_rx))
                .await
        }
    });
    chunk_tx
        .send(UploadProductsRequest {
            client_id: "drain".into(),
            mode: UploadMode::Create as i32,
            dry_run: false,
            chunk: b"sku,category\nDRAIN-1,kurta\n".to_vec(),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert: health on a new connection says NOT_SERVING while the listener is open.
    let fresh = tonic::transport::Endpoint::from_shared(uri.clone())
        .unwrap()
        .connect()
        .await;
    let fresh = fresh.expect("listener still accepts during the shutdown delay");
    let health = HealthClient::new(fresh)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::NotServing as i32);

    // The in-flight upload completes and is stored.
    chunk_tx
        .send(UploadProductsRequest {
            chunk: b"DRAIN-2,kurta\n".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(chunk_tx);
    let report = upload
        .await
        .unwrap()
        .expect("in-flight upload completes")
        .into_inner();
    assert_eq!(report.report.unwrap().created, 2);

    // The process exits by itself, successfully.
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "kosha exited with {exit:?}");
}

async fn connect_when_serving(uri: &str) -> tonic::transport::Channel {
    for _ in 0..300 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(uri.to_string())
            .unwrap()
            .connect()
            .await
        {
            let check = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if check.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("kosha never became SERVING at {uri}");
}
