//! Inward purchase orders: what a supplier is to deliver, and the rules of receiving it.

use kosha_runtime::Error;

use super::ids::{PartyName, PoNumber, Sku};
use super::values::{ExpectedDate, Quantity, UnitCost};

/// Most lines one PO may have (one catalog batch of SKUs).
pub const MAX_PO_LINES: usize = 10_000;

/// Where an inward PO is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoStatus {
    /// Nothing received yet.
    Open,
    /// Some units received, some still expected.
    PartiallyReceived,
    /// Every line received in full (or more, where excess receipt is enabled).
    Received,
    /// Short-closed by an operator.
    Closed,
}

impl PoStatus {
    /// Every status, for parsing.
    const ALL: [Self; 4] = [
        Self::Open,
        Self::PartiallyReceived,
        Self::Received,
        Self::Closed,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::PartiallyReceived => "PARTIALLY_RECEIVED",
            Self::Received => "RECEIVED",
            Self::Closed => "CLOSED",
        }
    }

    /// Reads the stored form.
    pub fn from_stored(text: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| anyhow::anyhow!("unknown stored PO status `{text}`"))
    }
}

// === impl NewPurchaseOrder ===

/// One line of a PO about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPoLine {
    /// SKU, once per PO.
    pub sku: Sku,
    /// Units ordered.
    pub quantity: Quantity,
    /// Cost of one unit.
    pub unit_cost: UnitCost,
    /// When it is expected.
    pub expected_date: ExpectedDate,
}

/// A PO about to be created, checked: its lines are sorted by SKU and name each SKU once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPurchaseOrder {
    /// PO number.
    pub po_number: PoNumber,
    /// Who delivers.
    pub supplier: PartyName,
    /// Lines by SKU.
    pub lines: Vec<NewPoLine>,
}

impl NewPurchaseOrder {
    /// A PO from lines whose SKUs the caller has checked to be distinct.
    pub fn new(po_number: PoNumber, supplier: PartyName, mut lines: Vec<NewPoLine>) -> Self {
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        debug_assert!(lines.windows(2).all(|pair| pair[0].sku != pair[1].sku));
        Self {
            po_number,
            supplier,
            lines,
        }
    }

    /// Whether `stored` was created from exactly this content (so creating it again
    /// changes nothing).
    pub fn matches(&self, stored: &PurchaseOrder) -> bool {
        let same_header = stored.po_number == self.po_number.as_str()
            && stored.supplier == self.supplier.as_str();
        same_header
            && stored.lines.len() == self.lines.len()
            && stored.lines.iter().zip(&self.lines).all(|(old, new)| {
                old.sku == new.sku.as_str()
                    && old.ordered == new.quantity.get()
                    && old.unit_cost == new.unit_cost
                    && old.expected_date == new.expected_date.to_text()
            })
    }

    /// Units over all lines.
    pub fn total_quantity(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity.get()).sum()
    }
}

// === impl PurchaseOrder ===

/// One SKU of a stored PO with what arrived of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoLine {
    /// SKU.
    pub sku: String,
    /// Units ordered.
    pub ordered: i64,
    /// Cost of one unit.
    pub unit_cost: UnitCost,
    /// `YYYY-MM-DD` or empty.
    pub expected_date: String,
    /// Units received (`passed + failed`).
    pub received: i64,
    /// Received units that passed QC.
    pub passed: i64,
    /// Received units that failed QC.
    pub failed: i64,
    /// Units still expected when the PO was closed.
    pub short_closed: i64,
}

impl PoLine {
    /// Units still expected: never negative, zero once the PO is closed.
    pub fn outstanding(&self, status: PoStatus) -> i64 {
        if status == PoStatus::Closed {
            return 0;
        }
        (self.ordered - self.received).max(0)
    }
}

/// A stored inward PO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// Owner.
    pub client_id: String,
    /// PO number.
    pub po_number: String,
    /// Who delivers.
    pub supplier: String,
    /// Status now.
    pub status: PoStatus,
    /// Lines by SKU.
    pub lines: Vec<PoLine>,
    /// GRNs recorded against it.
    pub grn_count: i64,
    /// Why it was closed; empty unless closed.
    pub close_reason: String,
    /// Who created it.
    pub created_by: String,
    /// Who closed it; empty unless closed.
    pub closed_by: String,
    /// Creation instant (microseconds).
    pub create_time: i64,
    /// Last change (microseconds).
    pub update_time: i64,
    /// When it was closed.
    pub close_time_opt: Option<i64>,
}

/// Units of a GRN line: `passed + failed` is what arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// SKU.
    pub sku: Sku,
    /// Units that passed QC.
    pub passed: i64,
    /// Units that failed QC.
    pub failed: i64,
}

