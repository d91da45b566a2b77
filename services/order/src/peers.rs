//! Clients of the services the order service calls: catalog, inventory, the scheduler and
//! each channel's connector. Only their gRPC contracts are used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kosha_proto::kosha::catalog::v1 as catalog;
use kosha_proto::kosha::catalog::v1::catalog_service_client::CatalogServiceClient;
use kosha_proto::kosha::channel::v1 as channel;
use kosha_proto::kosha::channel::v1::channel_connector_client::ChannelConnectorClient;
use kosha_proto::kosha::channel::v1::channel_connector_server::ChannelConnector as _;
use kosha_proto::kosha::inventory::v1::inventory_service_client::InventoryServiceClient;
use kosha_proto::kosha::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use kosha_runtime::Error;
use kosha_runtime::client::{TracedChannel, connect_lazy};
use kosha_runtime::config::DEFAULT_LISTEN;
use tonic::{Code, Status};

use crate::config::ConnectorAddress;
use crate::connector::FileConnector;

/// Addresses of the services the order service calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// `KOSHA_CATALOG_ADDR`.
    pub catalog: String,
    /// `KOSHA_INVENTORY_ADDR`.
    pub inventory: String,
    /// `KOSHA_SCHEDULER_ADDR`.
    pub scheduler: String,
}

impl Peers {
    /// All three at one address (the all-in-one runner, tests).
    pub fn all_at(address: &str) -> Self {
        Self {
            catalog: address.to_string(),
            inventory: address.to_string(),
            scheduler: address.to_string(),
        }
    }
}

/// Peer addresses as flags and environment variables, for the service's own binary.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Address of the catalog service.
    #[arg(long, env = "KOSHA_CATALOG_ADDR", default_value = DEFAULT_LISTEN)]
    pub catalog_addr: String,
    /// Address of the inventory service.
    #[arg(long, env = "KOSHA_INVENTORY_ADDR", default_value = DEFAULT_LISTEN)]
    pub inventory_addr: String,
    /// Address of the scheduler service.
    #[arg(long, env = "KOSHA_SCHEDULER_ADDR", default_value = DEFAULT_LISTEN)]
    pub scheduler_addr: String,
}

impl PeerArgs {
    /// The addresses.
    pub fn peers(&self) -> Peers {
        Peers {
            catalog: self.catalog_addr.clone(),
            inventory: self.inventory_addr.clone(),
            scheduler: self.scheduler_addr.clone(),
        }
    }
}

/// Longest wait for a remote connector's answer.
const CONNECTOR_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// A channel's connector: a remote server or the in-process file connector, with where it
/// is, so a failure can name the channel and the address an operator has to look at.
#[derive(Clone)]
pub struct Connector {
    channel: String,
    /// The server's address or the directory, as configured.
    place: String,
    kind: ConnectorKind,
}

#[derive(Clone)]
enum ConnectorKind {
    /// A `ChannelConnector` server.
    Grpc(Box<ChannelConnectorClient<TracedChannel>>),
    /// Files under a directory.
    Dir(Arc<FileConnector>),
}

impl Connector {
    /// The connector of `channel` at `address`.
    fn connect(
        channel: &str,
        address: &ConnectorAddress,
        max_message_bytes: usize,
    ) -> anyhow::Result<Self> {
        let (place, kind) = match address {
            ConnectorAddress::Grpc(address) => (
                address.clone(),
                ConnectorKind::Grpc(Box::new(
                    ChannelConnectorClient::new(connect_lazy(address)?)
                        .max_decoding_message_size(max_message_bytes),
                )),
            ),
            ConnectorAddress::Dir(path) => (
                format!("dir:{}", path.display()),
                ConnectorKind::Dir(Arc::new(FileConnector::new(path))),
            ),
        };
        Ok(Self {
            channel: channel.to_string(),
            place,
            kind,
        })
    }

