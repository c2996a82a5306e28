//! Webhook intake security: each hostile or broken delivery gets the status the verifier's
//! rejection maps to, and nothing is queued. A valid delivery (signed as the stand-in
//! signs, and one captured from the stand-in itself) is queued exactly once.

use std::time::Duration;

use base64::Engine as _;
use cosell::engine::intake::MAX_BODY_BYTES;
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::wiring;
use cosell::engine::SyncMessage;
use cosell::partner_center::webhook_verify::Rejection;
use cosell::queue::Queue;
use cosell_tests::intake_fixture::IntakeFixture;
use cosell_tests::webhook_sink::WebhookSink;
use http::HeaderValue;
use time::OffsetDateTime;

const REFERRAL: &str = "4111fffc-f9ee-4d53-bba6-569135228642";

/// Asserts the status and error code, and that the queue did not grow.
async fn assert_rejected(
    f: &IntakeFixture,
    headers: &http::HeaderMap,
    body: &[u8],
    expected: &Rejection,
) {
    let before = f.queued().await;
    let resp = f.post(headers, body).await;
    assert_eq!(resp.status, expected.http_status(), "{:?}", resp.body);
    assert_eq!(
        resp.body["error"]["code"],
        expected.code(),
        "{:?}",
        resp.body
    );
    assert!((400..500).contains(&resp.status) || resp.status == 503);
    assert_eq!(f.queued().await, before, "a rejected delivery was queued");
}

#[tokio::test]
async fn a_valid_delivery_is_queued_once() {
    let f = IntakeFixture::start().await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let resp = f.post(&headers, &body).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    assert_eq!(f.queued().await, 1);
    let got =
        f.h.queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
    let message = SyncMessage::parse(&got[0].body).unwrap();
    assert_eq!(message.referral_id.as_deref(), Some(REFERRAL));
    assert_eq!(
        got[0].group.as_deref(),
        Some(opportunity_id_for(REFERRAL).as_str())
    );
}

#[tokio::test]
async fn a_delivery_captured_from_the_standin_verifies() {
    let f = IntakeFixture::start().await;
    let sink = WebhookSink::start(None).await;
    f.h.engine
        .pc
        .register(sink.url.as_str(), &["referral-created"])
        .await
        .expect("register webhook");
    f.h.pc
        .create_incoming_referral("Contoso ERP", "Contoso Ltd");
    f.h.pc.wait_for_deliveries(1, Duration::from_secs(10)).await;
    let captured = sink.captured();
    assert_eq!(captured.len(), 1);
    let resp = f.post(&captured[0].headers, &captured[0].body).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(f.queued().await, 1);
}

#[tokio::test]
async fn forged_and_tampered_signatures_are_401() {
    let f = IntakeFixture::start().await;
    let (mut headers, body) = f.signer.referral_updated(REFERRAL);
    // A signature of the right length that no key made.
    let forged = base64::engine::general_purpose::STANDARD.encode([0x5a_u8; 256]);
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Signature {forged}")).unwrap(),
    );
    assert_rejected(&f, &headers, &body, &Rejection::BadSignature).await;
    // Not base64 at all.
    headers.insert("authorization", HeaderValue::from_static("Signature !!!"));
    assert_rejected(&f, &headers, &body, &Rejection::BadSignature).await;
    // A genuine signature over a different body.
    let (other_headers, _) = f.signer.referral_updated("another-referral");
    assert_rejected(&f, &other_headers, &body, &Rejection::BadSignature).await;

    // Tampered: one byte of the signed body changed (the referral id).
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let mut tampered = body.clone();
    let at = tampered.len() - 60;
    tampered[at] ^= 0x01;
    assert_rejected(&f, &headers, &tampered, &Rejection::BadSignature).await;
    // Tampered: a byte appended.
    let mut longer = body.clone();
    longer.push(b' ');
    assert_rejected(&f, &headers, &longer, &Rejection::BadSignature).await;
}

#[tokio::test]
async fn certificates_from_untrusted_hosts_are_403() {
    let f = IntakeFixture::start().await;
    let (mut headers, body) = f.signer.referral_updated(REFERRAL);
    let port = f.h.pc.base_url().port().unwrap();
    for url in [
        "https://evil.example/cert/standin.cer".to_string(),
        // Plain http to a host that is not on the list, even on loopback.
        format!("http://localhost:{port}/cert/standin.cer"),
        // A listed host name in the path or user part does not make it trusted.
        "https://evil.example/127.0.0.1/cert.cer".to_string(),
        "https://127.0.0.1@evil.example/cert.cer".to_string(),
        "file:///etc/passwd".to_string(),
        "not a url".to_string(),
    ] {
        headers.insert("x-ms-certificate-url", HeaderValue::from_str(&url).unwrap());
        let before = f.queued().await;
        let resp = f.post(&headers, &body).await;
        assert_eq!(resp.status, 403, "{url}: {:?}", resp.body);
        assert_eq!(resp.body["error"]["code"], "untrusted_certificate_host");
        assert_eq!(f.queued().await, before);
    }
}

