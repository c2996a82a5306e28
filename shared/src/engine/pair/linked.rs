//! The reconcile of a linked pair (or of one being adopted): read the side that sent the
//! message and stop when it equals the base (our own echo, or a change to nothing mapped);
//! otherwise read the other side, merge field by field against the base, write each side
//! that needs it under `If-Match`, and store the link with the new base and the audit
//! entries in one conditional store write.

use serde_json::Map;

use crate::crosswalk::{Base, Link};
use crate::dataverse::Opportunity;
use crate::engine::{Engine, SyncError};
use crate::mapping::FieldValues;
use crate::partner_center::Referral;
use crate::store::{LinkWrite, SyncRecord};

use super::merge::{self, CrmState};
use super::sides::{self, closed_as, opportunity_side, referral_side, sync_flag_on};
use super::trail::Trail;
use super::{
    crm, decoration, moves, referral, related, Carried, Origin, PairOutcome, Step, SyncMessage,
};

/// Sides the caller has read already (a create that found its row, an adoption), and
/// the base a pair being adopted starts from.
#[derive(Default)]
pub(super) struct Known {
    pub referral: Option<Referral>,
    pub opportunity: Option<Opportunity>,
    /// For a row just made from the referral: its values. For a row or referral we made
    /// earlier (its create's answer was lost, or a crash came before the link): the values
    /// its create was planned with (`create-base/` state), else the fields both sides
    /// still agree on, so that a field they differ on goes by the conflict rule.
    pub base: Option<Base>,
}

pub(super) async fn reconcile(
    engine: &Engine,
    message: &SyncMessage,
    link: Link,
    known: Known,
    trail: &mut Trail,
    carried: &mut Carried,
) -> Result<PairOutcome, Step> {
    let key = link.opportunity_id.clone();
    let referral_id = link.referral_id.clone();
    trail.referral(&referral_id);
    let base = carried
        .base
        .clone()
        .or_else(|| link.base.clone())
        .or(known.base);
    let unchanged = || PairOutcome::Unchanged {
        referral_id: Some(referral_id.clone()),
        opportunity_id: key.clone(),
    };
    if message.deleted {
        return skip(
            engine,
            trail,
            "opportunity deleted in CRM; referral left as is",
        )
        .await;
    }

    // The sender first: when it equals the base, this is our own echo. Its side's values
    // are kept for the merge.
    let (mut pc_side, mut dv_side) = (None, None);
    let (referral, opp) = match message.origin {
        Origin::Opportunity => {
            let Some(opp) = read_opp(engine, &key, known.opportunity).await? else {
                return skip(
                    engine,
                    trail,
                    "the linked opportunity was deleted in the CRM",
                )
                .await;
            };
            let side = opportunity_side(engine, &opp).await?;
            if let Some(base) = &base {
                if echo(engine, base, &side.0, &side.1, |b| {
                    b.opportunity_status.clone()
                }) && !visibility_changed(engine, base, &opp)
                {
                    return Ok(unchanged());
                }
            }
            dv_side = Some(side);
            let referral = read_ref(engine, &referral_id, known.referral).await?;
            (referral, opp)
        }
        Origin::Referral | Origin::Operator | Origin::Related => {
            let referral = read_ref(engine, &referral_id, known.referral).await?;
            let side = referral_side(engine, &referral);
            if let (Some(base), Origin::Referral) = (&base, message.origin) {
                if echo(engine, base, &side.0, &side.1, |b| {
                    b.referral_status.clone()
                }) {
                    return Ok(unchanged());
                }
            }
            pc_side = Some(side);
            let Some(opp) = read_opp(engine, &key, known.opportunity).await? else {
                return skip(
                    engine,
                    trail,
                    "the linked opportunity was deleted in the CRM",
                )
                .await;
            };
            (referral, opp)
        }
    };
    if !sync_flag_on(engine, &opp) {
        return skip(engine, trail, "sync flag is off").await;
    }
    let shared = referral.shared_with_microsoft_sellers();
    if let Some(why) = decoration::visibility(engine, &opp, shared).and_then(|v| v.refused) {
        trail.refused_change(why);
    }

    let (pc_values, _) = match pc_side.take() {
        Some(side) => side,
        None => referral_side(engine, &referral),
    };
    let (dv_values, _) = match dv_side.take() {
        Some(side) => side,
        None => opportunity_side(engine, &opp).await?,
    };
    let base_fields = base.as_ref().map(|b| &b.fields);
    let plan = merge::merge_fields(&engine.mapping, base_fields, &pc_values, &dv_values);
    trail.conflicts(&plan.conflicts);

    // The opportunity's state follows the status the referral ends with.
    let mv = moves::wanted(engine, &opp, &referral);
    let (status, substatus) = match &mv {
        Some(m) => {
            let (s, ss) = m.outcome();
            (Some(s), Some(ss))
        }
        None => (referral.status.clone(), referral.substatus.clone()),
    };
    let target = match (&status, &substatus) {
        (Some(s), Some(ss)) => engine.mapping.target_state(s, ss),
        _ => None,
    };
    let (state, status_conflict) = match (&mv, closed_as(&opp)) {
        // The referral follows the CRM's own close: the close stands as the seller made it.
        (Some(_), Some(_)) => (CrmState::Keep, false),
        (_, closed) => merge::crm_state(&engine.mapping, closed, target),
    };
    if status_conflict {
        trail.status_conflict();
    }
    let mut plan = plan;
    if closed_as(&opp).is_some() && state == CrmState::Keep {
        // A row closed in the CRM is read-only: Partner Center's edits stay pending there.
        plan.keep_closed_crm();
    }

    if mv.is_none() {
        plan.defer_lone(&engine.mapping);
    }

    // Partner Center first, then the opportunity.
    let pc_written = !plan.to_pc.is_empty() || mv.is_some();
    let referral = if pc_written {
        let after = referral::write(engine, referral, &plan.to_pc, mv, trail).await?;
        // Both sides now hold these values: a restart after a later 412 must not take
        // our own write for a Partner Center change.
        carry(carried, base.as_ref(), &plan.to_pc);
        after
    } else {
        referral
    };

    // Currency rows for the codes this write binds (cached: usually no request).
    let mut currency_ids = std::collections::BTreeMap::new();
    for (field, _) in engine.mapping.pair_fields() {
        if field.transform != crate::mapping::Transform::Currency {
            continue;
        }
        if let Some(iso) = plan.to_crm.get(&field.referral).and_then(|v| v.as_str()) {
            if let Some(id) = engine.currencies.id_of(&engine.dv, iso).await? {
                currency_ids.insert(iso.to_ascii_uppercase(), id);
            }
        }
    }
    let currency_id = |iso: &str| currency_ids.get(&iso.to_ascii_uppercase()).cloned();
    let mut body = engine.mapping.opportunity_body(
        &plan.to_crm,
        &engine.columns,
        &currency_id,
        engine.options.checkmark,
    );
    let crm_changes = !body.is_empty() || state != CrmState::Keep;
    if crm_changes {
        // The sync columns ride along with a write that happens anyway.
        for (k, v) in decoration::in_sync(engine, &opp, &referral_id, shared) {
            body.entry(k).or_insert(v);
        }
    }
    let opp = if crm_changes {
        let after = crm::apply(engine, &opp, body, state, &referral, trail).await?;
        trail.crm_fields(plan.to_crm.keys().cloned());
        after
    } else {
        opp
    };
    // Microsoft's side of a co-sell, when its referral in the engagement changed.
    let microsoft = match message.origin {
        Origin::Related => related::microsoft_side(engine, &referral).await?,
        _ => Map::new(),
    };
    let opp = decoration::write(engine, &opp, |row| {
        let mut changes = decoration::in_sync(engine, row, &referral_id, shared);
        for (column, value) in &microsoft {
            if row.column(column) != Some(value) {
                changes.insert(column.clone(), value.clone());
            }
        }
        changes
    })
    .await?;

    finish(engine, link, &referral, &opp, base.as_ref(), trail).await
}

