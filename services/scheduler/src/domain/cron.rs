//! Cron expressions of five fields, evaluated in UTC.
//!
//! `minute hour day-of-month month day-of-week`, each field a comma-separated list of
//! `*`, a number, a range `a-b`, or any of those with a step `/n` (`*/15`, `8-18/2`,
//! `5/10` meaning from 5 to the end in steps of 10). Day-of-week runs 0-7 with both 0 and
//! 7 meaning Sunday. As in classic cron, when both day-of-month and day-of-week are
//! restricted, a day matching either one runs. Names (`MON`, `JAN`) and the `@daily`
//! shorthands are not supported: they are rejected with a message, never misread.
//!
//! Every evaluation is in UTC; the process time zone is never consulted.

use time::{Date, Month, OffsetDateTime};

/// How far ahead [`CronExpr::next_after`] searches before deciding an expression never
/// fires (e.g. `0 0 30 2 *`, the 30th of February). Leap days recur within this window.
const SEARCH_YEARS: i32 = 9;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Whether day-of-month is anything but `*`; see the module docs for why it matters.
    day_of_month_restricted: bool,
    /// Whether day-of-week is anything but `*`.
    day_of_week_restricted: bool,
}

/// One field's name and range, for parsing and messages.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
    },
];

// === impl CronExpr ===

impl CronExpr {
    /// Parses an expression; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        }

        let mut masks = [0_u64; 5];
        for (index, (field, spec)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            masks[index] = parse_field(field, spec)
                .map_err(|why| format!("{} field `{field}`: {why}", spec.name))?;
        }

        // Sunday may be written 7; fold it onto 0.
        let mut days_of_week = masks[4];
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Self {
            minutes: masks[0],
            hours: masks[1],
            days_of_month: masks[2],
            months: masks[3],
            days_of_week,
            day_of_month_restricted: fields[2] != "*",
            day_of_week_restricted: fields[4] != "*",
        })
    }

    /// The first instant strictly after `after_micros` that the expression matches (always
    /// a whole minute), or `None` when there is none within the search window.
    pub fn next_after(&self, after_micros: i64) -> Option<i64> {
        let after_seconds = after_micros.div_euclid(1_000_000);
        let mut seconds = after_seconds - after_seconds.rem_euclid(60) + 60;
        let start_year = OffsetDateTime::from_unix_timestamp(seconds).ok()?.year();

        loop {
            let instant = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
            if instant.year() > start_year + SEARCH_YEARS {
                return None;
            }
            let date = instant.date();

            if !has(self.months, u32::from(u8::from(instant.month()))) {
                seconds = midnight_seconds(first_of_next_month(date)?);
                continue;
            }
            if !self.day_matches(date) {
                seconds = midnight_seconds(date.next_day()?);
                continue;
            }
            if !has(self.hours, u32::from(instant.hour())) {
                seconds = seconds - seconds.rem_euclid(3600) + 3600;
                continue;
            }
            if !has(self.minutes, u32::from(instant.minute())) {
                seconds += 60;
                continue;
            }
            return seconds.checked_mul(1_000_000);
        }
    }

    fn day_matches(&self, date: Date) -> bool {
        let day_of_month_matches = has(self.days_of_month, u32::from(date.day()));
        let weekday = u32::from(date.weekday().number_days_from_sunday());
        let day_of_week_matches = has(self.days_of_week, weekday);
        if self.day_of_month_restricted && self.day_of_week_restricted {
            day_of_month_matches || day_of_week_matches
        } else {
            day_of_month_matches && day_of_week_matches
        }
    }
}

fn has(mask: u64, value: u32) -> bool {
    mask & (1_u64 << value) != 0
}

fn midnight_seconds(date: Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp()
}

