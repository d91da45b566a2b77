//! A corpus of bad product files: each gets a precise error naming its row and column (or
//! `RESOURCE_EXHAUSTED`), and none changes anything.

use kosha_catalog::config::Settings;
use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::helpers::{TestApp, report_errors, spawn_app_with, violated_fields};

/// The upload limit of these tests: small, so an oversized file is cheap to make.
const LIMIT: usize = 16 * 1024;

/// How a bad file must be refused.
enum Refusal {
    /// `INVALID_ARGUMENT` naming exactly these fields.
    Fields(&'static [&'static str]),
    /// `RESOURCE_EXHAUSTED`.
    TooLarge,
}

struct BadFile {
    what: &'static str,
    mode: pb::UploadMode,
    bytes: Vec<u8>,
    refusal: Refusal,
}

fn bad(what: &'static str, mode: pb::UploadMode, bytes: &[u8], refusal: Refusal) -> BadFile {
    BadFile {
        what,
        mode,
        bytes: bytes.to_vec(),
        refusal,
    }
}

fn corpus() -> Vec<BadFile> {
    use Refusal::{Fields, TooLarge};
    use pb::UploadMode::{Create, Update};

    let mut oversized = b"sku,name\n".to_vec();
    for index in 0..1000 {
        oversized.extend_from_slice(format!("BIG-{index:05},a product of many rows\n").as_bytes());
    }
    assert!(oversized.len() > LIMIT);
    let mut binary = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    binary.extend(std::iter::repeat_n(0xff_u8, 64));

    vec![
        bad(
            "a SKU listed twice",
            Create,
            b"sku,name\nN-1,a\nN-2,b\nN-1,c\n",
            Fields(&["rows[2].sku", "rows[4].sku"]),
        ),
        bad(
            "a thousands separator",
            Create,
            b"sku,mrp\nN-1,999\nN-2,\"1,800\"\n",
            Fields(&["rows[3].mrp"]),
        ),
        bad(
            "a decimal comma",
            Create,
            b"sku,mrp\nN-1,\"4,20\"\n",
            Fields(&["rows[2].mrp"]),
        ),
        bad(
            "a word for a price",
            Create,
            b"sku,mrp\nN-1,abc\n",
            Fields(&["rows[2].mrp"]),
        ),
        bad(
            "a zero price",
            Create,
            b"sku,mrp_amazon\nN-1,0\n",
            Fields(&["rows[2].mrp_amazon"]),
        ),
        bad(
            "an unquoted comma shifts the cells",
            Create,
            b"sku,mrp\nN-1,1,800\n",
            Fields(&["rows[2]"]),
        ),
        bad(
            "a blank required cell",
            Create,
            b"sku,name\nN-1,a\n,b\n",
            Fields(&["rows[3].sku"]),
        ),
        bad(
            "a spreadsheet error as SKU",
            Create,
            b"sku,name\n#REF!,a\n",
            Fields(&["rows[2].sku"]),
        ),
        bad(
            "an unknown column",
            Create,
            b"sku,colour\nN-1,red\n",
            Fields(&["rows[1].colour"]),
        ),
        bad(
            "a repeated column",
            Create,
            b"sku,name,Name\nN-1,a,b\n",
            Fields(&["rows[1].Name"]),
        ),
        bad(
            "no SKU column",
            Create,
            b"name,mrp\na,1\n",
            Fields(&["rows[1].sku"]),
        ),
        bad(
            "a header only",
            Create,
            b"sku,name,mrp\n",
            Fields(&["rows[0]"]),
        ),
        bad("an empty file", Create, b"", Fields(&["file"])),
        bad("a binary file", Create, &binary, Fields(&["file"])),
        bad(
            "Latin-1 text",
            Create,
            b"sku,name\nN-1,caf\xe9\n",
            Fields(&["file"]),
        ),
        bad(
            "the clear token in create mode",
            Create,
            b"sku,name\nN-1,#CLEAR\n",
            Fields(&["rows[2].name"]),
        ),
        bad(
            "a SKU that exists, in create mode",
            Create,
            b"sku,name\nKEEP-1,x\n",
            Fields(&["rows[2].sku"]),
        ),
        bad(
            "an unknown SKU, in update mode",
            Update,
            b"sku,name\nKEEP-1,x\nNOPE-1,y\n",
            Fields(&["rows[3].sku"]),
        ),
        bad(
            "an update with nothing to change",
            Update,
            b"sku\nKEEP-1\n",
            Fields(&["rows[1]"]),
        ),
        bad("a file over the upload limit", Create, &oversized, TooLarge),
    ]
}

