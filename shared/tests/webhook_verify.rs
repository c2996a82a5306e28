//! The webhook verifier against fixed test certificates: what it must accept and each way a
//! delivery can be refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use cosell::partner_center::{CertificateSource, Rejection, WebhookVerifier};
use http::{HeaderMap, HeaderValue};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

const SIGNER_KEY: &str = include_str!("fixtures/partner_center/signer.key.pem");
const SIGNER_CERT_PEM: &[u8] = include_bytes!("fixtures/partner_center/signer.cert.pem");
const SIGNER_CERT_DER: &[u8] = include_bytes!("fixtures/partner_center/signer.cer");
const OTHER_KEY: &str = include_str!("fixtures/partner_center/other.key.pem");
const OTHER_CERT_PEM: &[u8] = include_bytes!("fixtures/partner_center/other.cert.pem");

const HOST: &str = "certs.partner.example";
const PEM_URL: &str = "https://certs.partner.example/cert/dispatch.cer";
const DER_URL: &str = "https://certs.partner.example/cert/dispatch-der.cer";
const OTHER_URL: &str = "https://certs.partner.example/cert/other.cer";
const MISSING_URL: &str = "https://certs.partner.example/cert/missing.cer";
const LOOPBACK_URL: &str = "http://127.0.0.1:9/cert/standin.cer";

/// Serves the fixtures by URL and counts fetches.
struct Fixtures {
    by_url: HashMap<String, Vec<u8>>,
    fetches: AtomicUsize,
}

#[async_trait]
impl CertificateSource for Fixtures {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.by_url
            .get(url.as_str())
            .cloned()
            .ok_or_else(|| "HTTP 404".to_string())
    }
}

fn fixtures() -> Arc<Fixtures> {
    Arc::new(Fixtures {
        by_url: HashMap::from([
            (PEM_URL.to_string(), SIGNER_CERT_PEM.to_vec()),
            (DER_URL.to_string(), SIGNER_CERT_DER.to_vec()),
            (OTHER_URL.to_string(), OTHER_CERT_PEM.to_vec()),
            (LOOPBACK_URL.to_string(), SIGNER_CERT_PEM.to_vec()),
        ]),
        fetches: AtomicUsize::new(0),
    })
}

fn verifier(source: Arc<Fixtures>, hosts: &[&str]) -> WebhookVerifier {
    WebhookVerifier::new(hosts.iter().map(|h| h.to_string()).collect(), source)
}

fn sign(key_pem: &str, body: &[u8]) -> String {
    let key = SigningKey::<Sha256>::new(RsaPrivateKey::from_pkcs8_pem(key_pem).unwrap());
    base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes())
}

fn event(name: &str, changed: OffsetDateTime) -> Vec<u8> {
    serde_json::json!({
        "EventName": name,
        "ResourceUri": "https://api.partner.microsoft.com/v1.0/engagements/referrals/4111fffc-f9ee",
        "ResourceName": "referral",
        "AuditUri": null,
        "ResourceChangeUtcDate": changed.format(&Rfc3339).unwrap(),
    })
    .to_string()
    .into_bytes()
}

fn headers(signature: &str, cert_url: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Signature {signature}")).unwrap(),
    );
    h.insert(
        "x-ms-certificate-url",
        HeaderValue::from_str(cert_url).unwrap(),
    );
    h.insert(
        "x-ms-signature-algorithm",
        HeaderValue::from_static("rsa-sha256"),
    );
    h
}

fn fresh(name: &str) -> Vec<u8> {
    event(name, OffsetDateTime::now_utc() - time::Duration::minutes(5))
}

#[tokio::test]
async fn accepts_a_genuine_delivery_and_caches_the_certificate() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST]);
    for name in [
        "referral-created",
        "referral-updated",
        "related-referral-updated",
    ] {
        let body = fresh(name);
        let got = v
            .verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
            .await
            .unwrap();
        assert_eq!(got.event.event_name, name);
        assert_eq!(got.referral_id.as_deref(), Some("4111fffc-f9ee"));
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "one download for many deliveries"
    );
}

#[tokio::test]
async fn accepts_a_der_certificate_and_the_test_event() {
    let v = verifier(fixtures(), &[HOST]);
    let body = serde_json::json!({"EventName": "test-created", "ResourceUri": "https://api.partnercenter.microsoft.com/webhooks/v1/registration/validationEvents/", "ResourceChangeUtcDate": OffsetDateTime::now_utc().format(&Rfc3339).unwrap()}).to_string();
    let got = v
        .verify(
            &headers(&sign(SIGNER_KEY, body.as_bytes()), DER_URL),
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(got.event.event_name, "test-created");
}

#[tokio::test]
async fn refuses_a_forged_or_tampered_signature() {
    let v = verifier(fixtures(), &[HOST]);
    let body = fresh("referral-updated");
    let forged = v
        .verify(&headers(&sign(OTHER_KEY, &body), PEM_URL), &body)
        .await;
    assert_eq!(forged.unwrap_err(), Rejection::BadSignature);

    let signature = sign(SIGNER_KEY, &body);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'4').unwrap();
    tampered[pos] = b'5';
    let err = v
        .verify(&headers(&signature, PEM_URL), &tampered)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
    assert_eq!(err.http_status(), 401);

    let garbage = v.verify(&headers("not-base64!!", PEM_URL), &body).await;
    assert_eq!(garbage.unwrap_err(), Rejection::BadSignature);
}

