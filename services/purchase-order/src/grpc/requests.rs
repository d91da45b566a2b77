//! Checking request fields once, at the edge, into domain values. Every problem names its
//! field; line problems are collected so one reply lists them all.

use std::collections::HashMap;

use kosha_proto::kosha::purchase_order::v1 as pb;
use kosha_runtime::error::FieldViolation;
use kosha_runtime::{Error, validate};

use crate::domain::grn::MAX_GRN_LINES;
use crate::domain::ids::{Actor, GrnNumber, PartyName, PoNumber, Reason, Sku};
use crate::domain::outward::{MAX_OUTWARD_LINES, NewOutwardLine};
use crate::domain::purchase_order::{MAX_PO_LINES, NewPoLine, ReceiptLine};
use crate::domain::values::{ExpectedDate, Quantity, UnitCost};

/// A request's client id.
pub fn client_id(text: &str) -> Result<&str, Error> {
    validate::client_id("client_id", text)?;
    Ok(text)
}

/// A PO number field.
pub fn po_number(field: &str, text: &str) -> Result<PoNumber, Error> {
    PoNumber::parse(text).map_err(|problem| Error::invalid(field, problem))
}

/// A GRN number field.
pub fn grn_number(field: &str, text: &str) -> Result<GrnNumber, Error> {
    GrnNumber::parse(text).map_err(|problem| Error::invalid(field, problem))
}

/// A supplier or customer field.
pub fn party(field: &str, text: &str) -> Result<PartyName, Error> {
    PartyName::parse(field, text).map_err(|problem| Error::invalid(field, problem))
}

/// The actor field; blank means `operator`.
pub fn actor(text: &str) -> Result<Actor, Error> {
    Actor::parse(text).map_err(|problem| Error::invalid("actor", problem))
}

/// The free-text query of a search call.
pub fn search_text(query: &str) -> Result<&str, Error> {
    let text = query.trim();
    if text.is_empty() {
        return Err(Error::invalid("query", "the search text is blank"));
    }
    if text.chars().count() > 128 {
        return Err(Error::invalid(
            "query",
            "the search text is longer than 128 characters",
        ));
    }
    Ok(text)
}

/// An optional exact-match filter: blank means no filter.
pub fn filter_opt(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

/// Collects line problems and repeated SKUs.
struct LineChecker {
    violations: Vec<FieldViolation>,
    first_index_by_sku: HashMap<String, usize>,
}

impl LineChecker {
    fn new(count: usize, max: usize) -> Result<Self, Error> {
        if count == 0 {
            return Err(Error::invalid("lines", "at least one line is required"));
        }
        if count > max {
            return Err(Error::invalid(
                "lines",
                format!("{count} lines; at most {max}"),
            ));
        }
        Ok(Self {
            violations: Vec::new(),
            first_index_by_sku: HashMap::new(),
        })
    }

    fn check<T>(&mut self, index: usize, name: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.violations.push(FieldViolation::new(
                    format!("lines[{index}].{name}"),
                    problem,
                ));
                None
            }
        }
    }

    fn sku(&mut self, index: usize, text: &str) -> Option<Sku> {
        let sku = self.check(index, "sku", Sku::parse(text))?;
        if let Some(first) = self.first_index_by_sku.get(sku.as_str()) {
            self.violations.push(FieldViolation::new(
                format!("lines[{index}].sku"),
                format!("SKU `{sku}` is on lines[{first}] already; list each SKU once"),
            ));
            return None;
        }
        self.first_index_by_sku.insert(sku.to_string(), index);
        Some(sku)
    }

    fn finish<T>(self, lines: Vec<T>) -> Result<Vec<T>, Error> {
        if self.violations.is_empty() {
            return Ok(lines);
        }
        let message = format!("{} problem(s) in the lines", self.violations.len());
        Err(Error::invalid_many(message, self.violations))
    }
}

