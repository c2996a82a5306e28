//! Webhook registration through the client, and signed deliveries from the stand-in checked
//! end to end by the verifier in a small local receiver.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use cosell::partner_center::{
    CertificateSource, Cleared, FetchError, HttpCertificateSource, PartnerCenterError, PatchOp,
    TrustRoots, VerifiedEvent, WebhookVerifier, WEBHOOK_SCOPE,
};
use cosell::retry::CallError;
use partner_center_standin::EVENT_RESOURCE_BASE;
use partner_center_standin::{DeliveryFaults, CERT_ORGANIZATION};
use serde_json::json;
use url::Url;

const EVENTS: &[&str] = &["referral-created", "referral-updated"];
const WAIT: Duration = Duration::from_secs(5);

/// The real HTTP source, counting downloads.
struct CountingSource {
    inner: HttpCertificateSource,
    fetches: AtomicUsize,
}

#[async_trait]
impl CertificateSource for CountingSource {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(url).await
    }
}

struct Receiver {
    verifier: WebhookVerifier,
    source: Arc<CountingSource>,
    accepted: Mutex<Vec<VerifiedEvent>>,
    /// Answer 500 to this many deliveries first.
    fail_next: AtomicU32,
    /// Per delivery: (`x-ms-signature` present, `Authorization` present).
    signature_headers: Mutex<Vec<(bool, bool)>>,
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    rx.signature_headers.lock().unwrap().push((
        headers.contains_key("x-ms-signature"),
        headers.contains_key("authorization"),
    ));
    if rx.fail_next.load(Ordering::SeqCst) > 0 {
        rx.fail_next.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    match rx.verifier.verify(&headers, &body).await {
        Ok(ev) => {
            rx.accepted.lock().unwrap().push(ev);
            (StatusCode::OK, Json(json!({"ok": true})))
        }
        Err(r) => (
            StatusCode::from_u16(r.http_status()).unwrap(),
            Json(json!({"error": r.code(), "message": r.message()})),
        ),
    }
}

/// A receiver that trusts the stand-in's CA (`root_pem`) and nothing else.
async fn start_receiver(root_pem: &str) -> (Arc<Receiver>, Url) {
    let source = Arc::new(CountingSource {
        inner: HttpCertificateSource::new(Duration::from_secs(5)).unwrap(),
        fetches: AtomicUsize::new(0),
    });
    let verifier = WebhookVerifier::new(vec!["127.0.0.1".into()], source.clone())
        .with_organizations(vec![CERT_ORGANIZATION.into()])
        .with_roots(TrustRoots::from_pem(root_pem.as_bytes()).unwrap());
    let rx = Arc::new(Receiver {
        verifier,
        source,
        accepted: Mutex::new(Vec::new()),
        fail_next: AtomicU32::new(0),
        signature_headers: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/webhooks/callback", post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = Url::parse(&format!(
        "http://{}/webhooks/callback",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rx, url)
}

fn accepted(rx: &Receiver) -> Vec<VerifiedEvent> {
    rx.accepted.lock().unwrap().clone()
}

#[tokio::test]
async fn registration_lifecycle_and_validation_event() {
    let env = env().await;
    let (rx, url) = start_receiver(env.standin.root_pem()).await;
    assert_eq!(env.client.get_registration().await.unwrap(), None);

    let reg = env.client.register(url.as_str(), EVENTS).await.unwrap();
    assert_eq!(
        (reg.webhook_url.as_str(), reg.webhook_events.len()),
        (url.as_str(), 2)
    );
    let again = env.client.register(url.as_str(), EVENTS).await.unwrap_err();
    assert!(
        matches!(again, PartnerCenterError::Invalid { status: 409, .. }),
        "{again:?}"
    );
    let bad = env
        .client
        .update_registration(url.as_str(), &["invoice-created"])
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, PartnerCenterError::Invalid { status: 400, message, .. } if message.contains("invoice-created"))
    );

    let updated = env
        .client
        .update_registration(url.as_str(), &["referral-updated"])
        .await
        .unwrap();
    assert_eq!(updated.webhook_events, ["referral-updated"]);
    let current = env.client.get_registration().await.unwrap().unwrap();
    assert_eq!(current.webhook_events, ["referral-updated"]);
    assert!(!current.accepts_test_event());

    // "You must be registered for the test-created event ... before sending a validation event."
    let refused = env.client.send_test_event().await.unwrap_err();
    assert!(
        matches!(&refused, PartnerCenterError::Invalid { status: 400, message, .. } if message.contains("test-created")),
        "{refused:?}"
    );
    assert!(env.standin.deliveries().is_empty());
    env.client
        .update_registration(url.as_str(), &["referral-updated", "test-created"])
        .await
        .unwrap();

