//! A referral as Microsoft would send it: incoming, shared, waiting for the partner's answer.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::deliveries;
use crate::referrals::insert_new;
use crate::state::State;

/// What differs between the referrals Microsoft sends.
struct Sent<'a> {
    referral_type: &'a str,
    qualification: &'a str,
    notes: &'a str,
    deal_value: u64,
    invite_notes: &'a str,
    /// Microsoft's seller on the deal (a co-sell has one, a lead none).
    team: Value,
}

/// Stores what Microsoft sends (incoming, `Received`) and emits `referral-created`.
fn receive(state: &Arc<State>, name: &str, customer_name: &str, sent: Sent<'_>) -> Value {
    let mut body = json!({
        "name": name,
        "type": sent.referral_type,
        "qualification": sent.qualification,
        "organizationName": "Microsoft",
        "customerProfile": {
            "name": customer_name,
            "address": {"country": "US"},
            "size": "10to50employees",
            "team": [],
            "ids": []
        },
        "consent": {"consentToToShareInfoWithOthers": true, "consentToContact": true},
        "details": {"notes": sent.notes, "dealValue": sent.deal_value, "currency": "USD"},
        "inviteContext": {"notes": sent.invite_notes, "invitedBy": {"organizationId": "msft"}},
        "referralSource": "Microsoft"
    });
    if !sent.team.is_null() {
        body["team"] = sent.team;
    }
    let stored = insert_new(state, body, "Incoming", "Received");
    deliveries::emit(state, "referral-created", stored["id"].as_str(), None);
    stored
}

pub(crate) fn create(state: &Arc<State>, name: &str, customer_name: &str) -> Value {
    let sent = Sent {
        referral_type: "Shared",
        qualification: "SalesQualified",
        notes: "Customer asked Microsoft for a partner",
        deal_value: 25000,
        invite_notes: "Please engage",
        team: json!([{"firstName": "Mia", "lastName": "Seller", "email": "mia.seller@microsoft.example"}]),
    };
    receive(state, name, customer_name, sent)
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
    let sent = Sent {
        referral_type: "Independent",
        qualification,
        notes: "Customer asked to be contacted",
        deal_value: 5000,
        invite_notes: "A lead for you",
        team: Value::Null,
    };
    receive(state, name, customer_name, sent)
}
