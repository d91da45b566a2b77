//! Channel listings: one by one, in bulk, and resolved in batches.

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::{Code, Status};

use crate::helpers::{TestApp, report_errors, spawn_app, violated_fields};

fn listing(channel: &str, marketplace_sku: &str, sku: &str) -> pb::CreateListingRequest {
    pb::CreateListingRequest {
        listing: Some(pb::Listing {
            client_id: "acme".into(),
            channel: channel.into(),
            marketplace_sku: marketplace_sku.into(),
            sku: sku.into(),
            update_time: None,
        }),
    }
}

/// The catalog with client `acme`, channels AMAZON and FLIPKART, and products K-1 to K-3.
async fn arranged(db: &TestDatabase) -> TestApp {
    let mut app = spawn_app(db).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    app.create_channel("FLIPKART", pb::ChannelKind::Marketplace)
        .await;
    for sku in ["K-1", "K-2", "K-3"] {
        app.create_product("acme", sku).await;
    }
    app
}

async fn resolve(
    app: &mut TestApp,
    channel: &str,
    skus: &[&str],
) -> Result<pb::ResolveListingsResponse, Status> {
    let request = pb::ResolveListingsRequest {
        client_id: "acme".into(),
        channel: channel.into(),
        marketplace_skus: skus.iter().map(|sku| sku.to_string()).collect(),
    };
    Ok(app.catalog.resolve_listings(request).await?.into_inner())
}

async fn a_listing_maps_a_marketplace_sku_and_can_be_replaced(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;

    // Act
    let first = app
        .catalog
        .create_listing(listing("AMAZON", "B0-A", "K-1"))
        .await
        .unwrap();
    let replaced = app
        .catalog
        .create_listing(listing("AMAZON", "B0-A", "K-2"))
        .await
        .unwrap();
    let resolved = resolve(&mut app, "AMAZON", &["B0-A"]).await.unwrap();

    // Assert
    assert_eq!(first.into_inner().listing.unwrap().sku, "K-1");
    let replaced = replaced.into_inner().listing.unwrap();
    assert_eq!(
        (replaced.channel.as_str(), replaced.sku.as_str()),
        ("AMAZON", "K-2")
    );
    assert!(replaced.update_time.is_some());
    assert_eq!(resolved.resolved.len(), 1);
    assert_eq!(resolved.resolved[0].sku, "K-2");
}

async fn listings_need_an_existing_channel_and_an_active_product(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    let disable = pb::DisableProductRequest {
        client_id: "acme".into(),
        sku: "K-3".into(),
    };
    app.catalog.disable_product(disable).await.unwrap();

    // Act
    let unknown_channel = app
        .catalog
        .create_listing(listing("MYNTRA", "M-1", "K-1"))
        .await;
    let unknown_product = app
        .catalog
        .create_listing(listing("AMAZON", "B0-A", "NOPE"))
        .await;
    let disabled_product = app
        .catalog
        .create_listing(listing("AMAZON", "B0-A", "K-3"))
        .await;
    let bad_marketplace_sku = app
        .catalog
        .create_listing(listing("AMAZON", "B0 A", "K-1"))
        .await;
    let no_listing = app
        .catalog
        .create_listing(pb::CreateListingRequest { listing: None })
        .await;

    // Assert
    assert_eq!(unknown_channel.unwrap_err().code(), Code::NotFound);
    assert_eq!(unknown_product.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        disabled_product.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        violated_fields(&bad_marketplace_sku.unwrap_err()),
        ["listing.marketplace_sku"]
    );
    assert_eq!(violated_fields(&no_listing.unwrap_err()), ["listing"]);
}

