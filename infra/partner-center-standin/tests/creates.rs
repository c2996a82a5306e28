//! Issue 21 item 3 and point 7 on the stand-in's side: a create is checked against what
//! "create a referral" and "referral resources" document (required fields, enum values,
//! sub-object fields, ISO codes, the deal types and the shared-referral steps) and refused
//! otherwise with the service's error shape; a PATCH to an undocumented value is refused.

mod common;

use common::env;
use cosell::partner_center::PatchOp;
use http::StatusCode;
use serde_json::{json, Value};

/// The docs' private-deal sample (emails filled in).
fn private_sample() -> Value {
    json!({
        "name": "Contoso Test Deal - [Private]",
        "qualification": "SalesQualified",
        "type": "Independent",
        "customerProfile": {
            "name": "Contoso Customer Inc",
            "address": {"addressLine1": "One Microsoft Way", "addressLine2": "34", "city": "Redmond",
                        "state": "WA", "postalCode": "98052", "country": "US"},
            "size": "10to50employees",
            "team": [{"firstName": "Sue", "lastName": "Smith", "phoneNumber": "1234567890", "email": "sue@contoso.example"}]
        },
        "consent": {
            "ConsentToToShareInfoWithOthers": true,
            "ConsentToContact": true,
            "ConsentToMicrosoftToContactSpecificPartners": true,
            "consentToShareReferralWithMicrosoftSellers": false
        },
        "details": {
            "notes": "Customer is looking to leverage Dynamics 365",
            "dealValue": 50000,
            "currency": "USD",
            "closingDateTime": "2024-11-14T00:00:00Z",
            "requirements": {"solutions": [{"type": "Name", "id": "SOL-15974-MQF", "name": "Contoso-Ale_Test",
                                            "publisherName": "Contoso_Test", "solutionType": "3P"}]}
        },
        "team": [{"firstName": "John", "lastName": "Doe", "phoneNumber": "1231231234", "email": "john@partner.example"}],
        "target": []
    })
}

/// Your own referral of a shared (co-sell) deal: the first step.
fn shared() -> Value {
    let mut r = private_sample();
    r["name"] = json!("Contoso Test Deal - [Co-sell]");
    r["type"] = json!("Shared");
    r["consent"]["consentToShareReferralWithMicrosoftSellers"] = json!(true);
    r
}

fn for_microsoft(engagement_id: &str) -> Value {
    let mut r = shared();
    r["engagementId"] = json!(engagement_id);
    r["target"] = json!([{"type": "BusinessProfileLocation", "id": "msft"}]);
    r["inviteContext"] = json!({"notes": "Help needed from Microsoft: Demo or proof of concept"});
    r
}

/// POSTs a raw body; the status and the JSON answer.
async fn post(env: &common::Env, body: &Value) -> (StatusCode, Value) {
    let token = env.tokens.token().await.unwrap();
    let url = env
        .standin
        .base_url()
        .join("v1.0/engagements/referrals")
        .unwrap();
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token.expose())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Refused with 400 and the error body the stand-in's errors share, naming `word`.
fn refused(answer: (StatusCode, Value), word: &str) {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "400", "{body}");
    let description = body["description"].as_str().unwrap_or_default();
    assert!(description.contains(word), "'{description}' lacks '{word}'");
}

#[tokio::test]
async fn the_documented_private_sample_is_accepted() {
    let env = env().await;
    let (status, body) = post(&env, &private_sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["type"], "Independent");
    assert!(body["engagementId"].as_str().is_some_and(|e| !e.is_empty()));
    // `name` is not required.
    let mut unnamed = private_sample();
    unnamed.as_object_mut().unwrap().remove("name");
    assert_eq!(post(&env, &unnamed).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn undocumented_fields_and_values_of_a_create_are_refused() {
    let env = env().await;
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "the old co-sell target",
            |r| r["target"] = json!([{"type": "Msft"}]),
            "Msft",
        ),
        (
            "inviteContext.reason",
            |r| r["inviteContext"] = json!({"reason": "Demo or proof of concept"}),
            "reason",
        ),
        (
            "no currency with a deal value",
            |r| {
                r["details"].as_object_mut().unwrap().remove("currency");
            },
            "currency",
        ),
        (
            "a currency that is no ISO 4217 code",
            |r| r["details"]["currency"] = json!("Dollars"),
            "ISO 4217",
        ),
        (
            "an alpha-3 country",
            |r| r["customerProfile"]["address"]["country"] = json!("USA"),
            "alpha-2",
        ),
        (
            "an undocumented qualification",
            |r| r["qualification"] = json!("IntentToBuy"),
            "IntentToBuy",
        ),
        (
            "an undocumented substatus",
            |r| {
                r["status"] = json!("Active");
                r["substatus"] = json!("Engaged");
            },
            "Engaged",
        ),
        ("an unknown type", |r| r["type"] = json!("Joint"), "Joint"),
        (
            "no consent",
            |r| {
                r.as_object_mut().unwrap().remove("consent");
            },
            "consent",
        ),
        (
            "an undocumented consent flag",
            |r| r["consent"]["consentToEverything"] = json!(true),
            "consentToEverything",
        ),
    ];
    for (name, edit, word) in cases {
        let mut body = private_sample();
        edit(&mut body);
        let answer = post(&env, &body).await;
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{name}: {}", answer.1);
        refused(answer, word);
    }
    assert!(env.standin.referrals().is_empty());
}

