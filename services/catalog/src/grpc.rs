//! gRPC handlers of `kosha.catalog.v1.CatalogService`: each parses its request into domain
//! values, calls [`Catalog`], and converts the answer back.

/// Proto messages to domain values and back.
mod convert;

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_proto::kosha::catalog::v1::catalog_service_server::CatalogService;
use kosha_runtime::page::{decode_query_token, encode_query_token, page_size};
use kosha_runtime::upload::collect;
use kosha_runtime::{Error, Result};
use tonic::{Request, Response, Status, Streaming};

use crate::catalog::{Catalog, MAX_BATCH_SKUS, Page, ResolvedListings, split_listing_key};
use crate::domain::master::display_name_or;
use crate::domain::template::{CLEAR_TOKEN, header_line};
use crate::domain::{ChannelCode, ClientId, Sku};
use crate::store::products::ProductFilter;
use convert::{
    attributes_of, channel_kind, channel_to_pb, client_to_pb, listing_to_pb, patch_of,
    product_to_pb, upload_mode,
};

/// The catalog service as gRPC.
#[derive(Debug, Clone)]
pub struct CatalogGrpc {
    catalog: Catalog,
    max_upload_bytes: usize,
}

impl CatalogGrpc {
    /// Serves `catalog`, refusing uploads larger than `max_upload_bytes`.
    pub fn new(catalog: Catalog, max_upload_bytes: usize) -> Self {
        Self {
            catalog,
            max_upload_bytes,
        }
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

fn reply<T>(result: Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

/// A required sub-message, or an error naming it.
fn required<'a, T>(message_opt: &'a Option<T>, field: &str) -> Result<&'a T> {
    message_opt
        .as_ref()
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// A page token of the listing `query` describes, decoded, with its page size.
fn page_request(query: &str, size: i32, token: &str) -> Result<(i64, Option<String>)> {
    Ok((page_size(size)?, decode_query_token(query, token)?))
}

fn next_token<T>(query: &str, page: &Page<T>) -> String {
    page.next_key_opt
        .as_deref()
        .map(|key| encode_query_token(query, key))
        .unwrap_or_default()
}

/// Checks a list of SKUs of a batch call, naming the first bad one.
fn sku_list(field: &str, texts: &[String]) -> Result<Vec<Sku>> {
    if texts.len() > MAX_BATCH_SKUS {
        return Err(Error::invalid(
            field,
            format!(
                "{} SKUs asked; at most {MAX_BATCH_SKUS} per call",
                texts.len()
            ),
        ));
    }
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| Sku::parse(&format!("{field}[{index}]"), text))
        .collect()
}

/// An optional filter: empty means none.
fn optional<T>(text: &str, parse: impl FnOnce(&str) -> Result<T>) -> Result<Option<T>> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogGrpc {
    #[tracing::instrument(name = "catalog.create_client", skip_all)]
    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Reply<pb::CreateClientResponse> {
        let request = request.into_inner();
        reply(
            async {
                let id = ClientId::parse("client_id", &request.client_id)?;
                let display_name = display_name_or(&request.display_name, id.as_str())
                    .map_err(|problem| Error::invalid("display_name", problem))?;
                let client = self.catalog.create_client(id, display_name).await?;
                Ok(pb::CreateClientResponse {
                    client: Some(client_to_pb(client)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.get_client", skip_all)]
    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Reply<pb::GetClientResponse> {
        let request = request.into_inner();
        reply(
            async {
                let id = ClientId::parse("client_id", &request.client_id)?;
                let client = self.catalog.get_client(&id).await?;
                Ok(pb::GetClientResponse {
                    client: Some(client_to_pb(client)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.list_clients", skip_all)]
    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Reply<pb::ListClientsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let query = kosha_runtime::list_filters!(request);
                let (size, after_opt) =
                    page_request(&query, request.page_size, &request.page_token)?;
                let page = self
                    .catalog
                    .list_clients(size, after_opt.as_deref())
                    .await?;
                let next_page_token = next_token(&query, &page);
                Ok(pb::ListClientsResponse {
                    clients: page.items.into_iter().map(client_to_pb).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.create_channel", skip_all)]
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Reply<pb::CreateChannelResponse> {
        let request = request.into_inner();
        reply(
            async {
                let code = ChannelCode::parse("code", &request.code)?;
                let display_name = display_name_or(&request.display_name, code.as_str())
                    .map_err(|problem| Error::invalid("display_name", problem))?;
                let kind = channel_kind(request.kind)?;
                let channel = self
                    .catalog
                    .create_channel(code, display_name, kind)
                    .await?;
                Ok(pb::CreateChannelResponse {
                    channel: Some(channel_to_pb(channel)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.get_channel", skip_all)]
    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Reply<pb::GetChannelResponse> {
        let request = request.into_inner();
        reply(
            async {
                let code = ChannelCode::parse("code", &request.code)?;
                let channel = self.catalog.get_channel(&code).await?;
                Ok(pb::GetChannelResponse {
                    channel: Some(channel_to_pb(channel)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.list_channels", skip_all)]
    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Reply<pb::ListChannelsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let query = kosha_runtime::list_filters!(request);
                let (size, after_opt) =
                    page_request(&query, request.page_size, &request.page_token)?;
                let page = self
                    .catalog
                    .list_channels(size, after_opt.as_deref())
                    .await?;
                let next_page_token = next_token(&query, &page);
                Ok(pb::ListChannelsResponse {
                    channels: page.items.into_iter().map(channel_to_pb).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.create_product", skip_all)]
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Reply<pb::CreateProductResponse> {
        let request = request.into_inner();
        reply(
            async {
                let product = required(&request.product, "product")?;
                let client = ClientId::parse("product.client_id", &product.client_id)?;
                let sku = Sku::parse("product.sku", &product.sku)?;
                let attributes = attributes_of(product)?;
                let created = self
                    .catalog
                    .create_product(&client, sku, attributes)
                    .await?;
                Ok(pb::CreateProductResponse {
                    product: Some(product_to_pb(created)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.get_product", skip_all)]
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Reply<pb::GetProductResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let sku = Sku::parse("sku", &request.sku)?;
                let product = self.catalog.get_product(&client, &sku).await?;
                Ok(pb::GetProductResponse {
                    product: Some(product_to_pb(product)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.batch_get_products", skip_all)]
    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Reply<pb::BatchGetProductsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let skus = sku_list("skus", &request.skus)?;
                let (products, missing) = self.catalog.batch_get_products(&client, &skus).await?;
                tracing::debug!(asked = skus.len(), missing = missing.len(), "batch read");
                Ok(pb::BatchGetProductsResponse {
                    products: products.into_iter().map(product_to_pb).collect(),
                    missing_skus: missing.into_iter().map(|sku| sku.to_string()).collect(),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.list_products", skip_all)]
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Reply<pb::ListProductsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let query = kosha_runtime::list_filters!(request);
                let (size, after_opt) =
                    page_request(&query, request.page_size, &request.page_token)?;
                let filter = ProductFilter {
                    category_opt: optional(request.category.trim(), |text| Ok(text.to_string()))?,
                    style_opt: optional(request.style.trim(), |text| Ok(text.to_string()))?,
                    sku_prefix_opt: optional(&request.sku_prefix, |text| {
                        Sku::parse("sku_prefix", text).map(|prefix| prefix.to_string())
                    })?,
                    include_disabled: request.include_disabled,
                };
                let page = self
                    .catalog
                    .list_products(&client, &filter, size, after_opt.as_deref())
                    .await?;
                let next_page_token = next_token(&query, &page);
                Ok(pb::ListProductsResponse {
                    products: page.items.into_iter().map(product_to_pb).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.update_product", skip_all)]
    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Reply<pb::UpdateProductResponse> {
        let request = request.into_inner();
        reply(
            async {
                let product = required(&request.product, "product")?;
                let client = ClientId::parse("product.client_id", &product.client_id)?;
                let sku = Sku::parse("product.sku", &product.sku)?;
                let patch = patch_of(product, request.update_mask.as_ref())?;
                let updated = self.catalog.update_product(&client, &sku, &patch).await?;
                Ok(pb::UpdateProductResponse {
                    product: Some(product_to_pb(updated)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.disable_product", skip_all)]
    async fn disable_product(
        &self,
        request: Request<pb::DisableProductRequest>,
    ) -> Reply<pb::DisableProductResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let sku = Sku::parse("sku", &request.sku)?;
                let product = self
                    .catalog
                    .set_product_active(&client, &sku, false)
                    .await?;
                Ok(pb::DisableProductResponse {
                    product: Some(product_to_pb(product)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.enable_product", skip_all)]
    async fn enable_product(
        &self,
        request: Request<pb::EnableProductRequest>,
    ) -> Reply<pb::EnableProductResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let sku = Sku::parse("sku", &request.sku)?;
                let product = self.catalog.set_product_active(&client, &sku, true).await?;
                Ok(pb::EnableProductResponse {
                    product: Some(product_to_pb(product)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.get_product_template", skip_all)]
    async fn get_product_template(
        &self,
        request: Request<pb::GetProductTemplateRequest>,
    ) -> Reply<pb::GetProductTemplateResponse> {
        let request = request.into_inner();
        reply(
            async {
                let mode = upload_mode(request.mode)?;
                let columns = self.catalog.product_template(mode).await?;
                Ok(pb::GetProductTemplateResponse {
                    header: header_line(&columns),
                    columns: columns
                        .into_iter()
                        .map(|column| pb::TemplateColumn {
                            name: column.name,
                            required: column.required,
                            description: column.description,
                        })
                        .collect(),
                    clear_token: CLEAR_TOKEN.to_string(),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.upload_products", skip_all)]
    async fn upload_products(
        &self,
        request: Request<Streaming<pb::UploadProductsRequest>>,
    ) -> Reply<pb::UploadProductsResponse> {
        let stream = request.into_inner();
        reply(
            async {
                let ((client_id, mode, dry_run), bytes) = collect(
                    stream,
                    self.max_upload_bytes,
                    |message: pb::UploadProductsRequest| {
                        (
                            (message.client_id, message.mode, message.dry_run),
                            message.chunk,
                        )
                    },
                )
                .await?;
                let client = ClientId::parse("client_id", &client_id)?;
                let mode = upload_mode(mode)?;
                let report = self
                    .catalog
                    .upload_products(&client, mode, dry_run, &bytes)
                    .await?;
                Ok(pb::UploadProductsResponse {
                    report: Some(report),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.create_listing", skip_all)]
    async fn create_listing(
        &self,
        request: Request<pb::CreateListingRequest>,
    ) -> Reply<pb::CreateListingResponse> {
        let request = request.into_inner();
        reply(
            async {
                let listing = required(&request.listing, "listing")?;
                let client = ClientId::parse("listing.client_id", &listing.client_id)?;
                let channel = ChannelCode::parse("listing.channel", &listing.channel)?;
                let marketplace_sku =
                    Sku::parse("listing.marketplace_sku", &listing.marketplace_sku)?;
                let sku = Sku::parse("listing.sku", &listing.sku)?;
                let created = self
                    .catalog
                    .create_listing(&client, &channel, &marketplace_sku, &sku)
                    .await?;
                Ok(pb::CreateListingResponse {
                    listing: Some(listing_to_pb(created)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.list_listings", skip_all)]
    async fn list_listings(
        &self,
        request: Request<pb::ListListingsRequest>,
    ) -> Reply<pb::ListListingsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let channel_opt =
                    optional(&request.channel, |text| ChannelCode::parse("channel", text))?;
                let sku_opt = optional(&request.sku, |text| Sku::parse("sku", text))?;
                let query = kosha_runtime::list_filters!(request);
                let (size, key_opt) = page_request(&query, request.page_size, &request.page_token)?;
                let after_opt = match key_opt.as_deref() {
                    None => None,
                    Some(key) => Some(split_listing_key(key).ok_or_else(|| {
                        Error::invalid("page_token", "not a token returned by this list call")
                    })?),
                };
                let page = self
                    .catalog
                    .list_listings(
                        &client,
                        channel_opt.as_ref(),
                        sku_opt.as_ref(),
                        size,
                        after_opt,
                    )
                    .await?;
                let next_page_token = next_token(&query, &page);
                Ok(pb::ListListingsResponse {
                    listings: page.items.into_iter().map(listing_to_pb).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.delete_listing", skip_all)]
    async fn delete_listing(
        &self,
        request: Request<pb::DeleteListingRequest>,
    ) -> Reply<pb::DeleteListingResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let channel = ChannelCode::parse("channel", &request.channel)?;
                let marketplace_sku = Sku::parse("marketplace_sku", &request.marketplace_sku)?;
                self.catalog
                    .delete_listing(&client, &channel, &marketplace_sku)
                    .await?;
                Ok(pb::DeleteListingResponse {})
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.upload_listings", skip_all)]
    async fn upload_listings(
        &self,
        request: Request<Streaming<pb::UploadListingsRequest>>,
    ) -> Reply<pb::UploadListingsResponse> {
        let stream = request.into_inner();
        reply(
            async {
                let ((client_id, dry_run), bytes) = collect(
                    stream,
                    self.max_upload_bytes,
                    |message: pb::UploadListingsRequest| {
                        ((message.client_id, message.dry_run), message.chunk)
                    },
                )
                .await?;
                let client = ClientId::parse("client_id", &client_id)?;
                let report = self
                    .catalog
                    .upload_listings(&client, dry_run, &bytes)
                    .await?;
                Ok(pb::UploadListingsResponse {
                    report: Some(report),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(name = "catalog.resolve_listings", skip_all)]
    async fn resolve_listings(
        &self,
        request: Request<pb::ResolveListingsRequest>,
    ) -> Reply<pb::ResolveListingsResponse> {
        let request = request.into_inner();
        reply(
            async {
                let client = ClientId::parse("client_id", &request.client_id)?;
                let channel = ChannelCode::parse("channel", &request.channel)?;
                let marketplace_skus = sku_list("marketplace_skus", &request.marketplace_skus)?;
                let ResolvedListings {
                    resolved,
                    unknown,
                    not_in_master,
                } = self
                    .catalog
                    .resolve_listings(&client, &channel, &marketplace_skus)
                    .await?;
                tracing::debug!(
                    asked = marketplace_skus.len(),
                    unknown = unknown.len(),
                    "resolved"
                );
                Ok(pb::ResolveListingsResponse {
                    resolved: resolved
                        .into_iter()
                        .map(|listing| pb::ResolvedListing {
                            marketplace_sku: listing.marketplace_sku.to_string(),
                            sku: listing.sku.to_string(),
                            active: listing.active,
                        })
                        .collect(),
                    unknown_marketplace_skus: unknown
                        .into_iter()
                        .map(|sku| sku.to_string())
                        .collect(),
                    unknown_not_in_master: not_in_master
                        .into_iter()
                        .map(|sku| sku.to_string())
                        .collect(),
                })
            }
            .await,
        )
    }
}
