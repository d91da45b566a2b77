//! Products: their attributes, prices, and how a change applies to them.

use std::collections::BTreeMap;

use kosha_runtime::validate;

use super::ids::{ChannelCode, ClientId, Sku};

/// Longest free-text attribute (name, style, category, colour, size), in characters.
pub const MAX_TEXT_CHARS: usize = 256;

/// A maximum retail price: a positive amount in whole paise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mrp(i64);

impl Mrp {
    /// Parses a decimal with at most two decimals. Zero, thousands separators (`1,800`),
    /// decimal commas (`4,20`) and anything but digits and one point are refused, never
    /// guessed at.
    pub fn parse(text: &str) -> Result<Self, MrpProblem> {
        let paise = validate::parse_money(text).map_err(MrpProblem::NotADecimal)?;
        if paise == 0 {
            return Err(MrpProblem::NotPositive(format!(
                "`{text}`: MRP must be more than zero"
            )));
        }
        Ok(Self(paise))
    }

    /// A stored amount (checked on the way in).
    pub fn from_paise(paise: i64) -> Self {
        debug_assert!(paise > 0, "stored MRPs are positive");
        Self(paise)
    }

    /// The amount in whole paise.
    pub fn paise(self) -> i64 {
        self.0
    }

    /// The amount as a decimal string with two decimals, e.g. `1299.00`.
    pub fn to_text(self) -> String {
        validate::format_money(self.0)
    }
}

/// Why a cell or field is not an MRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MrpProblem {
    /// Not a plain decimal number.
    NotADecimal(String),
    /// Zero.
    NotPositive(String),
}

impl MrpProblem {
    /// A stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotADecimal(_) => "NOT_A_DECIMAL",
            Self::NotPositive(_) => "NOT_POSITIVE",
        }
    }

    /// What is wrong, in words.
    pub fn message(&self) -> &str {
        match self {
            Self::NotADecimal(message) | Self::NotPositive(message) => message,
        }
    }
}

/// Why a free-text attribute is refused, if it is.
pub fn text_problem(text: &str) -> Option<String> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Some(format!("longer than {MAX_TEXT_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some("contains a control character (a line break or tab)".to_string());
    }
    if kosha_runtime::validate::has_direction_override(text) {
        return Some("contains a text-direction override character".to_string());
    }
    None
}

/// The free-text attributes of a product, in template order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TextField {
    /// Display name.
    Name,
    /// Style or design number.
    Style,
    /// Category.
    Category,
    /// Colour.
    Color,
    /// Size.
    Size,
}

impl TextField {
    /// Every text attribute, in template order.
    pub const ALL: [Self; 5] = [
        Self::Name,
        Self::Style,
        Self::Category,
        Self::Color,
        Self::Size,
    ];

    /// The column (and field mask path) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Style => "style",
            Self::Category => "category",
            Self::Color => "color",
            Self::Size => "size",
        }
    }

    /// The attribute named `name` (lowercase), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }
}

/// Everything about a product but its identity and state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductAttributes {
    /// Display name; empty when not known.
    pub name: String,
    /// Style or design number; empty when not known.
    pub style: String,
    /// Category; empty when not known.
    pub category: String,
    /// Colour; empty when not known.
    pub color: String,
    /// Size; empty when not known.
    pub size: String,
    /// MRP, if known.
    pub mrp_opt: Option<Mrp>,
    /// MRP per marketplace channel where it differs.
    pub channel_mrp: BTreeMap<ChannelCode, Mrp>,
}

impl ProductAttributes {
    /// The value of one text attribute.
    pub fn text(&self, field: TextField) -> &str {
        match field {
            TextField::Name => &self.name,
            TextField::Style => &self.style,
            TextField::Category => &self.category,
            TextField::Color => &self.color,
            TextField::Size => &self.size,
        }
    }

    /// The value of one text attribute, to change it.
    pub fn text_mut(&mut self, field: TextField) -> &mut String {
        match field {
            TextField::Name => &mut self.name,
            TextField::Style => &mut self.style,
            TextField::Category => &mut self.category,
            TextField::Color => &mut self.color,
            TextField::Size => &mut self.size,
        }
    }
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Owner.
    pub client_id: ClientId,
    /// SKU, unique per client.
    pub sku: Sku,
    /// Attributes.
    pub attributes: ProductAttributes,
    /// False once disabled.
    pub active: bool,
    /// Created at, microseconds UTC.
    pub create_time: i64,
    /// Last changed at, microseconds UTC.
    pub update_time: i64,
}

