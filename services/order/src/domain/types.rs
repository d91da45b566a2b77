//! The order and its parts, with the quantities each line carries.

use kosha_runtime::Error;

// === OrderStatus ===

/// Where an order is in its life. Stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// A marketplace SKU has no listing; raw lines kept for a retry.
    Failed,
    /// Taken in, not allocated yet.
    Created,
    /// Nothing allocated.
    Unfulfillable,
    /// Some units allocated.
    PartiallyFulfillable,
    /// Every unit allocated.
    Fulfillable,
    /// Allocated, held back from picking by an open hold.
    OnHold,
    /// Picking has started.
    Processing,
    /// Every remaining unit invoiced.
    Invoiced,
    /// Every invoiced unit dispatched.
    Dispatched,
    /// Cancelled before invoicing.
    Cancelled,
    /// A bulk order closed by an operator.
    Complete,
}

impl OrderStatus {
    /// Every status, for parsing and tests.
    pub const ALL: [OrderStatus; 11] = [
        Self::Failed,
        Self::Created,
        Self::Unfulfillable,
        Self::PartiallyFulfillable,
        Self::Fulfillable,
        Self::OnHold,
        Self::Processing,
        Self::Invoiced,
        Self::Dispatched,
        Self::Cancelled,
        Self::Complete,
    ];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::Created => "CREATED",
            Self::Unfulfillable => "UNFULFILLABLE",
            Self::PartiallyFulfillable => "PARTIALLY_FULFILLABLE",
            Self::Fulfillable => "FULFILLABLE",
            Self::OnHold => "ONHOLD",
            Self::Processing => "PROCESSING",
            Self::Invoiced => "INVOICED",
            Self::Dispatched => "DISPATCHED",
            Self::Cancelled => "CANCELLED",
            Self::Complete => "COMPLETE",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Statuses decided by allocation (and holds), recomputed whenever either changes.
    pub fn is_allocation_phase(self) -> bool {
        matches!(
            self,
            Self::Created
                | Self::Unfulfillable
                | Self::PartiallyFulfillable
                | Self::Fulfillable
                | Self::OnHold
        )
    }

    /// Statuses an order never leaves.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Cancelled | Self::Dispatched)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// === FulfilmentType ===

/// How an order may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FulfilmentType {
    /// Every line in full, or nothing.
    BlockComplete,
    /// What is there, in several shipments.
    MultiShipmentPartial,
    /// What is there, in one shipment; the rest is cancelled at invoicing.
    SingleShipmentPartial,
    /// The B2B default: what is there; the rest waits for the next retry.
    Partial,
}

impl FulfilmentType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlockComplete => "BLOCK_COMPLETE",
            Self::MultiShipmentPartial => "MULTI_SHIPMENT_PARTIAL",
            Self::SingleShipmentPartial => "SINGLE_SHIPMENT_PARTIAL",
            Self::Partial => "PARTIAL",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::BlockComplete,
            Self::MultiShipmentPartial,
            Self::SingleShipmentPartial,
            Self::Partial,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// Whether allocation must be all-or-nothing across the lines.
    pub fn is_all_or_nothing(self) -> bool {
        self == Self::BlockComplete
    }

    /// Whether the order may ship in more than one shipment.
    pub fn allows_several_shipments(self) -> bool {
        self == Self::MultiShipmentPartial
    }
}

// === OrderKind, Grade ===

/// Marketplace (B2C) or bulk (B2B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// Allocated on arrival and retried when stock arrives.
    Marketplace,
    /// Allocated only when an operator retries it.
    Bulk,
}

impl OrderKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketplace => "MARKETPLACE",
            Self::Bulk => "BULK",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "MARKETPLACE" => Some(Self::Marketplace),
            "BULK" => Some(Self::Bulk),
            _ => None,
        }
    }
}

/// The QC grade an order is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grade {
    /// Passed QC.
    Pass,
    /// Failed QC.
    Fail,
}

impl Grade {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PASS" => Some(Self::Pass),
            "FAIL" => Some(Self::Fail),
            _ => None,
        }
    }
}

// === OrderId ===

/// The internal id of an order: a database sequence number, shown as `ORD-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(pub i64);

impl OrderId {
    const PREFIX: &'static str = "ORD-";

    /// Parses `ORD-<n>` (any case) from request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        Self::try_parse(text).ok_or_else(|| {
            if text.is_empty() {
                Error::invalid(field, "order id is required")
            } else {
                Error::invalid(
                    field,
                    format!(
                        "`{text}` is not an order id (ORD-<number>); SearchOrders finds an \
                         order by its channel order id or parent order id"
                    ),
                )
            }
        })
    }

    /// Parses `ORD-<n>` (any case), if it is one.
    pub fn try_parse(text: &str) -> Option<Self> {
        let prefix_len = Self::PREFIX.len();
        if text.len() <= prefix_len || !text[..prefix_len].eq_ignore_ascii_case(Self::PREFIX) {
            return None;
        }
        let digits = &text[prefix_len..];
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|id| *id > 0).map(Self)
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

