//! The catalog's operations: each checks a request against what is stored and runs in one
//! transaction when it writes. Handlers parse requests into domain values and call these.

/// Bulk listing uploads.
mod listing_upload;
/// Bulk product uploads.
mod product_upload;
/// Listings resolved recently, kept in memory.
mod resolution_cache;
/// Counting outcomes and finding repeated keys across an upload's rows.
mod tally;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kosha_proto::types::UploadReport;
use kosha_runtime::changes::{self, Heard};
use kosha_runtime::db::is_unique_violation;
use kosha_runtime::time::now_micros;
use kosha_runtime::{Db, Error, Result};
use sqlx::{Any, AnyConnection, Transaction};

use crate::domain::template::{TemplateColumn, product_template};
use crate::domain::{
    Channel, ChannelCode, ChannelKind, Client, ClientId, Listing, Product, ProductAttributes,
    ProductPatch, Resolved, Sku, UploadMode,
};
use crate::store::products::ProductFilter;
use crate::store::{CHUNK_ROWS, listings, master, products};
use resolution_cache::ResolutionCache;
pub(crate) use resolution_cache::TOPIC as CHANGES_TOPIC;

/// Most SKUs in one batch read or resolve call.
pub const MAX_BATCH_SKUS: usize = 10_000;

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The key of the last item when more follow.
    pub next_key_opt: Option<String>,
}

impl<T> Page<T> {
    /// Cuts `fetched` (up to `size + 1` items) to `size`, keyed by `key` when more follow.
    fn of(mut fetched: Vec<T>, size: i64, key: impl Fn(&T) -> String) -> Self {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let more = fetched.len() > size;
        fetched.truncate(size);
        let next_key_opt = if more { fetched.last().map(key) } else { None };
        Self {
            items: fetched,
            next_key_opt,
        }
    }
}

/// The catalog over its database.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Db,
    resolutions: Arc<ResolutionCache>,
}

impl Catalog {
    /// The catalog stored in `db` (migrated), keeping up to `resolutions_kept` resolved
    /// listings in memory once [`Catalog::hear`] says that changes are heard.
    pub fn new(db: Db, resolutions_kept: usize) -> Self {
        Self {
            db,
            resolutions: Arc::new(ResolutionCache::new(resolutions_kept)),
        }
    }

    /// Takes in what the listener for other replicas' changes heard.
    pub fn hear(&self, heard: Heard) {
        self.resolutions.hear(heard);
    }

    /// Commits a write to `client`'s listings or products: every replica hears of it, and
    /// this one has forgotten the client's resolved listings before the caller is answered.
    async fn commit_change(&self, tx: Transaction<'static, Any>, client: &ClientId) -> Result<()> {
        let _forget = self.forget_when_done(client);
        commit_announced(tx, client).await
    }

