//! Domain values as contract messages, and contract enums as domain values.

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::time::{to_timestamp, to_timestamp_opt};

use crate::domain::grn::{Delivery, Grn};
use crate::domain::outward::{OrderLink, OutwardOrder};
use crate::domain::purchase_order::{PoStatus, PurchaseOrder};
use crate::domain::values::{FulfilmentType, QcGrade};
use crate::service::receipts::proto_grade;

/// A stored inward PO as sent.
pub fn purchase_order(po: &PurchaseOrder) -> pb::PurchaseOrder {
    let lines = po
        .lines
        .iter()
        .map(|line| pb::PurchaseOrderLine {
            sku: line.sku.clone(),
            unit_cost: line.unit_cost.to_string(),
            expected_date: line.expected_date.clone(),
            totals: Some(pb::ReceiptTotals {
                ordered: line.ordered,
                received: line.received,
                passed: line.passed,
                failed: line.failed,
                outstanding: line.outstanding(po.status),
                short_closed: line.short_closed,
            }),
        })
        .collect();
    let totals = po.totals();
    pb::PurchaseOrder {
        client_id: po.client_id.clone(),
        po_number: po.po_number.clone(),
        supplier: po.supplier.clone(),
        status: po_status(po.status) as i32,
        lines,
        totals: Some(pb::ReceiptTotals {
            ordered: totals.ordered,
            received: totals.received,
            passed: totals.passed,
            failed: totals.failed,
            outstanding: totals.outstanding,
            short_closed: totals.short_closed,
        }),
        grn_count: po.grn_count,
        close_reason: po.close_reason.clone(),
        created_by: po.created_by.clone(),
        closed_by: po.closed_by.clone(),
        create_time: Some(to_timestamp(po.create_time)),
        update_time: Some(to_timestamp(po.update_time)),
        close_time: to_timestamp_opt(po.close_time_opt),
    }
}

/// A stored GRN as sent.
pub fn grn(grn: &Grn) -> pb::Grn {
    let passed = grn.passed();
    let failed = grn.failed();
    pb::Grn {
        client_id: grn.client_id.clone(),
        grn_number: grn.grn_number.clone(),
        po_number: grn.po_number.clone(),
        reason: grn.reason.clone(),
        lines: grn
            .lines
            .iter()
            .map(|line| pb::GrnLine {
                sku: line.sku.clone(),
                passed_quantity: line.passed,
                failed_quantity: line.failed,
            })
            .collect(),
        received_quantity: passed + failed,
        passed_quantity: passed,
        failed_quantity: failed,
        inventory_delivery: match grn.delivery {
            Delivery::Pending => pb::InventoryDelivery::Pending,
            Delivery::Delivered => pb::InventoryDelivery::Delivered,
        } as i32,
        delivery_attempts: clamp_count(grn.delivery_attempts),
        last_delivery_error: grn.last_delivery_error.clone(),
        actor: grn.actor.clone(),
        create_time: Some(to_timestamp(grn.create_time)),
        deliver_time: to_timestamp_opt(grn.deliver_time_opt),
    }
}

/// A stored outward PO as sent.
pub fn outward_purchase_order(po: &OutwardOrder) -> pb::OutwardPurchaseOrder {
    pb::OutwardPurchaseOrder {
        client_id: po.client_id.clone(),
        po_number: po.po_number.clone(),
        customer: po.customer.clone(),
        fulfilment_type: fulfilment_type(po.fulfilment_type) as i32,
        qc_grade: proto_grade(po.qc_grade) as i32,
        lines: po
            .lines
            .iter()
            .map(|(sku, quantity)| pb::OutwardPurchaseOrderLine {
                sku: sku.clone(),
                quantity: *quantity,
            })
            .collect(),
        total_quantity: po.total_quantity(),
        order_link: order_link(po.order_link) as i32,
        order_id: po.order_id.clone(),
        link_attempts: clamp_count(po.link_attempts),
        last_link_error: po.last_link_error.clone(),
        created_by: po.created_by.clone(),
        create_time: Some(to_timestamp(po.create_time)),
        link_time: to_timestamp_opt(po.link_time_opt),
    }
}

