//! The intake against what an attacker on the internet can send, each against a server this
//! test runs on loopback: a certificate of the attacker's own served from another port of the
//! trusted host, a redirect, a host that never answers, a `Retry-After: 20`; plus the fixed
//! error bodies and the event-date rules. Nothing an attack sends is queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use cosell::partner_center::webhook_verify::Rejection;
use cosell_tests::intake_fixture::IntakeFixture;
use http::HeaderValue;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use time::OffsetDateTime;

const REFERRAL: &str = "4111fffc-f9ee-4d53-bba6-569135228642";
/// An RSA key that is not the stand-in's: the attacker's.
const ATTACKER_KEY: &str = include_str!("../../shared/tests/fixtures/partner_center/other.key.pem");

fn microsoft(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, "Microsoft Corporation");
    dn
}

/// The attacker's certificates for their key, both saying "Microsoft Corporation": one
/// self-signed, one issued by a CA of their own and served with it (PEM, leaf first).
fn attacker_certificates() -> Vec<String> {
    let key = KeyPair::from_pem(ATTACKER_KEY).unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = microsoft("pcnotifications-dispatch.microsoft.com");
    leaf.is_ca = IsCa::ExplicitNoCa;
    let self_signed = leaf.self_signed(&key).unwrap().pem();

    let mut ca = CertificateParams::default();
    ca.distinguished_name = microsoft("Microsoft RSA TLS CA 01");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issued = leaf
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .unwrap()
        .pem();
    vec![self_signed, format!("{issued}{ca_pem}")]
}

fn attacker_sign(body: &[u8]) -> String {
    let key = SigningKey::<Sha256>::new(RsaPrivateKey::from_pkcs8_pem(ATTACKER_KEY).unwrap());
    format!(
        "Signature {}",
        base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes())
    )
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Counts the requests a route gets.
fn counted(hits: &Arc<AtomicUsize>) -> Arc<AtomicUsize> {
    hits.clone()
}

fn with_cert_url(headers: &http::HeaderMap, url: &str) -> http::HeaderMap {
    let mut h = headers.clone();
    h.insert("x-ms-certificate-url", HeaderValue::from_str(url).unwrap());
    h
}

#[tokio::test]
async fn an_attackers_certificate_on_another_port_of_the_trusted_host_is_refused() {
    let f = IntakeFixture::start().await;
    for (i, pem) in attacker_certificates().into_iter().enumerate() {
        let base = serve(Router::new().route(
            "/cert/attacker.cer",
            get(move || {
                let pem = pem.clone();
                async move { pem }
            }),
        ))
        .await;
        let body = f
            .signer
            .event_body("referral-updated", REFERRAL, OffsetDateTime::now_utc())
            .into_bytes();
        let mut headers = with_cert_url(
            &f.signer.headers(&body),
            &format!("{base}/cert/attacker.cer"),
        );
        headers.insert(
            "authorization",
            HeaderValue::from_str(&attacker_sign(&body)).unwrap(),
        );
        let resp = f.post(&headers, &body).await;
        assert_eq!(resp.status, 401, "certificate {i}: {:?}", resp.body);
        assert_eq!(resp.body["error"]["code"], "bad_certificate");
        assert_eq!(f.queued().await, 0, "a forged delivery was queued");
    }
}

#[tokio::test]
async fn a_redirect_from_the_certificate_url_is_not_followed() {
    let f = IntakeFixture::start().await;
    // The redirect's target serves the genuine certificate: following it would verify.
    let target_hits = Arc::new(AtomicUsize::new(0));
    let genuine =
        f.h.http
            .get(f.signer.cert_url())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    let hits = counted(&target_hits);
    let target = serve(Router::new().route(
        "/real.cer",
        get(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            let genuine = genuine.clone();
            async move { genuine }
        }),
    ))
    .await;
    let location = format!("{target}/real.cer");
    let redirector = serve(Router::new().route(
        "/cert.cer",
        get(move || {
            let location = location.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, location)]).into_response() }
        }),
    ))
    .await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let headers = with_cert_url(&headers, &format!("{redirector}/cert.cer"));
    let resp = f.post(&headers, &body).await;
    assert_eq!(resp.status, 401, "{:?}", resp.body);
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert_eq!(f.queued().await, 0);
}