    /// Forgets `client`'s resolved listings when dropped: after a write's commit, even when
    /// the call is abandoned while it commits.
    fn forget_when_done<'a>(&'a self, client: &'a ClientId) -> ForgetWhenDropped<'a> {
        ForgetWhenDropped {
            resolutions: &self.resolutions,
            client,
        }
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.db.pool().acquire().await?)
    }

    // === clients ===

    /// Registers a client; the same id and name again returns the stored client.
    pub async fn create_client(&self, id: ClientId, display_name: String) -> Result<Client> {
        let mut conn = self.conn().await?;
        let client = Client {
            client_id: id,
            display_name,
            create_time: now_micros(),
        };

        let inserted = master::insert_client(&mut conn, &client).await?;
        let stored = master::get_client(&mut conn, &client.client_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("client vanished right after its insert"))?;
        if !inserted && stored.display_name != client.display_name {
            return Err(Error::AlreadyExists(format!(
                "client `{}` exists with the name `{}`",
                stored.client_id, stored.display_name
            )));
        }
        if inserted {
            tracing::info!(client_id = %stored.client_id, "client created");
        }
        Ok(stored)
    }

    /// One client.
    pub async fn get_client(&self, id: &ClientId) -> Result<Client> {
        let mut conn = self.conn().await?;
        master::get_client(&mut conn, id)
            .await?
            .ok_or_else(|| Error::not_found("client", id))
    }

    /// A page of clients by id.
    pub async fn list_clients(&self, size: i64, after_opt: Option<&str>) -> Result<Page<Client>> {
        let mut conn = self.conn().await?;
        let fetched = master::list_clients(&mut conn, after_opt, size + 1).await?;
        Ok(Page::of(fetched, size, |client| {
            client.client_id.to_string()
        }))
    }

    // === channels ===

    /// Registers a channel; the same code, name and kind again returns the stored one.
    pub async fn create_channel(
        &self,
        code: ChannelCode,
        display_name: String,
        kind: ChannelKind,
    ) -> Result<Channel> {
        let mut conn = self.conn().await?;
        let channel = Channel {
            code,
            display_name,
            kind,
            create_time: now_micros(),
        };

        let inserted = master::insert_channel(&mut conn, &channel).await?;
        let stored = master::get_channel(&mut conn, &channel.code)
            .await?
            .ok_or_else(|| anyhow::anyhow!("channel vanished right after its insert"))?;
        let same = stored.display_name == channel.display_name && stored.kind == channel.kind;
        if !inserted && !same {
            return Err(Error::AlreadyExists(format!(
                "channel `{}` exists as `{}`, a {} channel; a channel's name and kind do not \
                 change",
                stored.code,
                stored.display_name,
                match stored.kind {
                    ChannelKind::Marketplace => "marketplace",
                    ChannelKind::B2b => "B2B",
                }
            )));
        }
        if inserted {
            tracing::info!(code = %stored.code, kind = ?stored.kind, "channel created");
        }
        Ok(stored)
    }

    /// One channel.
    pub async fn get_channel(&self, code: &ChannelCode) -> Result<Channel> {
        let mut conn = self.conn().await?;
        master::get_channel(&mut conn, code)
            .await?
            .ok_or_else(|| Error::not_found("channel", code))
    }

    /// A page of channels by code.
    pub async fn list_channels(&self, size: i64, after_opt: Option<&str>) -> Result<Page<Channel>> {
        let mut conn = self.conn().await?;
        let fetched = master::list_channels(&mut conn, after_opt, size + 1).await?;
        Ok(Page::of(fetched, size, |channel| channel.code.to_string()))
    }

    // === products ===

    /// The upload template of `mode`, with a price column per marketplace channel.
    pub async fn product_template(&self, mode: UploadMode) -> Result<Vec<TemplateColumn>> {
        let mut conn = self.conn().await?;
        let marketplaces = master::marketplaces(&mut conn).await?;
        Ok(product_template(mode, &marketplaces))
    }

    /// Adds one product. The same product again (a retry) returns the stored one; the SKU
    /// with other attributes is `ALREADY_EXISTS`.
    pub async fn create_product(
        &self,
        client: &ClientId,
        sku: Sku,
        attributes: ProductAttributes,
    ) -> Result<Product> {
        let mut tx = self.db.begin().await?;
        require_client(&mut tx, client).await?;
        require_marketplaces(
            &mut tx,
            attributes.channel_mrp.keys(),
            "product.channel_mrp",
        )
        .await?;

        let existing = products::load(&mut tx, client, &[sku.as_str()]).await?;
        if let Some(product) = existing.into_iter().next() {
            if product.attributes == attributes {
                return Ok(product);
            }
            return Err(Error::AlreadyExists(format!(
                "product `{sku}` of client `{client}` already exists with other values; \
                 update it instead"
            )));
        }

        // A concurrent call may still insert the SKU first; the unique key then refuses ours.

        let now = now_micros();
        let inserted = products::insert(&mut tx, client, &[(&sku, &attributes)], now).await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::AlreadyExists(format!(
                    "product `{sku}` of client `{client}` already exists"
                )));
            }
            other => other?,
        }
        let product = load_one(&mut tx, client, &sku).await?;
        self.commit_change(tx, client).await?;
        tracing::debug!(client_id = %client, %sku, "product created");
        Ok(product)
    }

    /// One product.
    pub async fn get_product(&self, client: &ClientId, sku: &Sku) -> Result<Product> {
        let mut conn = self.conn().await?;
        require_client(&mut conn, client).await?;
        load_one(&mut conn, client, sku).await
    }

    /// Many products, in the order asked (repeats read once), and the SKUs not found.
    pub async fn batch_get_products(
        &self,
        client: &ClientId,
        skus: &[Sku],
    ) -> Result<(Vec<Product>, Vec<Sku>)> {
        let mut conn = self.conn().await?;
        require_client(&mut conn, client).await?;

        let unique = unique_in_order(skus);
        let mut found: HashMap<String, Product> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(CHUNK_ROWS) {
            let keys: Vec<&str> = chunk.iter().map(|sku| sku.as_str()).collect();
            for product in products::load(&mut conn, client, &keys).await? {
                found.insert(product.sku.to_string(), product);
            }
        }

        let mut ordered = Vec::with_capacity(found.len());
        let mut missing = Vec::new();
        for sku in unique {
            match found.remove(sku.as_str()) {
                Some(product) => ordered.push(product),
                None => missing.push(sku.clone()),
            }
        }
        Ok((ordered, missing))
    }

    /// A page of a client's products in SKU order.
    pub async fn list_products(
        &self,
        client: &ClientId,
        filter: &ProductFilter,
        size: i64,
        after_opt: Option<&str>,
    ) -> Result<Page<Product>> {
        let mut conn = self.conn().await?;
        require_client(&mut conn, client).await?;
        let fetched = products::list(&mut conn, client, filter, after_opt, size + 1).await?;
        Ok(Page::of(fetched, size, |product| product.sku.to_string()))
    }

    /// Changes the attributes a patch names.
    pub async fn update_product(
        &self,
        client: &ClientId,
        sku: &Sku,
        patch: &ProductPatch,
    ) -> Result<Product> {
        let mut tx = self.db.begin().await?;
        require_client(&mut tx, client).await?;
        let changed_channels = patch.channel_mrp.iter().map(|(channel, _)| channel);
        require_marketplaces(&mut tx, changed_channels, "product.channel_mrp").await?;

        products::lock(&mut tx, client, &[sku.as_str()], self.db.for_update()).await?;
        let mut product = load_one(&mut tx, client, sku).await?;
        let next = patch.apply(&product.attributes);
        if next != product.attributes {
            product.attributes = next;
            product.update_time = now_micros();
            products::write_attributes(&mut tx, client, std::slice::from_ref(&product)).await?;
        }
        self.commit_change(tx, client).await?;
        tracing::debug!(client_id = %client, %sku, "product updated");
        Ok(product)
    }

    /// Disables or enables a product; one already in that state is returned as it is.
    pub async fn set_product_active(
        &self,
        client: &ClientId,
        sku: &Sku,
        active: bool,
    ) -> Result<Product> {
        let mut tx = self.db.begin().await?;
        require_client(&mut tx, client).await?;
        if !products::set_active(&mut tx, client, sku, active, now_micros()).await? {
            return Err(Error::not_found("product", format!("{client}/{sku}")));
        }
        let product = load_one(&mut tx, client, sku).await?;
        self.commit_change(tx, client).await?;
        tracing::debug!(client_id = %client, %sku, active, "product state set");
        Ok(product)
    }

    /// Bulk create or update from a CSV file.
    pub async fn upload_products(
        &self,
        client: &ClientId,
        mode: UploadMode,
        dry_run: bool,
        bytes: &[u8],
    ) -> Result<UploadReport> {
        let _forget = self.forget_when_done(client);
        product_upload::upload(&self.db, client, mode, dry_run, bytes).await
    }

    // === listings ===

    /// Maps a marketplace SKU of a channel to an active client SKU, replacing any earlier
    /// mapping.
    pub async fn create_listing(
        &self,
        client: &ClientId,
        channel: &ChannelCode,
        marketplace_sku: &Sku,
        sku: &Sku,
    ) -> Result<Listing> {
        let mut tx = self.db.begin().await?;
        require_client(&mut tx, client).await?;
        require_channel(&mut tx, channel).await?;
        let states = products::active_by_sku(&mut tx, client, &[sku.as_str()]).await?;
        match states.get(sku.as_str()) {
            None => return Err(Error::not_found("product", format!("{client}/{sku}"))),
            Some(false) => {
                return Err(Error::FailedPrecondition(format!(
                    "product `{sku}` is disabled; enable it before listing it"
                )));
            }
            Some(true) => {}
        }

        listings::upsert(
            &mut tx,
            client,
            &[(channel, marketplace_sku, sku)],
            now_micros(),
        )
        .await?;
        let listing = listings::get(&mut tx, client, channel, marketplace_sku)
            .await?
            .ok_or_else(|| anyhow::anyhow!("listing vanished right after its upsert"))?;
        self.commit_change(tx, client).await?;
        tracing::debug!(client_id = %client, %channel, %marketplace_sku, %sku, "listing written");
        Ok(listing)
    }

    /// A page of a client's listings by (channel, marketplace SKU).
    pub async fn list_listings(
        &self,
        client: &ClientId,
        channel_opt: Option<&ChannelCode>,
        sku_opt: Option<&Sku>,
        size: i64,
        after_opt: Option<(&str, &str)>,
    ) -> Result<Page<Listing>> {
        let mut conn = self.conn().await?;
        require_client(&mut conn, client).await?;
        // An unregistered channel has no listings, but an empty page would hide the typo.
        if let Some(channel) = channel_opt {
            require_channel(&mut conn, channel).await?;
        }
        let fetched =
            listings::list(&mut conn, client, channel_opt, sku_opt, after_opt, size + 1).await?;
        Ok(Page::of(fetched, size, |listing| {
            listing_key(&listing.channel, &listing.marketplace_sku)
        }))
    }

    /// Removes one listing.
    pub async fn delete_listing(
        &self,
        client: &ClientId,
        channel: &ChannelCode,
        marketplace_sku: &Sku,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        require_client(&mut tx, client).await?;
        if !listings::delete(&mut tx, client, channel, marketplace_sku).await? {
            return Err(Error::not_found(
                "listing",
                format!("{client}/{channel}/{marketplace_sku}"),
            ));
        }
        self.commit_change(tx, client).await?;
        tracing::debug!(client_id = %client, %channel, %marketplace_sku, "listing deleted");
        Ok(())
    }

    /// Bulk create or replace listings from a CSV file.
    pub async fn upload_listings(
        &self,
        client: &ClientId,
        dry_run: bool,
        bytes: &[u8],
    ) -> Result<UploadReport> {
        let _forget = self.forget_when_done(client);
        listing_upload::upload(&self.db, client, dry_run, bytes).await
    }

    /// Resolves marketplace SKUs of one channel: the listings found, in the order asked
    /// (repeats once), and the SKUs with no listing.
    pub async fn resolve_listings(
        &self,
        client: &ClientId,
        channel: &ChannelCode,
        marketplace_skus: &[Sku],
    ) -> Result<ResolvedListings> {
        let unique = unique_in_order(marketplace_skus);
        let kept = self.resolutions.look_up(client, channel, &unique);
        let missing: Vec<&str> = unique
            .iter()
            .zip(&kept.hits)
            .filter(|(_, hit)| hit.is_none())
            .map(|(sku, _)| sku.as_str())
            .collect();
        let mut found: HashMap<String, Resolved> = HashMap::with_capacity(missing.len());
        let mut conn_opt = None;
        // Nothing asked is looked up too, to tell an unknown client or channel.
        if !missing.is_empty() || unique.is_empty() {
            let conn = conn_opt.insert(self.conn().await?);
            for keys in missing.chunks(CHUNK_ROWS) {
                for resolved in listings::resolve(conn, client, channel, keys).await? {
                    found.insert(resolved.marketplace_sku.to_string(), resolved);
                }
            }
            self.resolutions
                .keep(kept.generation, client, channel, found.values());
            // A listing found proves its client and channel exist (it references both,
            // and neither is ever deleted); only an empty answer needs them looked up, to
            // tell an unknown client or channel from SKUs with no listing. This spares the
            // usual call two of its three statements.
            if found.is_empty() && kept.hits.iter().all(Option::is_none) {
                require_client(conn, client).await?;
                require_channel(conn, channel).await?;
            }
        }

        let mut resolved = Vec::with_capacity(unique.len());
        let mut unknown = Vec::new();
        for (marketplace_sku, hit) in unique.into_iter().zip(kept.hits) {
            match hit.or_else(|| found.remove(marketplace_sku.as_str())) {
                Some(listing) => resolved.push(listing),
                None => unknown.push(marketplace_sku.clone()),
            }
        }
        // Which unknown ones are no product either, so a caller can tell "add the listing"
        // from "add the product, then the listing". Only SKUs looked up can be unknown, so
        // the connection is there.
        let mut in_master = std::collections::HashSet::new();
        if let Some(conn) = conn_opt.as_mut() {
            for chunk in unknown.chunks(CHUNK_ROWS) {
                let keys: Vec<&str> = chunk.iter().map(|sku| sku.as_str()).collect();
                for product in products::load(conn, client, &keys).await? {
                    in_master.insert(product.sku.to_string());
                }
            }
        }
        let not_in_master = unknown
            .iter()
            .filter(|sku| !in_master.contains(sku.as_str()))
            .cloned()
            .collect();
        Ok(ResolvedListings {
            resolved,
            unknown,
            not_in_master,
        })
    }
}