impl ReceiptLine {
    /// Checks the split: neither part negative, at least one unit, no overflow.
    pub fn new(sku: Sku, passed: i64, failed: i64) -> Result<Self, String> {
        if passed < 0 || failed < 0 {
            return Err(format!(
                "passed and failed quantities must not be negative, got {passed} and {failed}"
            ));
        }
        if passed == 0 && failed == 0 {
            return Err("a GRN line receives at least one unit (passed or failed)".into());
        }
        let most = kosha_runtime::validate::MAX_QUANTITY;
        // Compared apart first, so that a sum past the largest number is never named.
        let over = passed > most || failed > most || passed + failed > most;
        if over {
            return Err(format!(
                "{passed} passed and {failed} failed units are more than {most} in one line"
            ));
        }
        Ok(Self {
            sku,
            passed,
            failed,
        })
    }

    /// Units that arrived.
    pub fn received(&self) -> i64 {
        self.passed + self.failed
    }
}

impl PurchaseOrder {
    /// Sums over the lines: (ordered, received, passed, failed, outstanding, short_closed).
    pub fn totals(&self) -> LineTotals {
        let mut totals = LineTotals::default();
        for line in &self.lines {
            totals.ordered += line.ordered;
            totals.received += line.received;
            totals.passed += line.passed;
            totals.failed += line.failed;
            totals.outstanding += line.outstanding(self.status);
            totals.short_closed += line.short_closed;
        }
        totals
    }

    /// Checks a receipt against this PO and returns the status it leaves the PO in.
    ///
    /// Refused: a CLOSED PO (FAILED_PRECONDITION); a SKU that is not on the PO
    /// (INVALID_ARGUMENT naming each line); more units of a SKU than its line still
    /// expects, unless `excess_allowed` (FAILED_PRECONDITION naming each line).
    pub fn check_receipt(
        &self,
        lines: &[ReceiptLine],
        excess_allowed: bool,
    ) -> Result<PoStatus, Error> {
        if self.status == PoStatus::Closed {
            return Err(Error::FailedPrecondition(format!(
                "PO `{}` is CLOSED ({}); nothing more can be received against it; record the \
                 units with a GRN without a PO and a reason instead",
                self.po_number, self.close_reason
            )));
        }

        let mut not_on_po = Vec::new();
        let mut excess = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let Some(po_line) = self.line(line.sku.as_str()) else {
                not_on_po.push(kosha_runtime::error::FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!("SKU `{}` is not on PO `{}`", line.sku, self.po_number),
                ));
                continue;
            };
            let still_expected = po_line.outstanding(self.status);
            if line.received() > still_expected && !excess_allowed {
                excess.push(format!(
                    "lines[{index}] SKU `{}`: {} received but the PO expects {still_expected} more \
                     (ordered {}, received before {})",
                    line.sku,
                    line.received(),
                    po_line.ordered,
                    po_line.received
                ));
            }
        }
        if !not_on_po.is_empty() {
            let message = format!(
                "{} GRN line(s) name SKUs that are not on PO `{}`",
                not_on_po.len(),
                self.po_number
            );
            return Err(Error::invalid_many(message, not_on_po));
        }
        if !excess.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "over-receipt refused: excess GRN is not enabled for client `{}`: {}",
                self.client_id,
                excess.join("; ")
            )));
        }

        // The status after the receipt, from the received figures it would leave.
        let mut any_received = false;
        let mut all_received = true;
        for po_line in &self.lines {
            let arriving: i64 = lines
                .iter()
                .filter(|line| line.sku.as_str() == po_line.sku)
                .map(ReceiptLine::received)
                .sum();
            let received_after = po_line.received + arriving;
            any_received |= received_after > 0;
            all_received &= received_after >= po_line.ordered;
        }
        let status = if all_received {
            PoStatus::Received
        } else if any_received {
            PoStatus::PartiallyReceived
        } else {
            PoStatus::Open
        };
        Ok(status)
    }

    /// Checks that the PO may be short-closed now. `Ok(false)` when it is closed already
    /// (closing again changes nothing).
    pub fn check_close(&self) -> Result<bool, Error> {
        match self.status {
            PoStatus::Open | PoStatus::PartiallyReceived => Ok(true),
            PoStatus::Closed => Ok(false),
            PoStatus::Received => Err(Error::FailedPrecondition(format!(
                "PO `{}` is RECEIVED in full; there is nothing left to close",
                self.po_number
            ))),
        }
    }

    fn line(&self, sku: &str) -> Option<&PoLine> {
        self.lines.iter().find(|line| line.sku == sku)
    }
}

