//! The `kosha.order.v1.OrderService` handlers: check the request, call the application,
//! shape the answer. Nothing here decides anything about orders.

pub mod convert;
pub mod parse;

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::kosha::order::v1::order_service_server::OrderService;
use kosha_runtime::page::{decode_id_token, encode_query_token, page_size};
use kosha_runtime::time::{from_timestamp, now_micros};
use kosha_runtime::{Error, validate};
use tonic::{Request, Response, Status};

use crate::app::{App, actor_or_default, reason_text};
use crate::domain::{Hold, HoldKind, OrderId};
use crate::store::orders::SearchFilter;

/// The gRPC face of the order service.
#[derive(Clone)]
pub struct OrderGrpc {
    app: App,
}

impl OrderGrpc {
    /// Handlers over the application.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(result: Result<T, Error>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

fn order_id(field: &str, text: &str) -> Result<OrderId, Error> {
    OrderId::parse(field, text)
}

fn optional_client(field: &str, client_id: &str) -> Result<(), Error> {
    if client_id.is_empty() {
        Ok(())
    } else {
        validate::client_id(field, client_id)
    }
}

fn optional_channel(field: &str, channel: &str) -> Result<(), Error> {
    if channel.is_empty() {
        Ok(())
    } else {
        validate::channel_code(field, channel)
    }
}

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    async fn create_order(
        &self,
        request: Request<api::CreateOrderRequest>,
    ) -> Reply<api::CreateOrderResponse> {
        let result = async {
            let new = parse::create_order(request.into_inner())?;
            let (view, created) = self.app.create_order(new).await?;
            Ok(api::CreateOrderResponse {
                order: Some(convert::order(&view)),
                created,
            })
        };
        reply(result.await)
    }

    async fn create_bulk_order(
        &self,
        request: Request<api::CreateBulkOrderRequest>,
    ) -> Reply<api::CreateBulkOrderResponse> {
        let result = async {
            let new = parse::create_bulk_order(request.into_inner())?;
            let (view, created) = self.app.create_order(new).await?;
            Ok(api::CreateBulkOrderResponse {
                order: Some(convert::order(&view)),
                created,
            })
        };
        reply(result.await)
    }

