//! Stage 1: the two clients, the channels, both product masters through the create
//! upload (a dry run first; the rows it reports are left out), and the AMAZON listings
//! of every product except the category listed late.

use std::collections::BTreeSet;

use kosha_proto::kosha::catalog::v1 as cat;
use kosha_proto::types::UploadReport;
use tonic::Code;

use super::{MARKETPLACE, RejectedRows, Replay, SECOND_CLIENT, SELLER, chunked};
use crate::replay::connect::CallResult as _;
use crate::replay::input::{
    ChannelMrpRow, ProductRow, channel_mrp_upload, csv_cell, products_upload,
};
use crate::replay::progress::Stage;
use crate::replay::report::thousands;

/// Channels every replay needs, besides those the MRP file names: the marketplace of the
/// order file, the channel given a reserve pool and the one made to wait on purpose.
const NEEDED_CHANNELS: &[&str] = &["AMAZON", "FLIPKART", "MYNTRA"];

impl Replay<'_> {
    pub(super) async fn master_data(&mut self, stage: &mut Stage) -> anyhow::Result<u64> {
        self.summary
            .section("1. Clients, channels, products, listings");

        // Clients and channels.
        for (client_id, display_name) in [
            (SELLER, "Ethnic wear seller (products.csv)"),
            (
                SECOND_CLIENT,
                "Second catalog of the seller (channel-mrp.csv)",
            ),
        ] {
            let request = cat::CreateClientRequest {
                client_id: client_id.to_string(),
                display_name: display_name.to_string(),
            };
            self.clients
                .catalog
                .clone()
                .create_client(request)
                .await
                .during(format!("CreateClient `{client_id}`"))?;
            self.refuse_a_used_client(client_id).await?;
        }
        let mut channels: BTreeSet<String> = NEEDED_CHANNELS
            .iter()
            .map(|code| code.to_string())
            .collect();
        channels.extend(self.data.channel_mrp.channels.iter().cloned());
        for code in &channels {
            let request = cat::CreateChannelRequest {
                code: code.clone(),
                display_name: String::new(),
                kind: cat::ChannelKind::Marketplace as i32,
            };
            match self.clients.catalog.clone().create_channel(request).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::AlreadyExists => {}
                Err(status) => {
                    anyhow::bail!(
                        "CreateChannel `{code}` failed: {:?}: {}",
                        status.code(),
                        status.message()
                    )
                }
            }
        }
        let channel_list: Vec<&str> = channels.iter().map(String::as_str).collect();
        self.summary.line(format!(
            "channels: {} (and INTERNAL for B2B)",
            channel_list.join(", ")
        ));

        // The first client's product master.
        stage.note("products.csv: dry run, then the clean rows");
        let all_rows: Vec<&ProductRow> = self.data.products.iter().collect();
        let dry_run = self
            .upload_products(SELLER, products_upload(&all_rows), true)
            .await?;
        let rejected = RejectedRows::from_errors("products.csv", &dry_run.errors)?;
        let kept: Vec<ProductRow> = self
            .data
            .products
            .iter()
            .filter(|row| !rejected.rows.contains(&row.row))
            .cloned()
            .collect();
        let kept_refs: Vec<&ProductRow> = kept.iter().collect();
        let stored = self
            .upload_products(SELLER, products_upload(&kept_refs), false)
            .await?;
        self.check_upload("products.csv", &stored, kept.len());
        self.summary.line(format!(
            "`{SELLER}` products.csv: {} rows; dry run reported {} rows ({}); created {} products",
            thousands(self.data.products.len() as i64),
            thousands(rejected.rows.len() as i64),
            rejected.describe(),
            thousands(stored.created)
        ));
        self.seller_products = kept;

        // The second client's product master, with an MRP per channel.
        stage.note("channel-mrp.csv: dry run, then the clean rows");
        let channels_with_mrp = self.data.channel_mrp.channels.clone();
        let mrp_rows = self.data.channel_mrp.rows.clone();
        let all_rows: Vec<&ChannelMrpRow> = mrp_rows.iter().collect();
        let dry_run = self
            .upload_products(
                SECOND_CLIENT,
                channel_mrp_upload(&channels_with_mrp, &all_rows),
                true,
            )
            .await?;
        let rejected = RejectedRows::from_errors("channel-mrp.csv", &dry_run.errors)?;
        let kept: Vec<&ChannelMrpRow> = all_rows
            .into_iter()
            .filter(|row| !rejected.rows.contains(&row.row))
            .collect();
        let stored = self
            .upload_products(
                SECOND_CLIENT,
                channel_mrp_upload(&channels_with_mrp, &kept),
                false,
            )
            .await?;
        self.check_upload("channel-mrp.csv", &stored, kept.len());
        self.summary.line(format!(
            "`{SECOND_CLIENT}` channel-mrp.csv: {} rows ({} `Nill` cells sent blank); dry run \
             reported {} rows ({}); created {} products with MRPs for {} channels",
            thousands(self.data.channel_mrp.rows.len() as i64),
            thousands(self.data.channel_mrp.no_value_cells as i64),
            thousands(rejected.rows.len() as i64),
            rejected.describe(),
            thousands(stored.created),
            channels_with_mrp.len()
        ));
        self.second_skus = kept.iter().map(|row| row.sku.clone()).collect();

        // Listings: the marketplace SKU is the client's own, except one category for later.
        let late_category = self.options.late_category.clone();
        self.late_skus = self
            .seller_products
            .iter()
            .filter(|product| product.category.eq_ignore_ascii_case(&late_category))
            .map(|product| product.sku.clone())
            .collect();
        let listed: Vec<String> = self
            .seller_products
            .iter()
            .filter(|product| !self.late_skus.contains(&product.sku))
            .map(|product| product.sku.clone())
            .collect();
        stage.note("AMAZON listings: dry run, then the listings");
        let seller_listings = self.list_on_marketplace(SELLER, &listed).await?;
        let second_skus = self.second_skus.clone();
        let second_listings = self
            .list_on_marketplace(SECOND_CLIENT, &second_skus)
            .await?;
        self.summary.line(format!(
            "AMAZON listings (marketplace SKU = client SKU): `{SELLER}` {}, held back for later: \
             {} products of category {late_category}; `{SECOND_CLIENT}` {}",
            thousands(seller_listings),
            thousands(self.late_skus.len() as i64),
            thousands(second_listings)
        ));

        let products = self.seller_products.len() + self.second_skus.len();
        Ok((products as i64 + seller_listings + second_listings) as u64)
    }

    /// A replay needs fresh clients: products from an earlier run would make every create
    /// fail, so that is said plainly before anything is sent.
    async fn refuse_a_used_client(&self, client_id: &str) -> anyhow::Result<()> {
        let request = cat::ListProductsRequest {
            client_id: client_id.to_string(),
            page_size: 1,
            include_disabled: true,
            ..Default::default()
        };
        let page = self
            .clients
            .catalog
            .clone()
            .list_products(request)
            .await
            .during("ListProducts")?;
        if !page.products.is_empty() {
            anyhow::bail!(
                "client `{client_id}` already has products: replay into a fresh suite (without \
                 --addr the replay starts one on a fresh data directory)"
            );
        }
        Ok(())
    }

    /// A create upload of products; a dry run or the real one.
    pub(super) async fn upload_products(
        &self,
        client_id: &str,
        file: Vec<u8>,
        dry_run: bool,
    ) -> anyhow::Result<UploadReport> {
        let messages = chunked(
            &file,
            |chunk| cat::UploadProductsRequest {
                client_id: client_id.to_string(),
                mode: cat::UploadMode::Create as i32,
                dry_run,
                chunk,
            },
            |chunk| cat::UploadProductsRequest {
                chunk,
                ..Default::default()
            },
        );
        let what = if dry_run { "dry run" } else { "upload" };
        let response = self
            .clients
            .catalog
            .clone()
            .upload_products(tokio_stream::iter(messages))
            .await
            .during(format!("UploadProducts ({what}) of `{client_id}`"))?;
        response
            .report
            .ok_or_else(|| anyhow::anyhow!("UploadProducts returned no report"))
    }

    /// Lists `skus` on the marketplace under their own SKU: dry run, then for real.
    /// Returns the listings created.
    async fn list_on_marketplace(
        &mut self,
        client_id: &str,
        skus: &[String],
    ) -> anyhow::Result<i64> {
        let mut file = String::from("channel,marketplace_sku,sku\n");
        for sku in skus {
            let sku = csv_cell(sku);
            file.push_str(&format!("{MARKETPLACE},{sku},{sku}\n"));
        }
        let dry_run = self
            .upload_listings(client_id, file.as_bytes().to_vec(), true)
            .await?;
        if !dry_run.errors.is_empty() {
            let rejected = RejectedRows::from_errors("listings", &dry_run.errors)?;
            self.finding(format!(
                "the listing upload of `{client_id}` names products that were just created, yet \
                 its dry run reported {} rows ({})",
                rejected.rows.len(),
                rejected.describe()
            ));
            return Ok(0);
        }
        let stored = self
            .upload_listings(client_id, file.into_bytes(), false)
            .await?;
        self.check_upload("listings", &stored, skus.len());
        Ok(stored.created + stored.updated)
    }

    /// A listing upload; a dry run or the real one.
    pub(super) async fn upload_listings(
        &self,
        client_id: &str,
        file: Vec<u8>,
        dry_run: bool,
    ) -> anyhow::Result<UploadReport> {
        let messages = chunked(
            &file,
            |chunk| cat::UploadListingsRequest {
                client_id: client_id.to_string(),
                dry_run,
                chunk,
            },
            |chunk| cat::UploadListingsRequest {
                chunk,
                ..Default::default()
            },
        );
        let response = self
            .clients
            .catalog
            .clone()
            .upload_listings(tokio_stream::iter(messages))
            .await
            .during(format!("UploadListings of `{client_id}`"))?;
        response
            .report
            .ok_or_else(|| anyhow::anyhow!("UploadListings returned no report"))
    }

    /// Records a finding unless an upload stored exactly its `expected` rows.
    pub(super) fn check_upload(&mut self, file: &str, report: &UploadReport, expected: usize) {
        let stored = report.created + report.updated + report.unchanged;
        if !report.applied || !report.errors.is_empty() || stored != expected as i64 {
            self.finding(format!(
                "{file}: the upload of {expected} clean rows stored {stored} (applied: {}, {} \
                 errors)",
                report.applied,
                report.errors.len()
            ));
        }
    }
}