/// A change to some attributes of a product; anything not named keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductPatch {
    /// Text attributes to set; an empty value clears one.
    pub texts: Vec<(TextField, String)>,
    /// `Some(None)` clears the MRP, `Some(Some(_))` sets it.
    pub mrp_opt: Option<Option<Mrp>>,
    /// Whether the channel MRPs are replaced as a whole (rather than merged entry by entry).
    pub replace_channel_mrp: bool,
    /// Channel MRPs to set (`Some`) or remove (`None`).
    pub channel_mrp: Vec<(ChannelCode, Option<Mrp>)>,
}

impl ProductPatch {
    /// Whether the patch names nothing at all.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
            && self.mrp_opt.is_none()
            && !self.replace_channel_mrp
            && self.channel_mrp.is_empty()
    }

    /// The attributes after this change.
    pub fn apply(&self, current: &ProductAttributes) -> ProductAttributes {
        let mut next = current.clone();
        for (field, value) in &self.texts {
            *next.text_mut(*field) = value.clone();
        }
        if let Some(mrp_opt) = self.mrp_opt {
            next.mrp_opt = mrp_opt;
        }
        if self.replace_channel_mrp {
            next.channel_mrp.clear();
        }
        for (channel, mrp_opt) in &self.channel_mrp {
            match mrp_opt {
                Some(mrp) => next.channel_mrp.insert(channel.clone(), *mrp),
                None => next.channel_mrp.remove(channel),
            };
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ChannelCode {
        ChannelCode::from_stored(text.to_string())
    }

    #[test]
    fn mrp_refuses_separators_commas_words_and_zero() {
        assert_eq!(Mrp::parse("1299.5").unwrap().paise(), 129_950);
        assert_eq!(Mrp::parse("1800").unwrap().to_text(), "1800.00");
        for text in ["1,800", "4,20", "abc", "", "-5"] {
            assert_eq!(
                Mrp::parse(text).unwrap_err().reason(),
                "NOT_A_DECIMAL",
                "{text}"
            );
        }
        assert_eq!(Mrp::parse("0").unwrap_err().reason(), "NOT_POSITIVE");
        assert_eq!(Mrp::parse("0.00").unwrap_err().reason(), "NOT_POSITIVE");
    }

    #[test]
    fn text_attributes_refuse_control_characters_and_great_length() {
        assert_eq!(text_problem("Kurta, red"), None);
        assert!(text_problem("two\nlines").is_some());
        assert!(text_problem(&"x".repeat(MAX_TEXT_CHARS + 1)).is_some());
        assert_eq!(text_problem(&"é".repeat(MAX_TEXT_CHARS)), None);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut current = ProductAttributes {
            name: "Kurta".into(),
            color: "Red".into(),
            mrp_opt: Some(Mrp::from_paise(10_000)),
            ..ProductAttributes::default()
        };
        current
            .channel_mrp
            .insert(code("AMAZON"), Mrp::from_paise(12_000));
        current
            .channel_mrp
            .insert(code("MYNTRA"), Mrp::from_paise(13_000));
        let patch = ProductPatch {
            texts: vec![
                (TextField::Color, "Blue".into()),
                (TextField::Name, String::new()),
            ],
            mrp_opt: None,
            replace_channel_mrp: false,
            channel_mrp: vec![
                (code("AMAZON"), None),
                (code("AJIO"), Some(Mrp::from_paise(5))),
            ],
        };

        let next = patch.apply(&current);

        assert_eq!(next.name, "");
        assert_eq!(next.color, "Blue");
        assert_eq!(next.mrp_opt, current.mrp_opt);
        let channels: Vec<&str> = next.channel_mrp.keys().map(ChannelCode::as_str).collect();
        assert_eq!(channels, ["AJIO", "MYNTRA"]);
    }

    #[test]
    fn a_replacing_patch_drops_channel_prices_it_does_not_name() {
        let mut current = ProductAttributes::default();
        current
            .channel_mrp
            .insert(code("AMAZON"), Mrp::from_paise(12_000));
        let patch = ProductPatch {
            replace_channel_mrp: true,
            ..ProductPatch::default()
        };

        assert!(!patch.is_empty());
        assert!(patch.apply(&current).channel_mrp.is_empty());
        assert!(ProductPatch::default().is_empty());
    }
}