/// Units of a PO summed over its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineTotals {
    /// Units ordered.
    pub ordered: i64,
    /// Units received.
    pub received: i64,
    /// Units that passed QC.
    pub passed: i64,
    /// Units that failed QC.
    pub failed: i64,
    /// Units still expected.
    pub outstanding: i64,
    /// Units never received, recorded at close.
    pub short_closed: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn po(status: PoStatus, lines: &[(&str, i64, i64)]) -> PurchaseOrder {
        PurchaseOrder {
            client_id: "acme".into(),
            po_number: "PO-1".into(),
            supplier: "Weaver".into(),
            status,
            lines: lines
                .iter()
                .map(|(sku, ordered, received)| PoLine {
                    sku: (*sku).into(),
                    ordered: *ordered,
                    unit_cost: UnitCost::from_paise(100),
                    expected_date: String::new(),
                    received: *received,
                    passed: *received,
                    failed: 0,
                    short_closed: 0,
                })
                .collect(),
            grn_count: 0,
            close_reason: String::new(),
            created_by: "operator".into(),
            closed_by: String::new(),
            create_time: 0,
            update_time: 0,
            close_time_opt: None,
        }
    }

    fn receipt(sku: &str, passed: i64, failed: i64) -> ReceiptLine {
        ReceiptLine::new(Sku::parse(sku).unwrap(), passed, failed).unwrap()
    }

    #[test]
    fn receiving_part_then_the_rest_moves_the_status_forward() {
        let open = po(PoStatus::Open, &[("A", 10, 0), ("B", 5, 0)]);
        let status = open.check_receipt(&[receipt("A", 8, 2)], false).unwrap();
        assert_eq!(status, PoStatus::PartiallyReceived);

        let partial = po(PoStatus::PartiallyReceived, &[("A", 10, 10), ("B", 5, 0)]);
        let status = partial.check_receipt(&[receipt("B", 4, 1)], false).unwrap();
        assert_eq!(status, PoStatus::Received);
    }

    #[test]
    fn over_receipt_is_refused_unless_excess_is_allowed() {
        let partial = po(PoStatus::PartiallyReceived, &[("A", 10, 7)]);

        let refused = partial
            .check_receipt(&[receipt("A", 3, 1)], false)
            .unwrap_err();
        let allowed = partial.check_receipt(&[receipt("A", 3, 1)], true).unwrap();

        assert!(matches!(refused, Error::FailedPrecondition(_)));
        assert!(refused.to_string().contains("expects 3 more"), "{refused}");
        assert_eq!(allowed, PoStatus::Received);
    }

    #[test]
    fn a_sku_not_on_the_po_and_a_closed_po_are_refused() {
        let open = po(PoStatus::Open, &[("A", 10, 0)]);
        let error = open.check_receipt(&[receipt("Z", 1, 0)], true).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument { .. }));

        let closed = po(PoStatus::Closed, &[("A", 10, 0)]);
        let error = closed
            .check_receipt(&[receipt("A", 1, 0)], true)
            .unwrap_err();
        assert!(matches!(error, Error::FailedPrecondition(_)));
    }

    #[test]
    fn closing_is_allowed_until_fully_received_and_outstanding_drops_to_zero() {
        assert!(
            po(PoStatus::PartiallyReceived, &[("A", 10, 4)])
                .check_close()
                .unwrap()
        );
        assert!(!po(PoStatus::Closed, &[("A", 10, 4)]).check_close().unwrap());
        assert!(
            po(PoStatus::Received, &[("A", 10, 10)])
                .check_close()
                .is_err()
        );

        let closed = po(PoStatus::Closed, &[("A", 10, 4)]);
        assert_eq!(closed.totals().outstanding, 0);
        assert_eq!(
            po(PoStatus::PartiallyReceived, &[("A", 10, 4)])
                .totals()
                .outstanding,
            6
        );
    }

    #[test]
    fn a_receipt_line_needs_at_least_one_unit_and_no_negative_part() {
        let sku = Sku::parse("A").unwrap();
        assert!(ReceiptLine::new(sku.clone(), 0, 0).is_err());
        assert!(ReceiptLine::new(sku.clone(), -1, 2).is_err());
        let huge = 4_611_686_018_427_387_904;
        let too_many = ReceiptLine::new(sku.clone(), huge, huge).unwrap_err();
        assert!(
            too_many.starts_with(&format!("{huge} passed and {huge} failed units")),
            "{too_many}"
        );
        assert_eq!(ReceiptLine::new(sku, 0, 3).unwrap().received(), 3);
    }
}
