//! Quantities, money, dates and the small enumerations of purchase orders.

use std::fmt;

use kosha_runtime::validate;

/// A positive whole number of units, at most [`validate::MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

impl Quantity {
    /// Checks a quantity sent as a number.
    pub fn new(value: i64) -> Result<Self, String> {
        if value <= 0 {
            return Err(format!("quantity must be at least 1, got {value}"));
        }
        if value > validate::MAX_QUANTITY {
            return Err(format!(
                "quantity {value} is more than {}",
                validate::MAX_QUANTITY
            ));
        }
        Ok(Self(value))
    }

    /// Reads a quantity written in a file: `3` or `3.00`; not `1,000`, `12.5`, `-3`, `0`.
    pub fn parse(text: &str) -> Result<Self, String> {
        validate::parse_quantity(text).map(Self)
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// The cost of one unit, in whole paise; never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitCost(i64);

impl UnitCost {
    /// Reads a decimal with at most two decimals (`499`, `499.5`, `0`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "unit cost is blank: write the cost of one unit, e.g. 499.50 (0 is allowed)".into(),
            );
        }
        validate::parse_money(text).map(Self)
    }

    /// A cost read back from storage.
    pub fn from_paise(paise: i64) -> Self {
        debug_assert!(paise >= 0);
        Self(paise)
    }

    /// Whole paise.
    pub fn paise(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UnitCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&validate::format_money(self.0))
    }
}

/// Earliest and latest years an expected arrival date may name.
const EARLIEST_YEAR: i32 = 2000;
const LATEST_YEAR: i32 = 2100;

/// When a PO line is expected to arrive; may be unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedDate(Option<time::Date>);

impl ExpectedDate {
    /// Reads `YYYY-MM-DD`; blank means not known.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self(None));
        }
        let not_a_date = || format!("`{text}` is not a date: write YYYY-MM-DD, e.g. 2024-03-31");
        let parts: Vec<&str> = text.split('-').collect();
        let [year, month, day] = parts.as_slice() else {
            return Err(not_a_date());
        };
        let all_digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        if !(all_digits(year, 4) && all_digits(month, 2) && all_digits(day, 2)) {
            return Err(not_a_date());
        }
        let year: i32 = year.parse().map_err(|_| not_a_date())?;
        // A year outside these is a default or a typo (0000, 9999), not an arrival date.
        if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
            return Err(format!(
                "`{text}` is not a plausible arrival date: the year lies between \
                 {EARLIEST_YEAR} and {LATEST_YEAR}"
            ));
        }
        let month: u8 = month.parse().map_err(|_| not_a_date())?;
        let day: u8 = day.parse().map_err(|_| not_a_date())?;
        let month = time::Month::try_from(month)
            .map_err(|_| format!("`{text}` is not a date: there is no month {month}"))?;
        let date = time::Date::from_calendar_date(year, month, day)
            .map_err(|_| format!("`{text}` is not a date: {month} {year} has no day {day}"))?;
        Ok(Self(Some(date)))
    }

    /// `YYYY-MM-DD`, or empty when not known (also the stored form).
    pub fn to_text(self) -> String {
        match self.0 {
            Some(date) => {
                format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day()
                )
            }
            None => String::new(),
        }
    }
}

/// How the bulk order of an outward PO is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FulfilmentType {
    /// Allocate what is there; the rest waits for the next retry (the B2B default).
    Partial,
    /// Allocate only when every line can be allocated in full.
    BlockComplete,
}

impl FulfilmentType {
    /// The stored and written form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Partial => "PARTIAL",
            Self::BlockComplete => "BLOCK_COMPLETE",
        }
    }

    /// Reads a cell: `PARTIAL` or `BLOCK_COMPLETE`, in any case, with `_`, `-` or a space.
    pub fn parse(text: &str) -> Result<Self, String> {
        let normalised: String = text
            .chars()
            .map(|c| {
                if c == ' ' || c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        match normalised.as_str() {
            "PARTIAL" => Ok(Self::Partial),
            "BLOCK_COMPLETE" => Ok(Self::BlockComplete),
            _ => Err(format!(
                "`{text}` is not a fulfilment type: write PARTIAL or BLOCK_COMPLETE"
            )),
        }
    }
}

/// The QC grade a B2B order is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QcGrade {
    /// Passed QC.
    Pass,
    /// Failed QC.
    Fail,
}

impl QcGrade {
    /// The stored and written form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
        }
    }

    /// Reads a cell: `PASS` or `FAIL`, in any case.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "PASS" => Ok(Self::Pass),
            "FAIL" => Ok(Self::Fail),
            _ => Err(format!("`{text}` is not a QC grade: write PASS or FAIL")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_quantities_accept_whole_decimals_only() {
        assert_eq!(Quantity::parse("1.00").unwrap().get(), 1);
        for bad in ["1,000", "12.5", "abc", "-3", "0", ""] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
    }

    #[test]
    fn costs_are_non_negative_decimals() {
        assert_eq!(UnitCost::parse("0").unwrap().paise(), 0);
        assert_eq!(UnitCost::parse("499.5").unwrap().to_string(), "499.50");
        for bad in ["", "-1", "1,200", "abc", "1.234"] {
            assert!(UnitCost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_must_exist_on_the_calendar() {
        assert_eq!(
            ExpectedDate::parse("2024-02-29").unwrap().to_text(),
            "2024-02-29"
        );
        assert_eq!(ExpectedDate::parse("").unwrap().to_text(), "");
        assert!(
            ExpectedDate::parse("2023-02-29")
                .unwrap_err()
                .contains("no day 29")
        );
        assert!(
            ExpectedDate::parse("2024-13-01")
                .unwrap_err()
                .contains("no month 13")
        );
        for bad in ["31/03/2024", "2024-3-1", "20240301", "tomorrow"] {
            assert!(ExpectedDate::parse(bad).is_err(), "{bad}");
        }
        for implausible in ["0000-01-01", "9999-12-31", "1999-12-31"] {
            let error = ExpectedDate::parse(implausible).unwrap_err();
            assert!(error.contains("plausible"), "{error}");
        }
    }

    #[test]
    fn fulfilment_types_and_grades_read_loosely_written_cells() {
        assert_eq!(
            FulfilmentType::parse("block complete").unwrap(),
            FulfilmentType::BlockComplete
        );
        assert_eq!(
            FulfilmentType::parse("Partial").unwrap(),
            FulfilmentType::Partial
        );
        assert!(FulfilmentType::parse("ALL").is_err());
        assert_eq!(QcGrade::parse("fail").unwrap(), QcGrade::Fail);
        assert!(QcGrade::parse("B").is_err());
    }
}