// === Line ===

/// One order line and where its units are.
///
/// Invariants: `invoiced <= packed <= picked <= held + invoiced` (picked units are a
/// subset of allocated ones) and `dispatched <= invoiced`. `held` mirrors what inventory
/// holds open for the line; it is refreshed from inventory's answers, which are the
/// truth, and may exceed `quantity - cancelled` for a moment after a cancellation, until
/// the release is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based position.
    pub line_no: i32,
    /// The marketplace SKU as sent (empty for lines sent with a client SKU).
    pub marketplace_sku: String,
    /// The client SKU (empty while unresolved).
    pub sku: String,
    /// Units ordered.
    pub quantity: i64,
    /// Price per unit in paise, when sent.
    pub price_paise_opt: Option<i64>,
    /// Units cancelled.
    pub cancelled: i64,
    /// Units held open in inventory (allocated, not yet consumed).
    pub held: i64,
    /// Units picked (cumulative, including invoiced ones).
    pub picked: i64,
    /// Units packed into shipments.
    pub packed: i64,
    /// Units invoiced (consumed from stock).
    pub invoiced: i64,
    /// Units dispatched.
    pub dispatched: i64,
}

impl Line {
    /// A new line with nothing allocated.
    pub fn new(line_no: i32, marketplace_sku: &str, sku: &str, quantity: i64) -> Self {
        Self {
            line_no,
            marketplace_sku: marketplace_sku.to_string(),
            sku: sku.to_string(),
            quantity,
            price_paise_opt: None,
            cancelled: 0,
            held: 0,
            picked: 0,
            packed: 0,
            invoiced: 0,
            dispatched: 0,
        }
    }

    /// The line id inventory keys the allocation with.
    pub fn line_id(&self) -> String {
        self.line_no.to_string()
    }

    /// Units still wanted: ordered less cancelled.
    pub fn wanted(&self) -> i64 {
        self.quantity - self.cancelled
    }

    /// Units allocated so far, consumed ones included.
    pub fn allocated(&self) -> i64 {
        self.held + self.invoiced
    }

    /// Units still to allocate.
    pub fn pending(&self) -> i64 {
        (self.wanted() - self.allocated()).max(0)
    }

    /// What the line should hold in inventory: ordered less cancelled less consumed.
    pub fn allocation_target(&self) -> i64 {
        (self.wanted() - self.invoiced).max(0)
    }

    /// Allocated units not yet picked, counting no more units than are still wanted: units
    /// cancelled are not picked, even while inventory still holds them because their
    /// release has not gone through yet.
    pub fn unpicked_allocated(&self) -> i64 {
        (self.allocated().min(self.wanted()) - self.picked).max(0)
    }

    /// Picked units not yet invoiced: physically out of the shelf, never released by
    /// reconcile.
    pub fn picked_open(&self) -> i64 {
        (self.picked - self.invoiced).max(0)
    }

    /// Picked units not yet packed.
    pub fn unpacked_picked(&self) -> i64 {
        (self.picked - self.packed).max(0)
    }

    /// Units that may still be cancelled line by line: not picked, not cancelled.
    pub fn cancellable(&self) -> i64 {
        (self.quantity - self.cancelled - self.picked).max(0)
    }

    /// Whether the quantities keep their invariants.
    pub fn is_consistent(&self) -> bool {
        self.cancelled >= 0
            && self.held >= 0
            && self.dispatched <= self.invoiced
            && self.invoiced <= self.packed
            && self.packed <= self.picked
            && self.picked <= self.allocated()
    }
}

// === Order ===

/// An order with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Internal id.
    pub id: OrderId,
    /// The seller.
    pub client_id: String,
    /// Channel code.
    pub channel: String,
    /// The channel's order id (a bulk order's reference).
    pub channel_order_id: String,
    /// The channel's parent order id, or empty.
    pub parent_order_id: String,
    /// Marketplace or bulk.
    pub kind: OrderKind,
    /// Current status.
    pub status: OrderStatus,
    /// How it may be served.
    pub fulfilment: FulfilmentType,
    /// QC grade it is served from.
    pub grade: Grade,
    /// Fulfilled by the marketplace: never allocated.
    pub marketplace_fulfilled: bool,
    /// Served before other waiting orders.
    pub priority: bool,
    /// When the customer placed it (µs).
    pub order_time: i64,
    /// Ship-by promise (µs).
    pub dispatch_by_opt: Option<i64>,
    /// Not picked before this instant (µs).
    pub start_processing_opt: Option<i64>,
    /// The channel's dispatch-after time (µs).
    pub dispatch_after_opt: Option<i64>,
    /// For a replacement, the channel order id it replaces.
    pub replacement_for: String,
    /// The pool it was last allocated from (or tried).
    pub pool: String,
    /// Why it is FAILED.
    pub failure_reason: String,
    /// Marketplace SKUs with no listing, while FAILED.
    pub unknown_skus: Vec<String>,
    /// A disagreement with the channel that needs a person.
    pub channel_conflict: String,
    /// When it was taken in (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
    /// The lines, by line number.
    pub lines: Vec<Line>,
}

