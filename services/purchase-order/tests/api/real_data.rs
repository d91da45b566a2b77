//! The seller's real files: the product master's stock through one inward PO and one GRN,
//! and the B2B invoice lines as outward POs, one per (customer, date).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kosha_proto::kosha::order::v1 as order_pb;
use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_testkit::TestDatabase;

use crate::support::{CLIENT, TestApp, report_problems, spawn_app};

/// Units and lines of the product master's positive stock, as the data's README states.
const STOCK_LINES: usize = 8_632;
const STOCK_UNITS: i64 = 242_037;

/// (customer, date) groups of the B2B file.
const B2B_GROUPS: usize = 267;

/// The rows of a raw data file, by column name.
fn read_raw(name: &str) -> Vec<HashMap<String, String>> {
    let path = kosha_testkit::shared_data_dir().join("raw").join(name);
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// The product master without its defective rows (blank SKU, `#REF!`, SKUs listed twice).
fn clean_products() -> Vec<HashMap<String, String>> {
    let rows = read_raw("products.csv");
    let mut count_by_sku: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        *count_by_sku.entry(row["sku"].clone()).or_default() += 1;
    }
    rows.into_iter()
        .filter(|row| {
            let sku = row["sku"].as_str();
            !sku.is_empty() && sku != "#REF!" && count_by_sku[sku] == 1
        })
        .collect()
}

/// Loads the clean product master into the catalog; returns its SKUs.
async fn load_product_master(app: &mut TestApp) -> BTreeSet<String> {
    let products = clean_products();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(["sku", "style", "category", "size", "color"])
        .unwrap();
    for row in &products {
        writer
            .write_record([
                &row["sku"],
                &row["design_no"],
                &row["category"],
                &row["size"],
                &row["color"],
            ])
            .unwrap();
    }
    let report = app
        .upload_products(CLIENT, &writer.into_inner().unwrap())
        .await;
    assert_eq!(report.created, 9_165);
    products.into_iter().map(|row| row["sku"].clone()).collect()
}

fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

async fn the_product_masters_stock_arrives_through_one_po_and_one_grn(db: TestDatabase) {
    // Arrange: the clean master in the catalog, its positive stock as one PO file.
    let mut app = spawn_app(&db).await;
    load_product_master(&mut app).await;
    let stocked: Vec<(String, i64)> = clean_products()
        .into_iter()
        .filter_map(|row| {
            let stock: i64 = row["stock"].trim().parse().ok()?;
            (stock > 0).then(|| (row["sku"].clone(), stock))
        })
        .collect();
    assert_eq!(stocked.len(), STOCK_LINES);
    assert_eq!(
        stocked.iter().map(|(_, stock)| stock).sum::<i64>(),
        STOCK_UNITS
    );
    let rows: Vec<Vec<String>> = stocked
        .iter()
        .map(|(sku, stock)| {
            vec![
                "PO-OPENING".into(),
                "Opening stock".into(),
                sku.clone(),
                stock.to_string(),
                "0".into(),
            ]
        })
        .collect();
    let file = csv_bytes(
        &["po_number", "supplier", "sku", "quantity", "unit_cost"],
        &rows,
    );

    // Act: upload the PO, then receive all of it (every unit passing QC) in one GRN.
    let upload = app.upload_inward(CLIENT, false, &file).await.unwrap();
    let lines: Vec<(&str, i64, i64)> = stocked
        .iter()
        .map(|(sku, stock)| (sku.as_str(), *stock, 0))
        .collect();
    let receipt = app
        .receive("GRN-OPENING", "PO-OPENING", "", &lines)
        .await
        .unwrap();

    // Assert
    assert_eq!(upload.report.unwrap().created, STOCK_LINES as i64);
    assert_eq!(
        app.lookups(),
        1,
        "one product-master lookup for the whole file, none for the GRN"
    );
    let po = receipt.purchase_order.unwrap();
    assert_eq!(po.status, i32::from(pb::PurchaseOrderStatus::Received));
    let totals = po.totals.unwrap();
    assert_eq!(
        (totals.ordered, totals.received, totals.outstanding),
        (STOCK_UNITS, STOCK_UNITS, 0)
    );
    assert_eq!(po.lines.len(), STOCK_LINES);
    let grn = receipt.grn.unwrap();
    assert_eq!(
        grn.inventory_delivery,
        i32::from(pb::InventoryDelivery::Delivered)
    );
    assert_eq!(app.common_totals().await, (STOCK_UNITS, 0));
    let audit = app.audit().await;
    assert!(audit.clean, "{:?}", audit.discrepancies.first());

    app.stop().await;
}

/// The B2B file as an outward PO file, row for row (so row numbers match the raw file):
/// each (customer, date) is one PO, `pcs` goes in as written.
fn b2b_as_outward_rows() -> Vec<Vec<String>> {
    read_raw("b2b-orders.csv")
        .into_iter()
        .map(|row| {
            let po_number = format!("{}-{}", row["customer"], row["date"]);
            vec![
                po_number,
                row["customer"].clone(),
                row["sku"].clone(),
                row["pcs"].clone(),
            ]
        })
        .collect()
}

const OUTWARD_HEADER: [&str; 4] = ["po_number", "customer", "sku", "quantity"];