    async fn retry_failed_orders(
        &self,
        request: Request<api::RetryFailedOrdersRequest>,
    ) -> Reply<api::RetryFailedOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            optional_client("client_id", &request.client_id)?;
            optional_channel("channel", &request.channel)?;
            if !request.marketplace_sku.is_empty() {
                validate::sku("marketplace_sku", &request.marketplace_sku)?;
            }
            let actor = actor_or_default(&request.actor)?;
            let (retried, resolved, still_failed) = self
                .app
                .retry_failed(
                    &request.client_id,
                    &request.channel,
                    &request.marketplace_sku,
                    &actor,
                )
                .await?;
            Ok(api::RetryFailedOrdersResponse {
                retried,
                resolved: resolved.len() as i64,
                orders: resolved.iter().map(convert::order).collect(),
                still_failed: still_failed.iter().map(convert::failed_order).collect(),
            })
        };
        reply(result.await)
    }

    async fn retry_allocation(
        &self,
        request: Request<api::RetryAllocationRequest>,
    ) -> Reply<api::RetryAllocationResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let actor = actor_or_default(&request.actor)?;
            let mut problems = parse::Problems::default();
            parse::external_id(&mut problems, "request_id", &request.request_id, false);
            problems.finish()?;
            let order = self.app.load(id).await?;
            if order.kind == crate::domain::OrderKind::Bulk {
                let job = self
                    .app
                    .schedule_bulk_retry(id, &request.request_id, &actor)
                    .await?;
                let view = self.app.view(id).await?;
                return Ok(api::RetryAllocationResponse {
                    order: Some(convert::order(&view)),
                    job_id: job.job_id,
                    job_due_time: job.due_time,
                });
            }
            self.app
                .allocate_existing(id, &actor, "allocation retried by request")
                .await?;
            let view = self.app.view(id).await?;
            Ok(api::RetryAllocationResponse {
                order: Some(convert::order(&view)),
                job_id: String::new(),
                job_due_time: None,
            })
        };
        reply(result.await)
    }

    async fn retry_waiting_orders(
        &self,
        request: Request<api::RetryWaitingOrdersRequest>,
    ) -> Reply<api::RetryWaitingOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            validate::client_id("client_id", &request.client_id)?;
            for (index, sku) in request.skus.iter().enumerate() {
                validate::sku(&format!("skus[{index}]"), sku)?;
            }
            let actor = actor_or_default(&request.actor)?;
            let (tried, changes) = self
                .app
                .retry_waiting(&request.client_id, None, "", &request.skus, &actor)
                .await?;
            Ok(api::RetryWaitingOrdersResponse {
                tried_order_ids: tried.iter().map(ToString::to_string).collect(),
                changes: changes.iter().map(convert::change).collect(),
            })
        };
        reply(result.await)
    }

    async fn release_hold(
        &self,
        request: Request<api::ReleaseHoldRequest>,
    ) -> Reply<api::ReleaseHoldResponse> {
        use api::release_hold_request::Target;
        let request = request.into_inner();
        let result = async {
            let actor = actor_or_default(&request.actor)?;
            let reason = reason_text("reason", &request.reason)?;
            let reason = if reason.is_empty() {
                "released by request".to_string()
            } else {
                reason
            };
            let report = match request.target {
                None => {
                    return Err(Error::invalid(
                        "target",
                        "name a hold_id, order_holds or return_pickup",
                    ));
                }
                Some(Target::HoldId(text)) => {
                    let hold_id = Hold::parse_public_id(&text).ok_or_else(|| {
                        Error::invalid("hold_id", format!("`{text}` is not a hold id (H-<number>)"))
                    })?;
                    self.app
                        .release_hold_by_id(hold_id, &actor, &reason)
                        .await?
                }
                Some(Target::OrderHolds(holds)) => {
                    let id = order_id("order_holds.order_id", &holds.order_id)?;
                    let kind_opt = match api::HoldKind::try_from(holds.kind) {
                        Ok(api::HoldKind::Unspecified) => None,
                        Ok(api::HoldKind::Time) => Some(HoldKind::Time),
                        Ok(api::HoldKind::Event) => Some(HoldKind::Event),
                        Ok(api::HoldKind::Manual) => Some(HoldKind::Manual),
                        Err(_) => {
                            return Err(Error::invalid("order_holds.kind", "not a hold kind"));
                        }
                    };
                    self.app
                        .release_order_holds(id, kind_opt, &actor, &reason)
                        .await?
                }
                Some(Target::ReturnPickup(pickup)) => {
                    validate::client_id("return_pickup.client_id", &pickup.client_id)?;
                    validate::channel_code("return_pickup.channel", &pickup.channel)?;
                    let mut problems = parse::Problems::default();
                    parse::external_id(
                        &mut problems,
                        "return_pickup.channel_order_id",
                        &pickup.channel_order_id,
                        true,
                    );
                    problems.finish()?;
                    self.app
                        .release_return_pickup(
                            &pickup.client_id,
                            &pickup.channel,
                            &pickup.channel_order_id,
                            &actor,
                        )
                        .await?
                }
            };
            let mut orders = Vec::new();
            for id in &report.order_ids {
                orders.push(convert::order(&self.app.view(*id).await?));
            }
            Ok(api::ReleaseHoldResponse {
                released: report.released.iter().map(convert::hold).collect(),
                orders,
            })
        };
        reply(result.await)
    }

    async fn release_due_holds(
        &self,
        request: Request<api::ReleaseDueHoldsRequest>,
    ) -> Reply<api::ReleaseDueHoldsResponse> {
        let request = request.into_inner();
        let result = async {
            let now = now_micros();
            let as_of = match &request.as_of_time {
                Some(time) => from_timestamp(time, "as_of_time")?,
                None => now,
            };
            if as_of > now {
                return Err(Error::invalid(
                    "as_of_time",
                    "is in the future: holds are never released early",
                ));
            }
            let report = self.app.release_due_holds(as_of, "hold-sweep").await?;
            Ok(api::ReleaseDueHoldsResponse {
                released: report.released.iter().map(convert::hold).collect(),
                changes: report.changes.iter().map(convert::change).collect(),
            })
        };
        reply(result.await)
    }

    async fn pick_order(
        &self,
        request: Request<api::PickOrderRequest>,
    ) -> Reply<api::PickOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let pick_list: Vec<(i32, i64)> = request
                .lines
                .iter()
                .map(|line| (line.line_no, line.quantity))
                .collect();
            let view = self
                .app
                .pick(id, &actor_or_default(&request.actor)?, &pick_list)
                .await?;
            Ok(api::PickOrderResponse {
                order: Some(convert::order(&view)),
            })
        };
        reply(result.await)
    }

    async fn pack_order(
        &self,
        request: Request<api::PackOrderRequest>,
    ) -> Reply<api::PackOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let (view, shipment) = self
                .app
                .pack(id, &actor_or_default(&request.actor)?)
                .await?;
            Ok(api::PackOrderResponse {
                shipment: Some(convert::shipment(&view.order, &shipment)),
                order: Some(convert::order(&view)),
            })
        };
        reply(result.await)
    }

    async fn invoice_order(
        &self,
        request: Request<api::InvoiceOrderRequest>,
    ) -> Reply<api::InvoiceOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let mut problems = parse::Problems::default();
            parse::external_id(
                &mut problems,
                "invoice_number",
                &request.invoice_number,
                false,
            );
            problems.finish()?;
            let (view, shipment) = self
                .app
                .invoice(
                    id,
                    &request.shipment_id,
                    &request.invoice_number,
                    &actor_or_default(&request.actor)?,
                )
                .await?;
            Ok(api::InvoiceOrderResponse {
                shipment: Some(convert::shipment(&view.order, &shipment)),
                order: Some(convert::order(&view)),
            })
        };
        reply(result.await)
    }

    async fn dispatch_order(
        &self,
        request: Request<api::DispatchOrderRequest>,
    ) -> Reply<api::DispatchOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let (view, shipment) = self
                .app
                .dispatch(id, &request.shipment_id, &actor_or_default(&request.actor)?)
                .await?;
            Ok(api::DispatchOrderResponse {
                shipment: Some(convert::shipment(&view.order, &shipment)),
                order: Some(convert::order(&view)),
            })
        };
        reply(result.await)
    }

    async fn cancel_order(
        &self,
        request: Request<api::CancelOrderRequest>,
    ) -> Reply<api::CancelOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let outcome = self
                .app
                .cancel(
                    id,
                    &actor_or_default(&request.actor)?,
                    &reason_text("reason", &request.reason)?,
                )
                .await?;
            Ok(api::CancelOrderResponse {
                order: Some(convert::order(&outcome.view)),
                already_cancelled: outcome.already_cancelled,
                message: outcome.message,
            })
        };
        reply(result.await)
    }

    async fn cancel_lines(
        &self,
        request: Request<api::CancelLinesRequest>,
    ) -> Reply<api::CancelLinesResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            if request.lines.is_empty() {
                return Err(Error::invalid("lines", "name at least one line to cancel"));
            }
            let mut problems = parse::Problems::default();
            let mut seen = std::collections::BTreeSet::new();
            for (index, line) in request.lines.iter().enumerate() {
                problems.check(validate::quantity(
                    &format!("lines[{index}].quantity"),
                    line.quantity,
                ));
                if !seen.insert(line.line_number) {
                    problems.add(format!("lines[{index}].line_number"), "line named twice");
                }
            }
            problems.finish()?;
            let lines: Vec<(i32, i64)> = request
                .lines
                .iter()
                .map(|line| (line.line_number, line.quantity))
                .collect();
            let view = self
                .app
                .cancel_lines(
                    id,
                    &lines,
                    &actor_or_default(&request.actor)?,
                    &reason_text("reason", &request.reason)?,
                )
                .await?;
            Ok(api::CancelLinesResponse {
                order: Some(convert::order(&view)),
            })
        };
        reply(result.await)
    }

    async fn complete_order(
        &self,
        request: Request<api::CompleteOrderRequest>,
    ) -> Reply<api::CompleteOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let (view, freed) = self
                .app
                .complete(
                    id,
                    &actor_or_default(&request.actor)?,
                    &reason_text("reason", &request.reason)?,
                )
                .await?;
            Ok(api::CompleteOrderResponse {
                order: Some(convert::order(&view)),
                released_quantity: freed,
            })
        };
        reply(result.await)
    }

    async fn sync_orders(
        &self,
        request: Request<api::SyncOrdersRequest>,
    ) -> Reply<api::SyncOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            validate::client_id("client_id", &request.client_id)?;
            validate::channel_code("channel", &request.channel)?;
            let report = self
                .app
                .sync_orders(&request.client_id, &request.channel)
                .await?;
            Ok(api::SyncOrdersResponse {
                fetched: report.fetched,
                created: report.created,
                already_known: report.already_known,
                failed: report.failed,
                cursor: report.cursor,
                refused: report
                    .refused
                    .into_iter()
                    .map(|(channel_order_id, reason)| api::RefusedChannelOrder {
                        channel_order_id,
                        reason,
                    })
                    .collect(),
                refused_not_listed: report.refused_not_listed,
                more: report.more,
            })
        };
        reply(result.await)
    }

    async fn sync_order_status(
        &self,
        request: Request<api::SyncOrderStatusRequest>,
    ) -> Reply<api::SyncOrderStatusResponse> {
        use api::sync_order_status_request::Target;
        let request = request.into_inner();
        let result = async {
            let report = match request.target {
                None => {
                    return Err(Error::invalid(
                        "target",
                        "name an order_id or a channel_scope",
                    ));
                }
                Some(Target::OrderId(text)) => {
                    self.app
                        .sync_order_status(order_id("order_id", &text)?)
                        .await?
                }
                Some(Target::ChannelScope(scope)) => {
                    validate::client_id("channel_scope.client_id", &scope.client_id)?;
                    validate::channel_code("channel_scope.channel", &scope.channel)?;
                    self.app
                        .sync_channel_statuses(&scope.client_id, &scope.channel)
                        .await?
                }
            };
            Ok(api::SyncOrderStatusResponse {
                checked: report.checked,
                cancelled_order_ids: report
                    .cancelled_order_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                conflict_order_ids: report
                    .conflict_order_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                holds_released: report.holds_released,
                unknown_channel_order_ids: report.unknown_channel_order_ids,
                unreadable_statuses: report
                    .unreadable_statuses
                    .into_iter()
                    .map(|(channel_order_id, reason)| api::RefusedChannelOrder {
                        channel_order_id,
                        reason,
                    })
                    .collect(),
            })
        };
        reply(result.await)
    }

    async fn push_availability(
        &self,
        request: Request<api::PushAvailabilityRequest>,
    ) -> Reply<api::PushAvailabilityResponse> {
        let request = request.into_inner();
        let result = async {
            validate::client_id("client_id", &request.client_id)?;
            validate::channel_code("channel", &request.channel)?;
            let (pushed, rejected) = self
                .app
                .push_availability(&request.client_id, &request.channel)
                .await?;
            Ok(api::PushAvailabilityResponse {
                pushed,
                rejected_marketplace_skus: rejected,
            })
        };
        reply(result.await)
    }

    async fn reconcile_orders(
        &self,
        request: Request<api::ReconcileOrdersRequest>,
    ) -> Reply<api::ReconcileOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            optional_client("client_id", &request.client_id)?;
            let (checked, adjusted) = self
                .app
                .reconcile(&request.client_id, request.dry_run)
                .await?;
            Ok(api::ReconcileOrdersResponse {
                checked_lines: checked,
                adjusted: adjusted.iter().map(convert::holding).collect(),
            })
        };
        reply(result.await)
    }

    async fn get_order_holdings(
        &self,
        request: Request<api::GetOrderHoldingsRequest>,
    ) -> Reply<api::GetOrderHoldingsResponse> {
        let request = request.into_inner();
        let result = async {
            if request.order_ids.is_empty() || request.order_ids.len() > 1000 {
                return Err(Error::invalid("order_ids", "name 1 to 1000 orders"));
            }
            let mut ids = Vec::with_capacity(request.order_ids.len());
            for (index, text) in request.order_ids.iter().enumerate() {
                let id = order_id(&format!("order_ids[{index}]"), text)?;
                // An order named twice is answered once.
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            let holdings = self.app.holdings(&ids).await?;
            Ok(api::GetOrderHoldingsResponse {
                holdings: holdings.iter().map(convert::holding).collect(),
            })
        };
        reply(result.await)
    }

    async fn get_order(
        &self,
        request: Request<api::GetOrderRequest>,
    ) -> Reply<api::GetOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            Ok(api::GetOrderResponse {
                order: Some(convert::order(&self.app.view(id).await?)),
            })
        };
        reply(result.await)
    }

    async fn search_orders(
        &self,
        request: Request<api::SearchOrdersRequest>,
    ) -> Reply<api::SearchOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            optional_client("client_id", &request.client_id)?;
            optional_channel("channel", &request.channel)?;
            let limit = page_size(request.page_size)?;
            let query = kosha_runtime::list_filters!(request);
            let before_id = decode_id_token(&query, &request.page_token)?;
            let mut statuses = Vec::new();
            for (index, value) in request.statuses.iter().enumerate() {
                let status = api::OrderStatus::try_from(*value)
                    .ok()
                    .and_then(convert::status_from)
                    .ok_or_else(|| {
                        Error::invalid(format!("statuses[{index}]"), "not an order status")
                    })?;
                statuses.push(status);
            }
            let id = request.id.trim();
            if id.len() > 128 {
                return Err(Error::invalid("id", "longer than 128 characters"));
            }
            let filter = SearchFilter {
                client_id: request.client_id.clone(),
                id_lc: id.to_lowercase(),
                internal_id_opt: OrderId::try_parse(id),
                statuses,
                channel: request.channel.clone(),
                from_opt: request
                    .order_time_from
                    .as_ref()
                    .map(|t| from_timestamp(t, "order_time_from"))
                    .transpose()?,
                to_opt: request
                    .order_time_to
                    .as_ref()
                    .map(|t| from_timestamp(t, "order_time_to"))
                    .transpose()?,
                before_id_opt: (before_id > 0).then_some(before_id),
            };
            if let (Some(from), Some(to)) = (filter.from_opt, filter.to_opt)
                && from > to
            {
                return Err(Error::invalid(
                    "order_time_to",
                    "is before order_time_from; the range would hold no order",
                ));
            }
            let views = self.app.search(&filter, limit).await?;
            let next_page_token = match views.last() {
                Some(last) if views.len() as i64 == limit => {
                    encode_query_token(&query, &last.order.id.0.to_string())
                }
                _ => String::new(),
            };
            Ok(api::SearchOrdersResponse {
                orders: views.iter().map(convert::order).collect(),
                next_page_token,
            })
        };
        reply(result.await)
    }

    async fn list_failed_orders(
        &self,
        request: Request<api::ListFailedOrdersRequest>,
    ) -> Reply<api::ListFailedOrdersResponse> {
        let request = request.into_inner();
        let result = async {
            optional_client("client_id", &request.client_id)?;
            optional_channel("channel", &request.channel)?;
            let limit = page_size(request.page_size)?;
            let query = kosha_runtime::list_filters!(request);
            let after_id = decode_id_token(&query, &request.page_token)?;
            let failed = self
                .app
                .failed_orders(&request.client_id, &request.channel, after_id, limit)
                .await?;
            let next_page_token = match failed.last() {
                Some(last) if failed.len() as i64 == limit => {
                    encode_query_token(&query, &last.id.0.to_string())
                }
                _ => String::new(),
            };
            Ok(api::ListFailedOrdersResponse {
                failed_orders: failed.iter().map(convert::failed_order).collect(),
                next_page_token,
            })
        };
        reply(result.await)
    }

    async fn get_order_history(
        &self,
        request: Request<api::GetOrderHistoryRequest>,
    ) -> Reply<api::GetOrderHistoryResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let limit = page_size(request.page_size)?;
            let query = kosha_runtime::list_filters!(request);
            let after_id = decode_id_token(&query, &request.page_token)?;
            let rows = self.app.history(id, after_id, limit).await?;
            let next_page_token = match rows.last() {
                Some(last) if rows.len() as i64 == limit => {
                    encode_query_token(&query, &last.id.to_string())
                }
                _ => String::new(),
            };
            Ok(api::GetOrderHistoryResponse {
                entries: rows.iter().map(convert::history_entry).collect(),
                next_page_token,
            })
        };
        reply(result.await)
    }

    async fn explain_order(
        &self,
        request: Request<api::ExplainOrderRequest>,
    ) -> Reply<api::ExplainOrderResponse> {
        let request = request.into_inner();
        let result = async {
            let id = order_id("order_id", &request.order_id)?;
            let explanation = self.app.explain(id).await?;
            Ok(api::ExplainOrderResponse {
                order: Some(convert::order(&explanation.view)),
                summary: explanation.summary,
                order_blockers: explanation
                    .order_blockers
                    .iter()
                    .map(|b| *b as i32)
                    .collect(),
                order_unblock: explanation.order_unblock,
                lines: explanation.lines,
            })
        };
        reply(result.await)
    }
}