/// What resolving marketplace SKUs found.
#[derive(Debug)]
pub struct ResolvedListings {
    /// The listings found, in the order asked.
    pub resolved: Vec<Resolved>,
    /// Marketplace SKUs with no listing.
    pub unknown: Vec<Sku>,
    /// Unknown ones that are not a product of the client's master either.
    pub not_in_master: Vec<Sku>,
}

/// The page key of a listing: channel codes hold no line break, so it splits back apart.
pub fn listing_key(channel: &ChannelCode, marketplace_sku: &Sku) -> String {
    format!("{channel}\n{marketplace_sku}")
}

/// The parts of a listing page key.
pub fn split_listing_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('\n')
}

/// The distinct SKUs of `skus`, first occurrence first.
fn unique_in_order(skus: &[Sku]) -> Vec<&Sku> {
    let mut seen = HashSet::with_capacity(skus.len());
    skus.iter()
        .filter(|sku| seen.insert(sku.as_str()))
        .collect()
}

/// Forgets a client's resolved listings when dropped.
struct ForgetWhenDropped<'a> {
    resolutions: &'a ResolutionCache,
    client: &'a ClientId,
}

impl Drop for ForgetWhenDropped<'_> {
    fn drop(&mut self) {
        self.resolutions.forget_client(self.client.as_str());
    }
}

