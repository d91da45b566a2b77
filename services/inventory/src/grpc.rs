//! The gRPC face of inventory: each handler hands its request to [`Inventory`] and maps
//! the outcome to a status. Checking and rules live below; allocation goes through the
//! [`Coalescer`] so that concurrent calls share transactions.

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_proto::kosha::inventory::v1::inventory_service_server::InventoryService;
use kosha_runtime::Error;
use tonic::{Request, Response, Status};

use crate::coalesce::Coalescer;
use crate::service::Inventory;
use crate::service::orders::parse_allocate;

/// The `kosha.inventory.v1.InventoryService` implementation.
#[derive(Clone)]
pub struct InventoryGrpc {
    inventory: Inventory,
    coalescer: Coalescer,
}

impl InventoryGrpc {
    /// Handlers over `inventory`, allocating through `coalescer`.
    pub fn new(inventory: Inventory, coalescer: Coalescer) -> Self {
        Self {
            inventory,
            coalescer,
        }
    }
}

fn respond<T>(result: Result<T, Error>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    async fn allocate(
        &self,
        request: Request<pb::AllocateRequest>,
    ) -> Result<Response<pb::AllocateResponse>, Status> {
        let command = parse_allocate(request.get_ref()).map_err(Status::from)?;
        respond(self.coalescer.allocate(command).await)
    }

    async fn create_pool(
        &self,
        request: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::CreatePoolResponse>, Status> {
        respond(self.inventory.create_pool(request.into_inner()).await)
    }

    async fn get_pool(
        &self,
        request: Request<pb::GetPoolRequest>,
    ) -> Result<Response<pb::GetPoolResponse>, Status> {
        respond(self.inventory.get_pool(request.into_inner()).await)
    }

    async fn list_pools(
        &self,
        request: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        respond(self.inventory.list_pools(request.into_inner()).await)
    }

    async fn set_pool_schedule(
        &self,
        request: Request<pb::SetPoolScheduleRequest>,
    ) -> Result<Response<pb::SetPoolScheduleResponse>, Status> {
        respond(self.inventory.set_pool_schedule(request.into_inner()).await)
    }

    async fn delete_pool(
        &self,
        request: Request<pb::DeletePoolRequest>,
    ) -> Result<Response<pb::DeletePoolResponse>, Status> {
        respond(self.inventory.delete_pool(request.into_inner()).await)
    }

    async fn assign_channel(
        &self,
        request: Request<pb::AssignChannelRequest>,
    ) -> Result<Response<pb::AssignChannelResponse>, Status> {
        respond(self.inventory.assign_channel(request.into_inner()).await)
    }

    async fn unassign_channel(
        &self,
        request: Request<pb::UnassignChannelRequest>,
    ) -> Result<Response<pb::UnassignChannelResponse>, Status> {
        respond(self.inventory.unassign_channel(request.into_inner()).await)
    }

    async fn get_serving_pool(
        &self,
        request: Request<pb::GetServingPoolRequest>,
    ) -> Result<Response<pb::GetServingPoolResponse>, Status> {
        respond(self.inventory.get_serving_pool(request.into_inner()).await)
    }

    async fn sweep_expired_pools(
        &self,
        request: Request<pb::SweepExpiredPoolsRequest>,
    ) -> Result<Response<pb::SweepExpiredPoolsResponse>, Status> {
        respond(
            self.inventory
                .sweep_expired_pools(request.into_inner())
                .await,
        )
    }

    async fn receive(
        &self,
        request: Request<pb::ReceiveRequest>,
    ) -> Result<Response<pb::ReceiveResponse>, Status> {
        respond(self.inventory.receive(request.into_inner()).await)
    }

    async fn move_stock(
        &self,
        request: Request<pb::MoveStockRequest>,
    ) -> Result<Response<pb::MoveStockResponse>, Status> {
        respond(self.inventory.move_stock(request.into_inner()).await)
    }

    async fn recycle(
        &self,
        request: Request<pb::RecycleRequest>,
    ) -> Result<Response<pb::RecycleResponse>, Status> {
        respond(self.inventory.recycle(request.into_inner()).await)
    }

    async fn make_live(
        &self,
        request: Request<pb::MakeLiveRequest>,
    ) -> Result<Response<pb::MakeLiveResponse>, Status> {
        respond(self.inventory.make_live(request.into_inner()).await)
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        respond(self.inventory.release(request.into_inner()).await)
    }

    async fn consume(
        &self,
        request: Request<pb::ConsumeRequest>,
    ) -> Result<Response<pb::ConsumeResponse>, Status> {
        respond(self.inventory.consume(request.into_inner()).await)
    }

    async fn adjust(
        &self,
        request: Request<pb::AdjustRequest>,
    ) -> Result<Response<pb::AdjustResponse>, Status> {
        respond(self.inventory.adjust(request.into_inner()).await)
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        respond(self.inventory.get_stock(request.into_inner()).await)
    }

    async fn list_stock(
        &self,
        request: Request<pb::ListStockRequest>,
    ) -> Result<Response<pb::ListStockResponse>, Status> {
        respond(self.inventory.list_stock(request.into_inner()).await)
    }

    async fn get_channel_availability(
        &self,
        request: Request<pb::GetChannelAvailabilityRequest>,
    ) -> Result<Response<pb::GetChannelAvailabilityResponse>, Status> {
        respond(
            self.inventory
                .get_channel_availability(request.into_inner())
                .await,
        )
    }

    async fn set_safety_buffer(
        &self,
        request: Request<pb::SetSafetyBufferRequest>,
    ) -> Result<Response<pb::SetSafetyBufferResponse>, Status> {
        respond(self.inventory.set_safety_buffer(request.into_inner()).await)
    }

    async fn list_safety_buffers(
        &self,
        request: Request<pb::ListSafetyBuffersRequest>,
    ) -> Result<Response<pb::ListSafetyBuffersResponse>, Status> {
        respond(
            self.inventory
                .list_safety_buffers(request.into_inner())
                .await,
        )
    }

    async fn list_allocations(
        &self,
        request: Request<pb::ListAllocationsRequest>,
    ) -> Result<Response<pb::ListAllocationsResponse>, Status> {
        respond(self.inventory.list_allocations(request.into_inner()).await)
    }

    async fn list_ledger(
        &self,
        request: Request<pb::ListLedgerRequest>,
    ) -> Result<Response<pb::ListLedgerResponse>, Status> {
        respond(self.inventory.list_ledger(request.into_inner()).await)
    }

    async fn get_stock_as_of(
        &self,
        request: Request<pb::GetStockAsOfRequest>,
    ) -> Result<Response<pb::GetStockAsOfResponse>, Status> {
        respond(self.inventory.get_stock_as_of(request.into_inner()).await)
    }

    async fn explain_availability(
        &self,
        request: Request<pb::ExplainAvailabilityRequest>,
    ) -> Result<Response<pb::ExplainAvailabilityResponse>, Status> {
        respond(
            self.inventory
                .explain_availability(request.into_inner())
                .await,
        )
    }

    async fn audit(
        &self,
        request: Request<pb::AuditRequest>,
    ) -> Result<Response<pb::AuditResponse>, Status> {
        respond(self.inventory.audit(request.into_inner()).await)
    }

    async fn list_stock_changes(
        &self,
        request: Request<pb::ListStockChangesRequest>,
    ) -> Result<Response<pb::ListStockChangesResponse>, Status> {
        respond(
            self.inventory
                .list_stock_changes(request.into_inner())
                .await,
        )
    }
}
