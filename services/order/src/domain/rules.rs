//! Which moves an order may make, and the status each leaves it in.
//!
//! ```text
//! FAILED ──(listing added, retry)──> CREATED
//! CREATED ──allocate──> FULFILLABLE | PARTIALLY_FULFILLABLE | UNFULFILLABLE
//! UNFULFILLABLE / PARTIALLY_FULFILLABLE ──(stock arrives, retry)──> higher
//! FULFILLABLE ──(hold)──> ONHOLD ──(time passed / event / operator)──> FULFILLABLE
//! FULFILLABLE / PARTIALLY_FULFILLABLE ──pick──> PROCESSING
//! PROCESSING ──pack, invoice──> INVOICED
//! INVOICED ──dispatch──> DISPATCHED
//! any status before INVOICED ──cancel──> CANCELLED   (frees its allocation)
//! bulk: PARTIALLY_FULFILLABLE / PROCESSING … ──complete──> COMPLETE (frees what is left)
//! ```
//!
//! Every refusal is `FAILED_PRECONDITION` with a message naming the order and its status.

use kosha_runtime::Error;

use super::holds::Hold;
use super::types::{FulfilmentType, Line, Order, OrderKind, OrderStatus, Shipment};

/// The status allocation and holds give an order in the allocation phase.
///
/// Holds are recorded apart from allocation and the status shows the most pressing fact:
/// with nothing allocated the order is UNFULFILLABLE whatever its holds; allocated with an
/// open hold it is ONHOLD.
pub fn allocation_status(order: &Order, has_open_hold: bool) -> OrderStatus {
    let nothing_allocated = order.allocated() == 0;
    if nothing_allocated {
        return OrderStatus::Unfulfillable;
    }
    if has_open_hold {
        return OrderStatus::OnHold;
    }
    if order.pending() == 0 {
        OrderStatus::Fulfillable
    } else {
        OrderStatus::PartiallyFulfillable
    }
}

/// The status of an order after its lines changed (allocation, cancellation, shipment).
pub fn settled_status(order: &Order, has_open_hold: bool, shipments: &[Shipment]) -> OrderStatus {
    let everything_cancelled = order.lines.iter().all(|line| line.wanted() == 0);
    if everything_cancelled {
        return OrderStatus::Cancelled;
    }
    match order.status {
        OrderStatus::Failed | OrderStatus::Cancelled | OrderStatus::Dispatched => order.status,
        OrderStatus::Complete => OrderStatus::Complete,
        status if status.is_allocation_phase() => {
            if order.status == OrderStatus::Created && order.allocated() == 0 {
                // Never allocated yet: stays CREATED until allocation is tried.
                return order.status;
            }
            allocation_status(order, has_open_hold)
        }
        _ => {
            if order.is_fully_invoiced() {
                let all_shipped = shipments
                    .iter()
                    .all(|shipment| shipment.status == super::types::ShipmentStatus::Dispatched);
                if all_shipped && order.is_fully_dispatched() {
                    OrderStatus::Dispatched
                } else {
                    OrderStatus::Invoiced
                }
            } else {
                OrderStatus::Processing
            }
        }
    }
}

fn refused(order: &Order, what: &str, why: &str) -> Error {
    Error::FailedPrecondition(format!(
        "order {} is {}: cannot {what}; {why}",
        order.id, order.status
    ))
}

