//! Partner Center -> Dataverse for one referral.
//!
//! The message is only a pointer: the referral is always read fresh, compared with the
//! crosswalk (duplicate, stale or echo -> nothing to do), mapped, and written to its
//! opportunity (with account and contact) under `If-Match`. The crosswalk then records both
//! sides' versions and fingerprints, so the outbound direction recognises our write when
//! Dataverse reports it and does not send it back.

mod conflict;
mod gate;
mod origin;
mod pair;
mod parties;
mod state;
mod trail;
mod write;

use serde_json::Value;

use crate::crosswalk::{Link, NOT_SYNCED};
use crate::dataverse::{DataverseError, Opportunity};
use crate::engine::claim;
use crate::engine::referral_context::inbound_context;
use crate::engine::{Engine, InboundMessage, SyncError};
use crate::mapping::{with_checkmark, TargetState};
use crate::partner_center::{PartnerCenterError, Referral};
use crate::store::{LinkWrite, StoreError, SyncRecord};

use trail::Trail;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    Created {
        opportunity_id: String,
    },
    Updated {
        opportunity_id: String,
    },
    /// Nothing new (stale or duplicate event, or our own echo).
    Unchanged {
        opportunity_id: Option<String>,
    },
    /// Deliberately not synced (e.g. "sync co-sell only" and the referral is not co-sell).
    Skipped {
        reason: String,
    },
}

/// Syncs one referral and appends one audit entry saying what happened (a failed one, with
/// the error, when it returns `Err`).
pub async fn sync_referral(
    engine: &Engine,
    message: &InboundMessage,
) -> Result<InboundOutcome, SyncError> {
    sync_referral_within(engine, message, None).await
}

