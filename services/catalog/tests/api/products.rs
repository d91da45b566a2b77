//! Product calls one by one: create, read, batch read, list, update, disable and enable.

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{spawn_app, violated_fields};

fn product(client_id: &str, sku: &str) -> pb::Product {
    pb::Product {
        client_id: client_id.into(),
        sku: sku.into(),
        ..Default::default()
    }
}

async fn a_created_product_reads_back_with_its_channel_prices(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let mut new = product("acme", "KR-RED-M");
    new.name = "Kurta".into();
    new.style = "KR".into();
    new.category = "kurta".into();
    new.color = "Red".into();
    new.size = "M".into();
    new.mrp = "1299.5".into();
    new.channel_mrp.insert("AMAZON".into(), "1399".into());

    // Act
    let created = app
        .catalog
        .create_product(pb::CreateProductRequest { product: Some(new) })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let read = app.get_product("acme", "KR-RED-M").await.unwrap();

    // Assert
    assert_eq!(read, created);
    assert_eq!((read.name.as_str(), read.size.as_str()), ("Kurta", "M"));
    assert_eq!(read.mrp, "1299.50");
    assert_eq!(read.channel_mrp["AMAZON"], "1399.00");
    assert!(read.active);
    assert!(read.create_time.is_some() && read.create_time == read.update_time);
}

