//! Holds: typed reasons that keep an allocated order from picking, each with its own
//! release rule, and the per-channel rules that place them when an order arrives.
//!
//! Holds stack: an order is released for picking when its last open hold is released.
//! They are placed only when an order arrives (from the channel's hints and the
//! channel's rules); callers may release holds but never add one to an existing order.

use std::collections::BTreeMap;

/// What ends a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// Ends at an instant.
    Time,
    /// Ends on an event (a return pickup).
    Event,
    /// Ends when an operator releases it.
    Manual,
}

impl HoldKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "TIME",
            Self::Event => "EVENT",
            Self::Manual => "MANUAL",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "TIME" => Some(Self::Time),
            "EVENT" => Some(Self::Event),
            "MANUAL" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// The one event an event hold waits for today.
pub const RETURN_PICKED_UP: &str = "RETURN_PICKED_UP";

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Database id.
    pub id: i64,
    /// What ends it.
    pub kind: HoldKind,
    /// For a time hold, when it ends (µs).
    pub release_after_opt: Option<i64>,
    /// For an event hold, the event (`RETURN_PICKED_UP`).
    pub event: String,
    /// For a return-pickup hold, the channel order id whose return it waits for.
    pub event_ref: String,
    /// Why it was placed.
    pub reason: String,
    /// When it was placed (µs).
    pub created_at: i64,
    /// When it was released (µs), if it was.
    pub released_at_opt: Option<i64>,
    /// Who released it.
    pub released_by: String,
    /// Why it was released.
    pub release_reason: String,
}

impl Hold {
    /// Whether the hold still holds the order.
    pub fn is_open(&self) -> bool {
        self.released_at_opt.is_none()
    }

    /// The id shown to callers: `H-<n>`.
    pub fn public_id(&self) -> String {
        format!("H-{}", self.id)
    }

    /// Parses `H-<n>` (any case).
    pub fn parse_public_id(text: &str) -> Option<i64> {
        let digits = text
            .strip_prefix("H-")
            .or_else(|| text.strip_prefix("h-"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|id: &i64| *id > 0)
    }

    /// How the hold ends, in words.
    pub fn release_rule(&self) -> String {
        match self.kind {
            HoldKind::Time => match self.release_after_opt {
                Some(at) => format!(
                    "released automatically at {}",
                    kosha_runtime::time::format_micros(at)
                ),
                None => "released at its time".to_string(),
            },
            HoldKind::Event => format!(
                "released when the return of channel order `{}` is picked up",
                self.event_ref
            ),
            HoldKind::Manual => "released only by an operator (ReleaseHold)".to_string(),
        }
    }
}

/// A rule that places a hold on arriving orders of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HoldRule {
    /// An order that carries a dispatch-after time in the future is held until then.
    DispatchAfter,
    /// A replacement order is held until the return of the order it replaces is picked up.
    ReturnPickup,
    /// Every order is held until an operator releases it.
    Manual,
}

impl HoldRule {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DispatchAfter => "dispatch-after",
            Self::ReturnPickup => "return-pickup",
            Self::Manual => "manual",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "dispatch-after" => Some(Self::DispatchAfter),
            "return-pickup" => Some(Self::ReturnPickup),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// A hold to place on a new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    /// What ends it.
    pub kind: HoldKind,
    /// For a time hold, when it ends (µs).
    pub release_after_opt: Option<i64>,
    /// For an event hold, the event.
    pub event: String,
    /// For a return-pickup hold, the channel order id it waits for.
    pub event_ref: String,
    /// Why, naming the rule.
    pub reason: String,
}

/// The hold rules of every channel, from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldRules {
    by_channel: BTreeMap<String, Vec<HoldRule>>,
}

