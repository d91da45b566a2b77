//! Channel connectors shipped with the order service.
//!
//! [`FileConnector`] implements `kosha.channel.v1.ChannelConnector` over a directory of
//! files, for local use and demos: a channel configured as `CHANNEL=dir:PATH` is served
//! in-process from `PATH/<client id>/`:
//!
//! - `orders.json`: an array of orders, each
//!   `{"channel_order_id", "parent_order_id", "order_time" (RFC 3339), "lines": [{
//!   "marketplace_sku", "quantity", "price"}], "fulfilment_type" (`BLOCK_COMPLETE`,
//!   `MULTI_SHIPMENT_PARTIAL`, `SINGLE_SHIPMENT_PARTIAL`), "dispatch_by_time",
//!   "dispatch_after_time", "replacement_for_channel_order_id", "priority",
//!   "marketplace_fulfilled"}` (only the id, time and lines are required);
//! - `orders.csv`: the same, one row per line, header
//!   `channel_order_id,parent_order_id,order_time,marketplace_sku,quantity,price,`
//!   `fulfilment_type,dispatch_by_time,dispatch_after_time,replacement_for,priority,`
//!   `marketplace_fulfilled` (rows with one order id form one order; only the first four
//!   and quantity are required);
//! - `statuses.csv`: `channel_order_id,state` with states `OPEN`, `CANCELLED`,
//!   `RETURN_PICKED_UP`, `SHIPPED`; rows may be appended as states change, and an order's
//!   last row is its state;
//! - `availability.csv`: written by pushes, `marketplace_sku,sku,quantity`.
//!
//! Orders are served oldest first; the cursor is the order time and id of the last order
//! served, so orders added later with a later time are picked up by the next fetch.

pub mod file;

pub use file::FileConnector;
