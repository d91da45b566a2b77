//! Goods receipts (GRNs) and how their units are handed to inventory.
//!
//! A GRN is recorded here first, with its stock marked pending, in the same transaction
//! that updates its PO. Its units then go to inventory in parts, each under an idempotency
//! key derived from the GRN number and the part, so any number of retries (by the caller,
//! or by the background redelivery) lands every unit exactly once.

use super::ids::{Actor, GrnNumber, PoNumber, Reason};
use super::purchase_order::ReceiptLine;
use super::values::QcGrade;

/// Most lines one GRN may have.
pub const MAX_GRN_LINES: usize = 10_000;

/// SKUs per inventory receipt call. Each SKU gives at most two inventory lines (PASS and
/// FAIL), which keeps a call within inventory's 1,000 lines. The part of each line is
/// stored with it, so changing this number never changes a recorded GRN's parts.
pub const SKUS_PER_PART: usize = 500;

/// Most lines inventory takes in one receipt call.
const INVENTORY_MAX_RECEIVE_LINES: usize = 1_000;

const _: () = assert!(SKUS_PER_PART * 2 <= INVENTORY_MAX_RECEIVE_LINES);

/// Whether inventory has confirmed a GRN's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Recorded here; inventory has not confirmed.
    Pending,
    /// Inventory holds the units.
    Delivered,
}

impl Delivery {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
        }
    }

    /// Reads the stored form.
    pub fn from_stored(text: &str) -> anyhow::Result<Self> {
        match text {
            "PENDING" => Ok(Self::Pending),
            "DELIVERED" => Ok(Self::Delivered),
            _ => Err(anyhow::anyhow!("unknown stored delivery state `{text}`")),
        }
    }
}

/// A GRN about to be recorded, checked; lines sorted by SKU, each SKU once.
#[derive(Debug, Clone)]
pub struct NewGrn {
    /// GRN number.
    pub grn_number: GrnNumber,
    /// The PO it receives against, if any.
    pub po_number_opt: Option<PoNumber>,
    /// Why (required without a PO).
    pub reason: Reason,
    /// Lines by SKU.
    pub lines: Vec<ReceiptLine>,
    /// Who records it.
    pub actor: Actor,
}

impl NewGrn {
    /// A GRN from lines whose SKUs the caller has checked to be distinct.
    pub fn new(
        grn_number: GrnNumber,
        po_number_opt: Option<PoNumber>,
        reason: Reason,
        mut lines: Vec<ReceiptLine>,
        actor: Actor,
    ) -> Self {
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        debug_assert!(lines.windows(2).all(|pair| pair[0].sku != pair[1].sku));
        Self {
            grn_number,
            po_number_opt,
            reason,
            lines,
            actor,
        }
    }

    /// The PO number as stored: empty without a PO.
    pub fn po_number_text(&self) -> &str {
        self.po_number_opt.as_ref().map_or("", PoNumber::as_str)
    }

    /// Whether `stored` records exactly this receipt (who asked does not matter: a retry
    /// by someone else is the same receipt).
    pub fn matches(&self, stored: &Grn) -> bool {
        stored.po_number == self.po_number_text()
            && stored.reason == self.reason.as_str()
            && stored.lines.len() == self.lines.len()
            && stored.lines.iter().zip(&self.lines).all(|(old, new)| {
                old.sku == new.sku.as_str() && old.passed == new.passed && old.failed == new.failed
            })
    }

    /// The inventory part of the line at `index` (lines in SKU order), from 1.
    pub fn part_of(index: usize) -> i64 {
        (index / SKUS_PER_PART) as i64 + 1
    }
}

/// One SKU of a stored GRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrnLine {
    /// SKU.
    pub sku: String,
    /// Units that passed QC.
    pub passed: i64,
    /// Units that failed QC.
    pub failed: i64,
    /// Which inventory receipt call carries it.
    pub part: i64,
}

/// A stored GRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grn {
    /// Owner.
    pub client_id: String,
    /// GRN number.
    pub grn_number: String,
    /// The PO received against; empty without one.
    pub po_number: String,
    /// Why; may be empty with a PO.
    pub reason: String,
    /// Lines by SKU.
    pub lines: Vec<GrnLine>,
    /// Who recorded it.
    pub actor: String,
    /// Whether inventory holds the units.
    pub delivery: Delivery,
    /// Delivery attempts made.
    pub delivery_attempts: i64,
    /// Error of the last failed attempt.
    pub last_delivery_error: String,
    /// When it was recorded (microseconds).
    pub create_time: i64,
    /// When inventory confirmed it.
    pub deliver_time_opt: Option<i64>,
    /// The random part of its delivery keys; empty for GRNs recorded before there was one.
    pub delivery_nonce: String,
}

