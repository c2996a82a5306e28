//! The Partner Center client against the stand-in: every operation, every injected fault,
//! and the token handling.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cosell::entra::{Grant, TokenError};
use cosell::partner_center::{
    ListQuery, PartnerCenterError, PatchOp, ReferralStatus, ReferralSubstatus,
};
use cosell::retry::{CallError, RetryPolicy};
use cosell::Secret;
use partner_center_standin::{Fault, FaultKind};
use serde_json::json;

const REFERRALS: &str = "/v1.0/engagements/referrals";

#[tokio::test]
async fn create_get_patch_and_put_keep_etags_and_unknown_fields() {
    let env = env().await;
    let created = env
        .client
        .create_referral(&outgoing("Fabrikam rollout"))
        .await
        .unwrap();
    let id = created.id.clone().unwrap();
    assert_eq!(created.status, Some(ReferralStatus::New));
    assert_eq!(created.extra["callToAction"], "Contact customer");
    let etag1 = created.e_tag.clone().unwrap();

    let fetched = env.client.get_referral(&id).await.unwrap();
    assert_eq!(fetched, created);

    let ops = [
        PatchOp::replace("/details/dealValue", "75000"),
        PatchOp::add(
            "/team/-",
            json!({"email": "sam@partner.example", "firstName": "Sam"}),
        ),
    ];
    // `team` is absent on create, so appending needs it to exist first.
    let err = env
        .client
        .update_referral(&id, &etag1, &ops)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PartnerCenterError::Invalid { status: 400, message, .. } if message.contains("/team/-")),
        "{err:?}"
    );

    let ops = [
        PatchOp::replace("/details/dealValue", "75000"),
        PatchOp::add("/team", json!([{"email": "sam@partner.example"}])),
    ];
    let patched = env.client.update_referral(&id, &etag1, &ops).await.unwrap();
    let etag2 = patched.e_tag.clone().unwrap();
    assert_ne!(etag1, etag2);
    assert_eq!(
        patched
            .details
            .as_ref()
            .unwrap()
            .deal_value
            .as_ref()
            .unwrap()
            .amount(),
        Some(75000.0)
    );
    assert_eq!(patched.extra["callToAction"], "Contact customer");
    assert!(patched.updated_date_time > created.updated_date_time);

    // A full update from what was read: the client must strip `links` or the service refuses.
    let mut full = env.client.get_referral(&id).await.unwrap();
    assert!(full.links.is_some());
    full.name = Some("Fabrikam rollout, phase 2".into());
    let put = env.client.put_referral(&id, &etag2, &full).await.unwrap();
    assert_eq!(put.name.as_deref(), Some("Fabrikam rollout, phase 2"));
    assert_ne!(put.e_tag.as_deref(), Some(etag2.as_str()));
    assert_eq!(
        env.standin.referral(&id).unwrap()["name"],
        "Fabrikam rollout, phase 2"
    );
}

#[tokio::test]
async fn stale_etag_is_a_conflict_and_unknown_id_is_not_found() {
    let env = env().await;
    let created = env.client.create_referral(&outgoing("a")).await.unwrap();
    let id = created.id.unwrap();
    let stale = created.e_tag.unwrap();
    env.client
        .update_referral(&id, &stale, &[PatchOp::replace("/name", "b")])
        .await
        .unwrap();
    let err = env
        .client
        .update_referral(&id, &stale, &[PatchOp::replace("/name", "c")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PartnerCenterError::Conflict { id: got } if *got == id),
        "{err:?}"
    );
    let err = env
        .client
        .put_referral(&id, &stale, &outgoing("d"))
        .await
        .unwrap_err();
    assert!(matches!(err, PartnerCenterError::Conflict { .. }));
    assert_eq!(env.standin.referral(&id).unwrap()["name"], "b");

    let err = env
        .client
        .get_referral("no-such-referral")
        .await
        .unwrap_err();
    assert!(matches!(&err, PartnerCenterError::NotFound { id } if id == "no-such-referral"));
}

