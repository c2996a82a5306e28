//! A pair with no link yet: a referral that arrived (its opportunity is created with the id
//! derived from the referral) or a flagged opportunity (its referral is created, or the one
//! it already has adopted). Every create is one a retry cannot duplicate: the opportunity,
//! account and contact by their derived ids, the referral by its `externalReferenceId`
//! (looked up before creating) and one `MS-RequestId` per logical create.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crosswalk::{Base, Link};
use crate::dataverse::Opportunity;
use crate::engine::referral_context::referral_link;
use crate::engine::{Engine, SyncError};
use crate::mapping::{with_checkmark, InboundContext};
use crate::partner_center::{shared_referral, ListQuery, Referral, ReferralType};

use super::create_base::{adopted_base, remember_create_base, Recorded};
use super::linked::{self, Known};
use super::sides::{self, opportunity_side, sync_flag_on};
use super::trail::Trail;
use super::{crm, customer, decoration, key, Carried, PairOutcome, Step, SyncMessage};

/// Clock skew allowed between Dataverse's `createdon` and Partner Center's `createdDateTime`.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(10);

/// Sync-state key prefix of a create Partner Center refused, holding the opportunity's
/// values it refused: the same values are not sent again (our own ✘ write echoes back).
pub const REFUSED_STATE_PREFIX: &str = "refused/";

/// A referral whose pair has no link.
pub(super) async fn from_referral(
    engine: &Engine,
    message: &SyncMessage,
    referral_id: &str,
    trail: &mut Trail,
    carried: &mut Carried,
) -> Result<PairOutcome, Step> {
    let key = message.key.trim();
    let Some(referral) = sides::read_referral(engine, referral_id).await? else {
        return Ok(PairOutcome::Skipped {
            reason: "the referral does not exist in Partner Center".into(),
        });
    };
    // The second shared-referral step's referral is never paired: its engagement's own
    // referral is (issue 21).
    if shared_referral::is_for_microsoft(&referral) {
        return Ok(PairOutcome::Skipped {
            reason: "the connected referral for Microsoft: its engagement's own referral is synced"
                .into(),
        });
    }
    // Made from one of our opportunities (its external reference): that pair's key owns it.
    let reference = referral
        .external_reference_id
        .as_deref()
        .map(str::trim)
        .filter(|r| key::is_row_id(r));
    if let Some(owner) = reference.filter(|r| !r.eq_ignore_ascii_case(key)) {
        if sides::read_opportunity(engine, owner).await?.is_some() {
            return Ok(PairOutcome::Forwarded {
                to: message.forwarded_to(owner),
            });
        }
    }
    // Under that key (forwarded there): the referral was made from this opportunity, so this
    // is the opportunity's own reconcile, which adopts the referral it made. Taking it for a
    // referral to create a row from would take the row's values, edited since, for the base,
    // and write the referral's older ones over them.
    let made_from_row = reference.is_some_and(|r| r.eq_ignore_ascii_case(key))
        && !key.eq_ignore_ascii_case(&key::opportunity_id_for(referral_id));
    if made_from_row {
        // Boxed: the two create paths' futures are large, and nesting them overflows a
        // small stack.
        return Box::pin(from_opportunity(engine, message, trail, carried)).await;
    }
    if engine.options.cosell_only && !referral.is_co_sell() {
        let reason = "not a co-sell referral and \"sync co-sell only\" is on";
        return linked::skip(engine, trail, reason).await;
    }
    let kind = referral.kind();
    if kind.is_lead() && engine.mapping.lead.handling == crate::mapping::lead::LeadHandling::Skip {
        let reason = format!("{} and [lead] handling is skip", kind.label());
        return linked::skip(engine, trail, &reason).await;
    }
    if super::lead::lands_as_lead(engine, &referral) {
        return Box::pin(super::lead::create(
            engine,
            message,
            referral,
            referral_id,
            trail,
        ))
        .await;
    }
    let iso = referral
        .details
        .as_ref()
        .and_then(|d| d.currency.as_deref())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let currency_id = match iso {
        Some(code) => engine.currencies.id_of(&engine.dv, code).await?,
        None => None,
    };
    let ctx = InboundContext {
        referral_link: referral_link(referral_id),
        currency_id,
    };
    let mut plan = engine.mapping.inbound(&referral, &engine.columns, &ctx);
    for w in &plan.warnings {
        trail.note(format!("warning: {w}"));
    }
    if engine.options.checkmark {
        if let Some(Value::String(name)) = plan.opportunity.get("name") {
            let marked = with_checkmark(name, true);
            plan.opportunity
                .insert("name".into(), Value::String(marked));
        }
    }
    let (parties, new_rows) = super::parties::find(&engine.dv, &plan, referral_id, trail).await?;
    let mut body = plan.opportunity.clone();
    parties.bind_into(&mut body);
    // The visibility column shows the referral's from the start (no write of its own).
    if let Some((column, value)) = engine
        .mapping
        .visibility_value(&engine.columns, referral.shared_with_microsoft_sellers())
    {
        body.entry(column).or_insert(value);
    }
    let link = Link::new(referral_id, key);
    // The row is made from the referral's values: they are the base.
    let recorded =
        remember_create_base(engine, key, &engine.mapping.referral_values(&referral)).await;
    let made = crm::create(
        engine,
        key,
        body,
        new_rows,
        plan.target_state,
        &referral,
        trail,
    );
    match made.await? {
        // Made from the referral: the row's values are the base, but for deferred fields
        // (our external reference): those stay as the referral has them, pending until the
        // next write to it carries them.
        Some(opp) => {
            let fields = created_base(engine, &opp, &referral).await?;
            let known = Known {
                referral: Some(referral),
                opportunity: Some(opp),
                base: Some(Base {
                    fields,
                    ..Base::default()
                }),
            };
            linked::reconcile(engine, message, link, known, trail, carried).await
        }
        // An earlier try made it (its answer was lost) or a crash left it: reconcile it.
        // Either side may have changed since it was made, so neither side's values stand
        // for the base: the values it was planned with do.
        None => {
            trail.crm_step("adopt_opportunity");
            let Some(opp) = sides::read_opportunity(engine, key).await? else {
                return Err(Step::Raced(format!(
                    "opportunity {key} exists and then did not"
                )));
            };
            let fields = adopted_base(engine, key, recorded, &opp, &referral).await?;
            let known = Known {
                referral: Some(referral),
                opportunity: Some(opp),
                base: Some(Base {
                    fields,
                    ..Base::default()
                }),
            };
            linked::reconcile(engine, message, link, known, trail, carried).await
        }
    }
}

