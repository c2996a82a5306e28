//! Partner Center on the wire as Microsoft documents it: a token per audience, a new
//! correlation id per request, creates that are not sent twice, and one throttle gate per
//! service shared by every client of the same credential.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use cosell::entra::Grant;
use cosell::partner_center::{ListQuery, PartnerCenterError, REFERRALS_SCOPE, WEBHOOK_SCOPE};
use cosell::retry::{CallError, RetryPolicy};
use cosell::Secret;
use partner_center_standin::ratelimit::RateLimit;
use partner_center_standin::{Fault, FaultKind};

const REFERRALS: &str = "/v1.0/engagements/referrals";
const REGISTRATION: &str = "webhooks/v1/registration";

async fn bearer_get(env: &Env, path: &str, token: &Secret) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(env.standin.base_url().join(path).unwrap())
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn each_api_takes_only_a_token_of_its_own_audience() {
    let env = env().await;
    let referrals = env.tokens.token().await.unwrap();
    let webhooks = env.tokens.for_scope(WEBHOOK_SCOPE).token().await.unwrap();
    let list = &REFERRALS[1..];
    assert_eq!(bearer_get(&env, list, &referrals).await, 200);
    assert_eq!(bearer_get(&env, list, &webhooks).await, 401);
    // No registration yet: 404 means the token was accepted.
    assert_eq!(bearer_get(&env, REGISTRATION, &webhooks).await, 404);
    assert_eq!(bearer_get(&env, REGISTRATION, &referrals).await, 401);
}

#[tokio::test]
async fn a_token_for_an_unknown_resource_is_refused() {
    let env = env().await;
    let secret = env.standin.config().client_secret.clone();
    let other = provider(&env.standin, Grant::ClientCredentials, &secret)
        .for_scope("https://graph.microsoft.com/.default");
    let err = other.token().await.unwrap_err();
    assert!(err.to_string().contains("invalid_resource"), "{err}");
}

#[tokio::test]
async fn one_refresh_token_serves_both_audiences() {
    let env = env().await;
    let initial = env.standin.config().refresh_token.clone();
    let secret = env.standin.config().client_secret.clone();
    let store = Arc::new(MemoryRefreshStore::default());
    let tokens = Arc::new(
        provider(
            &env.standin,
            Grant::RefreshToken(Secret::new(initial)),
            &secret,
        )
        .with_refresh_store(store.clone()),
    );
    assert_eq!(tokens.scope(), REFERRALS_SCOPE);
    let client = client(&env.standin, tokens, RetryPolicy::fast());
    let before = env.standin.token_requests();
    client.list_referrals(&ListQuery::default()).await.unwrap();
    assert_eq!(client.get_registration().await.unwrap(), None);
    // Each audience again: both served from their caches.
    client.list_referrals(&ListQuery::default()).await.unwrap();
    client.get_registration().await.unwrap();
    assert_eq!(env.standin.token_requests() - before, 2, "one per audience");
    // The second request used the token the first one rotated (a spent one is refused).
    let saved = store.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 2);
    assert!(env.standin.refresh_token_valid(&saved[1]));
}

#[tokio::test]
async fn the_correlation_id_is_new_on_every_request_and_the_request_id_is_kept() {
    let env = env().await;
    let id = env
        .client
        .create_referral(&outgoing("ids"))
        .await
        .unwrap()
        .id
        .unwrap();
    let from = env.standin.requests().len();
    env.standin
        .add_fault(Fault::new(FaultKind::Status { status: 503 }, 2).on("GET", REFERRALS));
    env.client.get_referral(&id).await.unwrap();
    env.client.get_referral(&id).await.unwrap();
    let reqs: Vec<_> = env.standin.requests()[from..].to_vec();
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    let (retried, next) = (&reqs[..3], &reqs[3]);
    assert!(retried
        .iter()
        .all(|r| r.request_id == retried[0].request_id));
    assert_ne!(next.request_id, retried[0].request_id);
    let mut correlation: Vec<_> = reqs.iter().map(|r| r.correlation_id.clone()).collect();
    assert!(correlation.iter().all(Option::is_some));
    correlation.sort();
    correlation.dedup();
    assert_eq!(correlation.len(), 4, "one correlation id per request");
}

#[tokio::test]
async fn a_create_is_not_sent_twice_once_it_may_have_arrived() {
    let env = env().await;
    for kind in [FaultKind::Status { status: 503 }, FaultKind::Drop] {
        let from = env.standin.requests().len();
        env.standin
            .add_fault(Fault::new(kind.clone(), 1).on("POST", REFERRALS));
        let err = env
            .client
            .create_referral(&outgoing("once"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PartnerCenterError::Call(e) if e.outcome_unknown()),
            "{kind:?}: {err:?}"
        );
        assert!(
            err.is_transient(),
            "the caller may look and try again later"
        );
        let posts = env.standin.requests()[from..]
            .iter()
            .filter(|r| r.method == "POST" && r.path == REFERRALS)
            .count();
        assert_eq!(posts, 1, "{kind:?}");
    }
}

#[tokio::test]
async fn after_a_429_every_client_of_the_service_waits_out_the_window() {
    let env = env().await;
    let id = env
        .client
        .create_referral(&outgoing("gate"))
        .await
        .unwrap()
        .id
        .unwrap();
    // One request every 2 s: the second gets a 429 announcing 2 s.
    env.standin.set_rate_limit(Some(RateLimit {
        per_second: 0.5,
        burst: 1,
    }));
    let impatient = client(
        &env.standin,
        env.tokens.clone(),
        RetryPolicy {
            max_inline_wait: Duration::from_millis(100),
            ..RetryPolicy::fast()
        },
    );
    impatient.get_referral(&id).await.unwrap();
    let err = impatient.get_referral(&id).await.unwrap_err();
    assert!(
        matches!(err, PartnerCenterError::Call(CallError::Throttled { .. })),
        "{err:?}"
    );
    assert_eq!(env.standin.rate_limited(), 1);

    // Another client of the same service and credential (another handler in the process)
    // holds back until the window is over, and then gets through.
    let other = client(&env.standin, env.tokens.clone(), RetryPolicy::fast());
    other.get_referral(&id).await.unwrap();
    assert_eq!(
        env.standin.ignored_retry_after(),
        0,
        "no request was sent inside the Retry-After window"
    );
    assert_eq!(env.standin.rate_limited(), 1);
}