async fn every_bad_product_file_gets_a_precise_error_and_changes_nothing(db: TestDatabase) {
    // Arrange
    let settings = Settings {
        max_upload_bytes: LIMIT,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let kept = app.create_product("acme", "KEEP-1").await;

    for file in corpus() {
        // Act
        let outcome = app
            .upload_products("acme", file.mode, false, &file.bytes)
            .await;

        // Assert
        let status = match outcome {
            Ok(report) => panic!("{}: accepted: {report:?}", file.what),
            Err(status) => status,
        };
        match file.refusal {
            Refusal::Fields(expected) => {
                assert_eq!(
                    violated_fields(&status),
                    expected,
                    "{}: {status:?}",
                    file.what
                );
            }
            Refusal::TooLarge => {
                assert_eq!(
                    status.code(),
                    Code::ResourceExhausted,
                    "{}: {status:?}",
                    file.what
                );
            }
        }
        assert_nothing_changed(&mut app, &kept, file.what).await;
    }
}

async fn assert_nothing_changed(app: &mut TestApp, kept: &pb::Product, what: &str) {
    let products = app.all_products("acme").await;
    assert_eq!(products.len(), 1, "{what}: {products:?}");
    assert_eq!(&products[0], kept, "{what}");
}

async fn a_dry_run_reports_every_problem_with_its_reason_and_stores_nothing(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.create_client("acme").await;
    let file = b"sku,name,mrp,colour\nN-1,a,\"1,800\",red\n#REF!,b,abc,red\nN-1,c,12,blue\n";

    // Act
    let report = app
        .upload_products("acme", pb::UploadMode::Create, true, file)
        .await
        .unwrap();

    // Assert
    assert!(report.dry_run && !report.applied);
    assert_eq!(report.rows, 3);
    let expected = [
        (1, "colour", "UNKNOWN_COLUMN"),
        (2, "mrp", "NOT_A_DECIMAL"),
        (2, "sku", "DUPLICATE_SKU"),
        (3, "mrp", "NOT_A_DECIMAL"),
        (3, "sku", "INVALID_SKU"),
        (4, "sku", "DUPLICATE_SKU"),
    ]
    .map(|(row, column, reason)| (row, column.to_string(), reason.to_string()));
    assert_eq!(report_errors(&report), expected);
    assert_eq!(report.errors[2].value, "N-1");
    assert_eq!(app.count_products("acme").await, 0);
}

async fn a_bom_crlf_file_with_quoted_cells_is_accepted(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    let file = b"\xEF\xBB\xBFSKU,Name,MRP,mrp_amazon\r\n\
                 K-1,\"Kurta, \"\"red\"\"\",1299.50,1400\r\n\
                 K-2,  Plain  ,,\r\n";

    // Act
    let report = app
        .upload_products("acme", pb::UploadMode::Create, false, file)
        .await
        .unwrap();

    // Assert
    assert!(
        report.applied && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
    assert_eq!((report.rows, report.created), (2, 2));
    let first = app.get_product("acme", "K-1").await.unwrap();
    assert_eq!(first.name, "Kurta, \"red\"");
    assert_eq!(first.mrp, "1299.50");
    assert_eq!(
        first.channel_mrp.get("AMAZON").map(String::as_str),
        Some("1400.00")
    );
    let second = app.get_product("acme", "K-2").await.unwrap();
    assert_eq!((second.name.as_str(), second.mrp.as_str()), ("Plain", ""));
    assert!(second.channel_mrp.is_empty());
}

async fn an_update_leaves_blank_cells_and_absent_columns_alone_and_clears_on_the_token(
    db: TestDatabase,
) {
    // Arrange
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.create_client("acme").await;
    app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
        .await;
    app.create_channel("MYNTRA", pb::ChannelKind::Marketplace)
        .await;
    let create = b"sku,name,style,color,size,mrp,mrp_amazon,mrp_myntra\n\
                   K-1,Kurta,ST-1,Red,M,1000,1100,1200\n\
                   K-2,Kurti,ST-2,Blue,L,2000,,\n\
                   K-3,Top,ST-3,Green,S,3000,,\n";
    app.upload_products("acme", pb::UploadMode::Create, false, create)
        .await
        .unwrap();
    let untouched_before = app.get_product("acme", "K-3").await.unwrap();

    // Act: `category` and `style` are absent; blanks keep, `#CLEAR` clears.
    let update = b"sku,name,color,size,mrp,mrp_amazon,mrp_myntra\n\
                   K-1,,Maroon,#CLEAR,,#clear,1250\n\
                   K-2,Kurti,Blue,L,2000,,\n";
    let dry_run = app
        .upload_products("acme", pb::UploadMode::Update, true, update)
        .await
        .unwrap();
    let report = app
        .upload_products("acme", pb::UploadMode::Update, false, update)
        .await
        .unwrap();

    // Assert
    assert_eq!(
        (dry_run.updated, dry_run.unchanged, dry_run.applied),
        (1, 1, false)
    );
    assert_eq!(
        (report.updated, report.unchanged, report.applied),
        (1, 1, true)
    );
    let first = app.get_product("acme", "K-1").await.unwrap();
    assert_eq!(first.name, "Kurta", "blank keeps");
    assert_eq!(first.style, "ST-1", "absent column keeps");
    assert_eq!(first.color, "Maroon");
    assert_eq!(first.size, "", "#CLEAR clears");
    assert_eq!(first.mrp, "1000.00");
    assert_eq!(first.channel_mrp.len(), 1);
    assert_eq!(first.channel_mrp["MYNTRA"], "1250.00");
    let second = app.get_product("acme", "K-2").await.unwrap();
    assert_eq!(second.color, "Blue");
    assert_eq!(
        app.get_product("acme", "K-3").await.unwrap(),
        untouched_before
    );
}

async fn later_chunks_may_not_name_another_client_or_mode(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.create_client("acme").await;
    let messages = vec![
        pb::UploadProductsRequest {
            client_id: "acme".into(),
            mode: pb::UploadMode::Create.into(),
            dry_run: false,
            chunk: b"sku\nK-".to_vec(),
        },
        pb::UploadProductsRequest {
            client_id: "other".into(),
            chunk: b"1\n".to_vec(),
            ..Default::default()
        },
    ];

    // Act
    let status = app
        .catalog
        .upload_products(tokio_stream::iter(messages))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(violated_fields(&status), ["header"]);
    assert_eq!(app.count_products("acme").await, 0);
}

async fn uploads_for_an_unknown_client_or_without_a_mode_are_refused(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.create_client("acme").await;
    let file = b"sku\nK-1\n";

    // Act
    let unknown = app
        .upload_products("ghost", pb::UploadMode::Create, false, file)
        .await;
    let no_mode = app
        .upload_products("acme", pb::UploadMode::Unspecified, false, file)
        .await;

    // Assert
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    assert_eq!(violated_fields(&no_mode.unwrap_err()), ["mode"]);
}

kosha_testkit::store_tests!(
    every_bad_product_file_gets_a_precise_error_and_changes_nothing,
    a_dry_run_reports_every_problem_with_its_reason_and_stores_nothing,
    a_bom_crlf_file_with_quoted_cells_is_accepted,
    an_update_leaves_blank_cells_and_absent_columns_alone_and_clears_on_the_token,
    later_chunks_may_not_name_another_client_or_mode,
    uploads_for_an_unknown_client_or_without_a_mode_are_refused,
);
