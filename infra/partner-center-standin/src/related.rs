//! Related referrals: another organization's referral in one of the partner's engagements
//! (for a co-sell, Microsoft's own, with its seller and its CRM's id), as the
//! `related-referral-created` / `-updated` events announce them. The partner reads one by
//! id and in its engagement's list (`links.relatedReferrals`); it is not in the partner's
//! own list, and the partner cannot write it (403). UNVERIFIED: which fields Microsoft's
//! referral carries; this stand-in puts its CRM id in `externalReferenceId` and its seller
//! in `team`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::deliveries;
use crate::referrals::insert_new;
use crate::state::State;

/// What a Microsoft seller's side of an engagement holds.
#[derive(Debug, Clone)]
pub struct MicrosoftSide {
    pub crm_id: String,
    pub seller_first_name: String,
    pub seller_last_name: String,
    pub seller_email: String,
}

pub(crate) fn add(state: &Arc<State>, engagement_id: &str, side: &MicrosoftSide) -> Option<Value> {
    let own = state
        .lock()
        .referrals
        .iter()
        .find(|r| r["engagementId"].as_str() == Some(engagement_id))
        .cloned()?;
    let body = json!({
        "engagementId": engagement_id,
        "name": own["name"],
        "type": "Shared",
        "qualification": "SalesQualified",
        "organizationId": "msft",
        "organizationName": "Microsoft",
        "externalReferenceId": side.crm_id,
        "customerProfile": own["customerProfile"],
        "consent": own["consent"],
        "details": own["details"],
        "team": [{
            "firstName": side.seller_first_name,
            "lastName": side.seller_last_name,
            "email": side.seller_email,
        }],
    });
    let stored = insert_new(state, body, "Outgoing", "Pending");
    let id = stored["id"].as_str().unwrap_or_default().to_string();
    state.lock().related.insert(id.clone());
    deliveries::emit(state, "related-referral-created", Some(&id), None);
    Some(stored)
}

/// Microsoft's side moves its referral (accepts it: `Active`/`Accepted`).
pub(crate) fn set_status(
    state: &Arc<State>,
    id: &str,
    status: &str,
    substatus: &str,
) -> Option<Value> {
    let updated = {
        let mut inner = state.lock();
        if !inner.related.contains(id) {
            return None;
        }
        let pos = inner.position(id)?;
        let mut r = inner.referrals[pos].clone();
        r["status"] = json!(status);
        r["substatus"] = json!(substatus);
        crate::referrals::stamp(&mut inner, &mut r);
        inner.referrals[pos] = r.clone();
        r
    };
    deliveries::emit(state, "related-referral-updated", Some(id), None);
    Some(updated)
}