    let correlation = env.client.send_test_event().await.unwrap();
    env.standin.wait_for_deliveries(1, WAIT).await;
    let status = env.client.test_event_status(&correlation).await.unwrap();
    assert_eq!(
        (status.correlation_id.as_str(), status.status.as_str()),
        (correlation.as_str(), "completed")
    );
    assert_eq!(accepted(&rx)[0].event.event_name, "test-created");

    // Only the registered events are sent: a create is not.
    env.standin.create_incoming_referral("quiet", "Contoso");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.standin.deliveries().len(), 1);

    // No DELETE: retiring the registration updates it to no events.
    assert_eq!(
        env.client.clear_registration().await.unwrap(),
        Cleared::Cleared
    );
    let left = env.client.get_registration().await.unwrap().unwrap();
    assert!(left.webhook_events.is_empty());
    assert_eq!(
        env.client.clear_registration().await.unwrap(),
        Cleared::NoneRegistered
    );
    let err = env.client.send_test_event().await.unwrap_err();
    assert!(
        matches!(err, PartnerCenterError::Invalid { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_registration_api_offers_no_delete() {
    let env = env().await;
    let (_rx, url) = start_receiver(env.standin.root_pem()).await;
    env.client.register(url.as_str(), EVENTS).await.unwrap();
    let token = env.tokens.for_scope(WEBHOOK_SCOPE).token().await.unwrap();
    let resp = reqwest::Client::new()
        .delete(
            env.standin
                .base_url()
                .join("webhooks/v1/registration")
                .unwrap(),
        )
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(env.standin.registration().is_some());
}

#[tokio::test]
async fn validation_events_are_limited_to_two_a_minute() {
    let env = env().await;
    let (_rx, url) = start_receiver(env.standin.root_pem()).await;
    env.client
        .register(url.as_str(), &["referral-created", "test-created"])
        .await
        .unwrap();
    env.client.send_test_event().await.unwrap();
    env.client.send_test_event().await.unwrap();
    let err = env.client.send_test_event().await.unwrap_err();
    assert!(
        matches!(
            &err,
            PartnerCenterError::Call(CallError::Throttled { retry_after, .. })
                if *retry_after > Duration::from_secs(30)
        ),
        "{err:?}"
    );
    // Its own limit: the rest of the registration API is not held back by it.
    assert!(env.client.get_registration().await.unwrap().is_some());
}

#[tokio::test]
async fn a_registration_that_asks_for_x_ms_signature_gets_it_and_the_verifier_accepts_it() {
    let env = env().await;
    let (rx, url) = start_receiver(env.standin.root_pem()).await;
    let token = env.tokens.for_scope(WEBHOOK_SCOPE).token().await.unwrap();
    let resp = reqwest::Client::new()
        .post(
            env.standin
                .base_url()
                .join("webhooks/v1/registration")
                .unwrap(),
        )
        .bearer_auth(token.expose())
        .json(&json!({
            "WebhookUrl": url.as_str(),
            "WebhookEvents": ["referral-created"],
            "SignatureTokenToMsSignatureHeader": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let created = env.standin.create_incoming_referral("signed", "Contoso");
    let deliveries = env.standin.wait_for_deliveries(1, WAIT).await;
    assert_eq!(deliveries[0].outcome, "delivered", "{deliveries:?}");
    let got = accepted(&rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].referral_id.as_deref(), created["id"].as_str());
    assert_eq!(
        rx.signature_headers.lock().unwrap().as_slice(),
        [(true, false)],
        "x-ms-signature set, Authorization absent"
    );
}

#[tokio::test]
async fn signed_deliveries_verify_end_to_end_with_one_certificate_download() {
    let env = env().await;
    let (rx, url) = start_receiver(env.standin.root_pem()).await;
    env.client.register(url.as_str(), EVENTS).await.unwrap();

    let created = env
        .client
        .create_referral(&outgoing("webhook deal"))
        .await
        .unwrap();
    let id = created.id.clone().unwrap();
    let patched = env
        .client
        .update_referral(
            &id,
            created.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "renamed")],
        )
        .await
        .unwrap();
    let incoming = env.standin.create_incoming_referral("from msft", "Contoso");

    let records = env.standin.wait_for_deliveries(3, WAIT).await;
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "delivered" && r.attempts == 1),
        "{records:?}"
    );
    // Point 12: the documented ResourceUri, on the webhook API's host, not the referrals
    // API's; the receiver takes the id from its last segment.
    for e in accepted(&rx) {
        let id = e.referral_id.clone().unwrap();
        assert_eq!(
            e.event.resource_uri,
            format!("https://api.partnercenter.microsoft.com/engagements/v1/referrals/{id}")
        );
        assert_eq!(e.event.resource_uri, format!("{EVENT_RESOURCE_BASE}{id}"));
    }
    let got: Vec<_> = accepted(&rx)
        .into_iter()
        .map(|e| (e.event.event_name, e.referral_id.unwrap()))
        .collect();
    let mut want = vec![
        ("referral-created".to_string(), id.clone()),
        ("referral-updated".to_string(), id.clone()),
        (
            "referral-created".to_string(),
            incoming["id"].as_str().unwrap().to_string(),
        ),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);
    assert_eq!(rx.source.fetches.load(Ordering::SeqCst), 1);
    // The event is a pointer; the current state comes from the API.
    assert_eq!(
        env.client.get_referral(&id).await.unwrap().e_tag,
        patched.e_tag
    );

    // A delivery the receiver refuses at first is retried by the stand-in.
    rx.fail_next.store(1, Ordering::SeqCst);
    env.client
        .update_referral(
            &id,
            patched.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "again")],
        )
        .await
        .unwrap();
    let records = env.standin.wait_for_deliveries(4, WAIT).await;
    assert_eq!(
        (
            records[3].outcome.as_str(),
            records[3].attempts,
            records[3].last_status
        ),
        ("delivered", 2, Some(200))
    );
}

