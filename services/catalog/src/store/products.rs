use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Binder, CHUNK_ROWS, INSERT_ROWS};
use crate::domain::{ChannelCode, ClientId, Mrp, Product, ProductAttributes, Sku};

/// Product columns, then one channel price (or NULLs), per joined row.
const PRODUCT_COLUMNS: &str = "p.sku, p.name, p.style, p.category, p.color, p.size, \
     p.mrp_paise, p.active, p.create_time, p.update_time, m.channel, m.mrp_paise AS channel_mrp";

/// The join that brings each product's channel prices along.
const CHANNEL_MRP_JOIN: &str =
    "LEFT JOIN product_channel_mrps m ON m.client_id = p.client_id AND m.sku = p.sku";

/// Parameters per product row of an `INSERT`.
const PRODUCT_WIDTH: usize = 11;

/// Channel prices per `INSERT` (4 parameters each).
const CHANNEL_MRP_ROWS: usize = 1000;

/// Filters of a product listing.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Only this category, compared without regard to the case of A-Z (SQLite lowers no
    /// other letters).
    pub category_opt: Option<String>,
    /// Only this style.
    pub style_opt: Option<String>,
    /// Only SKUs starting with this.
    pub sku_prefix_opt: Option<String>,
    /// Disabled products too.
    pub include_disabled: bool,
}

/// The products among one chunk of SKUs, in SKU order, with their channel prices.
pub async fn load(
    conn: &mut AnyConnection,
    client: &ClientId,
    skus: &[&str],
) -> sqlx::Result<Vec<Product>> {
    debug_assert!(skus.len() <= CHUNK_ROWS);
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let mut binder = Binder::new(conn);
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p {CHANNEL_MRP_JOIN} \
         WHERE p.client_id = {} AND p.sku IN ({}) ORDER BY p.sku, m.channel",
        binder.next(),
        binder.list(skus.len())
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for sku in skus {
        query = query.bind(*sku);
    }
    let rows = query.fetch_all(conn).await?;
    fold_products(client, &rows)
}

/// Locks the products among one chunk of SKUs until the transaction ends, so a
/// read-modify-write of them loses no concurrent change. `for_update` is the backend's
/// lock clause; on SQLite it is empty, the transaction already holds the write lock, and
/// nothing runs.
pub async fn lock(
    conn: &mut AnyConnection,
    client: &ClientId,
    skus: &[&str],
    for_update: &str,
) -> sqlx::Result<()> {
    if for_update.is_empty() || skus.is_empty() {
        return Ok(());
    }
    let mut binder = Binder::new(conn);
    let sql = format!(
        "SELECT sku FROM products WHERE client_id = {} AND sku IN ({}){for_update}",
        binder.next(),
        binder.list(skus.len())
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for sku in skus {
        query = query.bind(*sku);
    }
    query.fetch_all(conn).await?;
    Ok(())
}

/// Which of one chunk of SKUs exist, each with whether it is active.
pub async fn active_by_sku(
    conn: &mut AnyConnection,
    client: &ClientId,
    skus: &[&str],
) -> sqlx::Result<HashMap<String, bool>> {
    debug_assert!(skus.len() <= CHUNK_ROWS);
    if skus.is_empty() {
        return Ok(HashMap::new());
    }
    let mut binder = Binder::new(conn);
    let sql = format!(
        "SELECT sku, active FROM products WHERE client_id = {} AND sku IN ({})",
        binder.next(),
        binder.list(skus.len())
    );
    let mut query = sqlx::query(&sql).bind(client.as_str());
    for sku in skus {
        query = query.bind(*sku);
    }
    let mut found = HashMap::new();
    for row in query.fetch_all(conn).await? {
        let active: i64 = row.try_get("active")?;
        found.insert(row.try_get("sku")?, active == 1);
    }
    Ok(found)
}

/// Up to `limit` products after SKU `after_opt`, in SKU order.
pub async fn list(
    conn: &mut AnyConnection,
    client: &ClientId,
    filter: &ProductFilter,
    after_opt: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Product>> {
    let mut params = Params {
        binder: Binder::new(conn),
        values: Vec::new(),
    };
    let mut conditions = vec![
        format!("client_id = {}", params.push(Param::Text(client.as_str()))),
        format!(
            "sku > {}",
            params.push(Param::Text(after_opt.unwrap_or("")))
        ),
    ];
    if !filter.include_disabled {
        conditions.push("active = 1".to_string());
    }
    if let Some(category) = &filter.category_opt {
        let category = params.push(Param::Text(category));
        conditions.push(format!("LOWER(category) = LOWER({category})"));
    }
    if let Some(style) = &filter.style_opt {
        conditions.push(format!("style = {}", params.push(Param::Text(style))));
    }
    if let Some(prefix) = &filter.sku_prefix_opt {
        // SKUs are ASCII, so the prefix's length in bytes is its length in characters.
        let length = params.push(Param::Int(prefix.len() as i64));
        let prefix = params.push(Param::Text(prefix));
        conditions.push(format!(
            "SUBSTR(sku, 1, CAST({length} AS INTEGER)) = {prefix}"
        ));
    }
    // The page is cut in a subquery, so the join with channel prices cannot shorten it.
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM \
         (SELECT * FROM products WHERE {} ORDER BY sku LIMIT {}) p \
         {CHANNEL_MRP_JOIN} ORDER BY p.sku, m.channel",
        conditions.join(" AND "),
        params.push(Param::Int(limit)),
    );

    let mut query = sqlx::query(&sql);
    for param in params.values {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(number) => query.bind(number),
        };
    }
    let rows = query.fetch_all(conn).await?;
    fold_products(client, &rows)
}