/// Notes values both sides hold after a write, for a restart of the same reconcile.
fn carry(carried: &mut Carried, base: Option<&Base>, written: &FieldValues) {
    let mut next = carried
        .base
        .clone()
        .or_else(|| base.cloned())
        .unwrap_or_default();
    for (k, v) in written {
        next.fields.insert(k.clone(), v.clone());
    }
    carried.base = Some(next);
}

/// The visibility column no longer shows what the referral is (a seller's change of it,
/// which is no mapped field): the reconcile must run to set it back.
fn visibility_changed(engine: &Engine, base: &Base, opp: &Opportunity) -> bool {
    base.referral_shared
        .is_some_and(|shared| decoration::visibility(engine, opp, shared).is_some())
}

fn echo(
    engine: &Engine,
    base: &Base,
    values: &FieldValues,
    status: &str,
    side: impl Fn(&Base) -> Option<String>,
) -> bool {
    merge::same_undeferred(&engine.mapping, &base.fields, values)
        && side(base).as_deref() == Some(status)
}

async fn read_ref(engine: &Engine, id: &str, known: Option<Referral>) -> Result<Referral, Step> {
    if let Some(r) = known {
        return Ok(r);
    }
    sides::read_referral(engine, id).await?.ok_or_else(|| {
        Step::Failed(SyncError::permanent(format!(
            "the linked referral {id} no longer exists in Partner Center"
        )))
    })
}

