//! `kosha sample-data DIR`: a small, deterministic dataset in the same format as the real
//! one (products, channel MRPs, marketplace orders, B2B orders), so the replay can be tried
//! from a fresh clone. It carries the same kinds of defects as real exports, so the dry
//! runs have something to report: a blank SKU, a spreadsheet `#REF!`, a SKU listed twice,
//! marketplace SKUs nobody lists, non-product B2B lines and trailing dots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Sizes every design comes in.
const SIZES: &[&str] = &["S", "M", "L", "XL", "XXL"];
/// Categories of the first client's designs, with their SKU infix.
const CATEGORIES: &[(&str, &str)] = &[
    ("KURTA", "KR"),
    ("SET", "ST"),
    ("TOP", "TP"),
    ("DRESS", "DR"),
    ("NIGHT WEAR", "NW"),
];
const COLORS: &[&str] = &["Red", "Blue", "Green", "Black", "Yellow", "Pink"];
const CITIES: &[(&str, &str)] = &[
    ("MUMBAI", "MAHARASHTRA"),
    ("BENGALURU", "KARNATAKA"),
    ("HYDERABAD", "TELANGANA"),
    ("NEW DELHI", "DELHI"),
    ("CHENNAI", "TAMIL NADU"),
];

/// A tiny deterministic generator (a linear congruential one), so the same seed always
/// writes the same files on every machine.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Writes the four files into `dir` (created if needed); `designs` scales the size.
pub fn write(dir: &Path, designs: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut rng = Lcg(42);

    // Product master: every design in every size, some without stock.
    let mut products = String::from("sku,design_no,stock,category,size,color\n");
    let mut skus = Vec::new();
    for design in 0..designs {
        let (category, infix) = CATEGORIES[design % CATEGORIES.len()];
        let design_no = format!("D{:04}", 1000 + design);
        let color = rng.pick(COLORS);
        for size in SIZES {
            let sku = format!("{design_no}-{infix}-{size}");
            let stock = if rng.below(10) == 0 {
                0
            } else {
                rng.below(30) + 1
            };
            writeln!(
                products,
                "{sku},{design_no},{stock},{category},{size},{color}"
            )?;
            skus.push((sku, category, *size));
        }
    }
    // The defects real exports carry.
    products.push_str(",D9999,4,KURTA,M,Red\n");
    products.push_str("#REF!,D9998,2,TOP,S,Blue\n");
    let (twice, _, _) = &skus[3];
    writeln!(products, "{twice},D9997,1,DRESS,XL,Black")?;
    std::fs::write(dir.join("products.csv"), products)?;

    // A second client's catalog with per-channel MRPs, in another SKU style.
    let mut mrp = String::from(
        "sku,style_id,catalog,category,weight,tp,mrp_old,final_mrp_old,ajio_mrp,amazon_mrp,\
         amazon_fba_mrp,flipkart_mrp,limeroad_mrp,myntra_mrp,paytm_mrp,snapdeal_mrp\n",
    );
    for style in 0..designs.div_ceil(2) {
        let style_id = format!("Os{:03}_{}", 200 + style, 3000 + style);
        let base = 999 + 100 * rng.below(15);
        for size in &SIZES[..4] {
            let flipkart = base + 50 * rng.below(3);
            writeln!(
                mrp,
                "{style_id}_{size},{style_id},Moments,Kurta,0.3,{},{},{base},{base},{base},{base},\
                 {flipkart},{base},{base},{base},{base}",
                base / 4,
                base - 100
            )?;
        }
    }
    std::fs::write(dir.join("channel-mrp.csv"), mrp)?;

    // One day of marketplace orders, with the channel's later statuses.
    let mut orders = String::from(
        "order_id,date,status,fulfilment,sales_channel,ship_service_level,sku,category,size,qty,\
         currency,amount,ship_city,ship_state,b2b\n",
    );
    let statuses = [
        ("Shipped - Delivered to Buyer", 6),
        ("Shipped", 6),
        ("Cancelled", 3),
        ("Shipped - Returned to Seller", 1),
    ];
    for index in 0..designs * 3 {
        let order_id = format!(
            "{:03}-{:07}-{:07}",
            171 + rng.below(300),
            rng.below(10_000_000),
            index
        );
        let roll = rng.below(16);
        let mut cumulative = 0;
        let status = statuses
            .iter()
            .find(|(_, weight)| {
                cumulative += weight;
                roll < cumulative
            })
            .map_or("Shipped", |(status, _)| status);
        let fulfilment = if rng.below(4) == 0 {
            "Merchant"
        } else {
            "Amazon"
        };
        let lines = if rng.below(8) == 0 { 2 } else { 1 };
        for _ in 0..lines {
            let (sku, category, size) = if rng.below(20) == 0 {
                (format!("UNLISTED-{}", rng.below(100)), "kurta", "M")
            } else {
                let (sku, category, size) = rng.pick(&skus);
                (sku.clone(), *category, *size)
            };
            let quantity = if status == "Cancelled" { 0 } else { 1 };
            let (city, state) = rng.pick(CITIES);
            writeln!(
                orders,
                "{order_id},2022-04-30,{status},{fulfilment},Amazon.in,Standard,{sku},{},{size},\
                 {quantity},INR,{}.00,{city},{state},False",
                category.to_lowercase(),
                399 + rng.below(600)
            )?;
        }
    }
    std::fs::write(dir.join("amazon-orders.csv"), orders)?;

    // Wholesale invoice lines: a few customers on a few dates, with real-world noise.
    let mut b2b = String::from("date,customer,style,sku,size,pcs,rate,gross_amount\n");
    for group in 0..designs.div_ceil(3).max(2) {
        let date = format!("2021-{:02}-{:02}", 6 + group % 6, 5 + group % 20);
        let customer = format!("CUST-{:04}", 1 + group % 7);
        for _ in 0..6 {
            let (sku, _, size) = rng.pick(&skus);
            let style = sku.split('-').next().unwrap_or_default();
            let pieces = 1 + rng.below(4);
            let rate = 400 + rng.below(300);
            writeln!(
                b2b,
                "{date},{customer},{style},{sku},{size},{pieces}.00,{rate}.00,{}.00",
                pieces * rate
            )?;
        }
        if group % 3 == 0 {
            writeln!(
                b2b,
                "{date},{customer},SHIPPING,SHIPPING,,1.00,100.00,100.00"
            )?;
            writeln!(b2b, "{date},{customer},,,,2.00,350.00,700.00")?;
        }
        if group % 4 == 1 {
            let (sku, _, size) = &skus[group % skus.len()];
            writeln!(b2b, "{date},{customer},X,{sku}.,{size},1.00,500.00,500.00")?;
        }
    }
    std::fs::write(dir.join("b2b-orders.csv"), b2b)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_dataset_is_written_every_time() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        write(first.path(), 20).unwrap();
        write(second.path(), 20).unwrap();
        for file in [
            "products.csv",
            "channel-mrp.csv",
            "amazon-orders.csv",
            "b2b-orders.csv",
        ] {
            let a = std::fs::read(first.path().join(file)).unwrap();
            let b = std::fs::read(second.path().join(file)).unwrap();
            assert_eq!(a, b, "{file} differs between runs");
        }
        let products = std::fs::read_to_string(first.path().join("products.csv")).unwrap();
        assert_eq!(products.lines().count(), 1 + 20 * SIZES.len() + 3);
        assert!(products.contains("#REF!"));
    }
}
