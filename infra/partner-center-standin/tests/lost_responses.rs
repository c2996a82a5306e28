//! "Apply the write, then lose the answer" on every write route; creates are not
//! de-duplicated by `MS-RequestId` (not documented for the referral endpoints); a referral is
//! found again by its `externalReferenceId` the way the connector looks for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use cosell::entra::{Grant, TokenProvider};
use cosell::partner_center::{ListQuery, PartnerCenterError};
use cosell::retry::RetryPolicy;
use cosell::Secret;
use partner_center_standin::{Fault, LostAs};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const REFERRALS: &str = "/v1.0/engagements/referrals";
const REGISTRATION: &str = "/webhooks/v1/registration";
/// The audience of the webhook registration API (the referrals API has its own).
const WEBHOOK_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";
const BOTH: [LostAs; 2] = [LostAs::Drop, LostAs::GatewayTimeout];

#[derive(Debug, PartialEq)]
enum Seen {
    /// The connection closed with no response (not a client timeout).
    Dropped,
    /// 504 with the proxy's HTML page.
    GatewayTimeout,
    Answered(u16),
}

fn expected(lost_as: LostAs) -> Seen {
    match lost_as {
        LostAs::Drop => Seen::Dropped,
        LostAs::GatewayTimeout => Seen::GatewayTimeout,
    }
}

struct Raw {
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
}

impl Raw {
    fn new(env: &Env, scope: &str) -> Raw {
        let tokens = TokenProvider::new(
            reqwest::Client::new(),
            env.standin.token_url("contoso-tenant"),
            env.standin.config().client_id.clone(),
            Secret::new(env.standin.config().client_secret.clone()),
            scope,
            Grant::ClientCredentials,
            RetryPolicy::fast(),
        );
        Raw {
            http: reqwest::Client::new(),
            tokens: Arc::new(tokens),
        }
    }

    async fn send(
        &self,
        env: &Env,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Seen {
        let token = self.tokens.token().await.unwrap();
        let url = env.standin.base_url().join(path).unwrap();
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .timeout(Duration::from_secs(10))
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.send().await {
            Err(e) => {
                assert!(!e.is_timeout(), "a lost answer closes the socket: {e}");
                Seen::Dropped
            }
            Ok(resp) if resp.status() == 504 => {
                assert_eq!(resp.headers()["content-type"], "text/html");
                assert!(resp.text().await.unwrap().contains("504 Gateway Time-out"));
                Seen::GatewayTimeout
            }
            Ok(resp) => Seen::Answered(resp.status().as_u16()),
        }
    }
}

fn body_of(name: &str) -> Value {
    serde_json::to_value(outgoing(name)).unwrap()
}

fn named(env: &Env, name: &str) -> Vec<Value> {
    env.standin
        .referrals()
        .into_iter()
        .filter(|r| r["name"] == name)
        .collect()
}

#[tokio::test]
async fn creates_are_stored_though_the_answer_is_lost() {
    let env = env().await;
    let raw = Raw::new(&env, SCOPE);
    for lost_as in BOTH {
        let name = format!("created, {lost_as:?}");
        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("POST", REFERRALS));
        let seen = raw
            .send(&env, Method::POST, REFERRALS, &[], body_of(&name))
            .await;
        assert_eq!(seen, expected(lost_as));
        assert_eq!(named(&env, &name).len(), 1);
    }
    assert!(env.standin.pending_faults().is_empty());
}

#[tokio::test]
async fn patch_and_put_are_stored_though_the_answer_is_lost() {
    let env = env().await;
    let raw = Raw::new(&env, SCOPE);
    for lost_as in BOTH {
        let created = env
            .client
            .create_referral(&outgoing("to edit"))
            .await
            .unwrap();
        let id = created.id.unwrap();
        let path = format!("{REFERRALS}/{id}");
        let etag = created.e_tag.unwrap();

        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("PATCH", REFERRALS));
        let ops = json!([{"op": "replace", "path": "/name", "value": "patched"}]);
        let seen = raw
            .send(&env, Method::PATCH, &path, &[("If-Match", &etag)], ops)
            .await;
        assert_eq!(seen, expected(lost_as));
        let stored = env.standin.referral(&id).unwrap();
        assert_eq!(stored["name"], "patched");
        let etag = stored["eTag"].as_str().unwrap().to_string();

        let mut full = stored.clone();
        full.as_object_mut().unwrap().remove("links");
        full["name"] = json!("replaced");
        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("PUT", REFERRALS));
        let seen = raw
            .send(&env, Method::PUT, &path, &[("If-Match", &etag)], full)
            .await;
        assert_eq!(seen, expected(lost_as));
        assert_eq!(env.standin.referral(&id).unwrap()["name"], "replaced");
    }
}

#[tokio::test]
async fn registration_writes_are_stored_though_the_answer_is_lost() {
    let env = env().await;
    let raw = Raw::new(&env, WEBHOOK_SCOPE);
    let registration = |url: &str| json!({"WebhookUrl": url, "WebhookEvents": ["referral-created", "referral-updated"]});
    env.standin
        .add_fault(Fault::lose_response(LostAs::Drop, 1).on("POST", REGISTRATION));
    let seen = raw
        .send(
            &env,
            Method::POST,
            REGISTRATION,
            &[],
            registration("https://a.example/hook"),
        )
        .await;
    assert_eq!(seen, Seen::Dropped);
    assert_eq!(
        env.standin.registration().unwrap()["WebhookUrl"],
        "https://a.example/hook"
    );

    env.standin
        .add_fault(Fault::lose_response(LostAs::GatewayTimeout, 1).on("PUT", REGISTRATION));
    let seen = raw
        .send(
            &env,
            Method::PUT,
            REGISTRATION,
            &[],
            registration("https://b.example/hook"),
        )
        .await;
    assert_eq!(seen, Seen::GatewayTimeout);
    assert_eq!(
        env.standin.registration().unwrap()["WebhookUrl"],
        "https://b.example/hook"
    );
}