/// The base of an opportunity made from `referral`: the row's values, with each deferred
/// field as the referral holds it.
async fn created_base(
    engine: &Engine,
    opp: &Opportunity,
    referral: &Referral,
) -> Result<crate::mapping::FieldValues, Step> {
    let (mut fields, _) = opportunity_side(engine, opp).await?;
    let from_referral = engine.mapping.referral_values(referral);
    for (field, _) in engine.mapping.pair_fields().filter(|(f, _)| f.defer) {
        match from_referral.get(&field.referral) {
            Some(v) => fields.insert(field.referral.clone(), v.clone()),
            None => fields.remove(&field.referral),
        };
    }
    Ok(fields)
}

/// An opportunity whose pair has no link.
pub(super) async fn from_opportunity(
    engine: &Engine,
    message: &SyncMessage,
    trail: &mut Trail,
    carried: &mut Carried,
) -> Result<PairOutcome, Step> {
    let key = message.key.trim();
    let skipped = |reason: &str| {
        tracing::debug!(opportunity_id = key, reason, "unlinked opportunity skipped");
        Ok(PairOutcome::Skipped {
            reason: reason.to_string(),
        })
    };
    if message.deleted {
        return skipped("opportunity deleted in CRM");
    }
    let Some(opp) = sides::read_opportunity(engine, key).await? else {
        return skipped("opportunity no longer exists in CRM");
    };
    if !sync_flag_on(engine, &opp) {
        return skipped("sync flag is off");
    }
    let (values, _) = opportunity_side(engine, &opp).await?;
    let fingerprint = serde_json::to_string(&values).unwrap_or_default();
    let refused_key = format!("{REFUSED_STATE_PREFIX}{key}");
    let refused = engine
        .store
        .get_state(&refused_key)
        .await
        .map_err(SyncError::from)?;
    if refused.as_ref().is_some_and(|(v, _)| *v == fingerprint) {
        return skipped("Partner Center refused these values; change a mapped field to try again");
    }

    if let Some(referral) = existing_referral(engine, &opp, key).await? {
        let referral_id = referral.id.clone().unwrap_or_default();
        if let Some(other) = engine
            .store
            .get_link_by_referral(&referral_id)
            .await
            .map_err(SyncError::from)?
        {
            if other.opportunity_id.eq_ignore_ascii_case(key) {
                // Linked meanwhile (by another delivery of this pair): read again.
                return Err(Step::Raced(format!("{referral_id} was linked meanwhile")));
            }
            return Err(Step::Failed(SyncError::permanent(format!(
                "referral {referral_id} is already synced with opportunity {}",
                other.opportunity_id
            ))));
        }
        trail.adopted_referral();
        // One we made from this row (its create's answer was lost, or a crash came before
        // the link): the values its create was planned with stand for the base (either side
        // may have been edited since). One named by the row's column has none.
        let ours = referral.external_reference_id.as_deref() == Some(key);
        if ours {
            // The first shared-referral step went through and its answer was lost, or the
            // second step's was: finish the steps (the second finds its referral first).
            let deal = engine.mapping.deal_type(&opp, &engine.columns);
            let shared = referral.referral_type == Some(ReferralType::Shared);
            if deal.deal.shared_with_microsoft() && shared {
                if let Err(e) =
                    connect_microsoft(engine, key, &referral, deal.help.as_deref()).await
                {
                    return Err(failed_create(
                        engine,
                        &opp,
                        &refused_key,
                        refused,
                        &fingerprint,
                        e,
                    )
                    .await);
                }
            }
        }
        let base = match ours {
            true => Some(Base {
                // The create (or its first step) ran in an earlier try.
                fields: adopted_base(engine, key, Recorded::Earlier, &opp, &referral).await?,
                ..Base::default()
            }),
            false => None,
        };
        let known = Known {
            referral: Some(referral),
            opportunity: Some(opp),
            base,
        };
        let link = Link::new(referral_id, key);
        return linked::reconcile(engine, message, link, known, trail, carried).await;
    }

    let customer = customer::read(engine, &opp).await?;
    let currency = match opp.transactioncurrencyid.as_deref() {
        Some(id) => engine.currencies.iso_of(&engine.dv, id).await?,
        None => None,
    };
    let plan = engine
        .mapping
        .outbound_create(
            &opp,
            customer.account.as_ref(),
            customer.contact.as_ref(),
            &engine.columns,
            currency.as_deref(),
        )
        .map_err(|e| SyncError::permanent(format!("cannot create a referral: {e}")));
    let created = match plan {
        Ok(mut plan) => {
            // What finds this referral again if this create's answer is lost.
            plan.own.external_reference_id = Some(key.to_string());
            let planned = engine.mapping.referral_values(&plan.own);
            remember_create_base(
                engine,
                key,
                &super::merge::next_base(None, &planned, &values),
            )
            .await;
            let request_id = key::create_request_id(key);
            match engine
                .pc
                .create_referral_as(&plan.own, Some(&request_id))
                .await
                .map_err(SyncError::from)
            {
                Ok(own) if plan.shared_with_microsoft() => {
                    connect_microsoft(engine, key, &own, plan.deal.help.as_deref())
                        .await
                        .map(|()| own)
                }
                other => other,
            }
        }
        Err(e) => Err(e),
    };
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            return Err(failed_create(engine, &opp, &refused_key, refused, &fingerprint, e).await)
        }
    };
    let referral_id = created.id.clone().ok_or_else(|| {
        // Created but unnamed: the next try finds it by its external reference.
        Step::Failed(SyncError::retry(
            None,
            "Partner Center created a referral without an id",
        ))
    })?;
    trail.referral(&referral_id);
    trail.note_created_referral(format!(
        "referral created ({}): {}",
        deal_label(&created),
        created.name.as_deref().unwrap_or_default()
    ));
    tracing::info!(opportunity_id = key, %referral_id, "referral created");
    let written = decoration::write(engine, &opp, |row| {
        decoration::in_sync(
            engine,
            row,
            &referral_id,
            created.shared_with_microsoft_sellers(),
        )
    })
    .await?;
    let link = Link::new(&referral_id, key);
    linked::finish(engine, link, &created, &written, None, trail).await
}