/// [`sync_referral`] run by an outbound sync that holds the lease of `outbound_held` (the
/// opportunity), which the inbound sync of a linked pair otherwise takes itself.
pub(crate) async fn sync_referral_within(
    engine: &Engine,
    message: &InboundMessage,
    outbound_held: Option<&str>,
) -> Result<InboundOutcome, SyncError> {
    let referral_id = message.referral_id.trim();
    // One sync per referral at a time: two parallel deliveries would both create the
    // opportunity, or a slower worker holding an older read of the referral could write it
    // over a newer one after that newer sync recorded its fingerprints.
    let store = engine.store.as_ref();
    // The link is read while the lease is being taken, and kept only when the claim shows
    // no earlier holder can have written it since (a first sync); otherwise it is read
    // again under the lease.
    let (lease, early_link) = claim::take_reading(
        store,
        &format!("inbound/{referral_id}"),
        engine.options.sync_lease,
        store.get_link_by_referral(referral_id),
    )
    .await?;
    let mut trail = Trail::new(referral_id);
    // Other records' leases this sync took on the way (see `origin`).
    let mut held = Vec::new();
    let result = run(
        engine,
        referral_id,
        early_link,
        outbound_held,
        &mut trail,
        &mut held,
    )
    .await;
    let result = match result {
        // The link, the audit entry saying so and the lease release in one store write; a
        // link that lost its race leaves nothing behind and the sync is retried.
        Ok((outcome, write)) => {
            let done = Ok(outcome);
            let entry = trail.entry(&done);
            // The other leases taken on the way go back in the same write.
            let keys: Vec<&str> = std::iter::once(lease.key())
                .chain(held.iter().map(claim::Lease::key))
                .collect();
            let record = SyncRecord {
                link: write.as_ref().map(PendingLink::as_write),
                audit: std::slice::from_ref(&entry),
                release: &keys,
            };
            let finished = store.finish_sync(record).await;
            if finished.is_ok() {
                held.iter().for_each(claim::Lease::mark_released);
            }
            release_all(store, held).await;
            match finished {
                Ok(_) => {
                    tracing::info!(referral_id, outcome = ?done, "inbound sync done");
                    return done;
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => {
            release_all(store, std::mem::take(&mut held)).await;
            Err(e)
        }
    };
    let audit = match &result {
        Err(e) if trail.is_deferred() => {
            tracing::info!(referral_id, reason = %e, "inbound sync put off");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(referral_id, error = %e, "inbound sync failed");
            vec![trail.entry(&result)]
        }
        Ok(_) => vec![trail.entry(&result)],
    };
    lease.release_with(store, &audit).await;
    result
}

async fn release_all(store: &dyn crate::store::Store, leases: Vec<claim::Lease>) {
    for lease in leases {
        lease.release(store).await;
    }
}

/// The crosswalk write a sync ends with: the new link and the one it replaces.
struct PendingLink {
    link: Link,
    previous: Option<Link>,
}

impl PendingLink {
    fn as_write(&self) -> LinkWrite<'_> {
        LinkWrite {
            link: &self.link,
            previous: self.previous.as_ref(),
        }
    }
}

type Synced = (InboundOutcome, Option<PendingLink>);

/// A read of the link that is still current, if the caller has one.
type EarlyLink = Option<Result<Option<Link>, StoreError>>;

async fn run(
    engine: &Engine,
    referral_id: &str,
    early_link: EarlyLink,
    outbound_held: Option<&str>,
    trail: &mut Trail,
    held: &mut Vec<claim::Lease>,
) -> Result<Synced, SyncError> {
    // Both reads at once: the lease is held, so the link cannot change under us from this
    // direction, and the two services answer independently.
    let link = async {
        match early_link {
            Some(read) => read,
            None => engine.store.get_link_by_referral(referral_id).await,
        }
    };
    let (referral, link) = tokio::join!(engine.pc.get_referral(referral_id), link);
    let referral = match referral {
        Ok(r) => r,
        // A pointer to nothing: retrying cannot make the referral exist.
        Err(PartnerCenterError::NotFound { .. }) => {
            trail.step("skip");
            return Ok((
                InboundOutcome::Skipped {
                    reason: "the referral does not exist in Partner Center".into(),
                },
                None,
            ));
        }
        Err(e) => return Err(e.into()),
    };

    let link = link?;
    if let Some(link) = &link {
        trail.opportunity(&link.opportunity_id);
        if let Some(why) = gate::already_synced(&referral, link) {
            trail.step("skip");
            trail.note(why);
            return Ok((unchanged(link), None));
        }
    }
    if engine.options.cosell_only && !gate::is_co_sell(&referral) {
        trail.step("skip");
        return Ok((
            InboundOutcome::Skipped {
                reason: "not a co-sell referral and \"sync co-sell only\" is on".into(),
            },
            None,
        ));
    }

    // A referral made from one of our opportunities takes that row, never a new one; a
    // linked pair is synced one direction at a time.
    let made_from = async {
        match &link {
            None => origin::made_from(engine, &referral, referral_id, trail, held).await,
            Some(link) if outbound_held != Some(link.opportunity_id.as_str()) => {
                pair::hold_outbound(engine, link, trail, held).await?;
                Ok(None)
            }
            Some(_) => Ok(None),
        }
    };
    // The context comes from the helper the outbound direction uses too, so both compute
    // the same fingerprint for the same referral. Read while the store answers.
    let (made_from, ctx) = tokio::join!(made_from, inbound_context(&engine.dv, &referral));
    let made_from = made_from?;
    let ctx = ctx?;
    let mut plan = engine.mapping.inbound(&referral, &engine.columns, &ctx);
    for w in &plan.warnings {
        trail.note(format!("warning: {w}"));
    }
    // Fingerprinted before the checkmark: the mark is decoration, not data.
    let pc_hash = engine.mapping.inbound_hash(&plan);
    if let Some(link) = &link {
        if link.pc_hash.as_deref() == Some(pc_hash.as_str()) {
            trail.step("skip");
            trail.note("no mapped field changed");
            let mut seen = link.clone();
            note_referral_version(&mut seen, &referral);
            let write = PendingLink {
                link: seen,
                previous: Some(link.clone()),
            };
            return Ok((unchanged(link), Some(write)));
        }
    }
    if engine.options.checkmark {
        if let Some(Value::String(name)) = plan.opportunity.get("name") {
            let marked = with_checkmark(name, true);
            plan.opportunity
                .insert("name".into(), Value::String(marked));
        }
    }

    let parties = parties::find_or_create(&engine.dv, &plan, trail).await?;
    let mut body = plan.opportunity.clone();
    parties.bind_into(&mut body);

    let existing = match &link {
        Some(link) => match engine.dv.get_opportunity(&link.opportunity_id).await {
            Ok(opp) => Some(opp),
            // Deleted in the CRM: bringing it back would undo the seller's decision.
            Err(DataverseError::NotFound { .. }) => {
                trail.step("skip");
                let reason = format!(
                    "the linked opportunity {} was deleted in the CRM",
                    link.opportunity_id
                );
                return Ok((InboundOutcome::Skipped { reason }, None));
            }
            Err(e) => return Err(e.into()),
        },
        // Crash recovery: a worker may have created the opportunity and died before the
        // crosswalk was written. Adopt that row; never create a second one.
        None => {
            let found = match made_from {
                Some(opp) => Some(opp),
                None => {
                    engine
                        .dv
                        .find_opportunity_by_referral_id(referral_id)
                        .await?
                }
            };
            if found.is_some() {
                trail.step("adopt_opportunity");
            }
            found
        }
    };

    let mut crm_pending = false;
    let (after, created) = match existing {
        Some(current) => {
            if let Some(id) = &current.opportunityid {
                trail.opportunity(id);
            }
            if let Some(link) = &link {
                // Any CRM change since the last sync still has to reach Partner Center,
                // including fields this referral does not carry (so nothing was "kept").
                crm_pending = link.dv_hash.as_deref().is_some_and(|synced| {
                    engine.mapping.outbound_hash(&current, &engine.columns) != synced
                });
                conflict::keep_crm_winners(
                    &engine.mapping,
                    &engine.columns,
                    link,
                    &current,
                    &mut body,
                    trail,
                );
            }
            let after = if crm_pending
                && current.is_closed()
                && matches!(plan.target_state, TargetState::Open { .. })
            {
                // The seller closed the deal since the last sync: a close made in the CRM
                // wins over a referral that is still open (the outbound direction closes
                // it), and a closed row's columns are read-only.
                trail.note("closed in the CRM since the last sync: left closed for the outbound direction to close the referral");
                current
            } else {
                state::update(
                    &engine.dv,
                    current,
                    &body,
                    plan.target_state,
                    &referral,
                    trail,
                )
                .await?
            };
            (after, false)
        }
        None => {
            let after =
                state::create(&engine.dv, body, plan.target_state, &referral, trail).await?;
            (after, true)
        }
    };
    let opportunity_id = after
        .opportunityid
        .clone()
        .ok_or_else(|| SyncError::permanent("Dataverse returned an opportunity without an id"))?;
    trail.opportunity(&opportunity_id);

    let after_hash = engine.mapping.outbound_hash(&after, &engine.columns);
    let dv_hash = if crm_pending {
        // The CRM's changes are not in Partner Center yet: keep the old fingerprint so the
        // outbound direction sees the row as changed and sends them. Unless this write
        // brought the row back to that very fingerprint (the CRM changed only fields Partner
        // Center wins, and kept a field it wins): then the kept values would look synced.
        link.as_ref()
            .and_then(|l| l.dv_hash.clone())
            .filter(|old| *old != after_hash)
            .or_else(|| Some(NOT_SYNCED.to_string()))
    } else {
        Some(after_hash)
    };
    let seen = Seen {
        opportunity_id: &opportunity_id,
        after: &after,
        pc_hash,
        dv_hash,
    };
    let write = link_after(&referral, link, seen);
    let outcome = if created {
        InboundOutcome::Created { opportunity_id }
    } else {
        InboundOutcome::Updated { opportunity_id }
    };
    Ok((outcome, Some(write)))
}

fn unchanged(link: &Link) -> InboundOutcome {
    InboundOutcome::Unchanged {
        opportunity_id: Some(link.opportunity_id.clone()),
    }
}

fn note_referral_version(link: &mut Link, referral: &Referral) {
    link.pc_etag = referral.e_tag.clone();
    link.pc_updated = referral.updated_date_time.as_ref().map(|t| t.0.clone());
}

/// Both sides as they stand after our writes.
struct Seen<'a> {
    opportunity_id: &'a str,
    after: &'a Opportunity,
    pc_hash: String,
    /// Normally the outbound fingerprint of the row we leave behind, so the poller seeing
    /// our own write computes the same value and skips it.
    dv_hash: Option<String>,
}

/// The crosswalk as this sync leaves it. Stored conditionally on `previous` (by
/// [`sync_referral`]): a lost race surfaces as `StoreError::Conflict`, which is a retry.
fn link_after(referral: &Referral, previous: Option<Link>, seen: Seen<'_>) -> PendingLink {
    let Seen {
        opportunity_id,
        after,
        pc_hash,
        dv_hash,
    } = seen;
    let mut link = previous
        .clone()
        .unwrap_or_else(|| Link::new(referral.id.clone().unwrap_or_default(), opportunity_id));
    link.opportunity_id = opportunity_id.to_string();
    note_referral_version(&mut link, referral);
    link.pc_hash = Some(pc_hash);
    link.dv_etag = after.etag.clone();
    link.dv_modified = after.modifiedon.clone();
    link.dv_hash = dv_hash;
    PendingLink { link, previous }
}