impl Order {
    /// The natural key inventory keys allocations with: channel and channel order id
    /// (inventory scopes it by client). Never a fresh id, so a retry after a crash finds
    /// what the first attempt allocated.
    pub fn order_ref(&self) -> String {
        order_ref(&self.channel, &self.channel_order_id)
    }

    /// Units allocated over all lines (consumed included).
    pub fn allocated(&self) -> i64 {
        self.lines.iter().map(Line::allocated).sum()
    }

    /// Units still to allocate over all lines.
    pub fn pending(&self) -> i64 {
        self.lines.iter().map(Line::pending).sum()
    }

    /// Units invoiced over all lines.
    pub fn invoiced(&self) -> i64 {
        self.lines.iter().map(|line| line.invoiced).sum()
    }

    /// The line with this number.
    pub fn line_mut(&mut self, line_no: i32) -> Option<&mut Line> {
        self.lines.iter_mut().find(|line| line.line_no == line_no)
    }

    /// Whether every unit still wanted has been invoiced (and something was).
    pub fn is_fully_invoiced(&self) -> bool {
        self.invoiced() > 0 && self.lines.iter().all(|line| line.invoiced >= line.wanted())
    }

    /// Whether every invoiced unit has been dispatched.
    pub fn is_fully_dispatched(&self) -> bool {
        self.lines
            .iter()
            .all(|line| line.dispatched >= line.invoiced)
    }

    /// Whether the order takes the seller's stock automatically: marketplace orders that
    /// the seller fulfils.
    pub fn allocates_automatically(&self) -> bool {
        self.kind == OrderKind::Marketplace && !self.marketplace_fulfilled
    }
}

/// The inventory order reference for a channel order.
pub fn order_ref(channel: &str, channel_order_id: &str) -> String {
    format!("{channel}:{channel_order_id}")
}

// === Shipment ===

/// Where a shipment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    /// Packed.
    Packed,
    /// Invoiced.
    Invoiced,
    /// Dispatched.
    Dispatched,
}

impl ShipmentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packed => "PACKED",
            Self::Invoiced => "INVOICED",
            Self::Dispatched => "DISPATCHED",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PACKED" => Some(Self::Packed),
            "INVOICED" => Some(Self::Invoiced),
            "DISPATCHED" => Some(Self::Dispatched),
            _ => None,
        }
    }
}

/// Units packed, invoiced and dispatched together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// Database id.
    pub id: i64,
    /// 1-based within the order.
    pub sequence: i32,
    /// Where it is.
    pub status: ShipmentStatus,
    /// (line number, units).
    pub lines: Vec<(i32, i64)>,
    /// Invoice number, once invoiced.
    pub invoice_number: String,
    /// When packed (µs).
    pub packed_at: i64,
    /// When invoiced (µs).
    pub invoiced_at_opt: Option<i64>,
    /// When dispatched (µs).
    pub dispatched_at_opt: Option<i64>,
}

impl Shipment {
    /// The shipment id shown to callers: `<order id>-S<sequence>`.
    pub fn public_id(&self, order_id: OrderId) -> String {
        format!("{order_id}-S{}", self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_parse_in_any_case_and_reject_garbage() {
        assert_eq!(OrderId::try_parse("ORD-12"), Some(OrderId(12)));
        assert_eq!(OrderId::try_parse("ord-7"), Some(OrderId(7)));
        for bad in [
            "",
            "ORD-",
            "ORD-x",
            "12",
            "ORD-0",
            "ORD--1",
            "ORD-99999999999999999999",
        ] {
            assert_eq!(OrderId::try_parse(bad), None, "{bad}");
        }
        assert_eq!(OrderId(5).to_string(), "ORD-5");
    }

    #[test]
    fn line_quantities_follow_from_each_other() {
        let mut line = Line::new(1, "", "SKU-1", 5);
        line.cancelled = 1;
        line.held = 2;
        line.invoiced = 1;
        line.picked = 2;
        line.packed = 1;

        assert_eq!(line.wanted(), 4);
        assert_eq!(line.allocated(), 3);
        assert_eq!(line.pending(), 1);
        assert_eq!(line.allocation_target(), 3);
        assert_eq!(line.unpicked_allocated(), 1);
        assert_eq!(line.picked_open(), 1);
        assert_eq!(line.cancellable(), 2);
        assert!(line.is_consistent());
    }

    #[test]
    fn cancelled_units_still_held_are_not_pickable() {
        let mut line = Line::new(1, "", "SKU-1", 3);
        line.held = 3;
        line.cancelled = 2;

        assert_eq!(line.unpicked_allocated(), 1);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("onhold"), None);
    }
}
