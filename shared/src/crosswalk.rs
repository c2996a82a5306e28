//! The crosswalk: which Partner Center referral is synced with which Dataverse opportunity,
//! and what each side looked like the last time the two were reconciled. A link is 1:1 in
//! both directions; the [`Store`](crate::store::Store) enforces that.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A fingerprint no referral or opportunity has, recorded as `pc_hash` / `dv_hash` when that
/// side holds changes the other side has not taken yet although its current fingerprint is
/// the one last synced (a conflict resolved for the other side's winners can bring it back
/// to exactly that). Keeping the old fingerprint would then make the side look synced, and
/// neither direction would ever look at the pair again.
pub const NOT_SYNCED: &str = "not-synced";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub referral_id: String,
    pub opportunity_id: String,
    /// Referral eTag seen at the last sync (for `If-Match` on the next write).
    pub pc_etag: Option<String>,
    /// Opportunity `@odata.etag` seen at the last sync.
    pub dv_etag: Option<String>,
    /// Referral `updatedDateTime` last synced.
    pub pc_updated: Option<String>,
    /// Opportunity `modifiedon` last synced.
    pub dv_modified: Option<String>,
    /// Hash of the mapped fields last written to / read from Partner Center.
    pub pc_hash: Option<String>,
    /// Hash of the mapped fields last written to / read from Dataverse.
    pub dv_hash: Option<String>,
    /// Optimistic-concurrency counter owned by the store: 0 before the first write, 1 after
    /// creation, +1 on every successful `put_link`. Callers pass back what they read.
    pub version: u64,
    /// Set by the store on every write.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Link {
    /// A link not yet stored (version 0); sync state is filled in by the caller.
    pub fn new(referral_id: impl Into<String>, opportunity_id: impl Into<String>) -> Self {
        Link {
            referral_id: referral_id.into(),
            opportunity_id: opportunity_id.into(),
            pc_etag: None,
            dv_etag: None,
            pc_updated: None,
            dv_modified: None,
            pc_hash: None,
            dv_hash: None,
            version: 0,
            updated_at: OffsetDateTime::now_utc(),
        }
    }
}
