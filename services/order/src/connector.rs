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
//!   `marketplace_fulfilled` (consecutive rows with one order id form one order; only the
//!   id, time, marketplace SKU and quantity are required);
//! - `statuses.csv`: header `channel_order_id,state`, states `OPEN`, `CANCELLED`,
//!   `RETURN_PICKED_UP`, `SHIPPED`; rows may be appended as states change, and an order's
//!   last row is its state;
//! - `availability.csv`: written by pushes, `marketplace_sku,sku,quantity`.
//!
//! The order files are logs that only grow: orders are appended whole, never edited or
//! removed. The cursor counts what was served of each (orders of the JSON file, lines of
//! the CSV file), so an order appended later is served by the next fetch whatever its order
//! time; only complete lines are read, each one row. An order with a cell that cannot be
//! read, or whose rows disagree, is served as unreadable, with its rows and column, and the
//! order service reports it as refused; the channel sends it again by appending it
//! corrected. Rows with the id of an order served before are such a new sending. A file
//! that cannot be read at all is served as one unreadable order that moves the cursor past
//! nothing; one replaced by another (the cursor marks the last item served) is served again
//! from its start. A status row that cannot be read is
//! answered as unreadable for its order alone. A missing client folder is an error, not an
//! empty channel. Each order carries its origin (file and rows), which the order service
//! quotes in refusals.

pub mod file;

pub use file::FileConnector;