async fn listings_are_listed_by_channel_and_sku_in_pages_and_deleted(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    for (channel, marketplace_sku, sku) in [
        ("FLIPKART", "F-2", "K-1"),
        ("AMAZON", "A-2", "K-2"),
        ("AMAZON", "A-1", "K-1"),
        ("FLIPKART", "F-1", "K-2"),
        ("AMAZON", "A-3", "K-1"),
    ] {
        app.catalog
            .create_listing(listing(channel, marketplace_sku, sku))
            .await
            .unwrap();
    }
    let list = |channel: &str, sku: &str, page_token: String| pb::ListListingsRequest {
        client_id: "acme".into(),
        channel: channel.into(),
        sku: sku.into(),
        page_size: 2,
        page_token,
    };

    // Act
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .catalog
            .list_listings(list("", "", token))
            .await
            .unwrap()
            .into_inner();
        keys.extend(
            page.listings
                .iter()
                .map(|l| format!("{}/{}", l.channel, l.marketplace_sku)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let of_k1 = app
        .catalog
        .list_listings(list("AMAZON", "K-1", String::new()))
        .await
        .unwrap();
    let delete = || pb::DeleteListingRequest {
        client_id: "acme".into(),
        channel: "AMAZON".into(),
        marketplace_sku: "A-1".into(),
    };
    app.catalog.delete_listing(delete()).await.unwrap();
    let deleted_again = app.catalog.delete_listing(delete()).await;
    let of_unregistered = app
        .catalog
        .list_listings(list("SNAPDEAL", "", String::new()))
        .await;

    // Assert
    assert_eq!(
        keys,
        [
            "AMAZON/A-1",
            "AMAZON/A-2",
            "AMAZON/A-3",
            "FLIPKART/F-1",
            "FLIPKART/F-2"
        ]
    );
    let of_k1: Vec<String> = of_k1
        .into_inner()
        .listings
        .into_iter()
        .map(|l| l.marketplace_sku)
        .collect();
    assert_eq!(of_k1, ["A-1", "A-3"]);
    assert_eq!(deleted_again.unwrap_err().code(), Code::NotFound);
    let of_unregistered = of_unregistered.unwrap_err();
    assert_eq!(of_unregistered.code(), Code::NotFound);
    assert!(
        of_unregistered.message().contains("SNAPDEAL"),
        "{of_unregistered:?}"
    );
    let resolved = resolve(&mut app, "AMAZON", &["A-1"]).await.unwrap();
    assert_eq!(resolved.unknown_marketplace_skus, ["A-1"]);
}

async fn resolving_keeps_the_asked_order_and_reports_unknown_and_disabled(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    for (marketplace_sku, sku) in [("A-1", "K-1"), ("A-2", "K-2"), ("A-3", "K-3")] {
        app.catalog
            .create_listing(listing("AMAZON", marketplace_sku, sku))
            .await
            .unwrap();
    }
    app.catalog
        .create_listing(listing("FLIPKART", "A-9", "K-1"))
        .await
        .unwrap();
    let disable = pb::DisableProductRequest {
        client_id: "acme".into(),
        sku: "K-2".into(),
    };
    app.catalog.disable_product(disable).await.unwrap();

    // Act
    let response = resolve(
        &mut app,
        "AMAZON",
        &["A-3", "A-9", "A-2", "A-1", "A-3", "K-1"],
    )
    .await
    .unwrap();
    let unknown_channel = resolve(&mut app, "MYNTRA", &["A-1"]).await;
    let nothing_of_unknown_channel = resolve(&mut app, "MYNTRA", &[]).await;
    let bad_sku = resolve(&mut app, "AMAZON", &["A-1", "#N/A"]).await;

    // Assert
    let resolved: Vec<(&str, &str, bool)> = response
        .resolved
        .iter()
        .map(|r| (r.marketplace_sku.as_str(), r.sku.as_str(), r.active))
        .collect();
    assert_eq!(
        resolved,
        [
            ("A-3", "K-3", true),
            ("A-2", "K-2", false),
            ("A-1", "K-1", true)
        ]
    );
    assert_eq!(
        response.unknown_marketplace_skus,
        ["A-9", "K-1"],
        "A-9 is a FLIPKART listing; K-1 a product with no AMAZON listing of that name"
    );
    assert_eq!(
        response.unknown_not_in_master,
        ["A-9"],
        "K-1 is a product of the master, A-9 is not"
    );
    assert_eq!(unknown_channel.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        nothing_of_unknown_channel.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        violated_fields(&bad_sku.unwrap_err()),
        ["marketplace_skus[1]"]
    );
}

async fn resolving_thousands_of_skus_works_in_one_call(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    let mut products = String::from("sku\n");
    let mut listings = String::from("channel,marketplace_sku,sku\n");
    for index in 0..3000 {
        products.push_str(&format!("P-{index:05}\n"));
        listings.push_str(&format!("AMAZON,AMZ-{index:05},P-{index:05}\n"));
    }
    app.upload_products("acme", pb::UploadMode::Create, false, products.as_bytes())
        .await
        .unwrap();
    let report = app
        .upload_listings("acme", false, listings.as_bytes())
        .await
        .unwrap();
    let asked: Vec<String> = (0..10_000).map(|index| format!("AMZ-{index:05}")).collect();
    let asked: Vec<&str> = asked.iter().map(String::as_str).collect();

    // Act
    let response = resolve(&mut app, "AMAZON", &asked).await.unwrap();

    // Assert
    assert_eq!(report.created, 3000);
    assert_eq!(response.resolved.len(), 3000);
    assert_eq!(response.resolved[2999].sku, "P-02999");
    assert_eq!(response.unknown_marketplace_skus.len(), 7000);
}

async fn a_listing_file_is_checked_whole_then_applied_and_counted(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    app.catalog
        .create_listing(listing("AMAZON", "A-1", "K-1"))
        .await
        .unwrap();
    app.catalog
        .create_listing(listing("AMAZON", "A-2", "K-1"))
        .await
        .unwrap();
    let file = b"channel,marketplace_sku,sku\r\nAMAZON,A-1,K-1\r\nAMAZON,A-2,K-2\r\n\
                 FLIPKART,A-1,K-3\r\n";

    // Act
    let dry_run = app.upload_listings("acme", true, file).await.unwrap();
    let before = resolve(&mut app, "AMAZON", &["A-2"]).await.unwrap();
    let applied = app.upload_listings("acme", false, file).await.unwrap();
    let again = app.upload_listings("acme", false, file).await.unwrap();

    // Assert
    assert_eq!(
        (dry_run.created, dry_run.updated, dry_run.unchanged),
        (1, 1, 1)
    );
    assert!(!dry_run.applied);
    assert_eq!(before.resolved[0].sku, "K-1", "a dry run stores nothing");
    assert_eq!(
        (applied.created, applied.updated, applied.unchanged),
        (1, 1, 1)
    );
    assert!(applied.applied);
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 3));
    assert_eq!(
        resolve(&mut app, "AMAZON", &["A-2"])
            .await
            .unwrap()
            .resolved[0]
            .sku,
        "K-2"
    );
    assert_eq!(
        resolve(&mut app, "FLIPKART", &["A-1"])
            .await
            .unwrap()
            .resolved[0]
            .sku,
        "K-3"
    );
}

