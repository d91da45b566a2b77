//! Outward (B2B) purchase orders: what a wholesale customer ordered, each one becoming one
//! bulk order in the order service.
//!
//! The PO is stored first with its order link pending; the bulk order is then created
//! under the PO number (the order's reference on the `INTERNAL` channel), which the order
//! service keeps unique, so a retry after any failure finds the first order.

use super::ids::{PartyName, PoNumber, Sku};
use super::values::{FulfilmentType, QcGrade, Quantity};

/// Most lines of one outward PO: one bulk order carries at most this many.
pub const MAX_OUTWARD_LINES: usize = 1_000;

/// The channel bulk orders from outward POs are created on.
pub const INTERNAL_CHANNEL: &str = "INTERNAL";

/// Whether an outward PO's bulk order exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderLink {
    /// Stored here; the order service has not confirmed the order.
    Pending,
    /// The bulk order exists.
    Linked,
}

impl OrderLink {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Linked => "LINKED",
        }
    }

    /// Reads the stored form.
    pub fn from_stored(text: &str) -> anyhow::Result<Self> {
        match text {
            "PENDING" => Ok(Self::Pending),
            "LINKED" => Ok(Self::Linked),
            _ => Err(anyhow::anyhow!("unknown stored order link `{text}`")),
        }
    }
}

/// What holds for a whole outward PO: one customer, one fulfilment type, one QC grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutwardTerms {
    /// The B2B customer.
    pub customer: PartyName,
    /// How its bulk order is allocated.
    pub fulfilment_type: FulfilmentType,
    /// The grade it is served from.
    pub qc_grade: QcGrade,
}

/// One line of an outward PO about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutwardLine {
    /// SKU, once per PO.
    pub sku: Sku,
    /// Units ordered.
    pub quantity: Quantity,
}

/// An outward PO about to be created, checked; lines sorted by SKU, each SKU once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutwardOrder {
    /// PO number.
    pub po_number: PoNumber,
    /// Customer, fulfilment type and grade.
    pub terms: OutwardTerms,
    /// Lines by SKU.
    pub lines: Vec<NewOutwardLine>,
}

impl NewOutwardOrder {
    /// A PO from lines whose SKUs the caller has checked to be distinct.
    pub fn new(po_number: PoNumber, terms: OutwardTerms, mut lines: Vec<NewOutwardLine>) -> Self {
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        debug_assert!(lines.windows(2).all(|pair| pair[0].sku != pair[1].sku));
        Self {
            po_number,
            terms,
            lines,
        }
    }

    /// Whether `stored` was created from exactly this content.
    pub fn matches(&self, stored: &OutwardOrder) -> bool {
        stored.po_number == self.po_number.as_str()
            && stored.customer == self.terms.customer.as_str()
            && stored.fulfilment_type == self.terms.fulfilment_type
            && stored.qc_grade == self.terms.qc_grade
            && stored.lines.len() == self.lines.len()
            && stored
                .lines
                .iter()
                .zip(&self.lines)
                .all(|(old, new)| old.0 == new.sku.as_str() && old.1 == new.quantity.get())
    }

    /// Units over all lines.
    pub fn total_quantity(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity.get()).sum()
    }
}

/// A stored outward PO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutwardOrder {
    /// Owner.
    pub client_id: String,
    /// PO number.
    pub po_number: String,
    /// The B2B customer.
    pub customer: String,
    /// How its bulk order is allocated.
    pub fulfilment_type: FulfilmentType,
    /// The grade it is served from.
    pub qc_grade: QcGrade,
    /// (SKU, units) by SKU.
    pub lines: Vec<(String, i64)>,
    /// Whether the bulk order exists.
    pub order_link: OrderLink,
    /// The bulk order's id; empty while pending.
    pub order_id: String,
    /// Attempts made to create the bulk order.
    pub link_attempts: i64,
    /// Error of the last failed attempt.
    pub last_link_error: String,
    /// Who created it.
    pub created_by: String,
    /// Creation instant (microseconds).
    pub create_time: i64,
    /// When the order was confirmed.
    pub link_time_opt: Option<i64>,
}

impl OutwardOrder {
    /// Units over all lines.
    pub fn total_quantity(&self) -> i64 {
        self.lines.iter().map(|(_, quantity)| quantity).sum()
    }
}