#[tokio::test]
async fn forged_and_tampered_deliveries_are_refused_by_the_receiver() {
    let env = env().await;
    let (rx, url) = start_receiver(env.standin.root_pem()).await;
    env.client.register(url.as_str(), EVENTS).await.unwrap();
    env.standin.create_incoming_referral("genuine", "Contoso");
    let record = env.standin.wait_for_deliveries(1, WAIT).await.remove(0);
    assert_eq!(record.outcome, "delivered");

    let cert_url = env.standin.base_url().join("cert/standin.cer").unwrap();
    let http = reqwest::Client::new();
    let send = |body: String, signature: &str, cert: &str| {
        http.post(url.clone())
            .header("Authorization", format!("Signature {signature}"))
            .header("X-MS-Certificate-Url", cert)
            .header("X-MS-Signature-Algorithm", "rsa-sha256")
            .body(body)
            .send()
    };
    let forged_sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 256]);
    let resp = send(record.body.clone(), &forged_sig, cert_url.as_str())
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "bad_signature"
    );

    let resp = send(
        record.body.clone(),
        &forged_sig,
        "https://evil.example/cert.cer",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "untrusted_certificate_host"
    );
    assert_eq!(accepted(&rx).len(), 1);
}

#[tokio::test]
async fn duplicated_reordered_and_missed_deliveries() {
    let env = env().await;
    let (rx, url) = start_receiver(env.standin.root_pem()).await;
    env.client.register(url.as_str(), EVENTS).await.unwrap();
    let created = env
        .client
        .create_referral(&outgoing("faulty"))
        .await
        .unwrap();
    let id = created.id.clone().unwrap();
    env.standin.wait_for_deliveries(1, WAIT).await;

    env.standin.set_delivery_faults(DeliveryFaults {
        duplicate: 1,
        ..Default::default()
    });
    let r1 = env
        .client
        .update_referral(
            &id,
            created.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "v1")],
        )
        .await
        .unwrap();
    env.standin.wait_for_deliveries(3, WAIT).await;
    let seen = accepted(&rx);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1], seen[2], "the same event twice");

    env.standin.set_delivery_faults(DeliveryFaults {
        suppress: 1,
        ..Default::default()
    });
    let r2 = env
        .client
        .update_referral(
            &id,
            r1.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "v2")],
        )
        .await
        .unwrap();
    let records = env.standin.wait_for_deliveries(4, WAIT).await;
    assert_eq!(records[3].outcome, "suppressed");
    assert_eq!(accepted(&rx).len(), 3, "a missed webhook never arrives");

    env.standin.set_delivery_faults(DeliveryFaults {
        hold: true,
        ..Default::default()
    });
    let r3 = env
        .client
        .update_referral(
            &id,
            r2.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "v3")],
        )
        .await
        .unwrap();
    env.client
        .update_referral(
            &id,
            r3.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "v4")],
        )
        .await
        .unwrap();
    assert_eq!(env.standin.release_held(true), 2);
    env.standin.wait_for_deliveries(6, WAIT).await;
    let seen = accepted(&rx);
    let dates: Vec<_> = seen[3..]
        .iter()
        .map(|e| e.event.resource_change_utc_date.clone().unwrap())
        .collect();
    assert_eq!(dates.len(), 2);
    assert!(dates[0] > dates[1], "newer change arrived first: {dates:?}");
}
