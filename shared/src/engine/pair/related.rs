//! Related referrals: another organization's referral in one of our engagements (for a
//! co-sell, Microsoft's own). Its webhook names it, not our pair: the first reconcile finds
//! the engagement's referral we sync and forwards the message to that pair's key; there the
//! pair is reconciled and, once Microsoft's seller has accepted, its side (the CRM id and
//! the seller) is written to the opportunity's `[related]` columns.

use serde_json::{Map, Value};

use crate::engine::{Engine, SyncError};
use crate::mapping::related::is_microsofts;
use crate::partner_center::{shared_referral, ListQuery, Referral};

use super::{sides, Origin, PairOutcome, Step, SyncMessage};

/// The referrals of an engagement (ours and the other parties'), by the documented
/// `engagementId eq '...'` filter.
pub(super) async fn engagement(
    engine: &Engine,
    engagement_id: &str,
) -> Result<Vec<Referral>, SyncError> {
    let query = ListQuery {
        filter: Some(shared_referral::engagement_filter(engagement_id)),
        ..ListQuery::default()
    };
    Ok(engine.pc.list_referrals(&query).await?)
}

fn engagement_of(r: &Referral) -> Option<&str> {
    r.engagement_id
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// The first step: the pair of the related referral's engagement, forwarded to; skipped
/// when none of its referrals is synced (yet).
pub(super) async fn route(engine: &Engine, message: &SyncMessage) -> Result<PairOutcome, Step> {
    let related_id = message.referral_id.as_deref().unwrap_or_default().trim();
    let Some(related) = sides::read_referral(engine, related_id).await? else {
        return Ok(PairOutcome::Skipped {
            reason: "the related referral does not exist in Partner Center".into(),
        });
    };
    let Some(engagement_id) = engagement_of(&related) else {
        return Ok(PairOutcome::Skipped {
            reason: "the related referral has no engagement".into(),
        });
    };
    for r in engagement(engine, engagement_id).await? {
        let Some(id) = r.id.as_deref() else { continue };
        if let Some(link) = engine
            .store
            .get_link_by_referral(id)
            .await
            .map_err(SyncError::from)?
        {
            return Ok(PairOutcome::Forwarded {
                to: SyncMessage {
                    key: link.opportunity_id,
                    origin: Origin::Related,
                    referral_id: Some(link.referral_id),
                    changed_at: message.changed_at.clone(),
                    deleted: false,
                    version: None,
                },
            });
        }
    }
    Ok(PairOutcome::Skipped {
        reason: "no referral of the related referral's engagement is synced".into(),
    })
}

/// The columns showing Microsoft's side of `ours`'s engagement (empty until Microsoft's
/// seller has accepted, or when the mapping names no `[related]` column).
pub(super) async fn microsoft_side(
    engine: &Engine,
    ours: &Referral,
) -> Result<Map<String, Value>, Step> {
    if engine.mapping.related.columns().is_empty() {
        return Ok(Map::new());
    }
    let Some(engagement_id) = engagement_of(ours) else {
        return Ok(Map::new());
    };
    let microsofts = engagement(engine, engagement_id)
        .await?
        .into_iter()
        .find(is_microsofts);
    Ok(microsofts
        .map(|m| engine.mapping.microsoft_side(&m))
        .unwrap_or_default())
}
