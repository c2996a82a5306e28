//! Dataverse -> Partner Center for one opportunity.
//!
//! The message only names the opportunity; the current row is always read. A flagged row
//! without a link gets a new co-sell referral (or adopts the one a crashed run created); a
//! linked row whose mapped values changed patches its referral, and the seller's
//! accept/decline or closing the opportunity moves the referral's status.

mod create;
mod customer;
mod failure;
mod record;
mod status;
mod update;
mod writeback;

use crate::audit::{AuditEntry, Direction, Outcome};
use crate::crosswalk::Link;
use crate::dataverse::{DataverseError, Opportunity};
use crate::engine::claim;
use crate::engine::{Engine, OutboundMessage, SyncError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    Created {
        referral_id: String,
    },
    Updated {
        referral_id: String,
    },
    /// Nothing new (our own echo, or no mapped field changed).
    Unchanged {
        referral_id: Option<String>,
    },
    /// Deliberately not synced (sync flag off, deleted row, ...).
    Skipped {
        reason: String,
    },
}

pub async fn sync_opportunity(
    engine: &Engine,
    message: &OutboundMessage,
) -> Result<OutboundOutcome, SyncError> {
    let id = message.opportunity_id.trim();
    // One sync per opportunity at a time: otherwise a slower worker holding an older read of
    // the row can write stale values after a newer sync recorded its fingerprints.
    let store = engine.store.as_ref();
    // The link is read while the lease is being taken (two round trips: the opportunity's
    // marker, then the link), and kept only when no earlier holder can have written it
    // since; otherwise it is read again under the lease.
    let (lease, early_link) = claim::take_reading(
        store,
        &claim::outbound(id),
        engine.options.sync_lease,
        store.get_link_by_opportunity(id),
    )
    .await?;
    let link = match early_link {
        Some(read) => read,
        None => store.get_link_by_opportunity(id).await,
    };
    let mut failure = None;
    let result = match link {
        Ok(link) => sync_held(engine, message, id, link, &lease, &mut failure).await,
        Err(e) => Err(e.into()),
    };
    // A failure's audit entry goes with the release: one store write, not two. (A sync
    // that stored its link may have given the lease back with it already.)
    lease
        .release_with(engine.store.as_ref(), failure.as_slice())
        .await;
    result
}

/// Syncs with the lease held; a failed sync leaves its audit entry in `failure`.
async fn sync_held(
    engine: &Engine,
    message: &OutboundMessage,
    id: &str,
    link: Option<Link>,
    lease: &claim::Lease,
    failure: &mut Option<AuditEntry>,
) -> Result<OutboundOutcome, SyncError> {
    if message.deleted {
        return skip(
            engine,
            id,
            link.as_ref(),
            "opportunity deleted in CRM; referral left as is",
        )
        .await;
    }
    let opp = match engine.dv.get_opportunity(id).await {
        Ok(o) => o,
        Err(DataverseError::NotFound { .. }) => {
            return skip(
                engine,
                id,
                link.as_ref(),
                "opportunity no longer exists in CRM",
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    if !sync_flag_on(engine, &opp) {
        return skip(engine, id, link.as_ref(), "sync flag is off").await;
    }
    let referral_id = link.as_ref().map(|l| l.referral_id.clone());
    let result = match link {
        Some(link) => {
            if link.dv_hash.as_deref() == Some(&engine.mapping.outbound_hash(&opp, &engine.columns))
            {
                return Ok(OutboundOutcome::Unchanged {
                    referral_id: Some(link.referral_id),
                });
            }
            update::sync_linked(engine, &opp, link, lease).await
        }
        None => create::sync_unlinked(engine, &opp, lease).await,
    };
    if let Err(e) = &result {
        *failure = Some(failure::record(engine, &opp, referral_id.as_deref(), e).await);
    }
    result
}

/// True when the row's sync flag column is set (a Yes/No column; tolerate 1 and "true").
fn sync_flag_on(engine: &Engine, opp: &Opportunity) -> bool {
    match opp.column(&engine.columns.sync_flag) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
        Some(serde_json::Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Not synced on purpose. Audited only for linked rows: a never-synced row changing is
/// the normal case and would flood the trail.
async fn skip(
    engine: &Engine,
    opportunity_id: &str,
    link: Option<&Link>,
    reason: &str,
) -> Result<OutboundOutcome, SyncError> {
    if let Some(link) = link {
        let entry = AuditEntry::new(Direction::Outbound, "skip", Outcome::Skipped)
            .referral(&link.referral_id)
            .opportunity(opportunity_id)
            .detail(reason);
        engine.store.append_audit(&entry).await?;
    }
    tracing::debug!(opportunity_id, reason, "outbound skipped");
    Ok(OutboundOutcome::Skipped {
        reason: reason.to_string(),
    })
}
