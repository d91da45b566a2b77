//! The bad-input corpus of inward PO uploads: each file is refused with a precise error,
//! as a dry-run report and as a real upload, and nothing is stored.

use kosha_purchase_order::config::Settings;
use kosha_testkit::TestDatabase;
use tonic::Code;

use crate::support::{CLIENT, report_problems, spawn_app_with, violated_fields};

const HEADER: &str = "po_number,supplier,sku,quantity,unit_cost,expected_date\n";

/// Largest upload in this test: small, so an oversized file is cheap to build.
const MAX_UPLOAD_BYTES: usize = 16 * 1024;

/// A file the service reads but refuses, with the problems it must report.
struct RowCase {
    name: &'static str,
    file: Vec<u8>,
    problems: Vec<(i64, &'static str, &'static str)>,
}

fn row_cases() -> Vec<RowCase> {
    let with_header = |rows: &str| format!("{HEADER}{rows}").into_bytes();
    vec![
        RowCase {
            name: "duplicate rows of one PO and SKU, every row reported",
            file: with_header(
                "PO-1,Dyer,A-1,1,1,\nPO-1,Dyer,B-1,1,1,\nPO-1,Dyer,A-1,2,1,\nPO-1,Dyer,A-1,1,1,\n",
            ),
            problems: vec![
                (2, "sku", "DUPLICATE_SKU"),
                (4, "sku", "DUPLICATE_SKU"),
                (5, "sku", "DUPLICATE_SKU"),
            ],
        },
        RowCase {
            name: "SKUs missing from the product master or disabled there",
            file: with_header(
                "PO-1,Dyer,A-1,1,1,\nPO-1,Dyer,NOPE,1,1,\n\
                 PO-1,Dyer,OLD,1,1,\nPO-1,Dyer,A-1.,1,1,\n",
            ),
            problems: vec![
                (3, "sku", "UNKNOWN_SKU"),
                (4, "sku", "INACTIVE_SKU"),
                (5, "sku", "UNKNOWN_SKU"),
            ],
        },
        RowCase {
            name: "quantities that are not positive whole numbers",
            file: with_header(
                "PO-1,Dyer,A-1,\"1,000\",1,\nPO-2,Dyer,A-1,12.5,1,\nPO-3,Dyer,A-1,abc,1,\n\
                 PO-4,Dyer,A-1,-3,1,\nPO-5,Dyer,A-1,0,1,\nPO-6,Dyer,A-1,1.00,1,\n\
                 PO-7,Dyer,A-1,,1,\n",
            ),
            problems: vec![
                (2, "quantity", "NOT_A_QUANTITY"),
                (3, "quantity", "NOT_A_QUANTITY"),
                (4, "quantity", "NOT_A_QUANTITY"),
                (5, "quantity", "NOT_A_QUANTITY"),
                (6, "quantity", "NOT_A_QUANTITY"),
                (8, "quantity", "REQUIRED"),
            ],
        },
        RowCase {
            name: "costs and dates of the wrong type",
            file: with_header(
                "PO-1,Dyer,A-1,1,-1,\nPO-2,Dyer,A-1,1,\"1,200\",\nPO-3,Dyer,A-1,1,free,\n\
                 PO-4,Dyer,A-1,1,,\nPO-5,Dyer,A-1,1,1,2023-02-29\nPO-6,Dyer,A-1,1,1,31/12/2024\n",
            ),
            problems: vec![
                (2, "unit_cost", "NOT_A_DECIMAL"),
                (3, "unit_cost", "NOT_A_DECIMAL"),
                (4, "unit_cost", "NOT_A_DECIMAL"),
                (5, "unit_cost", "REQUIRED"),
                (6, "expected_date", "NOT_A_DATE"),
                (7, "expected_date", "NOT_A_DATE"),
            ],
        },
        RowCase {
            name: "two suppliers on one PO, bad identifiers, a row too long",
            file: with_header(
                "PO-1,Dyer,A-1,1,1,\nPO-1,Weaver,B-1,1,1,\nPO 2,Dyer,A-1,1,1,\n\
                 PO-3,Dyer,#REF!,1,1,\nPO-4,,A-1,1,1,\nPO-5,Dyer,A-1,1,1,,extra\n",
            ),
            problems: vec![
                (3, "supplier", "CONFLICTING_VALUE"),
                (4, "po_number", "INVALID_PO_NUMBER"),
                (5, "sku", "INVALID_SKU"),
                (6, "supplier", "REQUIRED"),
                (7, "", "TOO_MANY_CELLS"),
            ],
        },
        RowCase {
            name: "a byte order mark and CRLF are read, the rows still checked",
            file:
                b"\xEF\xBB\xBFpo_number,supplier,sku,quantity,unit_cost\r\nPO-1,Dyer,NOPE,1,1\r\n"
                    .to_vec(),
            problems: vec![(2, "sku", "UNKNOWN_SKU")],
        },
        RowCase {
            name: "an unknown column",
            file: b"po_number,supplier,sku,quantity,unit_cost,colour\nPO-1,Dyer,A-1,1,1,red\n"
                .to_vec(),
            problems: vec![(1, "colour", "UNKNOWN_COLUMN")],
        },
        RowCase {
            name: "a missing required column",
            file: b"po_number,supplier,sku,unit_cost\nPO-1,Dyer,A-1,1\n".to_vec(),
            problems: vec![(1, "quantity", "MISSING_COLUMN")],
        },
        RowCase {
            name: "a header without rows",
            file: HEADER.as_bytes().to_vec(),
            problems: vec![(0, "", "NO_ROWS")],
        },
    ]
}

