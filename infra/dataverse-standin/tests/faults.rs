//! Each injected fault against the client's retry discipline, and authentication.

mod common;

use std::time::{Duration, Instant};

use cosell::dataverse::DataverseError;
use cosell::retry::CallError;
use dataverse_standin::{Fault, FaultKind, Limit};
use serde_json::json;

use common::{map, short_timeout, start, start_with};

#[tokio::test]
async fn throttling_is_waited_out_per_retry_after() {
    let env = start().await;
    let id = env
        .client
        .create_opportunity(&map(json!({"name": "t"})))
        .await
        .unwrap()
        .opportunityid
        .unwrap();
    env.standin.reset_request_counts();
    env.standin.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 1,
                limit: Limit::Concurrency,
            },
            1,
        )
        .on("GET", "opportunities("),
    );
    let started = Instant::now();
    let got = env.client.get_opportunity(&id).await.unwrap();
    assert_eq!(got.name.as_deref(), Some("t"));
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(env.standin.request_count("GET opportunities({id})"), 2);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn long_retry_after_is_handed_back_typed() {
    let env = start().await;
    env.standin.add_fault(Fault::new(
        FaultKind::Throttle {
            retry_after_secs: 120,
            limit: Limit::Requests,
        },
        1,
    ));
    // The token request is the first to hit the fault; the provider reports it typed.
    let err = env.client.find_currency("USD").await.unwrap_err();
    let call = match err {
        DataverseError::Call(c) => c,
        DataverseError::Token(cosell::entra::TokenError::Call(c)) => c,
        other => panic!("unexpected {other:?}"),
    };
    match call {
        CallError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(120))
        }
        other => panic!("unexpected {other:?}"),
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn unavailable_is_retried() {
    let env = start().await;
    env.standin
        .add_fault(Fault::new(FaultKind::Unavailable, 2).on("GET", "transactioncurrencies"));
    assert!(env.client.find_currency("EUR").await.unwrap().is_some());
    assert_eq!(env.standin.request_count("GET transactioncurrencies"), 3);

    // More failures than retries: a typed error naming the status.
    env.standin
        .add_fault(Fault::new(FaultKind::Unavailable, 10).on("GET", "transactioncurrencies"));
    let err = env.client.find_currency("EUR").await.unwrap_err();
    assert!(
        matches!(
            err,
            DataverseError::Call(CallError::Unavailable { status: 503, .. })
        ),
        "{err:?}"
    );
    env.standin.shutdown().await;
}

#[tokio::test]
async fn slow_answers_time_out_then_retry() {
    let env = start_with(short_timeout(1), 50).await;
    // Warm the token so only the data call is slow.
    env.client.find_currency("USD").await.unwrap();
    env.standin.add_fault(
        Fault::new(FaultKind::Delay { millis: 1500 }, 1).on("GET", "transactioncurrencies"),
    );
    assert!(env.client.find_currency("USD").await.unwrap().is_some());

    env.standin.add_fault(
        Fault::new(FaultKind::Delay { millis: 1500 }, 2).on("GET", "transactioncurrencies"),
    );
    let err = env.client.find_currency("USD").await.unwrap_err();
    assert!(
        matches!(
            err,
            DataverseError::Call(CallError::Timeout { attempts: 2, .. })
        ),
        "{err:?}"
    );
    env.standin.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let env = start().await;
    env.standin
        .add_fault(Fault::new(FaultKind::Drop, 2).on("POST", "opportunities"));
    // Keyed, so a replay cannot make a second row (a keyless create is not retried: wire.rs).
    let created = env
        .client
        .create_opportunity(&map(json!({
            "name": "after drops",
            "opportunityid": "0d7e4c52-63a1-4d8e-b0f3-5a2c9e7b1f04",
        })))
        .await
        .unwrap();
    assert_eq!(created.name.as_deref(), Some("after drops"));
    assert_eq!(env.standin.request_count("POST opportunities"), 3);
    assert_eq!(env.standin.rows("opportunities").len(), 1);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn calls_without_a_token_get_401() {
    let env = start().await;
    let url = env.client.api_base().join("opportunities").unwrap();
    let resp = env.http.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = env
        .http
        .get(url)
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn bad_secret_is_rejected_by_the_token_endpoint() {
    let env = start().await;
    let resp = env
        .http
        .post(env.standin.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env.standin.config().client_id.as_str()),
            ("client_secret", "wrong"),
            ("scope", "http://x/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215"));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn one_token_for_many_calls_and_one_renewal_after_revocation() {
    let env = start().await;
    for i in 0..5 {
        env.client
            .create_opportunity(&map(json!({"name": format!("o{i}")})))
            .await
            .unwrap();
    }
    env.client.find_currency("USD").await.unwrap();
    assert_eq!(env.standin.token_requests(), 1);
    assert_eq!(env.tokens.fetch_count(), 1);

    env.standin.revoke_tokens();
    assert!(env.client.find_currency("USD").await.unwrap().is_some());
    assert_eq!(env.standin.token_requests(), 2);
    env.standin.shutdown().await;
}