#[tokio::test]
async fn refuses_each_missing_header_and_a_wrong_algorithm() {
    let v = verifier(fixtures(), &[HOST]);
    let body = fresh("referral-created");
    let full = headers(&sign(SIGNER_KEY, &body), PEM_URL);
    for name in [
        "authorization",
        "x-ms-certificate-url",
        "x-ms-signature-algorithm",
    ] {
        let mut h = full.clone();
        h.remove(name);
        let err = v.verify(&h, &body).await.unwrap_err();
        assert_eq!(err, Rejection::MissingHeader(name));
        assert_eq!(err.code(), "missing_header");
    }
    let mut bearer = full.clone();
    bearer.insert("authorization", HeaderValue::from_static("Bearer abc"));
    assert!(matches!(
        v.verify(&bearer, &body).await,
        Err(Rejection::MissingHeader("authorization"))
    ));

    let mut alg = full.clone();
    alg.insert(
        "x-ms-signature-algorithm",
        HeaderValue::from_static("rsa-sha1"),
    );
    let err = v.verify(&alg, &body).await.unwrap_err();
    assert_eq!(
        (err.clone(), err.http_status()),
        (Rejection::BadAlgorithm, 400)
    );
}

#[tokio::test]
async fn fetches_certificates_only_from_trusted_hosts() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST, "127.0.0.1", "localhost"]);
    let body = fresh("referral-created");
    let sig = sign(SIGNER_KEY, &body);
    for (url, host) in [
        ("https://evil.example/cert/dispatch.cer", "evil.example"),
        // Plain http is refused for a listed name that is not a loopback IP.
        ("http://certs.partner.example/cert/dispatch.cer", HOST),
        ("http://localhost:9/cert/standin.cer", "localhost"),
        ("ftp://127.0.0.1/cert.cer", "127.0.0.1"),
    ] {
        let err = v.verify(&headers(&sig, url), &body).await.unwrap_err();
        assert_eq!(err, Rejection::UntrustedCertHost(host.to_string()), "{url}");
        assert_eq!(err.http_status(), 403);
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        0,
        "nothing fetched from an untrusted URL"
    );
    // A listed loopback IP over http is the local stand-in's case.
    assert!(v.verify(&headers(&sig, LOOPBACK_URL), &body).await.is_ok());
    // The loopback IP must itself be listed.
    let strict = verifier(fixtures(), &[HOST]);
    assert!(matches!(
        strict.verify(&headers(&sig, LOOPBACK_URL), &body).await,
        Err(Rejection::UntrustedCertHost(_))
    ));
}

#[tokio::test]
async fn refuses_a_certificate_of_another_organization_or_out_of_date() {
    let body = fresh("referral-created");
    let v = verifier(fixtures(), &[HOST]);
    let err = v
        .verify(&headers(&sign(OTHER_KEY, &body), OTHER_URL), &body)
        .await
        .unwrap_err();
    assert!(matches!(err, Rejection::BadCertificate(_)), "{err:?}");

    // The same certificate is fine once its organization is configured.
    let v = verifier(fixtures(), &[HOST]).with_organizations(vec!["Evil Corp".into()]);
    assert!(v
        .verify(&headers(&sign(OTHER_KEY, &body), OTHER_URL), &body)
        .await
        .is_ok());

    // The fixtures are valid for 100 years from their creation.
    let future = OffsetDateTime::now_utc() + time::Duration::days(365 * 150);
    let v = verifier(fixtures(), &[HOST]).with_clock(move || future);
    let body = event("referral-created", future);
    let err = v
        .verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad_certificate");
}

#[tokio::test]
async fn refuses_stale_unknown_and_malformed_events() {
    let v = verifier(fixtures(), &[HOST]).with_max_age(Duration::from_secs(3600));
    let check = |body: Vec<u8>| {
        let v = &v;
        async move {
            v.verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
                .await
        }
    };
    let old = event(
        "referral-updated",
        OffsetDateTime::now_utc() - time::Duration::hours(2),
    );
    assert_eq!(check(old).await.unwrap_err(), Rejection::Stale);
    let recent = event(
        "referral-updated",
        OffsetDateTime::now_utc() - time::Duration::minutes(30),
    );
    assert!(check(recent).await.is_ok());

    let err = check(fresh("invoice-created")).await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("unknown_event", 422));

    let no_id = serde_json::json!({"EventName": "referral-updated", "ResourceUri": ""}).to_string();
    assert!(matches!(
        check(no_id.into_bytes()).await,
        Err(Rejection::MalformedBody(_))
    ));
    assert!(matches!(
        check(b"not json".to_vec()).await,
        Err(Rejection::MalformedBody(_))
    ));
}

#[tokio::test]
async fn refuses_large_bodies_and_reports_fetch_failures() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST]).with_max_body(100);
    let body = vec![b' '; 101];
    let err = v.verify(&headers("x", PEM_URL), &body).await.unwrap_err();
    assert_eq!(
        (err, source.fetches.load(Ordering::SeqCst)),
        (Rejection::TooLarge(100), 0)
    );

    let v = verifier(fixtures(), &[HOST]);
    let body = fresh("referral-created");
    let err = v
        .verify(&headers(&sign(SIGNER_KEY, &body), MISSING_URL), &body)
        .await
        .unwrap_err();
    assert_eq!(
        (err.clone(), err.http_status()),
        (Rejection::CertFetch, 503)
    );
}

#[tokio::test]
async fn concurrent_first_deliveries_download_the_certificate_once() {
    let source = fixtures();
    let v = Arc::new(verifier(source.clone(), &[HOST]));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let body = fresh("referral-updated");
            v.verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
                .await
                .is_ok()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}