fn first_of_next_month(date: Date) -> Option<Date> {
    let (year, month) = match date.month() {
        Month::December => (date.year() + 1, Month::January),
        month => (date.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1).ok()
}

/// The set of values a field allows, as a bit mask.
fn parse_field(field: &str, spec: &FieldSpec) -> Result<u64, String> {
    let mut mask = 0_u64;
    for item in field.split(',') {
        let (range_text, step) = match item.split_once('/') {
            Some((range_text, step_text)) => {
                let step = parse_number(step_text)?;
                if step == 0 {
                    return Err("a step must be at least 1".to_string());
                }
                (range_text, Some(step))
            }
            None => (item, None),
        };

        let (low, high) = if range_text == "*" {
            (spec.min, spec.max)
        } else if let Some((low_text, high_text)) = range_text.split_once('-') {
            (parse_number(low_text)?, parse_number(high_text)?)
        } else {
            let value = parse_number(range_text)?;
            // `5/10` runs from 5 to the end of the range; a plain `5` is just 5.
            if step.is_some() {
                (value, spec.max)
            } else {
                (value, value)
            }
        };

        for value in [low, high] {
            if value < spec.min || value > spec.max {
                return Err(format!("{value} is outside {}-{}", spec.min, spec.max));
            }
        }
        if low > high {
            return Err(format!("range {low}-{high} runs backwards"));
        }

        let step = step.unwrap_or(1);
        let mut value = low;
        while value <= high {
            mask |= 1 << value;
            value += step;
        }
    }
    Ok(mask)
}

fn parse_number(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("a number is missing".to_string());
    }
    if !text.chars().all(|c| c.is_ascii_digit()) || text.len() > 4 {
        return Err(format!(
            "`{text}` is not a number (names like MON or JAN are not supported)"
        ));
    }
    text.parse::<u32>()
        .map_err(|_| format!("`{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn micros(instant: OffsetDateTime) -> i64 {
        instant.unix_timestamp() * 1_000_000
    }

    fn next(expression: &str, after: OffsetDateTime) -> OffsetDateTime {
        let cron = CronExpr::parse(expression).unwrap();
        let next = cron.next_after(micros(after)).unwrap();
        OffsetDateTime::from_unix_timestamp(next / 1_000_000).unwrap()
    }

    #[test]
    fn every_minute_fires_at_the_next_whole_minute() {
        assert_eq!(
            next("* * * * *", datetime!(2025-03-09 12:29:30 UTC)),
            datetime!(2025-03-09 12:30 UTC)
        );
        assert_eq!(
            next("* * * * *", datetime!(2025-03-09 12:30 UTC)),
            datetime!(2025-03-09 12:31 UTC)
        );
    }

    #[test]
    fn a_daily_time_is_utc_and_ignores_daylight_saving_changes() {
        // 2025-03-09 is the day New York moves its clocks forward.
        let first = next("30 12 * * *", datetime!(2025-03-09 00:00 UTC));
        let second = next("30 12 * * *", first);

        assert_eq!(first, datetime!(2025-03-09 12:30 UTC));
        assert_eq!(second, datetime!(2025-03-10 12:30 UTC));
    }

    #[test]
    fn steps_ranges_and_lists_combine() {
        let after = datetime!(2025-01-01 08:50 UTC);
        assert_eq!(
            next("*/15 8-18/2 * * *", after),
            datetime!(2025-01-01 10:00 UTC)
        );
        assert_eq!(next("5,35 9 * * *", after), datetime!(2025-01-01 09:05 UTC));
        assert_eq!(next("5/20 * * * *", after), datetime!(2025-01-01 09:05 UTC));
    }

    #[test]
    fn months_roll_over_into_the_next_year() {
        assert_eq!(
            next("0 0 1 1 *", datetime!(2025-06-15 10:00 UTC)),
            datetime!(2026-01-01 0:00 UTC)
        );
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_match_either() {
        // 2025-01-01 is a Wednesday: the 15th or the next Monday, whichever comes first.
        assert_eq!(
            next("0 6 15 * 1", datetime!(2025-01-01 00:00 UTC)),
            datetime!(2025-01-06 6:00 UTC)
        );
        assert_eq!(
            next("0 6 * * 7", datetime!(2025-01-01 00:00 UTC)),
            datetime!(2025-01-05 6:00 UTC)
        );
    }

    #[test]
    fn leap_days_are_found_and_impossible_dates_never_fire() {
        assert_eq!(
            next("0 0 29 2 *", datetime!(2025-01-01 00:00 UTC)),
            datetime!(2028-02-29 0:00 UTC)
        );
        let never = CronExpr::parse("0 0 30 2 *").unwrap();
        assert_eq!(never.next_after(0), None);
    }

    #[test]
    fn bad_expressions_name_the_field() {
        for (expression, expected) in [
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute field"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("*/0 * * * *", "step must be at least 1"),
            ("* 5-1 * * *", "runs backwards"),
            ("* * * JAN *", "not supported"),
            ("1,,2 * * * *", "missing"),
        ] {
            let error = CronExpr::parse(expression).unwrap_err();
            assert!(error.contains(expected), "{expression}: {error}");
        }
    }
}