/// Units to pick per line (in line order) for a pick list; an empty list picks every
/// allocated unit not yet picked. Each entry must name a line once and stay within what
/// that line holds unpicked; nothing may end up picked at all.
pub fn plan_pick(order: &Order, pick_list: &[(i32, i64)]) -> Result<Vec<i64>, Error> {
    if pick_list.is_empty() {
        return Ok(order.lines.iter().map(Line::unpicked_allocated).collect());
    }

    let mut to_pick = vec![0; order.lines.len()];
    for (index, (line_no, units)) in pick_list.iter().enumerate() {
        let position_opt = order.lines.iter().position(|line| line.line_no == *line_no);
        let Some(position) = position_opt else {
            return Err(Error::invalid(
                format!("lines[{index}].line_no"),
                format!("order {} has no line {line_no}", order.id),
            ));
        };
        if to_pick[position] != 0 {
            return Err(Error::invalid(
                format!("lines[{index}].line_no"),
                format!("line {line_no} is on the pick list twice"),
            ));
        }
        if *units <= 0 {
            return Err(Error::invalid(
                format!("lines[{index}].quantity"),
                format!("must be positive, got {units}"),
            ));
        }
        let available = order.lines[position].unpicked_allocated();
        if *units > available {
            return Err(Error::invalid(
                format!("lines[{index}].quantity"),
                format!(
                    "line {line_no} holds {available} allocated unit(s) not yet picked; \
                     {units} cannot be picked"
                ),
            ));
        }
        to_pick[position] = *units;
    }
    Ok(to_pick)
}

/// Whether the order may be picked now.
pub fn check_pick(
    order: &Order,
    open_holds: &[&Hold],
    shipments: &[Shipment],
    now: i64,
) -> Result<(), Error> {
    if order.marketplace_fulfilled {
        return Err(refused(
            order,
            "pick",
            "the marketplace fulfils it from its own stock",
        ));
    }
    match order.status {
        OrderStatus::Fulfillable | OrderStatus::PartiallyFulfillable => {}
        OrderStatus::Processing => {
            if !order.fulfilment.allows_several_shipments() && !shipments.is_empty() {
                return Err(refused(
                    order,
                    "pick",
                    "it ships in one shipment and that shipment is packed",
                ));
            }
        }
        OrderStatus::OnHold => {
            let rules: Vec<String> = open_holds
                .iter()
                .map(|hold| {
                    format!(
                        "{} hold {} ({})",
                        hold.kind.as_str(),
                        hold.public_id(),
                        hold.release_rule()
                    )
                })
                .collect();
            return Err(refused(
                order,
                "pick",
                &format!("it is on hold: {}", rules.join("; ")),
            ));
        }
        OrderStatus::Unfulfillable | OrderStatus::Created => {
            return Err(refused(order, "pick", "nothing is allocated to it"));
        }
        OrderStatus::Failed => {
            return Err(refused(
                order,
                "pick",
                "its marketplace SKUs are not resolved",
            ));
        }
        _ => return Err(refused(order, "pick", "it is past picking")),
    }
    if let Some(start) = order.start_processing_opt.filter(|start| *start > now) {
        return Err(refused(
            order,
            "pick",
            &format!(
                "it is not released for picking before its start-processing time {}",
                kosha_runtime::time::format_micros(start)
            ),
        ));
    }
    let unpicked: i64 = order
        .lines
        .iter()
        .map(|line| line.unpicked_allocated())
        .sum();
    if unpicked == 0 {
        return Err(refused(
            order,
            "pick",
            "every allocated unit is picked already",
        ));
    }
    Ok(())
}

/// Whether the picked units may be packed into a new shipment.
pub fn check_pack(order: &Order, shipments: &[Shipment]) -> Result<(), Error> {
    if !matches!(
        order.status,
        OrderStatus::Processing | OrderStatus::Complete
    ) {
        return Err(refused(order, "pack", "only a picked order is packed"));
    }
    if !order.fulfilment.allows_several_shipments() && !shipments.is_empty() {
        return Err(refused(
            order,
            "pack",
            &format!(
                "a {} order ships in one shipment and it is packed already",
                order.fulfilment.as_str()
            ),
        ));
    }
    let unpacked: i64 = order.lines.iter().map(|line| line.unpacked_picked()).sum();
    if unpacked == 0 {
        return Err(refused(
            order,
            "pack",
            "no picked unit is waiting to be packed",
        ));
    }
    Ok(())
}

/// What a cancellation of the whole order will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelPlan {
    /// Cancel and free the allocation.
    Cancel,
    /// Cancelled already: nothing changes.
    AlreadyCancelled,
}

