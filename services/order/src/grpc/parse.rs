//! Requests checked field by field into domain values. Every problem names its field;
//! all problems of a request are reported together.

use kosha_proto::kosha::order::v1 as api;
use kosha_proto::types::QcGrade;
use kosha_runtime::error::FieldViolation;
use kosha_runtime::time::{from_timestamp, now_micros};
use kosha_runtime::{Error, validate};

use crate::app::actor_or_default;
use crate::app::ingest::{NewLine, NewOrder};
use crate::domain::{FulfilmentType, Grade, OrderKind};

/// Most lines in one order.
pub const MAX_LINES: usize = 1000;

/// Longest channel order id, parent order id or reference.
const MAX_ID_LEN: usize = 128;

/// Collects field problems.
#[derive(Default)]
pub struct Problems(Vec<FieldViolation>);

impl Problems {
    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the problem of a check, if any.
    pub fn check(&mut self, result: Result<(), Error>) {
        if let Err(Error::InvalidArgument { violations, .. }) = result {
            self.0.extend(violations);
        }
    }

    /// Ok when nothing was recorded.
    pub fn finish(self) -> Result<(), Error> {
        match self.0.len() {
            0 => Ok(()),
            1 => {
                let violation = &self.0[0];
                Err(Error::invalid(
                    violation.field.clone(),
                    violation.description.clone(),
                ))
            }
            n => Err(Error::invalid_many(
                format!("{n} problems in the request"),
                self.0,
            )),
        }
    }
}

/// Longest a dispatch-after time may lie ahead: the scheduler's default horizon, since the
/// time hold's release is scheduled as the order arrives.
const MOST_HOLD_AHEAD_DAYS: i64 = 400;
const MOST_HOLD_AHEAD_MICROS: i64 = MOST_HOLD_AHEAD_DAYS * 86_400_000_000;

/// An external id (channel order id, parent order id, reference): printable ASCII without
/// spaces, at most 128 characters. A channel order id keys the order's stock in inventory,
/// whose order references take the same characters.
pub fn external_id(problems: &mut Problems, field: &str, value: &str, required: bool) {
    if value.is_empty() {
        if required {
            problems.add(field, "required");
        }
        return;
    }
    if value.len() > MAX_ID_LEN {
        problems.add(field, format!("longer than {MAX_ID_LEN} characters"));
    } else if let Some(bad) = value.chars().find(|c| !c.is_ascii_graphic()) {
        problems.add(
            field,
            format!("`{value}` must be printable ASCII without spaces; found {bad:?}"),
        );
    }
}