/// A file refused as a whole, before any row is read.
struct FileCase {
    name: &'static str,
    file: Vec<u8>,
    code: Code,
    message: &'static str,
}

fn file_cases() -> Vec<FileCase> {
    let mut oversized = HEADER.as_bytes().to_vec();
    while oversized.len() <= MAX_UPLOAD_BYTES {
        oversized.extend_from_slice(b"PO-1,Dyer,A-1,1,1,\n");
    }
    vec![
        FileCase {
            name: "larger than the upload limit",
            file: oversized,
            code: Code::ResourceExhausted,
            message: "larger than the limit",
        },
        FileCase {
            name: "binary",
            file: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(),
            code: Code::InvalidArgument,
            message: "not a CSV text file",
        },
        FileCase {
            name: "not UTF-8",
            file: b"po_number,supplier,sku,quantity,unit_cost\nPO-1,D\xe9r,A-1,1,1\n".to_vec(),
            code: Code::InvalidArgument,
            message: "not UTF-8",
        },
        FileCase {
            name: "empty",
            file: Vec::new(),
            code: Code::InvalidArgument,
            message: "empty",
        },
    ]
}

async fn every_bad_inward_file_is_refused_precisely_and_stores_nothing(db: TestDatabase) {
    let settings = Settings {
        max_upload_bytes: MAX_UPLOAD_BYTES,
        ..Settings::default()
    };
    let mut app = spawn_app_with(&db, settings).await;
    app.add_products(CLIENT, &["A-1", "B-1", "OLD"]).await;
    app.disable_product(CLIENT, "OLD").await;

    for case in row_cases() {
        // Act
        let dry_run = app.upload_inward(CLIENT, true, &case.file).await;
        let real = app.upload_inward(CLIENT, false, &case.file).await;

        // Assert: the report names each problem; the real upload names the same cells.
        let report = dry_run
            .unwrap_or_else(|status| panic!("{}: {status:?}", case.name))
            .report
            .unwrap();
        let expected: Vec<(i64, String, String)> = case
            .problems
            .iter()
            .map(|(row, column, reason)| (*row, column.to_string(), reason.to_string()))
            .collect();
        assert_eq!(report_problems(&report), expected, "{}", case.name);
        assert!(!report.applied, "{}", case.name);
        let status = real.expect_err(case.name);
        let fields = violated_fields(&status);
        assert_eq!(fields.len(), expected.len(), "{}: {fields:?}", case.name);
        assert!(
            status.message().contains("nothing stored"),
            "{}: {status:?}",
            case.name
        );
    }

    for case in file_cases() {
        for dry_run in [true, false] {
            let status = app
                .upload_inward(CLIENT, dry_run, &case.file)
                .await
                .expect_err(case.name);
            assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
            assert!(
                status.message().contains(case.message),
                "{}: {status:?}",
                case.name
            );
        }
    }

    assert_eq!(app.count_pos().await, 0);
    app.stop().await;
}

async fn the_unknown_sku_report_suggests_the_sku_without_a_stray_dot(db: TestDatabase) {
    let mut app = spawn_app_with(&db, Settings::default()).await;
    app.add_products(CLIENT, &["SET252-KR-PP-S"]).await;
    let file = format!("{HEADER}PO-1,Dyer,SET252-KR-PP-S.,1,1,\nPO-1,Dyer,SHIPPING,1,1,\n");

    let report = app
        .upload_inward(CLIENT, true, file.as_bytes())
        .await
        .unwrap()
        .report
        .unwrap();

    assert_eq!(report.errors.len(), 2);
    assert!(
        report.errors[0]
            .message
            .contains("did you mean `SET252-KR-PP-S`?")
    );
    assert_eq!(report.errors[0].value, "SET252-KR-PP-S.");
    assert!(!report.errors[1].message.contains("did you mean"));
    app.stop().await;
}

kosha_testkit::store_tests!(
    every_bad_inward_file_is_refused_precisely_and_stores_nothing,
    the_unknown_sku_report_suggests_the_sku_without_a_stray_dot,
);