#[tokio::test]
async fn a_certificate_host_that_never_answers_delays_no_other_delivery() {
    let f = Arc::new(IntakeFixture::start().await);
    // Accepts connections and never answers.
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tarpit_addr = tarpit.local_addr().unwrap();
    let accepted = Arc::new(tokio::sync::Notify::new());
    let signal = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tarpit.accept().await {
            held.push(s);
            signal.notify_one();
        }
    });
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let stuck_headers = with_cert_url(&headers, &format!("http://{tarpit_addr}/cert.cer"));
    let stuck = tokio::spawn({
        let f = f.clone();
        let body = body.clone();
        async move { f.post(&stuck_headers, &body).await }
    });
    accepted.notified().await;
    // The tarpit holds the first delivery's fetch now; a valid one must not wait for it.
    let (headers, body) = f.signer.referral_updated("another-referral");
    let resp = f.post(&headers, &body).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert!(
        !stuck.is_finished(),
        "the valid delivery waited for the stuck certificate fetch"
    );
    let stuck = stuck.await.unwrap();
    assert_eq!(stuck.status, 401, "{:?}", stuck.body);
    assert_eq!(f.queued().await, 1);
}

#[tokio::test]
async fn a_long_retry_after_is_capped() {
    let f = IntakeFixture::start().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = counted(&hits);
    let base = serve(Router::new().route(
        "/cert.cer",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "20")],
                )
                    .into_response()
            }
        }),
    ))
    .await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let headers = with_cert_url(&headers, &format!("{base}/cert.cer"));
    let started = Instant::now();
    let resp = f.post(&headers, &body).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 401, "{:?}", resp.body);
    // Two attempts, one wait capped at a second (it would be 20 s, 40 s with two retries).
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        took < Duration::from_secs(10),
        "the delivery waited {took:?}"
    );
    println!("Retry-After: 20 answered in {took:?}");
}

#[tokio::test]
async fn rejections_answer_a_fixed_body_that_echoes_nothing() {
    let f = IntakeFixture::start().await;
    let (headers, body) = f.signer.referral_updated(REFERRAL);
    let cases: Vec<(http::HeaderMap, Vec<u8>, Rejection)> = vec![
        (
            with_cert_url(&headers, "https://attacker-host.example/c.cer"),
            body.clone(),
            Rejection::UntrustedCertHost(String::new()),
        ),
        (
            f.signer
                .headers(b"{\"EventName\": \"referral-updated\", \"ResourceUri\": 17}"),
            b"{\"EventName\": \"referral-updated\", \"ResourceUri\": 17}".to_vec(),
            Rejection::MalformedBody(String::new()),
        ),
    ];
    for (headers, body, expected) in cases {
        let resp = f.post(&headers, &body).await;
        assert_eq!(resp.status, expected.http_status());
        assert_eq!(
            resp.body,
            serde_json::json!({"error": {"code": expected.code(), "message": expected.message()}})
        );
        let text = resp.body.to_string();
        for echoed in ["attacker-host", "invalid type", "line 1", "17"] {
            assert!(!text.contains(echoed), "{echoed:?} echoed in {text}");
        }
    }
}

#[tokio::test]
async fn signed_events_without_a_date_or_dated_ahead_are_refused() {
    let f = IntakeFixture::start().await;
    let undated = serde_json::json!({
        "EventName": "referral-updated",
        "ResourceUri": format!("{}v1.0/engagements/referrals/{REFERRAL}", f.h.pc.base_url()),
    })
    .to_string();
    let resp = f
        .post(&f.signer.headers(undated.as_bytes()), undated.as_bytes())
        .await;
    assert_eq!(
        (resp.status, &resp.body["error"]["code"]),
        (400, &serde_json::json!("malformed_body"))
    );
    let ahead = f.signer.event_body(
        "referral-updated",
        REFERRAL,
        OffsetDateTime::now_utc() + time::Duration::hours(2),
    );
    let resp = f
        .post(&f.signer.headers(ahead.as_bytes()), ahead.as_bytes())
        .await;
    assert_eq!(
        (resp.status, &resp.body["error"]["code"]),
        (422, &serde_json::json!("future_event"))
    );
    assert_eq!(f.queued().await, 0);
}