/// Commits a write to `client`'s listings or products and announces it to every replica,
/// each of which then forgets what it kept of the client's listings.
async fn commit_announced(mut tx: Transaction<'static, Any>, client: &ClientId) -> Result<()> {
    changes::announce(&mut tx, CHANGES_TOPIC, client.as_str()).await?;
    tx.commit().await?;
    Ok(())
}

async fn require_client(conn: &mut AnyConnection, client: &ClientId) -> Result<()> {
    if master::client_exists(conn, client).await? {
        Ok(())
    } else {
        Err(Error::not_found("client", client))
    }
}

async fn require_channel(conn: &mut AnyConnection, channel: &ChannelCode) -> Result<()> {
    match master::get_channel(conn, channel).await? {
        Some(_) => Ok(()),
        None => Err(Error::not_found("channel", channel)),
    }
}

/// Checks that each channel given a price is a marketplace; `field` names the map.
async fn require_marketplaces<'a>(
    conn: &mut AnyConnection,
    channels: impl Iterator<Item = &'a ChannelCode>,
    field: &str,
) -> Result<()> {
    let channels: Vec<&ChannelCode> = channels.collect();
    if channels.is_empty() {
        return Ok(());
    }
    let marketplaces = master::marketplaces(conn).await?;
    for channel in channels {
        if !marketplaces.contains(channel) {
            return Err(Error::invalid(
                format!("{field}[{channel}]"),
                format!("`{channel}` is not a marketplace channel; only marketplaces have an MRP"),
            ));
        }
    }
    Ok(())
}

async fn load_one(conn: &mut AnyConnection, client: &ClientId, sku: &Sku) -> Result<Product> {
    let mut found = products::load(conn, client, &[sku.as_str()]).await?;
    found
        .pop()
        .ok_or_else(|| Error::not_found("product", format!("{client}/{sku}")))
}
