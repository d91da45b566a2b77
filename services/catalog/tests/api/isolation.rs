//! Clients never see each other's products or listings.

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::helpers::{report_errors, spawn_app};

async fn one_client_never_sees_or_changes_another_clients_data(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_client("zenith").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let acme_product = app.create_product("acme", "SHARED-1").await;
    app.create_product("acme", "ACME-ONLY").await;
    let listing = pb::Listing {
        client_id: "acme".into(),
        channel: "AMAZON".into(),
        marketplace_sku: "B0-SHARED".into(),
        sku: "SHARED-1".into(),
        update_time: None,
    };
    app.catalog
        .create_listing(pb::CreateListingRequest {
            listing: Some(listing),
        })
        .await
        .unwrap();

    // Act: zenith reads, lists, resolves, and uploads the same SKUs.
    let read = app.get_product("zenith", "ACME-ONLY").await;
    let listed = app.all_products("zenith").await;
    let batch = app
        .catalog
        .batch_get_products(pb::BatchGetProductsRequest {
            client_id: "zenith".into(),
            skus: vec!["SHARED-1".into(), "ACME-ONLY".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let resolved = app
        .catalog
        .resolve_listings(pb::ResolveListingsRequest {
            client_id: "zenith".into(),
            channel: "AMAZON".into(),
            marketplace_skus: vec!["B0-SHARED".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let update = app
        .upload_products(
            "zenith",
            pb::UploadMode::Update,
            true,
            b"sku,name\nACME-ONLY,mine\n",
        )
        .await
        .unwrap();
    let listing_upload = app
        .upload_listings(
            "zenith",
            true,
            b"channel,marketplace_sku,sku\nAMAZON,B0-X,ACME-ONLY\n",
        )
        .await
        .unwrap();
    let disable = app
        .catalog
        .disable_product(pb::DisableProductRequest {
            client_id: "zenith".into(),
            sku: "ACME-ONLY".into(),
        })
        .await;
    let own = app
        .upload_products(
            "zenith",
            pb::UploadMode::Create,
            false,
            b"sku,name\nSHARED-1,Zenith's\n",
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(read.unwrap_err().code(), Code::NotFound);
    assert!(listed.is_empty());
    assert!(batch.products.is_empty());
    assert_eq!(batch.missing_skus.len(), 2);
    assert!(resolved.resolved.is_empty());
    assert_eq!(resolved.unknown_marketplace_skus, ["B0-SHARED"]);
    assert_eq!(
        report_errors(&update),
        [(2, "sku".to_string(), "UNKNOWN_SKU".to_string())]
    );
    assert_eq!(
        report_errors(&listing_upload),
        [(2, "sku".to_string(), "UNKNOWN_SKU".to_string())]
    );
    assert_eq!(disable.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        own.created, 1,
        "the same SKU is a different product for another client"
    );
    assert_eq!(
        app.get_product("zenith", "SHARED-1").await.unwrap().name,
        "Zenith's"
    );
    assert_eq!(
        app.get_product("acme", "SHARED-1").await.unwrap(),
        acme_product
    );
    assert_eq!(app.count_products("acme").await, 2);
}

async fn calls_for_an_unknown_client_are_not_found(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;

    // Act
    let list = app
        .catalog
        .list_products(pb::ListProductsRequest {
            client_id: "ghost".into(),
            ..Default::default()
        })
        .await;
    let get = app.get_product("ghost", "K-1").await;
    let listings = app
        .catalog
        .list_listings(pb::ListListingsRequest {
            client_id: "ghost".into(),
            ..Default::default()
        })
        .await;
    let upload = app
        .upload_listings("ghost", true, b"channel,marketplace_sku,sku\n")
        .await;

    // Assert
    for status in [
        list.unwrap_err(),
        get.unwrap_err(),
        listings.unwrap_err(),
        upload.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
}

kosha_testkit::store_tests!(
    one_client_never_sees_or_changes_another_clients_data,
    calls_for_an_unknown_client_are_not_found,
);