/// One parameter of a query assembled from optional parts.
enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// Parameters in the order they are written, hence bound.
struct Params<'a> {
    binder: Binder,
    values: Vec<Param<'a>>,
}

impl<'a> Params<'a> {
    /// Adds a parameter and returns its placeholder.
    fn push(&mut self, param: Param<'a>) -> String {
        self.values.push(param);
        self.binder.next()
    }
}

/// Inserts new products, [`INSERT_ROWS`] per statement, and their channel prices. A SKU
/// that exists fails the statement with a unique violation.
pub async fn insert(
    conn: &mut AnyConnection,
    client: &ClientId,
    products: &[(&Sku, &ProductAttributes)],
    now: i64,
) -> sqlx::Result<()> {
    for chunk in products.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO products (client_id, sku, name, style, category, color, size, \
             mrp_paise, active, create_time, update_time) VALUES {}",
            Binder::new(conn).rows(chunk.len(), PRODUCT_WIDTH)
        );
        let mut query = sqlx::query(&sql);
        for (sku, attributes) in chunk {
            query = query
                .bind(client.as_str())
                .bind(sku.as_str())
                .bind(attributes.name.as_str())
                .bind(attributes.style.as_str())
                .bind(attributes.category.as_str())
                .bind(attributes.color.as_str())
                .bind(attributes.size.as_str())
                .bind(attributes.mrp_opt.map(Mrp::paise))
                .bind(1_i64)
                .bind(now)
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }

    let prices: Vec<(&Sku, &ChannelCode, Mrp)> = products
        .iter()
        .flat_map(|(sku, attributes)| {
            attributes
                .channel_mrp
                .iter()
                .map(move |(channel, mrp)| (*sku, channel, *mrp))
        })
        .collect();
    insert_channel_mrps(conn, client, &prices).await
}