#[tokio::test]
async fn reads_and_token_requests_pass_an_armed_fault_by() {
    let env = env().await;
    let raw = Raw::new(&env, SCOPE);
    // No method or path: the fault waits for the first write.
    env.standin
        .add_fault(Fault::lose_response(LostAs::GatewayTimeout, 1));
    let page = env
        .client
        .list_referrals(&ListQuery::default())
        .await
        .unwrap();
    assert!(page.is_empty());
    assert_eq!(env.standin.request_count("POST token"), 1);
    assert_eq!(env.standin.pending_faults().len(), 1);
    let seen = raw
        .send(&env, Method::POST, REFERRALS, &[], body_of("first write"))
        .await;
    assert_eq!(seen, Seen::GatewayTimeout);
    assert!(env.standin.pending_faults().is_empty());
    assert_eq!(named(&env, "first write").len(), 1);
}

#[tokio::test]
async fn a_repeated_ms_request_id_makes_a_second_referral() {
    let env = env().await;
    let raw = Raw::new(&env, SCOPE);
    let request_id = "5d8a3c2b-7e6f-4a1b-9c0d-2e3f4a5b6c7d";
    for _ in 0..2 {
        let seen = raw
            .send(
                &env,
                Method::POST,
                REFERRALS,
                &[("MS-RequestId", request_id)],
                body_of("sent twice"),
            )
            .await;
        assert_eq!(seen, Seen::Answered(201));
    }
    let made = named(&env, "sent twice");
    assert_eq!(made.len(), 2);
    assert_ne!(made[0]["id"], made[1]["id"]);

    // After a lost answer the client does not resend a create (its outcome is unknown);
    // a caller that sends it again with the same MS-RequestId gets a second referral.
    let from = env.standin.requests().len();
    env.standin
        .add_fault(Fault::lose_response(LostAs::Drop, 1).on("POST", REFERRALS));
    let request_id = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    let lost = env
        .client
        .create_referral_as(&outgoing("retried"), Some(request_id))
        .await;
    assert!(
        matches!(&lost, Err(PartnerCenterError::Call(e)) if e.outcome_unknown()),
        "{lost:?}"
    );
    env.client
        .create_referral_as(&outgoing("retried"), Some(request_id))
        .await
        .unwrap();
    let posts: Vec<_> = env.standin.requests()[from..]
        .iter()
        .filter(|r| r.method == "POST" && r.path == REFERRALS)
        .cloned()
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(posts[0].request_id.is_some());
    assert_eq!(posts[0].request_id, posts[1].request_id);
    assert_eq!(named(&env, "retried").len(), 2);
}

#[tokio::test]
async fn a_referral_whose_answer_was_lost_is_found_by_its_external_reference() {
    let env = env().await;
    let raw = Raw::new(&env, SCOPE);
    let key = "2b7c9e1d-4f3a-4b6c-8d2e-1f0a9b8c7d6e";
    let mut older = outgoing("older");
    older.external_reference_id = Some(key.into());
    env.client.create_referral(&older).await.unwrap();

    // The connector filters on whole seconds (Dataverse's createdon less a skew), then scans.
    let now = OffsetDateTime::now_utc();
    let since = now.replace_nanosecond(0).unwrap() + time::Duration::seconds(1);
    tokio::time::sleep((since - now).unsigned_abs()).await;
    let mut body = body_of("lost answer");
    body["externalReferenceId"] = json!(key);
    env.standin
        .add_fault(Fault::lose_response(LostAs::Drop, 1).on("POST", REFERRALS));
    assert_eq!(
        raw.send(&env, Method::POST, REFERRALS, &[], body).await,
        Seen::Dropped
    );

    let query = ListQuery {
        filter: Some(format!(
            "createdDateTime ge {}",
            since.format(&Rfc3339).unwrap()
        )),
        ..ListQuery::default()
    };
    let found: Vec<_> = env
        .client
        .list_referrals(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.external_reference_id.as_deref() == Some(key))
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name.as_deref(), Some("lost answer"));

    // The API documents no filter on externalReferenceId: the stand-in refuses one.
    let err = env
        .client
        .list_referrals(&ListQuery {
            filter: Some(format!("externalReferenceId eq '{key}'")),
            ..ListQuery::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            cosell::partner_center::PartnerCenterError::Invalid { status: 400, .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn admin_routes_arm_list_and_count() {
    let env = env().await;
    let http = reqwest::Client::new();
    let admin = |p: &str| env.standin.base_url().join(p).unwrap();
    let resp = http
        .post(admin("_standin/faults"))
        .json(&json!({"kind": "lose_response", "lost_as": "gateway_timeout", "count": 1, "method": "POST", "path_prefix": REFERRALS}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let pending: Value = http
        .get(admin("_standin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending[0]["lost_as"], "gateway_timeout");

    let resp = http
        .delete(admin("_standin/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let raw = Raw::new(&env, SCOPE);
    let seen = raw
        .send(&env, Method::POST, REFERRALS, &[], body_of("counted"))
        .await;
    assert_eq!(seen, Seen::GatewayTimeout);
    let id = named(&env, "counted")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.client.get_referral(&id).await.unwrap();
    let counts: Value = http
        .get(admin("_standin/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["POST referrals"], 1);
    assert_eq!(counts["GET referrals/{id}"], 1);
    assert_eq!(counts["POST token"], 2, "one token per provider");
    let pending: Value = http
        .get(admin("_standin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending, json!([]));
}