#[tokio::test]
async fn a_referral_shared_with_microsoft_takes_the_two_documented_steps() {
    let env = env().await;
    // The referral for Microsoft needs an engagement: not in one POST, not as Independent.
    let mut one_step = shared();
    one_step["target"] = json!([{"type": "BusinessProfileLocation", "id": "msft"}]);
    refused(post(&env, &one_step).await, "engagementId");
    let mut independent = one_step.clone();
    independent["type"] = json!("Independent");
    refused(post(&env, &independent).await, "shared referral");
    refused(
        post(&env, &for_microsoft("no-such-engagement")).await,
        "no-such-engagement",
    );
    assert!(env.standin.referrals().is_empty());

    // Step 1: your own Shared referral; the service assigns the engagement.
    let (status, own) = post(&env, &shared()).await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let engagement = own["engagementId"].as_str().unwrap().to_string();
    // Step 2: the connected referral for Microsoft, tied by the engagementId.
    let (status, ms) = post(&env, &for_microsoft(&engagement)).await;
    assert_eq!(status, StatusCode::CREATED, "{ms}");
    assert_eq!(ms["engagementId"], json!(engagement));
    assert_ne!(ms["id"], own["id"]);
    assert_eq!(env.standin.referrals_for_microsoft(&engagement).len(), 1);
    assert_eq!(env.standin.partner_referrals().len(), 1);
    // Both are listed under the engagement (the documented filter).
    let listed = env
        .client
        .list_referrals(&cosell::partner_center::ListQuery {
            filter: Some(format!("engagementId eq '{engagement}'")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    // Withholding consent from Microsoft sellers contradicts a referral for Microsoft.
    let mut withheld = for_microsoft(&engagement);
    withheld["consent"]["consentToShareReferralWithMicrosoftSellers"] = json!(false);
    refused(
        post(&env, &withheld).await,
        "consentToShareReferralWithMicrosoftSellers",
    );
    // An independent referral joins no engagement.
    let mut joined = private_sample();
    joined["engagementId"] = json!(engagement);
    refused(post(&env, &joined).await, "engagement");
}

#[tokio::test]
async fn a_patch_to_an_undocumented_value_is_refused() {
    let env = env().await;
    let (_, own) = post(&env, &shared()).await;
    let id = own["id"].as_str().unwrap();
    let etag = own["eTag"].as_str().unwrap();
    for (ops, word) in [
        (
            vec![
                PatchOp::replace("/status", "Active"),
                PatchOp::replace("/substatus", "Engaged"),
            ],
            "Engaged",
        ),
        (
            vec![
                PatchOp::replace("/status", "Closed"),
                PatchOp::replace("/substatus", "Error"),
            ],
            "Error",
        ),
        (
            vec![PatchOp::replace("/qualification", "TelesalesQualified")],
            "TelesalesQualified",
        ),
        (
            vec![PatchOp::replace(
                "/target",
                json!([{"type": "Organization", "id": "x"}]),
            )],
            "Organization",
        ),
    ] {
        let err = env
            .client
            .update_referral(id, etag, &ops)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(word), "{word}: {err}");
    }
    // A documented value goes through.
    env.client
        .update_referral(
            id,
            etag,
            &[
                PatchOp::replace("/status", "Active"),
                PatchOp::replace("/substatus", "Accepted"),
            ],
        )
        .await
        .unwrap();
}
