//! The domain types read the services' JSON and write it back unchanged, unknown fields
//! included, so a read-modify-write never drops what a newer service version added.

use cosell::dataverse::{Account, Contact, Opportunity};
use cosell::partner_center::wire::DealValue;
use cosell::partner_center::{
    Referral, ReferralStatus, ReferralSubstatus, ReferralType, WebhookEvent,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses, writes back, and compares as JSON values (key order aside).
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> (T, Value) {
    let text = fixture(name);
    let original: Value = serde_json::from_str(&text).unwrap();
    let typed: T = serde_json::from_str(&text).unwrap();
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(written, original, "{name} did not round-trip");
    (typed, original)
}

#[test]
fn docs_referral_round_trips_and_reads_typed_fields() {
    let (r, _) = round_trip::<Referral>("referral_docs_sample.json");
    assert_eq!(
        r.id.as_deref(),
        Some("4111fffc-f9ee-4d53-bba6-569135228642")
    );
    assert_eq!(r.status, Some(ReferralStatus::Closed));
    assert_eq!(r.substatus, Some(ReferralSubstatus::Won));
    assert_eq!(r.referral_type, Some(ReferralType::Independent));
    let details = r.details.as_ref().unwrap();
    assert_eq!(
        details.deal_value.as_ref().and_then(DealValue::amount),
        Some(50000.0)
    );
    assert_eq!(
        details
            .closing_date_time
            .as_ref()
            .unwrap()
            .parse()
            .unwrap()
            .year(),
        2018
    );
    let sol = &details
        .requirements
        .as_ref()
        .unwrap()
        .solutions
        .as_ref()
        .unwrap()[0];
    assert_eq!(sol.id.as_deref(), Some("Dynamics365forFieldService"));
    let consent = r.consent.as_ref().unwrap();
    assert_eq!(consent.consent_to_share_info_with_others, Some(true));
    let cp = r.customer_profile.as_ref().unwrap();
    assert_eq!(
        cp.address.as_ref().unwrap().postal_code.as_deref(),
        Some("98052")
    );
    assert_eq!(
        cp.team.as_ref().unwrap()[0].email.as_deref(),
        Some("sue.smith@contoso.com")
    );
    assert_eq!(
        r.e_tag.as_deref(),
        Some("\"2500ec5a-0000-0000-0000-5bf4967d0000\"")
    );
    assert!(!r.is_co_sell());
}

#[test]
fn seven_digit_timestamps_are_written_back_verbatim() {
    let (r, original) = round_trip::<Referral>("referral_docs_sample.json");
    let written = serde_json::to_value(&r).unwrap();
    assert_eq!(written["createdDateTime"], original["createdDateTime"]);
    assert_eq!(written["createdDateTime"], "2018-11-06T18:40:42.6178337Z");
}

#[test]
fn unknown_fields_survive_at_every_level() {
    let (r, _) = round_trip::<Referral>("referral_future_fields.json");
    assert_eq!(r.extra["referralSource"], "Marketplace");
    assert_eq!(r.extra["solutionPlay"][0], "Migrate and Modernize");
    let cp = r.customer_profile.as_ref().unwrap();
    assert_eq!(cp.extra["segment"], "SMB");
    assert_eq!(
        cp.address.as_ref().unwrap().extra["region"],
        "Ile-de-France"
    );
    assert_eq!(cp.team.as_ref().unwrap()[0].extra["title"], "CIO");
    assert_eq!(
        r.consent.as_ref().unwrap().extra["consentToFutureThing"],
        false
    );
    let details = r.details.as_ref().unwrap();
    assert_eq!(details.extra["marketplaceOfferId"], "offer-7");
    assert_eq!(
        details.requirements.as_ref().unwrap().extra["workloads"][0],
        "SAP"
    );
    assert!(r.is_co_sell());
}

#[test]
fn deal_value_as_text_keeps_its_form_and_reads_as_amount() {
    let (r, _) = round_trip::<Referral>("referral_future_fields.json");
    let dv = r.details.unwrap().deal_value.unwrap();
    assert!(matches!(dv, DealValue::Text(_)));
    assert_eq!(dv.amount(), Some(125000.5));
    assert_eq!(DealValue::Text("n/a".into()).amount(), None);
}

#[test]
fn read_modify_write_keeps_unknown_fields() {
    let text = fixture("referral_future_fields.json");
    let mut r: Referral = serde_json::from_str(&text).unwrap();
    r.name = Some("renamed".into());
    r.details.as_mut().unwrap().currency = Some("USD".into());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["details"]["currency"], "USD");
    assert_eq!(v["details"]["marketplaceOfferId"], "offer-7");
    assert_eq!(v["callToAction"], "ContactMe");
}

#[test]
fn webhook_event_round_trips_and_points_at_the_referral() {
    let (e, _) = round_trip::<WebhookEvent>("webhook_event.json");
    assert_eq!(e.event_name, "referral-updated");
    assert_eq!(
        e.referral_id(),
        Some("4111fffc-f9ee-4d53-bba6-569135228642")
    );
    assert!(e.audit_uri.is_none());
}

#[test]
fn webhook_event_referral_id_ignores_query_and_trailing_slash() {
    let mut e: WebhookEvent = serde_json::from_str(&fixture("webhook_event.json")).unwrap();
    e.resource_uri = "https://api.partner.microsoft.com/v1.0/engagements/referrals/abc/?x=1".into();
    assert_eq!(e.referral_id(), Some("abc"));
    e.resource_uri = "".into();
    assert_eq!(e.referral_id(), None);
}

#[test]
fn opportunity_round_trips_with_connector_columns_and_annotations() {
    let (o, _) = round_trip::<Opportunity>("opportunity_representation.json");
    assert_eq!(o.etag.as_deref(), Some("W/\"536530\""));
    assert_eq!(o.estimatedvalue, Some(50000.0));
    assert_eq!(o.estimatedclosedate.as_deref(), Some("2018-11-14"));
    assert_eq!(
        o.customerid.as_deref(),
        Some("7eb682f1-ca75-e511-80d4-00155d2a68d1")
    );
    assert_eq!(
        o.column_str("cosell_referralidentifier"),
        Some("4111fffc-f9ee-4d53-bba6-569135228642")
    );
    assert_eq!(
        o.column("cosell_syncwithpartnercenter"),
        Some(&Value::Bool(true))
    );
    assert!(o.column("cosell_missing").is_none());
    assert!(!o.is_closed());
}

#[test]
fn account_and_contact_round_trip() {
    let (a, _) = round_trip::<Account>("account.json");
    assert_eq!(a.address1_country.as_deref(), Some("US"));
    assert_eq!(a.extra["websiteurl"], "https://contoso.example");
    let (c, _) = round_trip::<Contact>("contact.json");
    assert_eq!(c.emailaddress1.as_deref(), Some("sue.smith@contoso.com"));
    assert_eq!(
        c.parentcustomerid.as_deref(),
        Some("7eb682f1-ca75-e511-80d4-00155d2a68d1")
    );
}
