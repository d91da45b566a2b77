//! Instants as stored (microseconds since the Unix epoch, UTC) and as sent
//! (`google.protobuf.Timestamp`). Nothing here looks at a time zone.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

use crate::error::Error;

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

/// A stored instant as a protobuf timestamp.
pub fn to_timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A stored optional instant as an optional timestamp.
pub fn to_timestamp_opt(micros_opt: Option<i64>) -> Option<Timestamp> {
    micros_opt.map(to_timestamp)
}

/// A protobuf timestamp as a stored instant; `field` names it in the error.
pub fn from_timestamp(timestamp: &Timestamp, field: &str) -> Result<i64, Error> {
    // Years 1 to 9999, as the protobuf contract allows.
    const MIN_SECONDS: i64 = -62_135_596_800;
    const MAX_SECONDS: i64 = 253_402_300_799;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&timestamp.seconds)
        || !(0..1_000_000_000).contains(&timestamp.nanos)
    {
        return Err(Error::invalid(field, "timestamp out of range"));
    }
    Ok(timestamp.seconds * 1_000_000 + i64::from(timestamp.nanos) / 1_000)
}

/// RFC 3339 text of a stored instant, for logs and messages.
pub fn format_micros(micros: i64) -> String {
    let nanos = i128::from(micros) * 1_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|instant| {
            instant
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_001] {
            assert_eq!(from_timestamp(&to_timestamp(micros), "t").unwrap(), micros);
        }
    }

    #[test]
    fn out_of_range_timestamps_are_rejected_with_the_field_name() {
        let error = from_timestamp(
            &Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            },
            "due_time",
        );
        assert!(error.unwrap_err().to_string().contains("due_time"));
        assert!(
            from_timestamp(
                &Timestamp {
                    seconds: 0,
                    nanos: -1
                },
                "t"
            )
            .is_err()
        );
    }

    #[test]
    fn formatting_is_utc() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00Z");
    }
}
