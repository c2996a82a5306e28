//! Timestamps as fixed-width UTC strings, so that string order is time order (sort keys,
//! SQLite `ORDER BY`), and epoch helpers for TTL attributes.

use std::time::Duration;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const SORTABLE: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// `2026-11-03T10:15:00.123456789Z`: always 30 characters for years 0000-9999.
pub(crate) fn sortable(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(SORTABLE)
        .expect("a UTC time within year 0000-9999 formats")
}

pub(crate) fn epoch_seconds(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn epoch_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn now_millis() -> i64 {
    epoch_millis(OffsetDateTime::now_utc())
}

/// Saturating conversion for durations used as TTLs and delays.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds, rounded up, for APIs that only take seconds.
pub(crate) fn ceil_seconds(d: Duration) -> i64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sortable_is_fixed_width_and_orders_like_time() {
        let a = datetime!(2026-01-02 03:04:05.5 +02:00);
        let b = datetime!(2026-01-02 01:04:05.6 UTC);
        assert_eq!(sortable(a), "2026-01-02T01:04:05.500000000Z");
        assert!(sortable(a) < sortable(b));
        assert_eq!(sortable(a).len(), sortable(b).len());
    }

    #[test]
    fn ceil_seconds_rounds_partial_seconds_up() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ceil_seconds(Duration::from_millis(2001)), 3);
    }
}
