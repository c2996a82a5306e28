//! OData literals and query strings for the Dataverse Web API: string quoting, date-time
//! literals, and the `Prefer` values for paging and change tracking.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Dataverse's largest page.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// A string literal: single-quoted, inner quotes doubled (`O'Bryan` -> `'O''Bryan'`).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A DateTimeOffset literal in UTC (`2024-05-01T00:00:00Z`), unquoted as OData wants it.
/// Dataverse takes at most 7 fractional digits (its 100 ns ticks): finer time is cut, which
/// moves a `ge` bound earlier, never later, so no row is skipped.
pub fn datetime(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let ticks = utc.nanosecond() / 100 * 100;
    utc.replace_nanosecond(ticks)
        .expect("a whole number of ticks is a valid nanosecond")
        .format(&Rfc3339)
        .expect("a UTC date-time formats as RFC 3339")
}

/// `Prefer` for a paged read.
pub fn prefer_paged(page_size: u32) -> String {
    format!("odata.maxpagesize={}", page_size.clamp(1, MAX_PAGE_SIZE))
}

/// `Prefer` for a change-tracking read.
pub fn prefer_track_changes(page_size: u32) -> String {
    format!("odata.track-changes,{}", prefer_paged(page_size))
}

/// A GUID as Dataverse writes it in a URL key, or `None` when `id` is not a GUID (so a
/// caller's text can never reshape the path).
pub fn guid(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// The GUID inside a record URL such as `.../opportunities(<id>)`.
pub fn id_from_entity_url(url: &str) -> Option<String> {
    let open = url.rfind('(')?;
    let close = url[open..].find(')')? + open;
    guid(&url[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn quotes_double_inner_single_quotes() {
        assert_eq!(quote("O'Bryan"), "'O''Bryan'");
        assert_eq!(quote("a''b"), "'a''''b'");
    }

    #[test]
    fn datetime_literal_is_utc() {
        let t = datetime!(2024-05-01 02:30:00 +02:00);
        assert_eq!(super::datetime(t), "2024-05-01T00:30:00Z");
    }

    #[test]
    fn datetime_literal_has_at_most_seven_fractional_digits() {
        let t = datetime!(2024-05-01 00:00:00.123456789 UTC);
        assert_eq!(super::datetime(t), "2024-05-01T00:00:00.1234567Z");
    }

    #[test]
    fn page_size_is_capped() {
        assert_eq!(prefer_paged(9000), "odata.maxpagesize=5000");
        assert_eq!(
            prefer_track_changes(10),
            "odata.track-changes,odata.maxpagesize=10"
        );
    }

    #[test]
    fn ids_must_be_guids() {
        assert_eq!(guid("not-a-guid) or (x"), None);
        assert_eq!(
            id_from_entity_url(
                "http://h/api/data/v9.2/accounts(7EB682F1-CA75-E511-80D4-00155D2A68D1)"
            ),
            Some("7eb682f1-ca75-e511-80d4-00155d2a68d1".into())
        );
    }
}