async fn a_bad_listing_file_reports_every_row_and_stores_nothing(db: TestDatabase) {
    // Arrange
    let mut app = arranged(&db).await;
    let disable = pb::DisableProductRequest {
        client_id: "acme".into(),
        sku: "K-3".into(),
    };
    app.catalog.disable_product(disable).await.unwrap();
    let file = b"channel,marketplace_sku,sku\n\
                 AMAZON,A-1,K-1\n\
                 MYNTRA,M-1,K-1\n\
                 AMAZON,A-2,NOPE\n\
                 AMAZON,A-1,K-2\n\
                 FLIPKART,F-1,K-3\n\
                 AMAZON,,#REF!\n\
                 AMAZON,A-5,K-1,extra\n";

    // Act
    let rejected = app.upload_listings("acme", false, file).await;
    let report = app.upload_listings("acme", true, file).await.unwrap();
    let header_only = app
        .upload_listings("acme", false, b"channel,marketplace_sku,sku\n")
        .await;
    let missing_column = app
        .upload_listings("acme", false, b"channel,sku\nAMAZON,K-1\n")
        .await;

    // Assert
    let fields = violated_fields(&rejected.unwrap_err());
    assert_eq!(fields.len(), 8, "{fields:?}");
    let expected = [
        (2, "marketplace_sku", "DUPLICATE_LISTING"),
        (3, "channel", "UNKNOWN_CHANNEL"),
        (4, "sku", "UNKNOWN_SKU"),
        (5, "marketplace_sku", "DUPLICATE_LISTING"),
        (6, "sku", "DISABLED_SKU"),
        (7, "marketplace_sku", "REQUIRED"),
        (7, "sku", "INVALID_SKU"),
        (8, "", "TOO_MANY_CELLS"),
    ]
    .map(|(row, column, reason)| (row, column.to_string(), reason.to_string()));
    assert_eq!(report_errors(&report), expected);
    assert_eq!(violated_fields(&header_only.unwrap_err()), ["rows[0]"]);
    assert_eq!(
        violated_fields(&missing_column.unwrap_err()),
        ["rows[1].marketplace_sku"]
    );
    let listed = app
        .catalog
        .list_listings(pb::ListListingsRequest {
            client_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.listings.is_empty());
}

kosha_testkit::store_tests!(
    a_listing_maps_a_marketplace_sku_and_can_be_replaced,
    listings_need_an_existing_channel_and_an_active_product,
    listings_are_listed_by_channel_and_sku_in_pages_and_deleted,
    resolving_keeps_the_asked_order_and_reports_unknown_and_disabled,
    resolving_thousands_of_skus_works_in_one_call,
    a_listing_file_is_checked_whole_then_applied_and_counted,
    a_bad_listing_file_reports_every_row_and_stores_nothing,
);