/// Writes the attributes and `update_time` of existing products, [`INSERT_ROWS`] per
/// statement, and replaces their channel prices with theirs.
pub async fn write_attributes(
    conn: &mut AnyConnection,
    client: &ClientId,
    products: &[Product],
) -> sqlx::Result<()> {
    // An upsert is the one multi-row update both databases run; every row exists, so each
    // takes the DO UPDATE branch and creation time and state stay as they are.
    for chunk in products.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO products (client_id, sku, name, style, category, color, size, \
             mrp_paise, active, create_time, update_time) VALUES {} \
             ON CONFLICT (client_id, sku) DO UPDATE SET name = excluded.name, \
             style = excluded.style, category = excluded.category, color = excluded.color, \
             size = excluded.size, mrp_paise = excluded.mrp_paise, \
             update_time = excluded.update_time",
            Binder::new(conn).rows(chunk.len(), PRODUCT_WIDTH)
        );
        let mut query = sqlx::query(&sql);
        for product in chunk {
            let attributes = &product.attributes;
            query = query
                .bind(client.as_str())
                .bind(product.sku.as_str())
                .bind(attributes.name.as_str())
                .bind(attributes.style.as_str())
                .bind(attributes.category.as_str())
                .bind(attributes.color.as_str())
                .bind(attributes.size.as_str())
                .bind(attributes.mrp_opt.map(Mrp::paise))
                .bind(i64::from(product.active))
                .bind(product.create_time)
                .bind(product.update_time);
        }
        query.execute(&mut *conn).await?;
    }

    for chunk in products.chunks(CHUNK_ROWS) {
        let mut binder = Binder::new(conn);
        let sql = format!(
            "DELETE FROM product_channel_mrps WHERE client_id = {} AND sku IN ({})",
            binder.next(),
            binder.list(chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(client.as_str());
        for product in chunk {
            query = query.bind(product.sku.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    let prices: Vec<(&Sku, &ChannelCode, Mrp)> = products
        .iter()
        .flat_map(|product| {
            let sku = &product.sku;
            product
                .attributes
                .channel_mrp
                .iter()
                .map(move |(channel, mrp)| (sku, channel, *mrp))
        })
        .collect();
    insert_channel_mrps(conn, client, &prices).await
}

async fn insert_channel_mrps(
    conn: &mut AnyConnection,
    client: &ClientId,
    prices: &[(&Sku, &ChannelCode, Mrp)],
) -> sqlx::Result<()> {
    for chunk in prices.chunks(CHANNEL_MRP_ROWS) {
        let sql = format!(
            "INSERT INTO product_channel_mrps (client_id, sku, channel, mrp_paise) VALUES {}",
            Binder::new(conn).rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (sku, channel, mrp) in chunk {
            query = query
                .bind(client.as_str())
                .bind(sku.as_str())
                .bind(channel.as_str());
            query = query.bind(mrp.paise());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Sets whether a product is active; false when there is no such product.
pub async fn set_active(
    conn: &mut AnyConnection,
    client: &ClientId,
    sku: &Sku,
    active: bool,
    now: i64,
) -> sqlx::Result<bool> {
    let active = i64::from(active);
    // A product already in the asked state keeps its update time.
    let result = sqlx::query(
        "UPDATE products SET active = $3, \
         update_time = CASE WHEN active = $3 THEN update_time ELSE $4 END \
         WHERE client_id = $1 AND sku = $2",
    )
    .bind(client.as_str())
    .bind(sku.as_str())
    .bind(active)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Folds joined rows, ordered by SKU, into one product per SKU.
fn fold_products(client: &ClientId, rows: &[AnyRow]) -> sqlx::Result<Vec<Product>> {
    let mut products: Vec<Product> = Vec::new();
    for row in rows {
        let sku: String = row.try_get("sku")?;
        let is_new_sku = products.last().is_none_or(|last| last.sku.as_str() != sku);
        if is_new_sku {
            let mrp_opt: Option<i64> = row.try_get("mrp_paise")?;
            let active: i64 = row.try_get("active")?;
            products.push(Product {
                client_id: client.clone(),
                sku: Sku::from_stored(sku),
                attributes: ProductAttributes {
                    name: row.try_get("name")?,
                    style: row.try_get("style")?,
                    category: row.try_get("category")?,
                    color: row.try_get("color")?,
                    size: row.try_get("size")?,
                    mrp_opt: mrp_opt.map(Mrp::from_paise),
                    channel_mrp: Default::default(),
                },
                active: active == 1,
                create_time: row.try_get("create_time")?,
                update_time: row.try_get("update_time")?,
            });
        }
        let channel_opt: Option<String> = row.try_get("channel")?;
        let channel_mrp_opt: Option<i64> = row.try_get("channel_mrp")?;
        if let (Some(channel), Some(paise), Some(product)) =
            (channel_opt, channel_mrp_opt, products.last_mut())
        {
            let channel = ChannelCode::from_stored(channel);
            product
                .attributes
                .channel_mrp
                .insert(channel, Mrp::from_paise(paise));
        }
    }
    Ok(products)
}