async fn read_opp(
    engine: &Engine,
    id: &str,
    known: Option<Opportunity>,
) -> Result<Option<Opportunity>, Step> {
    if let Some(o) = known {
        return Ok(Some(o));
    }
    Ok(sides::read_opportunity(engine, id).await?)
}

/// A pair deliberately not synced: the audit entry says why.
pub(super) async fn skip(
    engine: &Engine,
    trail: &Trail,
    reason: &str,
) -> Result<PairOutcome, Step> {
    engine
        .store
        .append_audit(&trail.skipped(reason))
        .await
        .map_err(SyncError::from)?;
    tracing::debug!(reason, "pair skipped");
    Ok(PairOutcome::Skipped {
        reason: reason.to_string(),
    })
}

/// Stores the link with both sides as this reconcile leaves them, and its audit entries,
/// in one write conditional on the link's version (a create when it is new).
pub(super) async fn finish(
    engine: &Engine,
    link: Link,
    referral: &Referral,
    opp: &Opportunity,
    old: Option<&Base>,
    trail: &Trail,
) -> Result<PairOutcome, Step> {
    let (pc_values, pc_status) = referral_side(engine, referral);
    let (dv_values, dv_status) = opportunity_side(engine, opp).await?;
    let base = Base {
        fields: merge::next_base(old.map(|b| &b.fields), &pc_values, &dv_values),
        referral_status: Some(pc_status),
        opportunity_status: Some(dv_status),
        referral_shared: Some(referral.shared_with_microsoft_sellers()),
        crm_table: crate::crosswalk::CrmTable::Opportunity,
    };
    let seen = Seen {
        pc_etag: referral.e_tag.clone(),
        pc_updated: referral.updated_date_time.as_ref().map(|t| t.0.clone()),
        dv_etag: opp.etag.clone(),
        dv_modified: opp.modifiedon.clone(),
    };
    store(engine, link, base, seen, trail).await
}

/// The versions of both sides a link records, as this reconcile leaves them.
pub(super) struct Seen {
    pub pc_etag: Option<String>,
    pub pc_updated: Option<String>,
    pub dv_etag: Option<String>,
    pub dv_modified: Option<String>,
}

/// Stores `link` with `base` and `seen`, and the trail's audit entries, in one write
/// conditional on the link's version (a create when it is new); no write when nothing
/// moved and there is nothing to audit.
pub(super) async fn store(
    engine: &Engine,
    mut link: Link,
    base: Base,
    seen: Seen,
    trail: &Trail,
) -> Result<PairOutcome, Step> {
    let previous = (link.version > 0).then(|| link.clone());
    let moved = previous.as_ref().is_none_or(|p| {
        p.base.as_ref() != Some(&base) || p.pc_etag != seen.pc_etag || p.dv_etag != seen.dv_etag
    });
    let entries = trail.done();
    let outcome = outcome(&link, trail);
    if !moved && entries.is_empty() {
        return Ok(outcome);
    }
    link.base = Some(base);
    link.pc_etag = seen.pc_etag;
    link.pc_updated = seen.pc_updated;
    link.dv_etag = seen.dv_etag;
    link.dv_modified = seen.dv_modified;
    write_record(engine, &link, previous.as_ref(), &entries).await?;
    tracing::info!(
        opportunity_id = %link.opportunity_id,
        referral_id = %link.referral_id,
        ?outcome,
        "pair reconciled"
    );
    Ok(outcome)
}

/// The link write and its audit entries in one store write; a link that moved meanwhile
/// sends the reconcile back to fresh reads.
pub(super) async fn write_record(
    engine: &Engine,
    link: &Link,
    previous: Option<&Link>,
    entries: &[crate::audit::AuditEntry],
) -> Result<(), Step> {
    let record = SyncRecord {
        link: Some(LinkWrite { link, previous }),
        audit: entries,
    };
    match engine.store.finish_sync(record).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::Conflict { what }) => {
            Err(Step::Raced(format!("the link moved meanwhile: {what}")))
        }
        Err(e) => Err(Step::Failed(e.into())),
    }
}

fn outcome(link: &Link, trail: &Trail) -> PairOutcome {
    let (referral_id, opportunity_id) = (link.referral_id.clone(), link.opportunity_id.clone());
    if trail.created_referral() {
        PairOutcome::ReferralCreated {
            referral_id,
            opportunity_id,
        }
    } else if trail.crm_steps_include("create_lead") {
        PairOutcome::LeadCreated {
            referral_id,
            lead_id: opportunity_id,
        }
    } else if trail.created_opportunity() {
        PairOutcome::OpportunityCreated {
            referral_id,
            opportunity_id,
        }
    } else if trail.wrote() {
        PairOutcome::Updated {
            referral_id,
            opportunity_id,
        }
    } else {
        PairOutcome::Unchanged {
            referral_id: Some(referral_id),
            opportunity_id,
        }
    }
}