#[tokio::test]
async fn the_standins_certificate_is_401_without_its_ca_or_for_another_organization() {
    let f = IntakeFixture::start().await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    // The production default: the built-in roots, which do not know the stand-in's CA.
    let mut config = f.h.config.clone();
    config.webhook_cert_roots = None;
    let default_roots = wiring::webhook_verifier(&config).expect("webhook verifier");
    // Its CA trusted, but only another organization accepted.
    let other_org = wiring::webhook_verifier(&f.h.config)
        .expect("webhook verifier")
        .with_organizations(vec!["Contoso Ltd".into()]);
    for strict in [default_roots, other_org] {
        let resp = cosell::engine::intake::handle_webhook(
            &strict,
            &*f.h.store,
            &*f.h.queue,
            &headers,
            &body,
        )
        .await;
        assert_eq!(resp.status, 401, "{:?}", resp.body);
        assert_eq!(resp.body["error"]["code"], "bad_certificate");
    }
    assert_eq!(f.queued().await, 0);
}

#[tokio::test]
async fn missing_or_wrong_headers_are_rejected() {
    let f = IntakeFixture::start().await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    for name in [
        "authorization",
        "x-ms-certificate-url",
        "x-ms-signature-algorithm",
    ] {
        let mut h = headers.clone();
        h.remove(name);
        assert_rejected(&f, &h, &body, &Rejection::MissingHeader("x")).await;
        h.insert(name, HeaderValue::from_static("   "));
        assert_rejected(&f, &h, &body, &Rejection::MissingHeader("x")).await;
    }
    // A bearer token is not a signature.
    let mut h = headers.clone();
    h.insert("authorization", HeaderValue::from_static("Bearer abc"));
    assert_rejected(&f, &h, &body, &Rejection::MissingHeader("x")).await;
    let mut h = headers.clone();
    h.insert(
        "x-ms-signature-algorithm",
        HeaderValue::from_static("rsa-sha1"),
    );
    assert_rejected(&f, &h, &body, &Rejection::BadAlgorithm).await;
    assert_rejected(
        &f,
        &http::HeaderMap::new(),
        &body,
        &Rejection::MissingHeader("x"),
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_413_signed_or_not() {
    let f = IntakeFixture::start().await;
    let (headers, _) = f.signer.referral_updated(REFERRAL);
    let big = vec![b'{'; MAX_BODY_BYTES + 1];
    assert_rejected(&f, &headers, &big, &Rejection::TooLarge(MAX_BODY_BYTES)).await;
    // Validly signed, still refused before anything is parsed.
    let mut event: serde_json::Value =
        serde_json::from_slice(&f.signer.referral_updated(REFERRAL).1).unwrap();
    event["Padding"] = serde_json::Value::String("x".repeat(MAX_BODY_BYTES));
    let body = event.to_string().into_bytes();
    let signed = f.signer.headers(&body);
    assert_rejected(&f, &signed, &body, &Rejection::TooLarge(MAX_BODY_BYTES)).await;
}

#[tokio::test]
async fn signed_but_malformed_or_unknown_events_are_rejected() {
    let f = IntakeFixture::start().await;
    let malformed = Rejection::MalformedBody(String::new());
    for body in [
        &b"not json"[..],
        b"{\"EventName\": \"referral-updated\"",
        b"[]",
        b"{\"EventName\": 7, \"ResourceUri\": \"x\"}",
        b"\xff\xfe\x00",
        // A referral event whose resource names no referral.
        b"{\"EventName\": \"referral-updated\", \"ResourceUri\": \"\"}",
        // A date that is not a date.
        b"{\"EventName\": \"referral-updated\", \"ResourceUri\": \"https://x/referrals/1\", \"ResourceChangeUtcDate\": \"yesterday\"}",
    ] {
        let headers = f.signer.headers(body);
        assert_rejected(&f, &headers, body, &malformed).await;
    }
    let unknown = f
        .signer
        .event_body("referral-deleted", REFERRAL, OffsetDateTime::now_utc());
    let headers = f.signer.headers(unknown.as_bytes());
    assert_rejected(
        &f,
        &headers,
        unknown.as_bytes(),
        &Rejection::UnknownEvent(String::new()),
    )
    .await;
}

#[tokio::test]
async fn replays_are_not_queued_twice_and_old_ones_are_refused() {
    let f = IntakeFixture::start().await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    assert_eq!(f.post(&headers, &body).await.status, 200);
    assert_eq!(f.queued().await, 1);
    // A replay within the de-duplication window: acknowledged (so Partner Center stops
    // retrying) but not queued again.
    for _ in 0..3 {
        let resp = f.post(&headers, &body).await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        assert_eq!(resp.body["status"], "duplicate");
    }
    assert_eq!(f.queued().await, 1);
    // A captured delivery replayed later than the accepted age is refused as stale.
    let old = OffsetDateTime::now_utc() - time::Duration::days(2);
    let stale = f.signer.event_body("referral-updated", REFERRAL, old);
    let headers = f.signer.headers(stale.as_bytes());
    assert_rejected(&f, &headers, stale.as_bytes(), &Rejection::Stale).await;
    assert_eq!(f.queued().await, 1);
}
