//! Domain values as protobuf messages.

use kosha_proto::kosha::order::v1 as api;
use kosha_runtime::time::{to_timestamp, to_timestamp_opt};
use kosha_runtime::validate::format_money;

use crate::app::allocate::qc_grade;
use crate::app::reconcile::LineHolding;
use crate::app::{OrderView, StatusChange};
use crate::domain::{
    FulfilmentType, Hold, HoldKind, Line, Order, OrderKind, OrderStatus, Shipment, ShipmentStatus,
};
use crate::store::orders::HistoryRow;

/// The protobuf status of a domain status.
pub fn status(status: OrderStatus) -> api::OrderStatus {
    match status {
        OrderStatus::Failed => api::OrderStatus::Failed,
        OrderStatus::Created => api::OrderStatus::Created,
        OrderStatus::Unfulfillable => api::OrderStatus::Unfulfillable,
        OrderStatus::PartiallyFulfillable => api::OrderStatus::PartiallyFulfillable,
        OrderStatus::Fulfillable => api::OrderStatus::Fulfillable,
        OrderStatus::OnHold => api::OrderStatus::Onhold,
        OrderStatus::Processing => api::OrderStatus::Processing,
        OrderStatus::Invoiced => api::OrderStatus::Invoiced,
        OrderStatus::Dispatched => api::OrderStatus::Dispatched,
        OrderStatus::Cancelled => api::OrderStatus::Cancelled,
        OrderStatus::Complete => api::OrderStatus::Complete,
    }
}

/// The domain status of a protobuf status.
pub fn status_from(value: api::OrderStatus) -> Option<OrderStatus> {
    OrderStatus::ALL
        .into_iter()
        .find(|candidate| status(*candidate) == value)
}

fn fulfilment(kind: FulfilmentType) -> api::FulfilmentType {
    match kind {
        FulfilmentType::BlockComplete => api::FulfilmentType::BlockComplete,
        FulfilmentType::MultiShipmentPartial => api::FulfilmentType::MultiShipmentPartial,
        FulfilmentType::SingleShipmentPartial => api::FulfilmentType::SingleShipmentPartial,
        FulfilmentType::Partial => api::FulfilmentType::Partial,
    }
}

/// The protobuf hold kind.
pub fn hold_kind(kind: HoldKind) -> api::HoldKind {
    match kind {
        HoldKind::Time => api::HoldKind::Time,
        HoldKind::Event => api::HoldKind::Event,
        HoldKind::Manual => api::HoldKind::Manual,
    }
}

fn line(line: &Line) -> api::OrderLine {
    api::OrderLine {
        line_number: line.line_no,
        marketplace_sku: line.marketplace_sku.clone(),
        sku: line.sku.clone(),
        quantity: line.quantity,
        price: line.price_paise_opt.map(format_money).unwrap_or_default(),
        cancelled_quantity: line.cancelled,
        allocated_quantity: line.allocated(),
        picked_quantity: line.picked,
        packed_quantity: line.packed,
        invoiced_quantity: line.invoiced,
        dispatched_quantity: line.dispatched,
        pending_quantity: line.pending(),
    }
}

/// A hold as a message.
pub fn hold(hold: &Hold) -> api::Hold {
    api::Hold {
        hold_id: hold.public_id(),
        kind: hold_kind(hold.kind) as i32,
        release_after_time: to_timestamp_opt(hold.release_after_opt),
        event: if hold.kind == HoldKind::Event {
            api::HoldEvent::ReturnPickedUp as i32
        } else {
            api::HoldEvent::Unspecified as i32
        },
        event_channel_order_id: hold.event_ref.clone(),
        reason: hold.reason.clone(),
        create_time: Some(to_timestamp(hold.created_at)),
        open: hold.is_open(),
        released_time: to_timestamp_opt(hold.released_at_opt),
        released_by: hold.released_by.clone(),
        release_reason: hold.release_reason.clone(),
    }
}