/// Whether the whole order may be cancelled.
pub fn check_cancel(order: &Order) -> Result<CancelPlan, Error> {
    match order.status {
        OrderStatus::Cancelled => Ok(CancelPlan::AlreadyCancelled),
        OrderStatus::Invoiced | OrderStatus::Dispatched => Err(refused(
            order,
            "cancel",
            "its units were invoiced and have left stock; only a new GRN (re-GRN) of the \
             returned units brings them back",
        )),
        OrderStatus::Complete => Err(refused(
            order,
            "cancel",
            "it is complete: what was not picked is freed already",
        )),
        _ if order.invoiced() > 0 => Err(refused(
            order,
            "cancel",
            "some of its units were invoiced and have left stock (only a re-GRN brings them \
             back); cancel the lines not yet picked instead",
        )),
        _ => Ok(CancelPlan::Cancel),
    }
}

/// Whether `quantity` units of line `line_no` may be cancelled.
pub fn check_cancel_line(
    order: &Order,
    line_no: i32,
    quantity: i64,
    field: &str,
) -> Result<(), Error> {
    if matches!(
        order.status,
        OrderStatus::Cancelled
            | OrderStatus::Invoiced
            | OrderStatus::Dispatched
            | OrderStatus::Complete
    ) {
        let why = if matches!(
            order.status,
            OrderStatus::Invoiced | OrderStatus::Dispatched
        ) {
            "its units were invoiced and have left stock; only a re-GRN brings them back"
        } else {
            "it is closed"
        };
        return Err(refused(order, "cancel lines", why));
    }
    let Some(line) = order.lines.iter().find(|line| line.line_no == line_no) else {
        return Err(Error::invalid(
            field,
            format!("order {} has no line {line_no}", order.id),
        ));
    };
    let cancellable = line.cancellable();
    if quantity > cancellable {
        return Err(Error::FailedPrecondition(format!(
            "order {} line {line_no}: cannot cancel {quantity} units; {cancellable} are neither \
             picked nor cancelled (picked {}, cancelled {})",
            order.id, line.picked, line.cancelled
        )));
    }
    Ok(())
}

/// Whether a packed shipment of the order may be invoiced: not once the order is
/// cancelled, which put the packed units back on the shelf.
pub fn check_invoice(order: &Order) -> Result<(), Error> {
    if order.status == OrderStatus::Cancelled {
        return Err(refused(
            order,
            "invoice",
            "it was cancelled after packing, which put the packed units back on the shelf and \
             released them; its packed shipment is void",
        ));
    }
    Ok(())
}

/// Whether a bulk order may be completed.
pub fn check_complete(order: &Order) -> Result<(), Error> {
    let open = matches!(
        order.status,
        OrderStatus::Created
            | OrderStatus::Unfulfillable
            | OrderStatus::PartiallyFulfillable
            | OrderStatus::Fulfillable
            | OrderStatus::OnHold
            | OrderStatus::Processing
    );
    if !open {
        let why = if order.status == OrderStatus::Complete {
            "it is complete already"
        } else {
            "it is closed"
        };
        return Err(refused(order, "complete", why));
    }
    if order.kind != OrderKind::Bulk {
        return Err(refused(
            order,
            "complete",
            "only bulk (B2B) orders are completed; cancel the lines that are not wanted",
        ));
    }
    // Completing closes what was processed; an order nothing of which was picked would
    // close as complete having shipped nothing, which is what cancelling says plainly.
    if order.lines.iter().all(|line| line.picked == 0) {
        return Err(refused(
            order,
            "complete",
            "nothing of it is picked, so there is nothing to complete; cancel it instead \
             (CancelOrder frees what it holds)",
        ));
    }
    Ok(())
}

