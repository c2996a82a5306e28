//! Whether a referral needs syncing at all: a delivery for a version already synced (or
//! older) is dropped, and so is a non-co-sell referral when "sync co-sell only" is on.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crosswalk::Link;
use crate::partner_center::Referral;

/// Why this referral version is not newer than what the crosswalk holds, if it is not.
pub(super) fn already_synced(referral: &Referral, link: &Link) -> Option<String> {
    if let (Some(etag), Some(seen)) = (&referral.e_tag, &link.pc_etag) {
        if etag == seen {
            return Some("duplicate delivery: this referral version is already synced".into());
        }
    }
    let updated = referral.updated_date_time.as_ref()?.parse().ok()?;
    let seen = OffsetDateTime::parse(link.pc_updated.as_deref()?, &Rfc3339).ok()?;
    (updated < seen)
        .then(|| format!("stale delivery: referral updated {updated} but {seen} is already synced"))
}

/// The co-sell rule for "sync co-sell only": a referral is co-sell when it is shared with
/// Microsoft (`type: Shared`), which is how Partner Center marks deals Microsoft takes part
/// in (co-sell and Microsoft's own incoming referrals); `Independent` referrals stay private
/// to the partner and are not synced.
pub(super) fn is_co_sell(referral: &Referral) -> bool {
    referral.is_co_sell()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partner_center::wire::WireTime;

    fn referral(etag: &str, updated: &str) -> Referral {
        Referral {
            e_tag: Some(etag.into()),
            updated_date_time: Some(WireTime(updated.into())),
            ..Referral::default()
        }
    }

    fn link(etag: &str, updated: &str) -> Link {
        let mut l = Link::new("r", "o");
        l.pc_etag = Some(etag.into());
        l.pc_updated = Some(updated.into());
        l
    }

    #[test]
    fn same_etag_or_older_timestamp_is_already_synced() {
        let seen = link("e2", "2026-01-02T10:00:00.1234567Z");
        let same = referral("e2", "2026-01-02T10:00:00.1234567Z");
        assert!(already_synced(&same, &seen).unwrap().contains("duplicate"));
        let older = referral("e1", "2026-01-01T10:00:00Z");
        assert!(already_synced(&older, &seen).unwrap().contains("stale"));
        let newer = referral("e3", "2026-01-03T10:00:00Z");
        assert_eq!(already_synced(&newer, &seen), None);
        // Same instant with a new eTag is a change the timestamp's precision hid: sync it.
        let same_time = referral("e3", "2026-01-02T10:00:00.1234567Z");
        assert_eq!(already_synced(&same_time, &seen), None);
        let unknown_time = referral("e3", "not a time");
        assert_eq!(already_synced(&unknown_time, &seen), None);
    }
}