fn optional_time(
    problems: &mut Problems,
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Option<i64> {
    let timestamp = timestamp?;
    match from_timestamp(timestamp, field) {
        Ok(micros) => Some(micros),
        Err(_) => {
            problems.add(field, "timestamp out of range");
            None
        }
    }
}

/// Earliest time an order may carry: 2000-01-01T00:00:00Z. An earlier one is a default
/// or a typo, and would put the order ahead of every real one waiting for stock (waiting
/// orders are served earliest first).
const EARLIEST_ORDER_MICROS: i64 = 946_684_800_000_000;

/// How far ahead of this server's clock an order time may be: a channel's clock a little
/// fast, never an order placed tomorrow.
const MOST_ORDER_TIME_AHEAD_MICROS: i64 = 86_400_000_000;

/// [`optional_time`] for an order's own times: not before 2000, and at most `ahead_micros`
/// after now (`what_ahead` says why not further).
fn order_time_field(
    problems: &mut Problems,
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
    ahead_micros: i64,
    what_ahead: &str,
) -> Option<i64> {
    let micros = optional_time(problems, field, timestamp)?;
    if micros < EARLIEST_ORDER_MICROS {
        problems.add(
            field,
            "before 2000-01-01T00:00:00Z; no order of this system is that old (an unset \
             time is sent as no timestamp at all)",
        );
        return None;
    }
    if micros > now_micros().saturating_add(ahead_micros) {
        problems.add(field, what_ahead);
        return None;
    }
    Some(micros)
}

/// The order's own times checked against each other's bounds: order time, start of
/// processing, dispatch-by.
fn order_times(
    problems: &mut Problems,
    order_time: Option<&prost_types::Timestamp>,
    start_processing: Option<&prost_types::Timestamp>,
    dispatch_by: Option<&prost_types::Timestamp>,
) -> (Option<i64>, Option<i64>, Option<i64>) {
    let far = format!(
        "more than {MOST_HOLD_AHEAD_DAYS} days ahead; an order is processed and shipped \
         within that"
    );
    (
        order_time_field(
            problems,
            "order_time",
            order_time,
            MOST_ORDER_TIME_AHEAD_MICROS,
            "more than a day ahead of now; an order cannot have been placed in the future \
             (check the sender's clock and time zone)",
        ),
        order_time_field(
            problems,
            "start_processing_time",
            start_processing,
            MOST_HOLD_AHEAD_MICROS,
            &far,
        ),
        order_time_field(
            problems,
            "dispatch_by_time",
            dispatch_by,
            MOST_HOLD_AHEAD_MICROS,
            &far,
        ),
    )
}

fn grade(problems: &mut Problems, value: i32) -> Grade {
    match QcGrade::try_from(value) {
        Ok(QcGrade::Fail) => Grade::Fail,
        Ok(_) => Grade::Pass,
        Err(_) => {
            problems.add("qc_grade", format!("{value} is not a QC grade"));
            Grade::Pass
        }
    }
}

/// Longest marketplace SKU kept; longer text is not a SKU from any channel.
const MAX_MARKETPLACE_SKU_LEN: usize = 128;

fn lines(problems: &mut Problems, lines: &[api::NewOrderLine], bulk: bool) -> Vec<NewLine> {
    if lines.is_empty() {
        problems.add("lines", "an order needs at least one line");
    }
    if lines.len() > MAX_LINES {
        problems.add("lines", format!("at most {MAX_LINES} lines per order"));
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{index}].{name}");
        match (line.marketplace_sku.is_empty(), line.sku.is_empty()) {
            (true, true) => problems.add(field("sku"), "a line needs a marketplace SKU or a SKU"),
            (false, false) => problems.add(
                field("sku"),
                "send either a marketplace SKU or a SKU, not both",
            ),
            _ => {}
        }
        if bulk && !line.marketplace_sku.is_empty() {
            problems.add(
                field("marketplace_sku"),
                "bulk orders are written in client SKUs",
            );
        }
        // The marketplace's SKU is kept as sent (an order whose SKU no listing can match
        // ends FAILED, not refused); only what could not be stored or shown is refused.
        let marketplace_sku_is_unprintable = line.marketplace_sku.len() > MAX_MARKETPLACE_SKU_LEN
            || line.marketplace_sku.chars().any(char::is_control);
        if marketplace_sku_is_unprintable {
            problems.add(
                field("marketplace_sku"),
                format!("at most {MAX_MARKETPLACE_SKU_LEN} characters, no control characters"),
            );
        }
        if !line.sku.is_empty() {
            problems.check(validate::sku(&field("sku"), &line.sku));
        }
        problems.check(validate::quantity(&field("quantity"), line.quantity));
        let price_paise_opt = if line.price.is_empty() {
            None
        } else {
            match validate::parse_money(&line.price) {
                Ok(paise) => Some(paise),
                Err(problem) => {
                    problems.add(field("price"), problem);
                    None
                }
            }
        };
        parsed.push(NewLine {
            marketplace_sku: line.marketplace_sku.clone(),
            sku: line.sku.clone(),
            quantity: line.quantity,
            price_paise_opt,
        });
    }
    parsed
}