fn deal_label(r: &Referral) -> &'static str {
    match r.referral_type {
        Some(ReferralType::Shared) => "shared with Microsoft",
        _ => "private",
    }
}

/// A failed create: a refusal for good is shown on the opportunity and its values
/// remembered (not sent again until a mapped field changes).
async fn failed_create(
    engine: &Engine,
    opp: &Opportunity,
    refused_key: &str,
    refused: Option<(String, u64)>,
    fingerprint: &str,
    e: SyncError,
) -> Step {
    if e.is_permanent() {
        refuse(
            engine,
            opp,
            refused_key,
            refused.map(|(_, v)| v),
            fingerprint,
            &e,
        )
        .await;
    }
    Step::Failed(e)
}

/// The second shared-referral step: the connected referral for Microsoft in `own`'s
/// engagement. Idempotent across lost answers: it first lists the engagement's referrals
/// (`engagementId eq '...'`, a documented filter) and posts only when none targets
/// Microsoft yet; the POST is never resent after an unknown outcome (the client's
/// `OutcomeUnknown`), the next try lists again. Its own `MS-RequestId`, the same on every
/// try: it is another logical create than the first step's.
async fn connect_microsoft(
    engine: &Engine,
    key: &str,
    own: &Referral,
    help: Option<&str>,
) -> Result<(), SyncError> {
    let Some(engagement) = own
        .engagement_id
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    else {
        // Retryable: the next try adopts the own referral and reads it again.
        return Err(SyncError::retry(
            None,
            "Partner Center created the shared referral without an engagementId",
        ));
    };
    let in_engagement = super::related::engagement(engine, engagement).await?;
    if in_engagement.iter().any(shared_referral::is_for_microsoft) {
        return Ok(());
    }
    let body = shared_referral::referral_for_microsoft(own, engagement, help);
    let request_id = key::connect_request_id(key);
    engine
        .pc
        .create_referral_as(&body, Some(&request_id))
        .await
        .map_err(SyncError::from)?;
    Ok(())
}

