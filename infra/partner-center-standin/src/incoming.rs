//! A referral as Microsoft would send it: incoming, shared, waiting for the partner's answer.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::deliveries;
use crate::referrals::insert_new;
use crate::state::State;

pub(crate) fn create(state: &Arc<State>, name: &str, customer_name: &str) -> Value {
    let body = json!({
        "name": name,
        "type": "Shared",
        "qualification": "SalesQualified",
        "organizationName": "Microsoft",
        "customerProfile": {
            "name": customer_name,
            "address": {"country": "US"},
            "size": "10to50employees",
            "team": [],
            "ids": []
        },
        "consent": {"consentToToShareInfoWithOthers": true, "consentToContact": true},
        "details": {"notes": "Customer asked Microsoft for a partner", "dealValue": 25000, "currency": "USD"},
        "team": [{"firstName": "Mia", "lastName": "Seller", "email": "mia.seller@microsoft.example"}],
        "inviteContext": {"notes": "Please engage", "invitedBy": {"organizationId": "msft"}},
        "referralSource": "Microsoft"
    });
    let stored = insert_new(state, body, "Incoming", "Received");
    deliveries::emit(state, "referral-created", stored["id"].as_str(), None);
    stored
}

/// A lead as Microsoft sends it: an `Independent` referral with the given qualification
/// (`Direct`: a Marketplace lead; `SalesQualified` or `MarketingQualified`: a qualified lead),
/// invited by Microsoft.
pub(crate) fn create_lead(
    state: &Arc<State>,
    name: &str,
    customer_name: &str,
    qualification: &str,
) -> Value {
    let body = json!({
        "name": name,
        "type": "Independent",
        "qualification": qualification,
        "organizationName": "Microsoft",
        "customerProfile": {
            "name": customer_name,
            "address": {"country": "US"},
            "size": "10to50employees",
            "team": [],
            "ids": []
        },
        "consent": {"consentToToShareInfoWithOthers": true, "consentToContact": true},
        "details": {"notes": "Customer asked to be contacted", "dealValue": 5000, "currency": "USD"},
        "inviteContext": {"notes": "A lead for you", "invitedBy": {"organizationId": "msft"}},
        "referralSource": "Microsoft"
    });
    let stored = insert_new(state, body, "Incoming", "Received");
    deliveries::emit(state, "referral-created", stored["id"].as_str(), None);
    stored
}