/// A CreateOrder request as a new marketplace order.
pub fn create_order(request: api::CreateOrderRequest) -> Result<NewOrder, Error> {
    let mut problems = Problems::default();
    problems.check(validate::client_id("client_id", &request.client_id));
    problems.check(validate::channel_code("channel", &request.channel));
    if request.channel == "INTERNAL" {
        problems.add(
            "channel",
            "INTERNAL orders are bulk orders: use CreateBulkOrder",
        );
    }
    external_id(
        &mut problems,
        "channel_order_id",
        &request.channel_order_id,
        true,
    );
    external_id(
        &mut problems,
        "parent_order_id",
        &request.parent_order_id,
        false,
    );
    external_id(
        &mut problems,
        "replacement_for_channel_order_id",
        &request.replacement_for_channel_order_id,
        false,
    );
    if !request.channel_order_id.is_empty()
        && request.replacement_for_channel_order_id == request.channel_order_id
    {
        problems.add(
            "replacement_for_channel_order_id",
            "names this very order; a replacement names the order it replaces",
        );
    }
    let fulfilment = match api::FulfilmentType::try_from(request.fulfilment_type) {
        Ok(api::FulfilmentType::Unspecified) => FulfilmentType::SingleShipmentPartial,
        Ok(api::FulfilmentType::BlockComplete) => FulfilmentType::BlockComplete,
        Ok(api::FulfilmentType::MultiShipmentPartial) => FulfilmentType::MultiShipmentPartial,
        Ok(api::FulfilmentType::SingleShipmentPartial) => FulfilmentType::SingleShipmentPartial,
        Ok(api::FulfilmentType::Partial) => {
            problems.add(
                "fulfilment_type",
                "PARTIAL is for bulk orders; marketplace orders are \
                         BLOCK_COMPLETE, MULTI_SHIPMENT_PARTIAL or SINGLE_SHIPMENT_PARTIAL",
            );
            FulfilmentType::SingleShipmentPartial
        }
        Err(_) => {
            problems.add(
                "fulfilment_type",
                format!("{} is not a fulfilment type", request.fulfilment_type),
            );
            FulfilmentType::SingleShipmentPartial
        }
    };
    let grade = grade(&mut problems, request.qc_grade);
    let (order_time, start_processing_opt, dispatch_by_opt) = order_times(
        &mut problems,
        request.order_time.as_ref(),
        request.start_processing_time.as_ref(),
        request.dispatch_by_time.as_ref(),
    );
    let dispatch_after_opt = optional_time(
        &mut problems,
        "dispatch_after_time",
        request.dispatch_after_time.as_ref(),
    );
    if dispatch_after_opt.is_some_and(|at| at > now_micros() + MOST_HOLD_AHEAD_MICROS) {
        problems.add(
            "dispatch_after_time",
            format!(
                "more than {MOST_HOLD_AHEAD_DAYS} days ahead; a hold's release is scheduled \
                 when the order arrives and the scheduler looks no further"
            ),
        );
    }
    let lines = lines(&mut problems, &request.lines, false);
    let actor = match actor_or_default(&request.actor) {
        Ok(actor) => actor,
        Err(error) => {
            problems.check(Err(error));
            String::new()
        }
    };
    problems.finish()?;

    Ok(NewOrder {
        client_id: request.client_id,
        channel: request.channel,
        channel_order_id: request.channel_order_id,
        parent_order_id: request.parent_order_id,
        kind: OrderKind::Marketplace,
        fulfilment,
        grade,
        marketplace_fulfilled: request.marketplace_fulfilled,
        priority: request.priority,
        order_time: order_time.unwrap_or_else(now_micros),
        dispatch_by_opt,
        start_processing_opt,
        dispatch_after_opt,
        replacement_for: request.replacement_for_channel_order_id,
        lines,
        actor,
    })
}