/// The lines of a new inward PO, in request order.
pub fn purchase_order_lines(lines: &[pb::NewPurchaseOrderLine]) -> Result<Vec<NewPoLine>, Error> {
    let mut checker = LineChecker::new(lines.len(), MAX_PO_LINES)?;
    let mut checked = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let sku_opt = checker.sku(index, &line.sku);
        let quantity_opt = checker.check(index, "quantity", Quantity::new(line.quantity));
        let cost_opt = checker.check(index, "unit_cost", UnitCost::parse(line.unit_cost.trim()));
        let date_opt = checker.check(
            index,
            "expected_date",
            ExpectedDate::parse(line.expected_date.trim()),
        );
        if let (Some(sku), Some(quantity), Some(unit_cost), Some(expected_date)) =
            (sku_opt, quantity_opt, cost_opt, date_opt)
        {
            checked.push(NewPoLine {
                sku,
                quantity,
                unit_cost,
                expected_date,
            });
        }
    }
    checker.finish(checked)
}

/// The lines of a new outward PO, in request order.
pub fn outward_lines(lines: &[pb::OutwardPurchaseOrderLine]) -> Result<Vec<NewOutwardLine>, Error> {
    let mut checker = LineChecker::new(lines.len(), MAX_OUTWARD_LINES)?;
    let mut checked = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let sku_opt = checker.sku(index, &line.sku);
        let quantity_opt = checker.check(index, "quantity", Quantity::new(line.quantity));
        if let (Some(sku), Some(quantity)) = (sku_opt, quantity_opt) {
            checked.push(NewOutwardLine { sku, quantity });
        }
    }
    checker.finish(checked)
}

/// The lines of a GRN, in request order.
pub fn grn_lines(lines: &[pb::GrnLine]) -> Result<Vec<ReceiptLine>, Error> {
    let mut checker = LineChecker::new(lines.len(), MAX_GRN_LINES)?;
    let mut checked = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let Some(sku) = checker.sku(index, &line.sku) else {
            continue;
        };
        let split = ReceiptLine::new(sku, line.passed_quantity, line.failed_quantity);
        if let Some(line) = checker.check(index, "passed_quantity", split) {
            checked.push(line);
        }
    }
    checker.finish(checked)
}

/// The reason of a GRN: required without a PO, an optional note with one.
pub fn grn_reason(text: &str, has_po: bool) -> Result<Reason, Error> {
    let parsed = if has_po {
        Reason::parse_optional(text)
    } else {
        Reason::parse(text)
    };
    parsed.map_err(|problem| {
        let problem = if has_po {
            problem
        } else {
            format!("{problem}: a GRN without a PO needs a reason (a return, a re-GRN)")
        };
        Error::invalid("reason", problem)
    })
}

/// The reason of a close.
pub fn close_reason(text: &str) -> Result<Reason, Error> {
    Reason::parse(text).map_err(|problem| Error::invalid("reason", problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_line_is_named_and_repeats_point_at_the_first() {
        let lines = vec![
            pb::NewPurchaseOrderLine {
                sku: "A-1".into(),
                quantity: 1,
                unit_cost: "10".into(),
                expected_date: String::new(),
            },
            pb::NewPurchaseOrderLine {
                sku: "A-1".into(),
                quantity: 0,
                unit_cost: "1,200".into(),
                expected_date: "2024-02-30".into(),
            },
        ];

        let error = purchase_order_lines(&lines).unwrap_err();

        let Error::InvalidArgument { violations, .. } = error else {
            panic!("{error}")
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "lines[1].sku",
                "lines[1].quantity",
                "lines[1].unit_cost",
                "lines[1].expected_date"
            ]
        );
        assert!(violations[0].description.contains("lines[0]"));
    }

    #[test]
    fn grn_lines_need_units_and_a_reason_without_a_po() {
        let empty = [pb::GrnLine {
            sku: "A".into(),
            passed_quantity: 0,
            failed_quantity: 0,
        }];
        assert!(grn_lines(&empty).is_err());
        assert!(grn_lines(&[]).is_err());
        assert!(grn_reason("", false).is_err());
        assert_eq!(grn_reason("", true).unwrap().as_str(), "");
    }
}