/// Shows Partner Center's refusal on the opportunity and remembers the refused values
/// (best effort: logged, never returned).
async fn refuse(
    engine: &Engine,
    opp: &Opportunity,
    state_key: &str,
    version: Option<u64>,
    fingerprint: &str,
    error: &SyncError,
) {
    let opportunity_id = opp.opportunityid.as_deref().unwrap_or_default();
    if let Err(e) = decoration::write(engine, opp, |row| {
        decoration::refused(engine, row, error.reason())
    })
    .await
    {
        tracing::warn!(opportunity_id, error = %e, "could not show the refusal on the opportunity");
    }
    if let Err(e) = engine
        .store
        .put_state(state_key, fingerprint, version)
        .await
    {
        tracing::warn!(opportunity_id, error = %e, "could not remember the refused values");
    }
}

/// A referral this opportunity already has: the one its referral id column names, else
/// one whose `externalReferenceId` is this opportunity (created by a try whose answer was
/// lost, or that stopped before writing back), among referrals created since it was.
async fn existing_referral(
    engine: &Engine,
    opp: &Opportunity,
    opportunity_id: &str,
) -> Result<Option<Referral>, Step> {
    let named = opp
        .column(&engine.columns.referral_id)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(id) = named {
        return match sides::read_referral(engine, id).await? {
            Some(r) => Ok(Some(r)),
            None => Err(Step::Failed(SyncError::permanent(format!(
                "the opportunity names referral {id}, which does not exist in Partner Center"
            )))),
        };
    }
    let Some(since) = opp
        .createdon
        .as_deref()
        .and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        .map(|t| t - CLOCK_SKEW)
        .and_then(|t| t.format(&Rfc3339).ok())
    else {
        return Ok(None);
    };
    let query = ListQuery {
        filter: Some(format!("createdDateTime ge {since}")),
        ..ListQuery::default()
    };
    let found = engine
        .pc
        .list_referrals(&query)
        .await
        .map_err(SyncError::from)?;
    // The connected referral for Microsoft carries the same external reference: ours is
    // the other one of the engagement.
    Ok(found.into_iter().find(|r| {
        r.external_reference_id.as_deref() == Some(opportunity_id)
            && !shared_referral::is_for_microsoft(r)
    }))
}