    /// A failed call, named by channel and address. Whatever the connector answers, the
    /// operator's request was not at fault: the connector could not be reached (retry
    /// later), or it could not serve what the channel holds (fix it there).
    fn failed(&self, call: &str, status: &Status) -> Error {
        tracing::warn!(
            channel = %self.channel,
            connector = %self.place,
            call,
            code = ?status.code(),
            error = status.message(),
            "channel connector call failed"
        );
        let place = format!("channel `{}` connector ({})", self.channel, self.place);
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Error::Unavailable(format!(
                    "{place} is not reachable: {}; retry later",
                    status.message()
                ))
            }
            Code::Internal | Code::Unknown | Code::Unimplemented | Code::DataLoss => {
                Error::Unavailable(format!(
                    "{place} failed on {call}: {}; its own log says more",
                    status.message()
                ))
            }
            _ => Error::FailedPrecondition(format!("{place} refused {call}: {}", status.message())),
        }
    }

    /// A call to a remote connector, given up after [`CONNECTOR_DEADLINE`]: a server that
    /// takes the connection but never answers would otherwise hold a sync until the
    /// transport notices, which took about 50 s.
    async fn within_deadline<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<tonic::Response<T>, Status> {
        match tokio::time::timeout(CONNECTOR_DEADLINE, call).await {
            Ok(answer) => answer,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {} s",
                CONNECTOR_DEADLINE.as_secs()
            ))),
        }
    }

    /// New orders after `cursor`.
    pub async fn fetch_orders(
        &self,
        request: channel::FetchOrdersRequest,
    ) -> Result<channel::FetchOrdersResponse, Error> {
        let response = match &self.kind {
            ConnectorKind::Grpc(client) => {
                self.within_deadline(client.as_ref().clone().fetch_orders(request))
                    .await
            }
            ConnectorKind::Dir(files) => files.fetch_orders(tonic::Request::new(request)).await,
        };
        response
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failed("FetchOrders", &status))
    }

    /// Channel-side status of some orders.
    pub async fn fetch_order_statuses(
        &self,
        request: channel::FetchOrderStatusesRequest,
    ) -> Result<channel::FetchOrderStatusesResponse, Error> {
        let response = match &self.kind {
            ConnectorKind::Grpc(client) => {
                self.within_deadline(client.as_ref().clone().fetch_order_statuses(request))
                    .await
            }
            ConnectorKind::Dir(files) => {
                files
                    .fetch_order_statuses(tonic::Request::new(request))
                    .await
            }
        };
        response
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failed("FetchOrderStatuses", &status))
    }

    /// Pushes availability.
    pub async fn push_availability(
        &self,
        request: channel::PushAvailabilityRequest,
    ) -> Result<channel::PushAvailabilityResponse, Error> {
        let response = match &self.kind {
            ConnectorKind::Grpc(client) => {
                self.within_deadline(client.as_ref().clone().push_availability(request))
                    .await
            }
            ConnectorKind::Dir(files) => {
                files.push_availability(tonic::Request::new(request)).await
            }
        };
        response
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failed("PushAvailability", &status))
    }
}

/// Clients of every peer, cheap to clone.
#[derive(Clone)]
pub struct Clients {
    /// Catalog.
    pub catalog: CatalogServiceClient<TracedChannel>,
    /// Inventory.
    pub inventory: InventoryServiceClient<TracedChannel>,
    /// Scheduler.
    pub scheduler: SchedulerServiceClient<TracedChannel>,
    /// Connector per channel code.
    pub connectors: Arc<BTreeMap<String, Connector>>,
    /// Channel kinds seen so far. A channel's kind never changes once registered, so
    /// asking catalog once per channel per process is enough.
    channel_kinds: Arc<Mutex<HashMap<String, catalog::ChannelKind>>>,
}

impl Clients {
    /// Lazily connected clients (the service starts before its peers answer).
    pub fn connect(
        peers: &Peers,
        connectors: &BTreeMap<String, ConnectorAddress>,
        max_message_bytes: usize,
    ) -> anyhow::Result<Self> {
        let mut connector_clients = BTreeMap::new();
        for (channel_code, address) in connectors {
            let connector = Connector::connect(channel_code, address, max_message_bytes)?;
            connector_clients.insert(channel_code.clone(), connector);
        }
        Ok(Self {
            catalog: CatalogServiceClient::new(connect_lazy(&peers.catalog)?)
                .max_decoding_message_size(max_message_bytes),
            inventory: InventoryServiceClient::new(connect_lazy(&peers.inventory)?)
                .max_decoding_message_size(max_message_bytes),
            scheduler: SchedulerServiceClient::new(connect_lazy(&peers.scheduler)?)
                .max_decoding_message_size(max_message_bytes),
            connectors: Arc::new(connector_clients),
            channel_kinds: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The connector of a channel.
    pub fn connector(&self, channel_code: &str) -> Result<&Connector, Error> {
        self.connectors.get(channel_code).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "channel `{channel_code}` has no connector configured (KOSHA_ORDER_CONNECTORS)"
            ))
        })
    }

    /// Whether a channel is a marketplace or B2B, from catalog (once per channel).
    pub async fn channel_kind(
        &self,
        code: &str,
        field: &str,
    ) -> Result<catalog::ChannelKind, Error> {
        if let Some(kind) = self.channel_kinds.lock().expect("kinds lock").get(code) {
            return Ok(*kind);
        }
        let request = catalog::GetChannelRequest {
            code: code.to_string(),
        };
        let response = match self.catalog.clone().get_channel(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(Error::invalid(
                    field,
                    format!("channel `{code}` is not registered"),
                ));
            }
            Err(status) => return Err(status.into()),
        };
        let kind = response
            .channel
            .map(|channel| channel.kind())
            .unwrap_or(catalog::ChannelKind::Unspecified);
        self.channel_kinds
            .lock()
            .expect("kinds lock")
            .insert(code.to_string(), kind);
        Ok(kind)
    }

    /// Fails with `NOT_FOUND` unless catalog knows the client: a call for a client nobody
    /// registered must say so rather than find nothing to do.
    pub async fn require_client(&self, client_id: &str) -> Result<(), Error> {
        let request = catalog::GetClientRequest {
            client_id: client_id.to_string(),
        };
        match self.catalog.clone().get_client(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(Error::not_found("client", client_id))
            }
            Err(status) => Err(status.into()),
        }
    }
}