/// Whether a SKU cell is well formed by the contract's rule.
fn well_formed(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 64
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

async fn the_real_b2b_file_dry_run_reports_every_defect_with_its_row(db: TestDatabase) {
    // Arrange
    let mut app = spawn_app(&db).await;
    let master = load_product_master(&mut app).await;
    let rows = b2b_as_outward_rows();
    let groups: BTreeSet<&String> = rows.iter().map(|row| &row[0]).collect();
    assert_eq!(groups.len(), B2B_GROUPS);

    // The defects, found here from the raw file alone: spreadsheet row -> reasons.
    let mut expected: BTreeSet<(i64, String, String)> = BTreeSet::new();
    let mut rows_by_po_and_sku: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        let spreadsheet_row = index as i64 + 2;
        let sku = row[2].as_str();
        let reason = if sku.is_empty() {
            Some("REQUIRED")
        } else if !well_formed(sku) {
            Some("INVALID_SKU")
        } else if !master.contains(sku) {
            Some("UNKNOWN_SKU")
        } else {
            None
        };
        if let Some(reason) = reason {
            expected.insert((spreadsheet_row, "sku".into(), reason.into()));
        }
        if well_formed(sku) {
            rows_by_po_and_sku
                .entry((&row[0], sku))
                .or_default()
                .push(spreadsheet_row);
        }
    }
    for repeated_rows in rows_by_po_and_sku.values().filter(|rows| rows.len() > 1) {
        for row in repeated_rows {
            expected.insert((*row, "sku".into(), "DUPLICATE_SKU".into()));
        }
    }

    // Act
    let file = csv_bytes(&OUTWARD_HEADER, &rows);
    let response = app.upload_outward(CLIENT, true, &file).await.unwrap();

    // Assert: exactly the defects, each at its row, and the kinds the data is known for.
    let report = response.report.unwrap();
    assert_eq!(report.rows, rows.len() as i64);
    assert_eq!(
        app.lookups(),
        1,
        "one product-master lookup for the whole file"
    );
    let found: BTreeSet<(i64, String, String)> = report_problems(&report).into_iter().collect();
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    let extra: Vec<_> = found.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );

    let count = |reason: &str| found.iter().filter(|(_, _, r)| r == reason).count();
    assert_eq!(count("REQUIRED"), 1_416);
    assert!(count("DUPLICATE_SKU") > 0);
    let message_of = |value: &str| {
        report
            .errors
            .iter()
            .find(|error| error.value == value && error.reason == "UNKNOWN_SKU")
            .map(|error| error.message.clone())
    };
    // Non-product lines (this copy of the data writes them `KURTI` and `SAREE`).
    for non_product in ["KURTI", "SAREE"] {
        let message = message_of(non_product).unwrap();
        assert!(message.contains("not in the product master"), "{message}");
    }
    assert!(
        message_of("SET252-KR-PP-S.")
            .unwrap()
            .contains("did you mean `SET252-KR-PP-S`?")
    );
    assert_eq!(app.count_outward_pos().await, 0);

    app.stop().await;
}

async fn the_cleaned_b2b_file_creates_one_bulk_order_per_group(db: TestDatabase) {
    // Arrange: defective rows out, pieces of one SKU added up per PO.
    let mut app = spawn_app(&db).await;
    let master = load_product_master(&mut app).await;
    let mut groups: BTreeMap<String, (String, BTreeMap<String, i64>)> = BTreeMap::new();
    for row in b2b_as_outward_rows() {
        if !master.contains(&row[2]) {
            continue;
        }
        let pieces: f64 = row[3].parse().unwrap();
        let (_, skus) = groups
            .entry(row[0].clone())
            .or_insert_with(|| (row[1].clone(), BTreeMap::new()));
        *skus.entry(row[2].clone()).or_default() += pieces as i64;
    }
    let mut rows = Vec::new();
    for (po_number, (customer, skus)) in &groups {
        for (sku, quantity) in skus {
            rows.push(vec![
                po_number.clone(),
                customer.clone(),
                sku.clone(),
                quantity.to_string(),
            ]);
        }
    }
    let file = csv_bytes(&OUTWARD_HEADER, &rows);

    // Act
    let response = app.upload_outward(CLIENT, false, &file).await.unwrap();
    let again = app.upload_outward(CLIENT, false, &file).await.unwrap();

    // Assert: one linked bulk order per remaining group, with the group's lines.
    let report = response.report.unwrap();
    assert!(report.applied && report.errors.is_empty());
    assert_eq!(report.created, rows.len() as i64);
    assert_eq!(response.created_po_numbers.len(), groups.len());
    assert_eq!(response.orders.len(), groups.len());
    let mut order_ids = BTreeSet::new();
    for summary in &response.orders {
        assert_eq!(
            summary.order_link,
            i32::from(pb::OrderLink::Linked),
            "{summary:?}"
        );
        order_ids.insert(summary.order_id.clone());
        let request = order_pb::GetOrderRequest {
            order_id: summary.order_id.clone(),
        };
        let order = app
            .orders
            .get_order(request)
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        assert_eq!(order.channel, "INTERNAL");
        assert_eq!(order.channel_order_id, summary.po_number);
        let lines: BTreeMap<String, i64> = order
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.quantity))
            .collect();
        assert_eq!(
            &lines, &groups[&summary.po_number].1,
            "{}",
            summary.po_number
        );
    }
    assert_eq!(order_ids.len(), groups.len());

    let again_report = again.report.unwrap();
    assert_eq!(
        (again_report.created, again_report.unchanged),
        (0, rows.len() as i64)
    );
    let again_ids: BTreeSet<String> = again
        .orders
        .iter()
        .map(|summary| summary.order_id.clone())
        .collect();
    assert_eq!(again_ids, order_ids);

    app.stop().await;
}

kosha_testkit::store_tests!(
    the_product_masters_stock_arrives_through_one_po_and_one_grn,
    the_real_b2b_file_dry_run_reports_every_defect_with_its_row,
    the_cleaned_b2b_file_creates_one_bulk_order_per_group,
);
