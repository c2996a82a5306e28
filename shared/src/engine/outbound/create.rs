//! A flagged opportunity without a link: adopt the referral it already has (a run that
//! crashed after creating it), or create a co-sell referral and write its id and link back.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::audit::Outcome;
use crate::crosswalk::Link;
use crate::dataverse::Opportunity;
use crate::engine::claim::Lease;
use crate::engine::referral_context::{referral_hash, referral_link};
use crate::engine::{Engine, SyncError};
use crate::partner_center::{ListQuery, PartnerCenterError, Referral};

use super::customer;
use super::record::{self, Synced};
use super::{update, writeback, OutboundOutcome};

/// Clock skew allowed between Dataverse's `createdon` and Partner Center's `createdDateTime`.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(10);

pub(super) async fn sync_unlinked(
    engine: &Engine,
    opp: &Opportunity,
    lease: &Lease,
) -> Result<OutboundOutcome, SyncError> {
    let opportunity_id = opp
        .opportunityid
        .clone()
        .ok_or_else(|| SyncError::permanent("opportunity row without opportunityid"))?;
    if let Some(existing) = existing_referral(engine, opp, &opportunity_id).await? {
        return adopt(engine, opp, &opportunity_id, existing).await;
    }

    let customer = customer::read(engine, opp).await?;
    let mut new = engine
        .mapping
        .outbound_create(
            opp,
            customer.account.as_ref(),
            customer.contact.as_ref(),
            &engine.columns,
        )
        .map_err(|e| SyncError::permanent(format!("cannot create a co-sell referral: {e}")))?;
    // What finds this referral again if the write-back below never happens.
    new.external_reference_id = Some(opportunity_id.clone());
    let created = engine.pc.create_referral(&new).await?;
    let referral_id = created.id.clone().ok_or_else(|| {
        // Created but unnamed: the next try finds it by its external reference.
        SyncError::retry(None, "Partner Center created a referral without an id")
    })?;
    tracing::info!(%opportunity_id, %referral_id, "co-sell referral created");

    let mut columns = link_columns(engine, &referral_id);
    columns.extend(writeback::success_columns(engine, opp));
    let written = writeback::write(engine, opp, &columns).await?;
    let pc_hash = referral_hash(engine, &created).await?;
    let entry = record::entry(
        "create_referral",
        Outcome::Success,
        &opportunity_id,
        Some(&referral_id),
    )
    .detail(format!(
        "co-sell referral created: {}",
        created.name.as_deref().unwrap_or_default()
    ));
    record::put_link(
        engine,
        Link::new(&referral_id, &opportunity_id),
        Synced {
            referral: Some((&created, pc_hash)),
            sent: opp,
            written: &written,
        },
        std::slice::from_ref(&entry),
        Some(lease),
    )
    .await?;
    Ok(OutboundOutcome::Created { referral_id })
}

/// The referral id and link columns for the opportunity.
fn link_columns(engine: &Engine, referral_id: &str) -> Map<String, Value> {
    let mut columns = Map::new();
    columns.insert(
        engine.columns.referral_id.clone(),
        Value::String(referral_id.to_string()),
    );
    columns.insert(
        engine.columns.referral_link.clone(),
        Value::String(referral_link(referral_id)),
    );
    columns
}

/// A referral this opportunity already has: the one its referral id column names, else
/// one whose `externalReferenceId` is this opportunity (created by a run that stopped
/// before writing back), searched among referrals created since the opportunity was.
async fn existing_referral(
    engine: &Engine,
    opp: &Opportunity,
    opportunity_id: &str,
) -> Result<Option<Referral>, SyncError> {
    let named = opp
        .column(&engine.columns.referral_id)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(id) = named {
        return match engine.pc.get_referral(id).await {
            Ok(r) => Ok(Some(r)),
            Err(PartnerCenterError::NotFound { .. }) => Err(SyncError::permanent(format!(
                "the opportunity names referral {id}, which does not exist in Partner Center"
            ))),
            Err(e) => Err(e.into()),
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
    let found = engine.pc.list_referrals(&query).await?;
    Ok(found
        .into_iter()
        .find(|r| r.external_reference_id.as_deref() == Some(opportunity_id)))
}

/// Links the opportunity to a referral that already exists and syncs it as a linked one.
/// The referral is taken as last synced as it is now, so the CRM's values go to it.
async fn adopt(
    engine: &Engine,
    opp: &Opportunity,
    opportunity_id: &str,
    referral: Referral,
) -> Result<OutboundOutcome, SyncError> {
    let referral_id = referral
        .id
        .clone()
        .ok_or_else(|| SyncError::permanent("Partner Center returned a referral without an id"))?;
    if let Some(other) = engine.store.get_link_by_referral(&referral_id).await? {
        if other.opportunity_id != opportunity_id {
            return Err(SyncError::permanent(format!(
                "referral {referral_id} is already synced with opportunity {}",
                other.opportunity_id
            )));
        }
    }
    let mut link = Link::new(&referral_id, opportunity_id);
    link.pc_hash = Some(referral_hash(engine, &referral).await?);
    // Not released with the link: the adoption's own audit entry follows.
    let columns = link_columns(engine, &referral_id);
    let outcome = update::sync_with(engine, opp, link, columns, None).await?;
    let entry = record::entry(
        "adopt_referral",
        Outcome::Success,
        opportunity_id,
        Some(&referral_id),
    )
    .detail("linked to the referral the opportunity already had");
    record::append(engine, &entry).await?;
    tracing::info!(opportunity_id, %referral_id, "existing referral adopted");
    Ok(outcome)
}