#[tokio::test]
async fn a_bad_request_surfaces_the_service_message() {
    let env = env().await;
    let mut bad = outgoing("no consent");
    bad.consent = None;
    let err = env.client.create_referral(&bad).await.unwrap_err();
    match err {
        PartnerCenterError::Invalid {
            call,
            status,
            message,
        } => {
            assert_eq!((call.as_str(), status), ("create referral", 400));
            assert!(message.contains("consent"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn accept_decline_and_close_follow_the_state_machine() {
    let env = env().await;
    let incoming = env
        .standin
        .create_incoming_referral("From Microsoft", "Contoso");
    let id = incoming["id"].as_str().unwrap();
    let etag = incoming["eTag"].as_str().unwrap();
    let accepted = env.client.accept_referral(id, etag).await.unwrap();
    assert_eq!(
        (accepted.status.clone(), accepted.substatus.clone()),
        (
            Some(ReferralStatus::Active),
            Some(ReferralSubstatus::Accepted)
        )
    );
    let won = env
        .client
        .close_referral(id, accepted.e_tag.as_deref().unwrap(), true, "Signed")
        .await
        .unwrap();
    assert_eq!(won.substatus, Some(ReferralSubstatus::Won));
    assert_eq!(won.status_reason.as_deref(), Some("Signed"));

    // Closed is final.
    let err = env
        .client
        .accept_referral(id, won.e_tag.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PartnerCenterError::Invalid { status: 400, message, .. } if message.contains("cannot move")),
        "{err:?}"
    );

    let other = env.standin.create_incoming_referral("Another", "Litware");
    let declined = env
        .client
        .decline_referral(
            other["id"].as_str().unwrap(),
            other["eTag"].as_str().unwrap(),
            "Not our region",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            declined.status,
            declined.substatus,
            declined.status_reason.as_deref()
        ),
        (
            Some(ReferralStatus::Closed),
            Some(ReferralSubstatus::Declined),
            Some("Not our region")
        )
    );

    let lost_ref = env
        .client
        .create_referral(&outgoing("lost one"))
        .await
        .unwrap();
    let lost = env
        .client
        .close_referral(
            lost_ref.id.as_deref().unwrap(),
            lost_ref.e_tag.as_deref().unwrap(),
            false,
            "Budget",
        )
        .await
        .unwrap();
    assert_eq!(lost.substatus, Some(ReferralSubstatus::Lost));
}

#[tokio::test]
async fn lists_follow_next_links_across_pages_with_filters() {
    let env = env().await;
    let mut names = Vec::new();
    for i in 0..7 {
        let name = format!("deal {i}");
        env.client.create_referral(&outgoing(&name)).await.unwrap();
        names.push(name);
    }
    let watermark = env.standin.referrals()[4]["updatedDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    env.standin.create_incoming_referral("incoming", "Contoso");

    let query = ListQuery {
        filter: Some("direction eq 'Outgoing' and status eq 'New'".into()),
        orderby: Some("createdDateTime asc".into()),
        top: Some(3),
        select: None,
    };
    let before = env.standin.requests().len();
    let all = env.client.list_referrals(&query).await.unwrap();
    let got: Vec<_> = all.iter().map(|r| r.name.clone().unwrap()).collect();
    assert_eq!(got, names);
    assert_eq!(
        env.standin.requests().len() - before,
        3,
        "three pages of 3, 3 and 1"
    );

    // Page by page, as a checkpointing caller would.
    let first = env.client.list_first_page(&query).await.unwrap();
    assert_eq!((first.referrals.len(), first.count), (3, Some(7)));
    let second = env
        .client
        .list_page(first.next_link.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(second.referrals[0].name.as_deref(), Some("deal 3"));

    let desc = ListQuery {
        filter: Some(format!("updatedDateTime gt {watermark}")),
        orderby: Some("updatedDateTime desc".into()),
        ..Default::default()
    };
    let recent: Vec<_> = env
        .client
        .list_referrals(&desc)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.unwrap())
        .collect();
    assert_eq!(recent, ["incoming", "deal 6", "deal 5"]);

    let err = env
        .client
        .list_referrals(&ListQuery {
            filter: Some("name eq 'x'".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PartnerCenterError::Invalid { status: 400, .. }
    ));
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let env = env().await;
    let link =
        url::Url::parse("http://127.0.0.2:1/v1.0/engagements/referrals?$skiptoken=x").unwrap();
    let err = env.client.list_page(&link).await.unwrap_err();
    assert!(matches!(err, PartnerCenterError::Malformed { .. }));
}

fn same_request_id(env: &Env, method: &str, from: usize) -> (usize, bool) {
    let reqs: Vec<_> = env.standin.requests()[from..]
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(REFERRALS))
        .cloned()
        .collect();
    let first = reqs[0].request_id.clone();
    (
        reqs.len(),
        first.is_some() && reqs.iter().all(|r| r.request_id == first),
    )
}

#[tokio::test]
async fn throttling_honours_retry_after_then_succeeds() {
    let env = env().await;
    let id = env
        .client
        .create_referral(&outgoing("t"))
        .await
        .unwrap()
        .id
        .unwrap();
    let from = env.standin.requests().len();
    env.standin.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 1,
            },
            1,
        )
        .on("GET", REFERRALS),
    );
    let started = Instant::now();
    let got = env.client.get_referral(&id).await.unwrap();
    assert_eq!(got.id.as_deref(), Some(id.as_str()));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(same_request_id(&env, "GET", from), (2, true));

    // A wait longer than the policy allows in-process comes back typed, for the caller to park.
    env.standin.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 120,
            },
            1,
        )
        .on("GET", REFERRALS),
    );
    let err = env.client.get_referral(&id).await.unwrap_err();
    match err {
        PartnerCenterError::Call(CallError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(120));
            assert!(PartnerCenterError::Call(CallError::Throttled {
                call: String::new(),
                retry_after
            })
            .is_transient());
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried_with_one_request_id() {
    let env = env().await;
    let id = env
        .client
        .create_referral(&outgoing("r"))
        .await
        .unwrap()
        .id
        .unwrap();

    let from = env.standin.requests().len();
    env.standin
        .add_fault(Fault::new(FaultKind::Status { status: 503 }, 2).on("GET", REFERRALS));
    assert!(env.client.get_referral(&id).await.is_ok());
    assert_eq!(same_request_id(&env, "GET", from), (3, true));

    let from = env.standin.requests().len();
    env.standin
        .add_fault(Fault::new(FaultKind::Drop, 1).on("PATCH", REFERRALS));
    let etag = env.client.get_referral(&id).await.unwrap().e_tag.unwrap();
    let patched = env
        .client
        .update_referral(&id, &etag, &[PatchOp::replace("/name", "after drop")])
        .await
        .unwrap();
    assert_eq!(patched.name.as_deref(), Some("after drop"));
    assert_eq!(same_request_id(&env, "PATCH", from), (2, true));

    // Every attempt failing gives up with the status.
    env.standin
        .add_fault(Fault::new(FaultKind::Status { status: 500 }, 10).on("GET", REFERRALS));
    let err = env.client.get_referral(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartnerCenterError::Call(CallError::Unavailable {
                status: 500,
                attempts: 6,
                ..
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_hits_the_attempt_timeout() {
    let policy = RetryPolicy {
        max_retries: 1,
        attempt_timeout: Duration::from_millis(300),
        ..RetryPolicy::fast()
    };
    let env = env_with(policy).await;
    let id = env
        .client
        .create_referral(&outgoing("slow"))
        .await
        .unwrap()
        .id
        .unwrap();
    env.standin
        .add_fault(Fault::new(FaultKind::Delay { millis: 2000 }, 2).on("GET", REFERRALS));
    let started = Instant::now();
    let err = env.client.get_referral(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartnerCenterError::Call(CallError::Timeout { attempts: 2, .. })
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));

    // A delay within the timeout is just slow.
    env.standin
        .add_fault(Fault::new(FaultKind::Delay { millis: 100 }, 1).on("GET", REFERRALS));
    assert!(env.client.get_referral(&id).await.is_ok());
}

#[tokio::test]
async fn one_token_serves_many_calls_and_a_401_renews_it_once() {
    let env = env().await;
    for i in 0..5 {
        env.client
            .create_referral(&outgoing(&format!("n{i}")))
            .await
            .unwrap();
    }
    env.client
        .list_referrals(&ListQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (env.tokens.fetch_count(), env.standin.token_requests()),
        (1, 1)
    );

    env.standin.revoke_tokens();
    assert_eq!(
        env.client
            .list_referrals(&ListQuery::default())
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(env.standin.token_requests(), 2);

    // A 401 that a fresh token does not cure is reported, after exactly one renewal.
    env.standin
        .add_fault(Fault::new(FaultKind::Status { status: 401 }, 2).on("GET", REFERRALS));
    let err = env
        .client
        .list_referrals(&ListQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PartnerCenterError::Unauthorized { .. }),
        "{err:?}"
    );
    assert_eq!(env.standin.token_requests(), 3);
}

#[tokio::test]
async fn calls_without_a_valid_token_are_refused() {
    let env = env().await;
    let url = env
        .standin
        .base_url()
        .join("v1.0/engagements/referrals")
        .unwrap();
    let resp = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let bad = provider(&env.standin, Grant::ClientCredentials, "wrong-secret");
    let client = client(&env.standin, Arc::new(bad), RetryPolicy::fast());
    let err = client.get_referral("x").await.unwrap_err();
    match err {
        PartnerCenterError::Token(TokenError::Rejected {
            status,
            error,
            description,
        }) => {
            assert_eq!((status, error.as_str()), (401, "invalid_client"));
            assert!(!description.contains("wrong-secret"));
        }
        other => panic!("expected a token rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn rotated_refresh_tokens_are_stored_and_used() {
    let env = env().await;
    let initial = env.standin.config().refresh_token.clone();
    let secret = env.standin.config().client_secret.clone();
    let store = Arc::new(MemoryRefreshStore::default());
    let tokens = Arc::new(
        provider(
            &env.standin,
            Grant::RefreshToken(Secret::new(initial.clone())),
            &secret,
        )
        .with_refresh_store(store.clone()),
    );
    let client = client(&env.standin, tokens, RetryPolicy::fast());
    client.list_referrals(&ListQuery::default()).await.unwrap();
    let saved = store.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 1);
    assert_ne!(saved[0], initial);
    assert!(
        !env.standin.refresh_token_valid(&initial),
        "the old refresh token was consumed"
    );
    assert!(env.standin.refresh_token_valid(&saved[0]));

    // After a 401 the provider renews with the rotated token, not the spent one.
    env.standin.revoke_tokens();
    client.list_referrals(&ListQuery::default()).await.unwrap();
    let saved = store.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 2);
    assert!(env.standin.refresh_token_valid(&saved[1]));
}

#[tokio::test]
async fn admin_routes_inject_faults_and_show_state() {
    let env = env().await;
    let http = reqwest::Client::new();
    let admin = |p: &str| env.standin.base_url().join(p).unwrap();
    let resp = http
        .post(admin("_standin/referrals/incoming"))
        .json(&json!({"name": "via admin", "customerName": "Tailspin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = http
        .post(admin("_standin/faults"))
        .json(&json!({"kind": "status", "status": 502, "count": 1, "method": "GET", "path_prefix": REFERRALS}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let from = env.standin.requests().len();
    let got = env.client.get_referral(&id).await.unwrap();
    assert_eq!(
        got.direction.map(|d| d.to_string()).as_deref(),
        Some("Incoming")
    );
    assert_eq!(same_request_id(&env, "GET", from), (2, true));

    let state: serde_json::Value = http
        .get(admin("_standin/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["referrals"][0]["name"], "via admin");
    assert_eq!(state["tokenRequests"], 1);
}