impl HoldRules {
    /// Parses `CHANNEL=rule,CHANNEL=rule…` where a rule is `dispatch-after`,
    /// `return-pickup` or `manual`; a channel may appear several times. Empty means none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_channel: BTreeMap<String, Vec<HoldRule>> = BTreeMap::new();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let Some((channel, rule)) = entry.split_once('=') else {
                return Err(format!("`{entry}` is not CHANNEL=rule"));
            };
            let channel = channel.trim();
            if kosha_runtime::validate::channel_code("channel", channel).is_err() {
                return Err(format!("`{channel}` in `{entry}` is not a channel code"));
            }
            let Some(rule) = HoldRule::parse(rule.trim()) else {
                return Err(format!(
                    "`{}` in `{entry}` is not a hold rule (dispatch-after, return-pickup, manual)",
                    rule.trim()
                ));
            };
            let rules = by_channel.entry(channel.to_string()).or_default();
            if !rules.contains(&rule) {
                rules.push(rule);
                rules.sort();
            }
        }
        Ok(Self { by_channel })
    }

    /// The rules of one channel.
    pub fn for_channel(&self, channel: &str) -> &[HoldRule] {
        self.by_channel
            .get(channel)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The holds a new order of `channel` gets, from its hints, at instant `now`.
    ///
    /// A dispatch-after time already past places no hold: the order may be packed now.
    pub fn holds_for(
        &self,
        channel: &str,
        dispatch_after_opt: Option<i64>,
        replacement_for: &str,
        now: i64,
    ) -> Vec<NewHold> {
        let mut holds = Vec::new();
        for rule in self.for_channel(channel) {
            match rule {
                HoldRule::DispatchAfter => {
                    if let Some(at) = dispatch_after_opt.filter(|at| *at > now) {
                        holds.push(NewHold {
                            kind: HoldKind::Time,
                            release_after_opt: Some(at),
                            event: String::new(),
                            event_ref: String::new(),
                            reason: format!(
                                "{channel} orders are not packed before their dispatch-after time"
                            ),
                        });
                    }
                }
                HoldRule::ReturnPickup => {
                    if !replacement_for.is_empty() {
                        holds.push(NewHold {
                            kind: HoldKind::Event,
                            release_after_opt: None,
                            event: RETURN_PICKED_UP.to_string(),
                            event_ref: replacement_for.to_string(),
                            reason: format!(
                                "{channel} replacement orders wait for the return pickup of \
                                 the order they replace"
                            ),
                        });
                    }
                }
                HoldRule::Manual => holds.push(NewHold {
                    kind: HoldKind::Manual,
                    release_after_opt: None,
                    event: String::new(),
                    event_ref: String::new(),
                    reason: format!("{channel} orders are held until an operator releases them"),
                }),
            }
        }
        holds
    }

    /// The rules in configuration syntax, for the startup log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (channel, rules) in &self.by_channel {
            for rule in rules {
                parts.push(format!("{channel}={}", rule.as_str()));
            }
        }
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_bad_entries_name_themselves() {
        let rules =
            HoldRules::parse("FLIPKART=dispatch-after, PAYTM=return-pickup,PAYTM=manual").unwrap();
        assert_eq!(rules.for_channel("FLIPKART"), &[HoldRule::DispatchAfter]);
        assert_eq!(
            rules.for_channel("PAYTM"),
            &[HoldRule::ReturnPickup, HoldRule::Manual]
        );
        assert!(rules.for_channel("AMAZON").is_empty());
        assert_eq!(HoldRules::parse("").unwrap(), HoldRules::default());

        assert!(
            HoldRules::parse("FLIPKART")
                .unwrap_err()
                .contains("FLIPKART")
        );
        assert!(
            HoldRules::parse("FLIPKART=later")
                .unwrap_err()
                .contains("later")
        );
        assert!(
            HoldRules::parse("flipkart=manual")
                .unwrap_err()
                .contains("flipkart")
        );
    }

    #[test]
    fn a_dispatch_after_time_in_the_past_places_no_hold() {
        let rules = HoldRules::parse("FLIPKART=dispatch-after").unwrap();

        let future = rules.holds_for("FLIPKART", Some(2_000), "", 1_000);
        let past = rules.holds_for("FLIPKART", Some(500), "", 1_000);
        let other_channel = rules.holds_for("AMAZON", Some(2_000), "", 1_000);

        assert_eq!(future.len(), 1);
        assert_eq!(future[0].kind, HoldKind::Time);
        assert_eq!(future[0].release_after_opt, Some(2_000));
        assert!(past.is_empty());
        assert!(other_channel.is_empty());
    }

    #[test]
    fn replacement_orders_wait_for_the_return_pickup() {
        let rules = HoldRules::parse("PAYTM=return-pickup").unwrap();

        let holds = rules.holds_for("PAYTM", None, "PT-1", 0);

        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].kind, HoldKind::Event);
        assert_eq!(holds[0].event_ref, "PT-1");
        assert!(rules.holds_for("PAYTM", None, "", 0).is_empty());
    }

    #[test]
    fn hold_ids_round_trip() {
        assert_eq!(Hold::parse_public_id("H-12"), Some(12));
        assert_eq!(Hold::parse_public_id("h-3"), Some(3));
        assert_eq!(Hold::parse_public_id("H-"), None);
        assert_eq!(Hold::parse_public_id("12"), None);
    }
}
