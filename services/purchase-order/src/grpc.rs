//! gRPC handlers: check the request into domain values, call the operation, convert the
//! result. Nothing here decides anything.

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_proto::kosha::purchase_order::v1::purchase_order_service_server::PurchaseOrderService;
use kosha_runtime::Error;
use kosha_runtime::page::{decode_query_token, encode_query_token, page_size};
use kosha_runtime::upload;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use crate::domain::outward::OutwardTerms;
use crate::domain::upload::{InwardFormat, OutwardFormat, PoFormat};
use crate::service::PurchaseOrders;
use crate::service::receipts::GrnInput;
use crate::store::grns::GrnSelection;
use crate::store::outward::OutwardSelection;
use crate::store::purchase_orders::PoSelection;

/// Contract messages from and to domain values.
pub mod convert;
/// Request fields checked into domain values.
pub mod requests;

/// The `PurchaseOrderService` contract over [`PurchaseOrders`].
#[derive(Clone)]
pub struct PurchaseOrderGrpc {
    service: PurchaseOrders,
}

impl PurchaseOrderGrpc {
    /// Handlers over `service`.
    pub fn new(service: PurchaseOrders) -> Self {
        Self { service }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The header fields every chunk of an upload may carry: client, dry run, actor.
type UploadHeader = (String, bool, String);

#[tonic::async_trait]
impl PurchaseOrderService for PurchaseOrderGrpc {
    async fn get_upload_template(
        &self,
        request: Request<pb::GetUploadTemplateRequest>,
    ) -> Reply<pb::GetUploadTemplateResponse> {
        let direction = convert::direction_from_request(request.get_ref().direction)?;
        let template = match direction {
            pb::PurchaseOrderDirection::Outward => OutwardFormat::TEMPLATE,
            _ => InwardFormat::TEMPLATE,
        };
        let header = template
            .iter()
            .map(|column| column.name)
            .collect::<Vec<_>>()
            .join(",");
        let columns = template
            .iter()
            .map(|column| pb::TemplateColumn {
                name: column.name.to_string(),
                required: column.required,
                description: column.description.to_string(),
            })
            .collect();
        Ok(Response::new(pb::GetUploadTemplateResponse {
            header,
            columns,
        }))
    }

    #[instrument(name = "purchase_order.grpc.upload_purchase_orders", skip_all)]
    async fn upload_purchase_orders(
        &self,
        request: Request<Streaming<pb::UploadPurchaseOrdersRequest>>,
    ) -> Reply<pb::UploadPurchaseOrdersResponse> {
        let max_bytes = self.service.settings().max_upload_bytes;
        let ((client_id, dry_run, actor), bytes) =
            upload::collect(request.into_inner(), max_bytes, |message| {
                let header: UploadHeader = (message.client_id, message.dry_run, message.actor);
                (header, message.chunk)
            })
            .await?;
        let client_id = requests::client_id(&client_id)?;
        let actor = requests::actor(&actor)?;

        let outcome = self
            .service
            .upload_purchase_orders(client_id, dry_run, &bytes, &actor)
            .await?;
        Ok(Response::new(pb::UploadPurchaseOrdersResponse {
            report: Some(outcome.report),
            created_po_numbers: outcome.created_po_numbers,
        }))
    }

    #[instrument(name = "purchase_order.grpc.create_purchase_order", skip_all)]
    async fn create_purchase_order(
        &self,
        request: Request<pb::CreatePurchaseOrderRequest>,
    ) -> Reply<pb::CreatePurchaseOrderResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number = requests::po_number("po_number", &request.po_number)?;
        let supplier = requests::party("supplier", &request.supplier)?;
        let lines = requests::purchase_order_lines(&request.lines)?;
        let actor = requests::actor(&request.actor)?;

        let (po, created) = self
            .service
            .create_purchase_order(client_id, po_number, supplier, lines, &actor)
            .await?;
        Ok(Response::new(pb::CreatePurchaseOrderResponse {
            purchase_order: Some(convert::purchase_order(&po)),
            created,
        }))
    }

    async fn get_purchase_order(
        &self,
        request: Request<pb::GetPurchaseOrderRequest>,
    ) -> Reply<pb::GetPurchaseOrderResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number = requests::po_number("po_number", &request.po_number)?;

        let po = self
            .service
            .get_purchase_order(client_id, &po_number)
            .await?;
        Ok(Response::new(pb::GetPurchaseOrderResponse {
            purchase_order: Some(convert::purchase_order(&po)),
        }))
    }

