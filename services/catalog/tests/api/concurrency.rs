//! Uploads racing each other: all of one file or none of it, never half.

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::helpers::{spawn_app, upload_products};

async fn two_uploads_of_the_same_new_skus_at_once_store_one_file_whole(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("acme").await;
    // The same new SKUs under other names, so that only one file can be stored.
    let file_named = |name: &str| {
        let mut file = String::from("sku,name\n");
        for index in 0..3000 {
            file.push_str(&format!("RACE-{index:05},{name}\n"));
        }
        file
    };
    let (red, blue) = (file_named("red"), file_named("blue"));
    let mut first = app.catalog.clone();
    let mut second = app.catalog.clone();

    // Act
    let (first, second) = tokio::join!(
        upload_products(
            &mut first,
            "acme",
            pb::UploadMode::Create,
            false,
            red.as_bytes()
        ),
        upload_products(
            &mut second,
            "acme",
            pb::UploadMode::Create,
            false,
            blue.as_bytes()
        ),
    );

    // Assert: one applied; the other refused as existing SKUs, or aborted if both were
    // checked before either was written.
    let (applied, refused, winner) = match (first, second) {
        (Ok(report), Err(status)) => (report, status, &red),
        (Err(status), Ok(report)) => (report, status, &blue),
        other => panic!("expected exactly one upload to apply: {other:?}"),
    };
    assert_eq!(applied.created, 3000);
    assert!(
        matches!(refused.code(), Code::InvalidArgument | Code::Aborted),
        "{refused:?}"
    );
    assert_eq!(app.count_products("acme").await, 3000);
    // The winner's file, sent again as a retry would, is taken as done.
    let mut again = app.catalog.clone();
    let retried = upload_products(
        &mut again,
        "acme",
        pb::UploadMode::Create,
        false,
        winner.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!((retried.created, retried.unchanged), (0, 3000));
}

kosha_testkit::store_tests!(two_uploads_of_the_same_new_skus_at_once_store_one_file_whole);