/// A shipment as a message.
pub fn shipment(order: &Order, shipment: &Shipment) -> api::Shipment {
    let status = match shipment.status {
        ShipmentStatus::Packed => api::ShipmentStatus::Packed,
        ShipmentStatus::Invoiced => api::ShipmentStatus::Invoiced,
        ShipmentStatus::Dispatched => api::ShipmentStatus::Dispatched,
    };
    api::Shipment {
        shipment_id: shipment.public_id(order.id),
        sequence: shipment.sequence,
        status: status as i32,
        lines: shipment
            .lines
            .iter()
            .map(|(line_number, quantity)| api::ShipmentLine {
                line_number: *line_number,
                quantity: *quantity,
            })
            .collect(),
        invoice_number: shipment.invoice_number.clone(),
        pack_time: Some(to_timestamp(shipment.packed_at)),
        invoice_time: to_timestamp_opt(shipment.invoiced_at_opt),
        dispatch_time: to_timestamp_opt(shipment.dispatched_at_opt),
    }
}

/// An order with holds and shipments as a message.
pub fn order(view: &OrderView) -> api::Order {
    let order = &view.order;
    api::Order {
        order_id: order.id.to_string(),
        client_id: order.client_id.clone(),
        channel: order.channel.clone(),
        channel_order_id: order.channel_order_id.clone(),
        parent_order_id: order.parent_order_id.clone(),
        kind: match order.kind {
            OrderKind::Marketplace => api::OrderKind::Marketplace as i32,
            OrderKind::Bulk => api::OrderKind::Bulk as i32,
        },
        status: status(order.status) as i32,
        fulfilment_type: fulfilment(order.fulfilment) as i32,
        qc_grade: qc_grade(order.grade) as i32,
        marketplace_fulfilled: order.marketplace_fulfilled,
        priority: order.priority,
        order_time: Some(to_timestamp(order.order_time)),
        dispatch_by_time: to_timestamp_opt(order.dispatch_by_opt),
        start_processing_time: to_timestamp_opt(order.start_processing_opt),
        dispatch_after_time: to_timestamp_opt(order.dispatch_after_opt),
        replacement_for_channel_order_id: order.replacement_for.clone(),
        pool: order.pool.clone(),
        failure_reason: order.failure_reason.clone(),
        lines: order.lines.iter().map(line).collect(),
        holds: view.holds.iter().map(hold).collect(),
        shipments: view.shipments.iter().map(|s| shipment(order, s)).collect(),
        channel_conflict: order.channel_conflict.clone(),
        create_time: Some(to_timestamp(order.created_at)),
        update_time: Some(to_timestamp(order.updated_at)),
    }
}

/// A FAILED order as a failed-order report row.
pub fn failed_order(order: &Order) -> api::FailedOrder {
    api::FailedOrder {
        order_id: order.id.to_string(),
        client_id: order.client_id.clone(),
        channel: order.channel.clone(),
        channel_order_id: order.channel_order_id.clone(),
        parent_order_id: order.parent_order_id.clone(),
        reason: order.failure_reason.clone(),
        unknown_marketplace_skus: order.unknown_skus.clone(),
        order_time: Some(to_timestamp(order.order_time)),
        create_time: Some(to_timestamp(order.created_at)),
    }
}

/// A status change as a message.
pub fn change(change: &StatusChange) -> api::OrderStatusChange {
    api::OrderStatusChange {
        order_id: change.order_id.to_string(),
        from_status: status(change.from) as i32,
        to_status: status(change.to) as i32,
    }
}

/// A line holding as a message.
pub fn holding(holding: &LineHolding) -> api::LineHolding {
    api::LineHolding {
        order_id: holding.order_label.clone(),
        line_number: holding.line_no,
        sku: holding.sku.clone(),
        expected_quantity: holding.expected,
        held_quantity: holding.held,
        picked_open_quantity: holding.picked_open,
        excess_quantity: holding.excess,
        released_quantity: holding.released,
    }
}

/// A history row as a message.
pub fn history_entry(row: &HistoryRow) -> api::HistoryEntry {
    let named =
        |text: &str| OrderStatus::parse(text).map_or(api::OrderStatus::Unspecified, status) as i32;
    api::HistoryEntry {
        time: Some(to_timestamp(row.at)),
        actor: row.actor.clone(),
        from_status: named(&row.from_status),
        to_status: named(&row.to_status),
        reason: row.reason.clone(),
    }
}
