//! `--since` values: an RFC 3339 instant, a date (midnight UTC), or a duration back from now.

use std::time::Duration;

use cosell::duration_text::parse_duration;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// Parses `2026-01-31T12:00:00Z`, `2026-01-31`, or a duration such as `90m`, `24h`, `7d`, `2w`.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = text.trim();
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(at);
    }
    if let Ok(date) = Date::parse(t, format_description!("[year]-[month]-[day]")) {
        return Ok(date.midnight().assume_utc());
    }
    let back = parse_days(t)
        .or_else(|| parse_duration(t).ok())
        .ok_or_else(|| {
            format!("'{text}' is not a date (2026-01-31), a date-time (2026-01-31T12:00:00Z) or a duration (24h, 7d)")
        })?;
    now.checked_sub(time::Duration::try_from(back).map_err(|e| e.to_string())?)
        .ok_or_else(|| format!("'{text}' reaches too far back"))
}

/// `<n>d` and `<n>w`, which the settings' duration syntax does not have.
fn parse_days(t: &str) -> Option<Duration> {
    let (num, unit) = t.split_at(t.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    let days = match unit {
        "d" => n,
        "w" => n.checked_mul(7)?,
        _ => return None,
    };
    days.checked_mul(24 * 3600).map(Duration::from_secs)
}

/// RFC 3339 text of an instant, as the APIs and the store write it.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn reads_instants_dates_and_durations() {
        let now = datetime!(2026-03-10 12:00 UTC);
        assert_eq!(
            parse_since("2026-01-31T08:30:00Z", now).unwrap(),
            datetime!(2026-01-31 08:30 UTC)
        );
        assert_eq!(
            parse_since("2026-01-31", now).unwrap(),
            datetime!(2026-01-31 00:00 UTC)
        );
        assert_eq!(
            parse_since("24h", now).unwrap(),
            datetime!(2026-03-09 12:00 UTC)
        );
        assert_eq!(
            parse_since("7d", now).unwrap(),
            datetime!(2026-03-03 12:00 UTC)
        );
        assert_eq!(
            parse_since("2w", now).unwrap(),
            datetime!(2026-02-24 12:00 UTC)
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("2026-13-01", now).is_err());
        assert!(parse_since("", now).is_err());
    }
}
