//! The crosswalk and audit bookkeeping after an outbound write.

use crate::audit::{AuditEntry, Direction, Outcome};
use crate::crosswalk::Link;
use crate::dataverse::Opportunity;
use crate::engine::claim::Lease;
use crate::engine::{Engine, SyncError};
use crate::partner_center::Referral;
use crate::store::{LinkWrite, SyncRecord};

/// Both sides as this sync leaves them.
pub(super) struct Synced<'a> {
    /// The referral after the writes and its fingerprint; `None` when Partner Center holds
    /// changes this run did not bring to the CRM, so the link keeps the referral as last
    /// synced (fingerprint, eTag, time) and the inbound direction still sees them as new.
    pub referral: Option<(&'a Referral, String)>,
    /// The opportunity as read and sent: its fingerprint is what was synced.
    pub sent: &'a Opportunity,
    /// The opportunity after the connector's own write-back (etag, modifiedon).
    pub written: &'a Opportunity,
}

/// Stores the link conditionally (created when `link.version` is 0, else only while it is
/// still at the version read) together with the sync's audit entries and, when this is the
/// sync's last store write, the release of its `lease`: all or nothing. A lost race is a
/// retry.
pub(super) async fn put_link(
    engine: &Engine,
    mut link: Link,
    synced: Synced<'_>,
    audit: &[AuditEntry],
    lease: Option<&Lease>,
) -> Result<Link, SyncError> {
    // The adapters use the previous link's version and opportunity (unchanged here).
    let previous = (link.version > 0).then(|| link.clone());
    if let Some((referral, pc_hash)) = synced.referral {
        link.pc_etag = referral.e_tag.clone();
        link.pc_updated = referral.updated_date_time.as_ref().map(|t| t.0.clone());
        link.pc_hash = Some(pc_hash);
    }
    link.dv_hash = Some(engine.mapping.outbound_hash(synced.sent, &engine.columns));
    link.dv_etag = synced.written.etag.clone();
    link.dv_modified = synced.written.modifiedon.clone();
    let release: Vec<&str> = lease.map(Lease::key).into_iter().collect();
    let record = SyncRecord {
        link: Some(LinkWrite {
            link: &link,
            previous: previous.as_ref(),
        }),
        audit,
        release: &release,
    };
    let stored = engine.store.finish_sync(record).await?;
    if let Some(lease) = lease {
        lease.mark_released();
    }
    stored.ok_or_else(|| SyncError::permanent("the store wrote a link but did not return it"))
}

pub(super) fn entry(
    action: &str,
    outcome: Outcome,
    opportunity_id: &str,
    referral_id: Option<&str>,
) -> AuditEntry {
    let e = AuditEntry::new(Direction::Outbound, action, outcome).opportunity(opportunity_id);
    match referral_id {
        Some(r) => e.referral(r),
        None => e,
    }
}

pub(super) async fn append(engine: &Engine, entry: &AuditEntry) -> Result<(), SyncError> {
    Ok(engine.store.append_audit(entry).await?)
}