/// Whether an order may be (re)allocated now, and in which mode.
pub fn check_allocatable(order: &Order) -> Result<(), Error> {
    if order.marketplace_fulfilled {
        return Err(refused(
            order,
            "allocate",
            "the marketplace fulfils it from its own stock",
        ));
    }
    let allocatable = order.status.is_allocation_phase()
        || (order.status == OrderStatus::Processing
            && order.fulfilment == FulfilmentType::MultiShipmentPartial);
    if !allocatable {
        let why = match order.status {
            OrderStatus::Failed => {
                "its marketplace SKUs are not resolved; retry failed orders \
                                    after adding the listings"
            }
            OrderStatus::Processing => "it ships in one shipment and picking has started",
            _ => "it is past allocation",
        };
        return Err(refused(order, "allocate", why));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::types::{Grade, Line, OrderId};

    /// An Amazon order of client `acme` with `lines`.
    pub(crate) fn order(status: OrderStatus, lines: Vec<Line>) -> Order {
        Order {
            id: OrderId(1),
            client_id: "acme".into(),
            channel: "AMAZON".into(),
            channel_order_id: "A-1".into(),
            parent_order_id: String::new(),
            kind: OrderKind::Marketplace,
            status,
            fulfilment: FulfilmentType::SingleShipmentPartial,
            grade: Grade::Pass,
            marketplace_fulfilled: false,
            priority: false,
            order_time: 0,
            dispatch_by_opt: None,
            start_processing_opt: None,
            dispatch_after_opt: None,
            replacement_for: String::new(),
            pool: "COMMON".into(),
            failure_reason: String::new(),
            unknown_skus: Vec::new(),
            channel_conflict: String::new(),
            created_at: 0,
            updated_at: 0,
            lines,
        }
    }

    /// Line 1 of SKU `SKU`.
    pub(crate) fn line(quantity: i64, held: i64) -> Line {
        let mut line = Line::new(1, "", "SKU", quantity);
        line.held = held;
        line
    }

    #[test]
    fn allocation_status_shows_the_most_pressing_fact() {
        assert_eq!(
            allocation_status(&order(OrderStatus::Created, vec![line(2, 0)]), true),
            OrderStatus::Unfulfillable
        );
        assert_eq!(
            allocation_status(&order(OrderStatus::Created, vec![line(2, 1)]), true),
            OrderStatus::OnHold
        );
        assert_eq!(
            allocation_status(&order(OrderStatus::Created, vec![line(2, 1)]), false),
            OrderStatus::PartiallyFulfillable
        );
        assert_eq!(
            allocation_status(&order(OrderStatus::Created, vec![line(2, 2)]), false),
            OrderStatus::Fulfillable
        );
    }

    #[test]
    fn picking_is_refused_before_the_start_time_and_names_it() {
        let mut waiting = order(OrderStatus::Fulfillable, vec![line(1, 1)]);
        waiting.start_processing_opt = Some(5_000_000);

        let error = check_pick(&waiting, &[], &[], 1_000_000).unwrap_err();

        assert_eq!(error.code(), tonic::Code::FailedPrecondition);
        assert!(error.to_string().contains("start-processing"), "{error}");
        assert!(check_pick(&waiting, &[], &[], 6_000_000).is_ok());
    }

    #[test]
    fn cancelling_an_invoiced_order_names_re_grn() {
        let invoiced = order(OrderStatus::Invoiced, vec![line(1, 0)]);

        let error = check_cancel(&invoiced).unwrap_err();

        assert!(error.to_string().contains("re-GRN"), "{error}");
        assert_eq!(
            check_cancel(&order(OrderStatus::Cancelled, vec![])).unwrap(),
            CancelPlan::AlreadyCancelled
        );
    }

    #[test]
    fn only_bulk_orders_with_something_picked_complete() {
        let mut picked = line(2, 1);
        picked.picked = 1;
        let marketplace = order(OrderStatus::Processing, vec![picked]);
        let mut bulk = marketplace.clone();
        bulk.kind = OrderKind::Bulk;
        let mut untouched = order(OrderStatus::PartiallyFulfillable, vec![line(2, 1)]);
        untouched.kind = OrderKind::Bulk;

        let mut dispatched = marketplace.clone();
        dispatched.status = OrderStatus::Dispatched;

        assert!(check_complete(&marketplace).is_err());
        assert!(check_complete(&bulk).is_ok());
        let closed = check_complete(&dispatched).unwrap_err().to_string();
        assert!(closed.contains("it is closed"), "{closed}");
        let error = check_complete(&untouched).unwrap_err();
        assert!(error.to_string().contains("cancel it instead"), "{error}");
    }
}