/// A CreateBulkOrder request as a new bulk order.
pub fn create_bulk_order(request: api::CreateBulkOrderRequest) -> Result<NewOrder, Error> {
    let mut problems = Problems::default();
    let channel = if request.channel.is_empty() {
        "INTERNAL".to_string()
    } else {
        request.channel.clone()
    };
    problems.check(validate::client_id("client_id", &request.client_id));
    problems.check(validate::channel_code("channel", &channel));
    external_id(&mut problems, "reference", &request.reference, true);
    let fulfilment = match api::FulfilmentType::try_from(request.fulfilment_type) {
        Ok(api::FulfilmentType::Unspecified | api::FulfilmentType::Partial) => {
            FulfilmentType::Partial
        }
        Ok(api::FulfilmentType::BlockComplete) => FulfilmentType::BlockComplete,
        Ok(_) => {
            problems.add(
                "fulfilment_type",
                "bulk orders are PARTIAL or BLOCK_COMPLETE",
            );
            FulfilmentType::Partial
        }
        Err(_) => {
            problems.add(
                "fulfilment_type",
                format!("{} is not a fulfilment type", request.fulfilment_type),
            );
            FulfilmentType::Partial
        }
    };
    let grade = grade(&mut problems, request.qc_grade);
    let (order_time, start_processing_opt, _) = order_times(
        &mut problems,
        request.order_time.as_ref(),
        request.start_processing_time.as_ref(),
        None,
    );
    let lines = lines(&mut problems, &request.lines, true);
    let actor = match actor_or_default(&request.actor) {
        Ok(actor) => actor,
        Err(error) => {
            problems.check(Err(error));
            String::new()
        }
    };
    problems.finish()?;

    Ok(NewOrder {
        client_id: request.client_id,
        channel,
        channel_order_id: request.reference,
        parent_order_id: String::new(),
        kind: OrderKind::Bulk,
        fulfilment,
        grade,
        marketplace_fulfilled: false,
        priority: false,
        order_time: order_time.unwrap_or_else(now_micros),
        dispatch_by_opt: None,
        start_processing_opt,
        dispatch_after_opt: None,
        replacement_for: String::new(),
        lines,
        actor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> api::CreateOrderRequest {
        api::CreateOrderRequest {
            client_id: "acme".into(),
            channel: "AMAZON".into(),
            channel_order_id: "404-1".into(),
            lines: vec![api::NewOrderLine {
                marketplace_sku: "M-1".into(),
                quantity: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_good_request_parses_with_defaults() {
        let order = create_order(request()).unwrap();

        assert_eq!(order.fulfilment, FulfilmentType::SingleShipmentPartial);
        assert_eq!(order.grade, Grade::Pass);
        assert_eq!(order.actor, "operator");
    }

    #[test]
    fn an_order_time_from_before_2000_or_the_future_is_refused() {
        let at = |seconds: i64| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let now = now_micros() / 1_000_000;
        let year_one = -62_135_596_800;
        let mut old = request();
        old.order_time = at(year_one);
        old.dispatch_by_time = at(0);
        let mut ahead = request();
        ahead.order_time = at(now + 2 * 86_400);
        ahead.start_processing_time = at(253_402_300_799);
        let mut fine = request();
        fine.order_time = at(now - 3 * 365 * 86_400);
        fine.start_processing_time = at(now + 86_400);
        fine.dispatch_by_time = at(now + 2 * 86_400);

        let fields = |result: Result<NewOrder, Error>| match result {
            Err(Error::InvalidArgument { violations, .. }) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect::<Vec<_>>(),
            other => panic!("expected invalid argument, got {other:?}"),
        };

        assert_eq!(
            fields(create_order(old)),
            vec!["order_time", "dispatch_by_time"]
        );
        assert_eq!(
            fields(create_order(ahead)),
            vec!["order_time", "start_processing_time"]
        );
        assert!(create_order(fine).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut bad = request();
        bad.client_id = "Acme".into();
        bad.channel_order_id = String::new();
        bad.lines[0].quantity = 0;
        bad.lines[0].price = "1,000".into();
        bad.lines.push(api::NewOrderLine::default());
        let mut replacing_itself = request();
        replacing_itself.replacement_for_channel_order_id =
            replacing_itself.channel_order_id.clone();

        let replacing_itself = create_order(replacing_itself);
        let Err(Error::InvalidArgument { violations, .. }) = create_order(bad) else {
            panic!("expected invalid argument");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();

        assert!(fields.contains(&"client_id"), "{fields:?}");
        assert!(fields.contains(&"channel_order_id"), "{fields:?}");
        assert!(fields.contains(&"lines[0].quantity"), "{fields:?}");
        assert!(fields.contains(&"lines[0].price"), "{fields:?}");
        assert!(fields.contains(&"lines[1].sku"), "{fields:?}");
        let Err(Error::InvalidArgument { violations, .. }) = replacing_itself else {
            panic!("expected invalid argument for an order replacing itself");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["replacement_for_channel_order_id"]);
    }

    #[test]
    fn bulk_orders_default_to_internal_and_partial() {
        let order = create_bulk_order(api::CreateBulkOrderRequest {
            client_id: "acme".into(),
            reference: "PO-1".into(),
            lines: vec![api::NewOrderLine {
                sku: "SKU-1".into(),
                quantity: 5,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();

        assert_eq!(order.channel, "INTERNAL");
        assert_eq!(order.fulfilment, FulfilmentType::Partial);
        assert_eq!(order.kind, OrderKind::Bulk);
    }
}