async fn product_creation_refuses_bad_input_duplicates_and_unknown_owners(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    let first = app.create_product("acme", "K-1").await;
    let create = |product: pb::Product| pb::CreateProductRequest {
        product: Some(product),
    };
    let mut internal_price = product("acme", "K-2");
    internal_price
        .channel_mrp
        .insert("INTERNAL".into(), "10".into());
    let mut comma_price = product("acme", "K-2");
    comma_price.mrp = "1,800".into();

    // Act
    let retried = app.create_product("acme", "K-1").await;
    let duplicate = app
        .catalog
        .create_product(create(product("acme", "K-1")))
        .await;
    let unknown_client = app
        .catalog
        .create_product(create(product("ghost", "K-1")))
        .await;
    let bad_sku = app
        .catalog
        .create_product(create(product("acme", "#REF!")))
        .await;
    let no_product = app
        .catalog
        .create_product(pb::CreateProductRequest { product: None })
        .await;
    let b2b_price = app.catalog.create_product(create(internal_price)).await;
    let bad_price = app.catalog.create_product(create(comma_price)).await;

    // Assert
    assert_eq!(
        retried, first,
        "the same product again returns the stored one"
    );
    assert_eq!(duplicate.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(unknown_client.unwrap_err().code(), Code::NotFound);
    assert_eq!(violated_fields(&bad_sku.unwrap_err()), ["product.sku"]);
    assert_eq!(violated_fields(&no_product.unwrap_err()), ["product"]);
    assert_eq!(
        violated_fields(&b2b_price.unwrap_err()),
        ["product.channel_mrp[INTERNAL]"]
    );
    assert_eq!(violated_fields(&bad_price.unwrap_err()), ["product.mrp"]);
    assert_eq!(app.count_products("acme").await, 1);
}

async fn a_batch_read_keeps_the_asked_order_and_lists_the_missing(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    for sku in ["B-1", "B-2", "B-3"] {
        app.create_product("acme", sku).await;
    }
    let skus = ["B-3", "NOPE", "B-1", "B-3"].map(String::from).to_vec();

    // Act
    let response = app
        .catalog
        .batch_get_products(pb::BatchGetProductsRequest {
            client_id: "acme".into(),
            skus,
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    let found: Vec<&str> = response.products.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(found, ["B-3", "B-1"]);
    assert_eq!(response.missing_skus, ["NOPE"]);
}

async fn a_batch_read_of_ten_thousand_skus_works_and_more_is_refused(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    let mut file = String::from("sku,name\n");
    for index in 0..2500 {
        file.push_str(&format!("S-{index:05},n\n"));
    }
    app.upload_products("acme", pb::UploadMode::Create, false, file.as_bytes())
        .await
        .unwrap();
    let asked: Vec<String> = (0..10_000).map(|index| format!("S-{index:05}")).collect();
    let too_many: Vec<String> = (0..10_001).map(|index| format!("S-{index:05}")).collect();

    // Act
    let response = app
        .catalog
        .batch_get_products(pb::BatchGetProductsRequest {
            client_id: "acme".into(),
            skus: asked,
        })
        .await
        .unwrap()
        .into_inner();
    let refused = app
        .catalog
        .batch_get_products(pb::BatchGetProductsRequest {
            client_id: "acme".into(),
            skus: too_many,
        })
        .await;

    // Assert
    assert_eq!(response.products.len(), 2500);
    assert_eq!(response.products[2499].sku, "S-02499");
    assert_eq!(response.missing_skus.len(), 7500);
    assert_eq!(response.missing_skus[0], "S-02500");
    assert_eq!(violated_fields(&refused.unwrap_err()), ["skus"]);
}

async fn listing_products_filters_and_pages_through_every_one_once(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let file = b"sku,style,category,mrp_amazon\n\
                 KR-01,KR,Kurta,100\nKR-02,KR,KURTA,\nKR-03,KR,kurta,\nKR-04,KR,kurta,\n\
                 KR-05,KR,kurta,\nKR-06,KR,kurta,\nKR-07,KR,kurta,\nTP-01,TP,top,\nTP-02,TP,top,\n";
    app.upload_products("acme", pb::UploadMode::Create, false, file)
        .await
        .unwrap();
    let disable = pb::DisableProductRequest {
        client_id: "acme".into(),
        sku: "KR-04".into(),
    };
    app.catalog.disable_product(disable).await.unwrap();
    let list = |page_size, page_token: String| pb::ListProductsRequest {
        client_id: "acme".into(),
        page_size,
        page_token,
        category: "KuRtA".into(),
        ..Default::default()
    };

    // Act: pages of three, by category in any case.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .catalog
            .list_products(list(3, token.clone()))
            .await
            .unwrap()
            .into_inner();
        pages.push(
            page.products
                .iter()
                .map(|p| p.sku.clone())
                .collect::<Vec<_>>(),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    // Assert: disabled left out, each product once, in SKU order, full pages until the last.
    assert_eq!(
        pages,
        [
            vec!["KR-01", "KR-02", "KR-03"],
            vec!["KR-05", "KR-06", "KR-07"]
        ]
    );
    let first = app
        .catalog
        .list_products(list(1, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.products[0].channel_mrp["AMAZON"], "100.00",
        "prices come along"
    );

    let by_style = pb::ListProductsRequest {
        client_id: "acme".into(),
        style: "TP".into(),
        ..Default::default()
    };
    let styles = app
        .catalog
        .list_products(by_style)
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(styles.len(), 2);

    let by_prefix = pb::ListProductsRequest {
        client_id: "acme".into(),
        sku_prefix: "KR-0".into(),
        include_disabled: true,
        ..Default::default()
    };
    let prefixed = app
        .catalog
        .list_products(by_prefix)
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(prefixed.len(), 7);
    assert!(prefixed.iter().any(|p| p.sku == "KR-04" && !p.active));

    let bad_token = pb::ListProductsRequest {
        client_id: "acme".into(),
        page_token: "zz".into(),
        ..Default::default()
    };
    let refused = app.catalog.list_products(bad_token).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["page_token"]);
}

async fn an_update_without_a_mask_writes_only_the_set_fields(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    app.create_channel("MYNTRA", pb::ChannelKind::Marketplace)
        .await;
    let mut start = product("acme", "K-1");
    start.name = "Kurta".into();
    start.color = "Red".into();
    start.mrp = "100".into();
    start.channel_mrp.insert("AMAZON".into(), "110".into());
    app.catalog
        .create_product(pb::CreateProductRequest {
            product: Some(start),
        })
        .await
        .unwrap();
    let mut change = product("acme", "K-1");
    change.color = "Blue".into();
    change.channel_mrp.insert("MYNTRA".into(), "120".into());

    // Act
    let updated = app
        .catalog
        .update_product(pb::UpdateProductRequest {
            product: Some(change),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();

    // Assert
    assert_eq!(
        (updated.name.as_str(), updated.color.as_str()),
        ("Kurta", "Blue")
    );
    assert_eq!(updated.mrp, "100.00");
    assert_eq!(
        updated.channel_mrp.len(),
        2,
        "merged: {:?}",
        updated.channel_mrp
    );
    let micros = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(micros(updated.update_time) > micros(updated.create_time));
    assert_eq!(app.get_product("acme", "K-1").await.unwrap(), updated);
}

async fn an_update_with_a_mask_clears_named_empty_fields(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let mut start = product("acme", "K-1");
    start.name = "Kurta".into();
    start.size = "M".into();
    start.mrp = "100".into();
    start.channel_mrp.insert("AMAZON".into(), "110".into());
    app.catalog
        .create_product(pb::CreateProductRequest {
            product: Some(start),
        })
        .await
        .unwrap();
    let mut change = product("acme", "K-1");
    change.size = "L".into();
    change.name = "ignored: not in the mask".into();
    let mask = FieldMask {
        paths: ["size", "mrp", "channel_mrp"].map(String::from).to_vec(),
    };

    // Act
    let updated = app
        .catalog
        .update_product(pb::UpdateProductRequest {
            product: Some(change),
            update_mask: Some(mask),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();

    // Assert
    assert_eq!(
        (updated.name.as_str(), updated.size.as_str()),
        ("Kurta", "L")
    );
    assert_eq!(updated.mrp, "");
    assert!(updated.channel_mrp.is_empty());
}

async fn updates_of_unknown_products_or_fields_are_refused(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_product("acme", "K-1").await;
    let mut missing = product("acme", "NOPE");
    missing.color = "Red".into();
    let sku_mask = FieldMask {
        paths: vec!["sku".into()],
    };

    // Act
    let unknown = app
        .catalog
        .update_product(pb::UpdateProductRequest {
            product: Some(missing),
            update_mask: None,
        })
        .await;
    let bad_mask = app
        .catalog
        .update_product(pb::UpdateProductRequest {
            product: Some(product("acme", "K-1")),
            update_mask: Some(sku_mask),
        })
        .await;
    let nothing = app
        .catalog
        .update_product(pb::UpdateProductRequest {
            product: Some(product("acme", "K-1")),
            update_mask: None,
        })
        .await;

    // Assert
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    assert_eq!(violated_fields(&bad_mask.unwrap_err()), ["update_mask"]);
    assert_eq!(violated_fields(&nothing.unwrap_err()), ["update_mask"]);
}

async fn a_disabled_product_stays_readable_and_can_be_enabled_again(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_product("acme", "K-1").await;
    let disable = || pb::DisableProductRequest {
        client_id: "acme".into(),
        sku: "K-1".into(),
    };

    // Act
    let disabled = app
        .catalog
        .disable_product(disable())
        .await
        .unwrap()
        .into_inner()
        .product;
    let twice = app
        .catalog
        .disable_product(disable())
        .await
        .unwrap()
        .into_inner()
        .product;
    let listed = app
        .catalog
        .list_products(pb::ListProductsRequest {
            client_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .products;
    let enable = pb::EnableProductRequest {
        client_id: "acme".into(),
        sku: "K-1".into(),
    };
    let enabled = app
        .catalog
        .enable_product(enable)
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let unknown = app
        .catalog
        .disable_product(pb::DisableProductRequest {
            client_id: "acme".into(),
            sku: "X".into(),
        })
        .await;

    // Assert
    let disabled = disabled.unwrap();
    assert!(!disabled.active);
    assert_eq!(twice.unwrap(), disabled, "disabling twice changes nothing");
    assert!(
        listed.is_empty(),
        "disabled products are left out of lists by default"
    );
    assert!(enabled.active);
    assert_eq!(app.get_product("acme", "K-1").await.unwrap(), enabled);
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

kosha_testkit::store_tests!(
    a_created_product_reads_back_with_its_channel_prices,
    product_creation_refuses_bad_input_duplicates_and_unknown_owners,
    a_batch_read_keeps_the_asked_order_and_lists_the_missing,
    a_batch_read_of_ten_thousand_skus_works_and_more_is_refused,
    listing_products_filters_and_pages_through_every_one_once,
    an_update_without_a_mask_writes_only_the_set_fields,
    an_update_with_a_mask_clears_named_empty_fields,
    updates_of_unknown_products_or_fields_are_refused,
    a_disabled_product_stays_readable_and_can_be_enabled_again,
);