    async fn list_purchase_orders(
        &self,
        request: Request<pb::ListPurchaseOrdersRequest>,
    ) -> Reply<pb::ListPurchaseOrdersResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let mut statuses = Vec::with_capacity(request.statuses.len());
        for (index, value) in request.statuses.iter().enumerate() {
            statuses.push(convert::po_status_from_request(
                *value,
                &format!("statuses[{index}]"),
            )?);
        }
        let selection = PoSelection::Filter {
            statuses: &statuses,
            supplier_opt: requests::filter_opt(&request.supplier),
        };
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (pos, next_opt) = self
            .service
            .page_purchase_orders(client_id, selection, after_opt.as_deref(), size)
            .await?;
        Ok(Response::new(pb::ListPurchaseOrdersResponse {
            purchase_orders: pos.iter().map(convert::purchase_order).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }

    async fn search_purchase_orders(
        &self,
        request: Request<pb::SearchPurchaseOrdersRequest>,
    ) -> Reply<pb::SearchPurchaseOrdersResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let text = requests::search_text(&request.query)?;
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (pos, next_opt) = self
            .service
            .page_purchase_orders(
                client_id,
                PoSelection::Search { text },
                after_opt.as_deref(),
                size,
            )
            .await?;
        Ok(Response::new(pb::SearchPurchaseOrdersResponse {
            purchase_orders: pos.iter().map(convert::purchase_order).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }

    #[instrument(name = "purchase_order.grpc.close_purchase_order", skip_all)]
    async fn close_purchase_order(
        &self,
        request: Request<pb::ClosePurchaseOrderRequest>,
    ) -> Reply<pb::ClosePurchaseOrderResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number = requests::po_number("po_number", &request.po_number)?;
        let reason = requests::close_reason(&request.reason)?;
        let actor = requests::actor(&request.actor)?;

        let po = self
            .service
            .close_purchase_order(client_id, &po_number, &reason, &actor)
            .await?;
        Ok(Response::new(pb::ClosePurchaseOrderResponse {
            purchase_order: Some(convert::purchase_order(&po)),
        }))
    }

    #[instrument(name = "purchase_order.grpc.receive_grn", skip_all)]
    async fn receive_grn(
        &self,
        request: Request<pb::ReceiveGrnRequest>,
    ) -> Reply<pb::ReceiveGrnResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let grn_number = requests::grn_number("grn_number", &request.grn_number)?;
        let po_number_opt = match requests::filter_opt(&request.po_number) {
            Some(text) => Some(requests::po_number("po_number", text)?),
            None => None,
        };
        let reason = requests::grn_reason(&request.reason, po_number_opt.is_some())?;
        let lines = requests::grn_lines(&request.lines)?;
        let actor = requests::actor(&request.actor)?;
        let input = GrnInput {
            grn_number,
            po_number_opt,
            reason,
            lines,
            actor,
        };

        let outcome = self.service.receive_grn(client_id, input).await?;
        Ok(Response::new(pb::ReceiveGrnResponse {
            grn: Some(convert::grn(&outcome.grn)),
            purchase_order: outcome
                .purchase_order_opt
                .as_ref()
                .map(convert::purchase_order),
            replayed: outcome.replayed,
        }))
    }

    async fn get_grn(&self, request: Request<pb::GetGrnRequest>) -> Reply<pb::GetGrnResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let grn_number = requests::grn_number("grn_number", &request.grn_number)?;

        let grn = self.service.get_grn(client_id, &grn_number).await?;
        Ok(Response::new(pb::GetGrnResponse {
            grn: Some(convert::grn(&grn)),
        }))
    }

    async fn list_grns(
        &self,
        request: Request<pb::ListGrnsRequest>,
    ) -> Reply<pb::ListGrnsResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number_opt = requests::filter_opt(&request.po_number);
        if po_number_opt.is_some() && request.without_po_only {
            return Err(Error::invalid(
                "without_po_only",
                "cannot ask for GRNs of one PO and GRNs without a PO at once",
            )
            .into());
        }
        let selection = GrnSelection::Filter {
            po_number_opt,
            without_po_only: request.without_po_only,
            pending_only: request.pending_only,
        };
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (grns, next_opt) = self
            .service
            .page_grns(client_id, selection, after_opt.as_deref(), size)
            .await?;
        Ok(Response::new(pb::ListGrnsResponse {
            grns: grns.iter().map(convert::grn).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }

    async fn search_grns(
        &self,
        request: Request<pb::SearchGrnsRequest>,
    ) -> Reply<pb::SearchGrnsResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let text = requests::search_text(&request.query)?;
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (grns, next_opt) = self
            .service
            .page_grns(
                client_id,
                GrnSelection::Search { text },
                after_opt.as_deref(),
                size,
            )
            .await?;
        Ok(Response::new(pb::SearchGrnsResponse {
            grns: grns.iter().map(convert::grn).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }

    #[instrument(name = "purchase_order.grpc.upload_outward_purchase_orders", skip_all)]
    async fn upload_outward_purchase_orders(
        &self,
        request: Request<Streaming<pb::UploadOutwardPurchaseOrdersRequest>>,
    ) -> Reply<pb::UploadOutwardPurchaseOrdersResponse> {
        let max_bytes = self.service.settings().max_upload_bytes;
        let ((client_id, dry_run, actor), bytes) =
            upload::collect(request.into_inner(), max_bytes, |message| {
                let header: UploadHeader = (message.client_id, message.dry_run, message.actor);
                (header, message.chunk)
            })
            .await?;
        let client_id = requests::client_id(&client_id)?;
        let actor = requests::actor(&actor)?;

        let outcome = self
            .service
            .upload_outward_purchase_orders(client_id, dry_run, &bytes, &actor)
            .await?;
        Ok(Response::new(pb::UploadOutwardPurchaseOrdersResponse {
            report: Some(outcome.report),
            orders: outcome
                .orders
                .iter()
                .map(convert::order_link_summary)
                .collect(),
            created_po_numbers: outcome.created_po_numbers,
        }))
    }

    #[instrument(name = "purchase_order.grpc.create_outward_purchase_order", skip_all)]
    async fn create_outward_purchase_order(
        &self,
        request: Request<pb::CreateOutwardPurchaseOrderRequest>,
    ) -> Reply<pb::CreateOutwardPurchaseOrderResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number = requests::po_number("po_number", &request.po_number)?;
        let terms = OutwardTerms {
            customer: requests::party("customer", &request.customer)?,
            fulfilment_type: convert::fulfilment_type_from_request(request.fulfilment_type)?,
            qc_grade: convert::qc_grade_from_request(request.qc_grade)?,
        };
        let lines = requests::outward_lines(&request.lines)?;
        let actor = requests::actor(&request.actor)?;

        let (po, created) = self
            .service
            .create_outward_purchase_order(client_id, po_number, terms, lines, &actor)
            .await?;
        Ok(Response::new(pb::CreateOutwardPurchaseOrderResponse {
            outward_purchase_order: Some(convert::outward_purchase_order(&po)),
            created,
        }))
    }

    async fn get_outward_purchase_order(
        &self,
        request: Request<pb::GetOutwardPurchaseOrderRequest>,
    ) -> Reply<pb::GetOutwardPurchaseOrderResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let po_number = requests::po_number("po_number", &request.po_number)?;

        let po = self
            .service
            .get_outward_purchase_order(client_id, &po_number)
            .await?;
        Ok(Response::new(pb::GetOutwardPurchaseOrderResponse {
            outward_purchase_order: Some(convert::outward_purchase_order(&po)),
        }))
    }

    async fn list_outward_purchase_orders(
        &self,
        request: Request<pb::ListOutwardPurchaseOrdersRequest>,
    ) -> Reply<pb::ListOutwardPurchaseOrdersResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let selection = OutwardSelection::Filter {
            customer_opt: requests::filter_opt(&request.customer),
            pending_only: request.pending_only,
        };
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (pos, next_opt) = self
            .service
            .page_outward_purchase_orders(client_id, selection, after_opt.as_deref(), size)
            .await?;
        Ok(Response::new(pb::ListOutwardPurchaseOrdersResponse {
            outward_purchase_orders: pos.iter().map(convert::outward_purchase_order).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }

    async fn search_outward_purchase_orders(
        &self,
        request: Request<pb::SearchOutwardPurchaseOrdersRequest>,
    ) -> Reply<pb::SearchOutwardPurchaseOrdersResponse> {
        let request = request.into_inner();
        let client_id = requests::client_id(&request.client_id)?;
        let text = requests::search_text(&request.query)?;
        let size = page_size(request.page_size)?;
        let query = kosha_runtime::list_filters!(request);
        let after_opt = decode_query_token(&query, &request.page_token)?;

        let (pos, next_opt) = self
            .service
            .page_outward_purchase_orders(
                client_id,
                OutwardSelection::Search { text },
                after_opt.as_deref(),
                size,
            )
            .await?;
        Ok(Response::new(pb::SearchOutwardPurchaseOrdersResponse {
            outward_purchase_orders: pos.iter().map(convert::outward_purchase_order).collect(),
            next_page_token: next_opt
                .map(|key| encode_query_token(&query, &key))
                .unwrap_or_default(),
        }))
    }
}
