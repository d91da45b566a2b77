//! Channel sync: pulling orders (file connector and a recurring job), pushing availability.

use std::time::Duration;

use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_runtime::time::{now_micros, to_timestamp};
use kosha_testkit::TestDatabase;

use crate::harness::{CLIENT, Options, assert_refused, order, spawn_app};

async fn orders_are_pulled_from_the_file_connector_and_availability_is_pushed(db: TestDatabase) {
    // Arrange
    let files = db.dir().join("amazon-files");
    let client_dir = files.join(CLIENT);
    std::fs::create_dir_all(&client_dir).unwrap();
    std::fs::write(
        client_dir.join("orders.json"),
        r#"[
          {"channel_order_id": "404-F-1", "parent_order_id": "404-PARENT-1",
           "order_time": "2026-01-05T10:00:00+05:30",
           "lines": [{"marketplace_sku": "AM-1", "quantity": 2}]},
          {"channel_order_id": "404-F-2", "order_time": "2026-01-05T11:00:00+05:30",
           "lines": [{"marketplace_sku": "AM-NOT-LISTED", "quantity": 1}]},
          {"channel_order_id": "404-F-0", "order_time": "2026-01-05T12:00:00+05:30",
           "lines": [{"marketplace_sku": "AM-1", "quantity": 0}]},
          {"channel_order_id": "404-F-9", "order_time": "yesterday",
           "lines": [{"marketplace_sku": "AM-1", "quantity": 1}]}
        ]"#,
    )
    .unwrap();
    let mut options = Options::default();
    // Nothing listens on port 1 of loopback: PAYTM's connector cannot be reached.
    options.settings.connectors =
        format!("AMAZON=dir:{},PAYTM=http://127.0.0.1:1", files.display());
    let app = spawn_app(db, options).await;
    app.receive("SKU-1", 5, QcGrade::Pass).await;
    let sync = |app: &crate::harness::TestApp| {
        let mut orders = app.orders.clone();
        async move {
            orders
                .sync_orders(api::SyncOrdersRequest {
                    client_id: CLIENT.into(),
                    channel: "AMAZON".into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // Act
    let first = sync(&app).await;
    let second = sync(&app).await;
    std::fs::write(
        client_dir.join("orders.csv"),
        "channel_order_id,order_time,marketplace_sku,quantity\n\
         404-F-3,2026-01-06T09:00:00Z,AM-1,1\n",
    )
    .unwrap();
    let third = sync(&app).await;
    let unreachable = app
        .orders
        .clone()
        .sync_orders(api::SyncOrdersRequest {
            client_id: CLIENT.into(),
            channel: "PAYTM".into(),
        })
        .await
        .unwrap_err();
    let pushed = app
        .orders
        .clone()
        .push_availability(api::PushAvailabilityRequest {
            client_id: CLIENT.into(),
            channel: "AMAZON".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let by_hand = app
        .create(order("AMAZON", "404-BY-HAND", &[("AM-1", 1)]))
        .await;
    let statuses = app.sync_channel_statuses("AMAZON").await;
    // A status row that cannot be read: the order's state is unknown, so packing waits.
    let first_order = app
        .orders
        .clone()
        .search_orders(api::SearchOrdersRequest {
            client_id: CLIENT.into(),
            id: "404-F-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders
        .remove(0);
    let pick = api::PickOrderRequest {
        order_id: first_order.order_id.clone(),
        ..Default::default()
    };
    app.orders.clone().pick_order(pick).await.unwrap();
    std::fs::write(
        client_dir.join("statuses.csv"),
        "channel_order_id,state\n404-F-1,cancelled\n",
    )
    .unwrap();
    let unreadable = app.sync_channel_statuses("AMAZON").await;
    let pack = api::PackOrderRequest {
        order_id: first_order.order_id.clone(),
        ..Default::default()
    };
    let not_packed = app.orders.clone().pack_order(pack).await.unwrap_err();
    let no_connector = app
        .orders
        .clone()
        .sync_orders(api::SyncOrdersRequest {
            client_id: CLIENT.into(),
            channel: "MYNTRA".into(),
        })
        .await
        .unwrap_err();
    let unknown_channel = app
        .orders
        .clone()
        .sync_orders(api::SyncOrdersRequest {
            client_id: CLIENT.into(),
            channel: "NOPE".into(),
        })
        .await
        .unwrap_err();
    let unknown_client = app
        .orders
        .clone()
        .sync_orders(api::SyncOrdersRequest {
            client_id: "nobody".into(),
            channel: "AMAZON".into(),
        })
        .await
        .unwrap_err();
    let unknown_client_statuses = app
        .orders
        .clone()
        .sync_order_status(api::SyncOrderStatusRequest {
            target: Some(api::sync_order_status_request::Target::ChannelScope(
                api::ChannelScope {
                    client_id: "nobody".into(),
                    channel: "AMAZON".into(),
                },
            )),
        })
        .await
        .unwrap_err();

    // Assert
    assert_eq!((first.fetched, first.created, first.failed), (4, 1, 3));
    let refused: Vec<_> = first
        .refused
        .iter()
        .map(|order| order.channel_order_id.as_str())
        .collect();
    assert_eq!(
        refused,
        ["404-F-0", "404-F-9"],
        "only malformed orders are refused"
    );
    assert!(
        first.refused[0].reason.starts_with("orders.json [2]: ")
            && first.refused[0].reason.contains("quantity"),
        "the refusal says where the order is and what is wrong: {}",
        first.refused[0].reason
    );
    assert!(
        first.refused[1]
            .reason
            .contains("orders.json [3]: `order_time`: `yesterday`"),
        "the connector names what it could not read: {}",
        first.refused[1].reason
    );
    assert_eq!(second.fetched, 0, "the cursor moved past what was taken in");
    assert_eq!((third.fetched, third.created), (1, 1));
    assert_eq!(
        statuses.unknown_channel_order_ids,
        std::slice::from_ref(&by_hand.channel_order_id),
        "the channel's files do not know an order entered by hand"
    );
    assert_eq!(unreadable.unreadable_statuses.len(), 1, "{unreadable:?}");
    assert_eq!(
        unreadable.unreadable_statuses[0].channel_order_id,
        "404-F-1"
    );
    assert!(unreadable.cancelled_order_ids.is_empty());
    assert_refused(
        &not_packed,
        tonic::Code::FailedPrecondition,
        "cannot be told",
    );
    assert_refused(
        &unreachable,
        tonic::Code::Unavailable,
        "channel `PAYTM` connector (http://127.0.0.1:1)",
    );
    assert_eq!(pushed.pushed, 6);
    let availability = std::fs::read_to_string(client_dir.join("availability.csv")).unwrap();
    assert!(availability.contains("AM-1,SKU-1,2\n"), "{availability}");
    assert!(availability.contains("AM-2,SKU-2,0\n"), "{availability}");
    assert_refused(
        &no_connector,
        tonic::Code::FailedPrecondition,
        "KOSHA_ORDER_CONNECTORS",
    );
    assert_refused(
        &unknown_channel,
        tonic::Code::InvalidArgument,
        "`NOPE` is not registered",
    );
    for refused in [unknown_client, unknown_client_statuses] {
        assert_refused(&refused, tonic::Code::NotFound, "nobody");
    }
}

async fn a_configured_channel_is_synced_by_its_recurring_job_without_a_call(db: TestDatabase) {
    // Arrange
    let mut options = Options {
        test_connector_channels: vec!["FLIPKART"],
        ..Options::default()
    };
    options.settings.sync_targets = format!("{CLIENT}:FLIPKART");
    options.settings.sync_interval_secs = 1;
    let app = spawn_app(db, options).await;
    app.receive("SKU-3", 4, QcGrade::Pass).await;

    // Act
    app.connector.state.lock().unwrap().orders.insert(
        "FLIPKART".into(),
        vec![channel::ChannelOrder {
            channel_order_id: "FK-PULLED-1".into(),
            parent_order_id: "OD900".into(),
            order_time: Some(to_timestamp(now_micros())),
            lines: vec![channel::ChannelOrderLine {
                marketplace_sku: "FK-3".into(),
                quantity: 1,
                price: "10".into(),
            }],
            ..Default::default()
        }],
    );
    let mut found = None;
    for _ in 0..200 {
        let response = app
            .orders
            .clone()
            .search_orders(api::SearchOrdersRequest {
                client_id: CLIENT.into(),
                id: "od900".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(order) = response.orders.into_iter().next() {
            found = Some(order);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pushed = Vec::new();
    for _ in 0..100 {
        pushed = app
            .connector
            .state
            .lock()
            .unwrap()
            .pushed
            .get("FLIPKART")
            .cloned()
            .unwrap_or_default();
        if pushed
            .iter()
            .any(|listing| listing.sku == "SKU-3" && listing.quantity == 3)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert
    let found = found.expect("the recurring sync took the order in");
    assert_eq!(found.channel_order_id, "FK-PULLED-1");
    assert_eq!(found.status(), api::OrderStatus::Fulfillable);
    assert!(
        pushed
            .iter()
            .any(|listing| listing.marketplace_sku == "FK-3" && listing.quantity == 3),
        "availability pushed after the order took one unit: {pushed:?}"
    );
}

async fn a_connector_that_never_answers_is_given_up_on(db: TestDatabase) {
    // Arrange: a server on loopback that takes connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let mut options = Options::default();
    options.settings.connectors = format!("PAYTM=http://{address}");
    let app = spawn_app(db, options).await;

    // Act
    let started = std::time::Instant::now();
    let refused = app
        .orders
        .clone()
        .sync_orders(api::SyncOrdersRequest {
            client_id: CLIENT.into(),
            channel: "PAYTM".into(),
        })
        .await
        .unwrap_err();

    // Assert
    assert_refused(&refused, tonic::Code::Unavailable, "no answer within 20 s");
    assert!(started.elapsed() < Duration::from_secs(40));
    held.abort();
}

kosha_testkit::store_tests!(
    a_connector_that_never_answers_is_given_up_on,
    orders_are_pulled_from_the_file_connector_and_availability_is_pushed,
    a_configured_channel_is_synced_by_its_recurring_job_without_a_call,
);
