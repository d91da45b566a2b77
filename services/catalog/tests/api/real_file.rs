//! The seller's real product master (`raw/products.csv`) through a create upload: its real
//! defects are reported exactly, the clean rest goes in with one call, and a second send
//! changes nothing.

use std::collections::{BTreeSet, HashMap};

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::helpers::spawn_app;

/// The raw file mapped to the create template: `design_no` becomes `style`, `stock` goes.
/// Returns the mapped file and each data row's SKU cell, in order.
fn mapped_products_file() -> (Vec<u8>, Vec<Vec<String>>) {
    let path = kosha_testkit::shared_data_dir().join("raw/products.csv");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let header = reader.headers().unwrap().clone();
    let position = |name: &str| header.iter().position(|column| column == name).unwrap();
    let source = ["sku", "design_no", "category", "size", "color"].map(position);

    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            source
                .iter()
                .map(|index| record[*index].to_string())
                .collect()
        })
        .collect();
    (to_csv(&rows), rows)
}

fn to_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(["sku", "style", "category", "size", "color"])
        .unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

/// The real defects, found here without the service's rules: spreadsheet rows (header is
/// row 1) with a blank SKU, with `#REF!`, and every row of a SKU listed more than once.
struct Defects {
    blank: BTreeSet<i64>,
    spreadsheet_error: BTreeSet<i64>,
    repeated: BTreeSet<i64>,
}

fn defects(rows: &[Vec<String>]) -> Defects {
    let mut defects = Defects {
        blank: BTreeSet::new(),
        spreadsheet_error: BTreeSet::new(),
        repeated: BTreeSet::new(),
    };
    let mut rows_by_sku: HashMap<&str, Vec<i64>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let spreadsheet_row = index as i64 + 2;
        let sku = row[0].trim();
        if sku.is_empty() {
            defects.blank.insert(spreadsheet_row);
        } else if sku == "#REF!" {
            defects.spreadsheet_error.insert(spreadsheet_row);
        } else {
            rows_by_sku.entry(sku).or_default().push(spreadsheet_row);
        }
    }
    for rows in rows_by_sku.values().filter(|rows| rows.len() > 1) {
        defects.repeated.extend(rows);
    }
    defects
}

async fn the_real_product_master_is_checked_whole_then_created_in_one_call(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    app.create_client("ethnic").await;
    let (file, rows) = mapped_products_file();
    let defects = defects(&rows);
    assert_eq!(rows.len(), 9271);
    assert_eq!(defects.blank.len(), 83);
    assert_eq!(defects.spreadsheet_error.len(), 15);
    assert_eq!(defects.repeated.len(), 8, "4 SKUs listed twice");
    let mut expected_rows = BTreeSet::new();
    expected_rows.extend(&defects.blank);
    expected_rows.extend(&defects.spreadsheet_error);
    expected_rows.extend(&defects.repeated);
    assert_eq!(expected_rows.len(), 106);

    // Act: the raw file, for real and as a dry run.
    let rejected = app
        .upload_products("ethnic", pb::UploadMode::Create, false, &file)
        .await;
    let report = app
        .upload_products("ethnic", pb::UploadMode::Create, true, &file)
        .await
        .unwrap();

    // Assert: rejected whole, and the report names exactly the real defects.
    let status = rejected.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("nothing stored"),
        "{}",
        status.message()
    );
    assert_eq!(app.count_products("ethnic").await, 0);
    assert_eq!(report.rows, 9271);
    assert!(!report.applied);
    let reported_rows: BTreeSet<i64> = report.errors.iter().map(|error| error.row).collect();
    assert_eq!(reported_rows, expected_rows);
    for error in &report.errors {
        assert_eq!(error.column, "sku", "{error:?}");
        let expected_reason = if defects.blank.contains(&error.row) {
            "REQUIRED"
        } else if defects.spreadsheet_error.contains(&error.row) {
            "INVALID_SKU"
        } else {
            "DUPLICATE_SKU"
        };
        assert_eq!(error.reason, expected_reason, "{error:?}");
    }
    assert_eq!(
        report.created, 9165,
        "the clean rows are counted as they would be created"
    );

    // Act: the file without those rows, sent in 64 KiB chunks.
    let clean_rows: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .filter(|(index, _)| !expected_rows.contains(&(*index as i64 + 2)))
        .map(|(_, row)| row.clone())
        .collect();
    let clean_file = to_csv(&clean_rows);
    assert!(
        clean_file.len() > 4 * crate::helpers::CHUNK_BYTES,
        "arrives in several chunks"
    );
    let created = app
        .upload_products("ethnic", pb::UploadMode::Create, false, &clean_file)
        .await;

    // Assert: all of it, in one call.
    let created = created.unwrap();
    assert!(
        created.applied && created.errors.is_empty(),
        "{:?}",
        created.errors.first()
    );
    assert_eq!((created.rows, created.created), (9165, 9165));
    assert_eq!(app.count_products("ethnic").await, 9165);
    let first = &clean_rows[0];
    let stored = app.get_product("ethnic", &first[0]).await.unwrap();
    assert_eq!(
        [&stored.style, &stored.category, &stored.size, &stored.color],
        [&first[1], &first[2], &first[3], &first[4]]
    );

    // Act: the same file again in create mode (a retry), then once with one row changed.
    let again = app
        .upload_products("ethnic", pb::UploadMode::Create, false, &clean_file)
        .await;
    let mut changed_rows = clean_rows.clone();
    changed_rows[0][4] = format!("{} and more", changed_rows[0][4]);
    let changed_report = app
        .upload_products(
            "ethnic",
            pb::UploadMode::Create,
            true,
            &to_csv(&changed_rows),
        )
        .await
        .unwrap();

    // Assert: the retry is taken as done, unchanged; the changed row is an existing SKU.
    let again = again.unwrap();
    assert!(again.applied, "{:?}", again.errors.first());
    assert_eq!((again.created, again.unchanged), (0, 9165));
    assert_eq!(
        changed_report.errors.len(),
        1,
        "{:?}",
        changed_report.errors
    );
    assert_eq!(changed_report.errors[0].reason, "SKU_EXISTS");
    assert_eq!(changed_report.errors[0].row, 2);
    assert_eq!(app.count_products("ethnic").await, 9165);
    let unchanged = app.get_product("ethnic", &first[0]).await.unwrap();
    assert_eq!(unchanged, stored);
}

kosha_testkit::store_tests!(the_real_product_master_is_checked_whole_then_created_in_one_call);
