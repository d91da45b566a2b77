//! Clients, channels and the product template.

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::helpers::{spawn_app, violated_fields};

async fn clients_are_created_once_read_and_paged(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    let create = |id: &str, name: &str| pb::CreateClientRequest {
        client_id: id.into(),
        display_name: name.into(),
    };

    // Act
    let first = app
        .catalog
        .create_client(create("acme", "Acme Ltd"))
        .await
        .unwrap()
        .into_inner();
    let again = app
        .catalog
        .create_client(create("acme", "Acme Ltd"))
        .await
        .unwrap()
        .into_inner();
    let renamed = app.catalog.create_client(create("acme", "Other")).await;
    let bad_id = app.catalog.create_client(create("Acme", "")).await;
    for id in ["c-1", "c-2", "c-3", "c-4"] {
        app.catalog.create_client(create(id, "")).await.unwrap();
    }
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListClientsRequest {
            page_size: 2,
            page_token,
        };
        let page = app
            .catalog
            .list_clients(request)
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.clients.into_iter().map(|client| client.client_id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let read = app
        .catalog
        .get_client(pb::GetClientRequest {
            client_id: "c-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    let missing = app
        .catalog
        .get_client(pb::GetClientRequest {
            client_id: "ghost".into(),
        })
        .await;

    // Assert
    assert_eq!(
        first.client, again.client,
        "the same request again returns the client"
    );
    assert_eq!(renamed.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&bad_id.unwrap_err()), ["client_id"]);
    assert_eq!(ids, ["acme", "c-1", "c-2", "c-3", "c-4"]);
    assert_eq!(pages, 3);
    assert_eq!(read.display_name, "c-1", "the name defaults to the id");
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
}

async fn internal_exists_from_the_start_and_channels_are_registered_once(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    let create = |code: &str, kind: pb::ChannelKind| pb::CreateChannelRequest {
        code: code.into(),
        display_name: String::new(),
        kind: kind.into(),
    };

    // Act
    let internal = app
        .catalog
        .get_channel(pb::GetChannelRequest {
            code: "INTERNAL".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let amazon = app
        .catalog
        .create_channel(create("AMAZON", pb::ChannelKind::Marketplace))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let again = app
        .catalog
        .create_channel(create("AMAZON", pb::ChannelKind::Marketplace))
        .await;
    let other_kind = app
        .catalog
        .create_channel(create("AMAZON", pb::ChannelKind::B2b))
        .await;
    let no_kind = app
        .catalog
        .create_channel(create("AJIO", pb::ChannelKind::Unspecified))
        .await;
    let lowercase = app
        .catalog
        .create_channel(create("ajio", pb::ChannelKind::Marketplace))
        .await;
    let listed = app
        .catalog
        .list_channels(pb::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let unknown = app
        .catalog
        .get_channel(pb::GetChannelRequest {
            code: "SNAPDEAL".into(),
        })
        .await;

    // Assert
    assert_eq!(internal.kind, i32::from(pb::ChannelKind::B2b));
    assert_eq!(internal.create_time, None, "built in, never created");
    assert_eq!(amazon.kind, i32::from(pb::ChannelKind::Marketplace));
    assert!(amazon.create_time.is_some());
    assert_eq!(again.unwrap().into_inner().channel.unwrap(), amazon);
    assert_eq!(other_kind.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&no_kind.unwrap_err()), ["kind"]);
    assert_eq!(violated_fields(&lowercase.unwrap_err()), ["code"]);
    let codes: Vec<&str> = listed.channels.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["AMAZON", "INTERNAL"]);
    assert!(listed.next_page_token.is_empty());
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

async fn the_template_has_a_price_column_per_marketplace(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_channel("FLIPKART", pb::ChannelKind::Marketplace)
        .await;
    app.create_channel("AMAZON_FBA", pb::ChannelKind::Marketplace)
        .await;
    app.create_channel("WHOLESALE", pb::ChannelKind::B2b).await;
    let template = |mode: pb::UploadMode| pb::GetProductTemplateRequest { mode: mode.into() };

    // Act
    let create = app
        .catalog
        .get_product_template(template(pb::UploadMode::Create))
        .await
        .unwrap()
        .into_inner();
    let update = app
        .catalog
        .get_product_template(template(pb::UploadMode::Update))
        .await
        .unwrap()
        .into_inner();
    let unspecified = app
        .catalog
        .get_product_template(template(pb::UploadMode::Unspecified))
        .await;

    // Assert
    assert_eq!(
        create.header,
        "sku,name,style,category,color,size,mrp,mrp_amazon_fba,mrp_flipkart"
    );
    assert_eq!(update.header, create.header);
    assert_eq!(create.clear_token, "#CLEAR");
    let required: Vec<&str> = create
        .columns
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(required, ["sku"]);
    assert!(update.columns[1].description.contains("#CLEAR"));
    assert_eq!(violated_fields(&unspecified.unwrap_err()), ["mode"]);
}

async fn a_template_file_filled_in_is_accepted_as_it_is(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    app.create_channel("MYNTRA", pb::ChannelKind::Marketplace)
        .await;
    let template = app
        .catalog
        .get_product_template(pb::GetProductTemplateRequest {
            mode: pb::UploadMode::Create.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let file = format!("{}\nK-1,Kurta,KR,kurta,Red,M,999,1099\n", template.header);

    // Act
    let report = app
        .upload_products("acme", pb::UploadMode::Create, false, file.as_bytes())
        .await
        .unwrap();

    // Assert
    assert_eq!(report.created, 1);
    let stored = app.get_product("acme", "K-1").await.unwrap();
    assert_eq!(stored.channel_mrp["MYNTRA"], "1099.00");
}

kosha_testkit::store_tests!(
    clients_are_created_once_read_and_paged,
    internal_exists_from_the_start_and_channels_are_registered_once,
    the_template_has_a_price_column_per_marketplace,
    a_template_file_filled_in_is_accepted_as_it_is,
);