/// One inventory receipt call of a GRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivePart {
    /// The idempotency key inventory dedups the call by.
    pub idempotency_key: String,
    /// (SKU, grade, units), each (SKU, grade) once.
    pub lines: Vec<(String, QcGrade, i64)>,
}

impl Grn {
    /// Units that passed QC.
    pub fn passed(&self) -> i64 {
        self.lines.iter().map(|line| line.passed).sum()
    }

    /// Units that failed QC.
    pub fn failed(&self) -> i64 {
        self.lines.iter().map(|line| line.failed).sum()
    }

    /// The inventory receipt calls that put this GRN's units into stock, in part order.
    pub fn receive_parts(&self) -> Vec<ReceivePart> {
        let mut parts: Vec<(i64, ReceivePart)> = Vec::new();
        for line in &self.lines {
            let is_new_part = parts.last().is_none_or(|(part, _)| *part != line.part);
            if is_new_part {
                let key =
                    receive_idempotency_key(&self.grn_number, &self.delivery_nonce, line.part);
                parts.push((
                    line.part,
                    ReceivePart {
                        idempotency_key: key,
                        lines: Vec::new(),
                    },
                ));
            }
            let (_, current) = parts.last_mut().expect("a part was just pushed");
            if line.passed > 0 {
                current
                    .lines
                    .push((line.sku.clone(), QcGrade::Pass, line.passed));
            }
            if line.failed > 0 {
                current
                    .lines
                    .push((line.sku.clone(), QcGrade::Fail, line.failed));
            }
        }
        parts.into_iter().map(|(_, part)| part).collect()
    }
}

/// The idempotency key of one inventory receipt call of a GRN: its number, the random part
/// stored with it (when it has one), and the part of the receipt.
pub fn receive_idempotency_key(grn_number: &str, nonce: &str, part: i64) -> String {
    if nonce.is_empty() {
        format!("grn:{grn_number}:{part}")
    } else {
        format!("grn:{grn_number}:{nonce}:{part}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(lines: Vec<GrnLine>) -> Grn {
        Grn {
            client_id: "acme".into(),
            grn_number: "GRN-1".into(),
            po_number: String::new(),
            reason: "return".into(),
            lines,
            actor: "operator".into(),
            delivery: Delivery::Pending,
            delivery_attempts: 0,
            last_delivery_error: String::new(),
            create_time: 0,
            deliver_time_opt: None,
            delivery_nonce: String::new(),
        }
    }

    #[test]
    fn parts_split_passed_and_failed_units_under_stable_keys() {
        let grn = stored(vec![
            GrnLine {
                sku: "A".into(),
                passed: 3,
                failed: 1,
                part: 1,
            },
            GrnLine {
                sku: "B".into(),
                passed: 0,
                failed: 2,
                part: 1,
            },
            GrnLine {
                sku: "C".into(),
                passed: 5,
                failed: 0,
                part: 2,
            },
        ]);

        let parts = grn.receive_parts();

        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].idempotency_key, "grn:GRN-1:1");
        assert_eq!(
            parts[0].lines,
            [
                ("A".to_string(), QcGrade::Pass, 3),
                ("A".to_string(), QcGrade::Fail, 1),
                ("B".to_string(), QcGrade::Fail, 2)
            ]
        );
        assert_eq!(parts[1].idempotency_key, "grn:GRN-1:2");
        assert_eq!((grn.passed(), grn.failed()), (8, 3));
        let own = Grn {
            delivery_nonce: "5f0c".into(),
            ..grn
        };
        assert_eq!(own.receive_parts()[1].idempotency_key, "grn:GRN-1:5f0c:2");
    }

    #[test]
    fn parts_hold_at_most_a_thousand_inventory_lines() {
        assert_eq!(NewGrn::part_of(0), 1);
        assert_eq!(NewGrn::part_of(SKUS_PER_PART - 1), 1);
        assert_eq!(NewGrn::part_of(SKUS_PER_PART), 2);
    }
}
