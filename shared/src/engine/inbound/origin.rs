//! A referral made from a CRM opportunity: the outbound direction creates referrals with
//! `externalReferenceId` = the opportunity's id. Partner Center announces such a referral
//! with a `referral-created` webhook, which can arrive before the outbound sync has written
//! the referral id back to the opportunity and recorded the link. Creating an opportunity for
//! it then would duplicate the one it was made from.

use crate::dataverse::{DataverseError, Opportunity};
use crate::engine::claim::Lease;
use crate::engine::{Engine, SyncError};
use crate::partner_center::Referral;

use super::pair::{outbound_lease, put_off};
use super::trail::Trail;

/// The opportunity an unlinked referral was made from, when it should take that row instead
/// of a new one. Its outbound lease is pushed onto `held` (released when the sync ends), so
/// no outbound sync of the row runs meanwhile.
///
/// While an outbound sync of the row is at work, the sync is put off: the caller gets a
/// retry and `trail` is marked deferred, since nothing went wrong.
pub(super) async fn made_from(
    engine: &Engine,
    referral: &Referral,
    referral_id: &str,
    trail: &mut Trail,
    held: &mut Vec<Lease>,
) -> Result<Option<Opportunity>, SyncError> {
    let Some(opportunity_id) = referral
        .external_reference_id
        .as_deref()
        .map(str::trim)
        // Opportunity ids are GUIDs; another system's reference is none of ours.
        .filter(|s| uuid::Uuid::parse_str(s).is_ok())
    else {
        return Ok(None);
    };
    let store = engine.store.as_ref();
    let in_flight = |trail: &mut Trail| {
        put_off(
            trail,
            format!(
                "referral {referral_id} was made from opportunity {opportunity_id}, whose outbound sync has not recorded the link yet"
            ),
        )
    };
    let Some(lease) = outbound_lease(engine, opportunity_id).await? else {
        return Err(in_flight(trail));
    };
    // Read under the lease: an outbound sync that ended since has recorded its link.
    let found = match store.get_link_by_opportunity(opportunity_id).await {
        // Just linked to this referral: the next try takes the linked path.
        Ok(Some(link)) if link.referral_id == referral_id => Err(in_flight(trail)),
        // The row belongs to another referral; this one gets a row of its own.
        Ok(Some(_)) => Ok(None),
        Ok(None) => match engine.dv.get_opportunity(opportunity_id).await {
            Ok(opp) => Ok(Some(opp)),
            Err(DataverseError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    match found {
        Ok(Some(opp)) => {
            held.push(lease);
            Ok(Some(opp))
        }
        other => {
            lease.release(store).await;
            other
        }
    }
}
