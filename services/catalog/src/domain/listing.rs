//! Channel listings: a marketplace's SKU on one channel mapped to a client SKU.

use super::ids::{ChannelCode, ClientId, Sku};

/// A listing as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Owner.
    pub client_id: ClientId,
    /// Channel.
    pub channel: ChannelCode,
    /// The SKU as the marketplace knows it.
    pub marketplace_sku: Sku,
    /// The client SKU it stands for.
    pub sku: Sku,
    /// Last written at, microseconds UTC.
    pub update_time: i64,
}

/// What a marketplace SKU resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The marketplace SKU asked about.
    pub marketplace_sku: Sku,
    /// The client SKU.
    pub sku: Sku,
    /// Whether that product is active.
    pub active: bool,
}
