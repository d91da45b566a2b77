//! What the real data says, read straight from the CSV files with none of the replay's
//! code, so the tests check the replay rather than repeat it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;

/// One marketplace order of the export.
#[derive(Debug, Clone)]
pub struct ExpectedOrder {
    /// Amazon's order id.
    pub order_id: String,
    /// The channel's status, as exported.
    pub status: String,
    /// Shipped by the seller (`Merchant`) rather than the marketplace.
    pub seller_fulfilled: bool,
    /// The SKU of each line.
    pub skus: Vec<String>,
}

impl ExpectedOrder {
    /// Cancelled on the channel.
    pub fn is_cancelled(&self) -> bool {
        self.status == "Cancelled"
    }

    /// Returned to the seller or rejected by the buyer.
    pub fn came_back(&self) -> bool {
        self.status == "Shipped - Returned to Seller"
            || self.status == "Shipped - Rejected by Buyer"
    }
}

/// Facts of the real data.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Every SKU written in `products.csv`, defective rows included.
    pub master_skus: BTreeSet<String>,
    /// SKUs of `products.csv` the product master keeps: written once, neither blank nor a
    /// spreadsheet error.
    pub stored_skus: BTreeSet<String>,
    /// Stored SKUs of the category listed late.
    pub late_skus: BTreeSet<String>,
    /// Marketplace orders in file order.
    pub orders: Vec<ExpectedOrder>,
}

impl Expectations {
    /// Reads `dir`'s products and marketplace orders; `late_category` as the replay uses it.
    pub fn read(dir: &Path, late_category: &str) -> anyhow::Result<Self> {
        let mut reader =
            csv::Reader::from_path(dir.join("products.csv")).context("products.csv")?;
        let mut rows_per_sku: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for record in reader.deserialize::<BTreeMap<String, String>>() {
            let record = record?;
            let sku = record["sku"].trim().to_string();
            let category = record["category"].trim().to_string();
            let entry = rows_per_sku.entry(sku).or_insert((0, category));
            entry.0 += 1;
        }
        let master_skus: BTreeSet<String> = rows_per_sku.keys().cloned().collect();
        let stored: Vec<(&String, &String)> = rows_per_sku
            .iter()
            .filter(|(sku, (rows, _))| *rows == 1 && !sku.is_empty() && sku.as_str() != "#REF!")
            .map(|(sku, (_, category))| (sku, category))
            .collect();
        let stored_skus = stored.iter().map(|(sku, _)| (*sku).clone()).collect();
        let late_skus = stored
            .iter()
            .filter(|(_, category)| category.eq_ignore_ascii_case(late_category))
            .map(|(sku, _)| (*sku).clone())
            .collect();

        let mut reader =
            csv::Reader::from_path(dir.join("amazon-orders.csv")).context("amazon-orders.csv")?;
        let mut orders: Vec<ExpectedOrder> = Vec::new();
        for record in reader.deserialize::<BTreeMap<String, String>>() {
            let record = record?;
            let order_id = record["order_id"].trim().to_string();
            let sku = record["sku"].trim().to_string();
            match orders.iter_mut().find(|order| order.order_id == order_id) {
                Some(order) => order.skus.push(sku),
                None => orders.push(ExpectedOrder {
                    order_id,
                    status: record["status"].trim().to_string(),
                    seller_fulfilled: record["fulfilment"].trim() == "Merchant",
                    skus: vec![sku],
                }),
            }
        }
        Ok(Self {
            master_skus,
            stored_skus,
            late_skus,
            orders,
        })
    }

    /// Lines naming a SKU that `products.csv` does not have at all: (order, SKU).
    pub fn lines_absent_from_master(&self) -> Vec<(&ExpectedOrder, &str)> {
        self.orders
            .iter()
            .flat_map(|order| order.skus.iter().map(move |sku| (order, sku.as_str())))
            .filter(|(_, sku)| !self.master_skus.contains(*sku))
            .collect()
    }

    /// Orders every SKU of which is stored, at least one of the late-listed category.
    pub fn late_listed_orders(&self) -> Vec<&ExpectedOrder> {
        self.orders
            .iter()
            .filter(|order| order.skus.iter().all(|sku| self.stored_skus.contains(sku)))
            .filter(|order| order.skus.iter().any(|sku| self.late_skus.contains(sku)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_data_has_the_documented_defects() {
        let expected = Expectations::read(&crate::real_data_dir(), "TOP").unwrap();

        assert_eq!(expected.orders.len(), 755);
        assert_eq!(expected.lines_absent_from_master().len(), 65);
        assert_eq!(expected.stored_skus.len(), 9_165);
        assert!(!expected.late_listed_orders().is_empty());
    }
}