/// The bulk-order summary of an outward PO.
pub fn order_link_summary(po: &OutwardOrder) -> pb::OutwardOrderLinkSummary {
    pb::OutwardOrderLinkSummary {
        po_number: po.po_number.clone(),
        order_link: order_link(po.order_link) as i32,
        order_id: po.order_id.clone(),
    }
}

/// The contract's status of a domain status.
pub fn po_status(status: PoStatus) -> pb::PurchaseOrderStatus {
    match status {
        PoStatus::Open => pb::PurchaseOrderStatus::Open,
        PoStatus::PartiallyReceived => pb::PurchaseOrderStatus::PartiallyReceived,
        PoStatus::Received => pb::PurchaseOrderStatus::Received,
        PoStatus::Closed => pb::PurchaseOrderStatus::Closed,
    }
}

/// The domain status of a request's status filter entry.
pub fn po_status_from_request(value: i32, field: &str) -> Result<PoStatus, Error> {
    match pb::PurchaseOrderStatus::try_from(value) {
        Ok(pb::PurchaseOrderStatus::Open) => Ok(PoStatus::Open),
        Ok(pb::PurchaseOrderStatus::PartiallyReceived) => Ok(PoStatus::PartiallyReceived),
        Ok(pb::PurchaseOrderStatus::Received) => Ok(PoStatus::Received),
        Ok(pb::PurchaseOrderStatus::Closed) => Ok(PoStatus::Closed),
        _ => Err(Error::invalid(field, format!("{value} is not a PO status"))),
    }
}

/// The domain fulfilment type of a request's; unspecified means PARTIAL.
pub fn fulfilment_type_from_request(value: i32) -> Result<FulfilmentType, Error> {
    match pb::FulfilmentType::try_from(value) {
        Ok(pb::FulfilmentType::Unspecified | pb::FulfilmentType::Partial) => {
            Ok(FulfilmentType::Partial)
        }
        Ok(pb::FulfilmentType::BlockComplete) => Ok(FulfilmentType::BlockComplete),
        Err(_) => Err(Error::invalid(
            "fulfilment_type",
            format!("{value} is not a fulfilment type"),
        )),
    }
}

/// The domain grade of a request's; unspecified means PASS.
pub fn qc_grade_from_request(value: i32) -> Result<QcGrade, Error> {
    match kosha_proto::types::QcGrade::try_from(value) {
        Ok(kosha_proto::types::QcGrade::Unspecified | kosha_proto::types::QcGrade::Pass) => {
            Ok(QcGrade::Pass)
        }
        Ok(kosha_proto::types::QcGrade::Fail) => Ok(QcGrade::Fail),
        Err(_) => Err(Error::invalid(
            "qc_grade",
            format!("{value} is not a QC grade"),
        )),
    }
}

/// The direction of a template request.
pub fn direction_from_request(value: i32) -> Result<pb::PurchaseOrderDirection, Error> {
    match pb::PurchaseOrderDirection::try_from(value) {
        Ok(pb::PurchaseOrderDirection::Unspecified) | Err(_) => Err(Error::invalid(
            "direction",
            "say which template: PURCHASE_ORDER_DIRECTION_INWARD or _OUTWARD",
        )),
        Ok(direction) => Ok(direction),
    }
}

fn fulfilment_type(kind: FulfilmentType) -> pb::FulfilmentType {
    match kind {
        FulfilmentType::Partial => pb::FulfilmentType::Partial,
        FulfilmentType::BlockComplete => pb::FulfilmentType::BlockComplete,
    }
}

fn order_link(link: OrderLink) -> pb::OrderLink {
    match link {
        OrderLink::Pending => pb::OrderLink::Pending,
        OrderLink::Linked => pb::OrderLink::Linked,
    }
}

fn clamp_count(count: i64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}
