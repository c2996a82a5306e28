//! The webhook verifier against certificates this test issues (a test CA made here, leaves
//! for the committed fixture keys): what it must accept and each way a delivery can be
//! refused, the chain to a trusted root included.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use cosell::partner_center::{
    CertificateSource, FetchError, Rejection, TrustRoots, WebhookVerifier,
};
use http::{HeaderMap, HeaderValue};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

const SIGNER_KEY: &str = include_str!("fixtures/partner_center/signer.key.pem");
const OTHER_KEY: &str = include_str!("fixtures/partner_center/other.key.pem");
const MICROSOFT: &str = "Microsoft Corporation";

const HOST: &str = "certs.partner.example";
const PEM_URL: &str = "https://certs.partner.example/cert/dispatch.cer";
const DER_URL: &str = "https://certs.partner.example/cert/dispatch-der.cer";
const OTHER_URL: &str = "https://certs.partner.example/cert/other.cer";
const SELF_SIGNED_URL: &str = "https://certs.partner.example/cert/self-signed.cer";
const FOREIGN_CA_URL: &str = "https://certs.partner.example/cert/foreign.cer";
const MISSING_URL: &str = "https://certs.partner.example/cert/missing.cer";
const LOOPBACK_URL: &str = "http://127.0.0.1:9/cert/standin.cer";

/// A test CA: its PEM (the verifier's roots) and what issues from it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn dn(common: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, org);
    dn
}

fn ca(name: &str) -> TestCa {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(name, "Test CA Org");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    TestCa {
        pem,
        issuer: Issuer::new(p, key),
    }
}

fn leaf_params(org: &str, valid_days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("pcnotifications-dispatch.test", org);
    p.is_ca = IsCa::ExplicitNoCa;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(valid_days);
    p
}

/// A leaf for `key_pem` with `org`, issued by `ca` (DER).
fn leaf(ca: &TestCa, key_pem: &str, org: &str) -> Vec<u8> {
    let key = KeyPair::from_pem(key_pem).unwrap();
    leaf_params(org, 365)
        .signed_by(&key, &ca.issuer)
        .unwrap()
        .der()
        .to_vec()
}

fn pem_of(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
    .into_bytes()
}

/// Serves certificates by URL and counts fetches.
struct Fixtures {
    by_url: HashMap<String, Vec<u8>>,
    fetches: AtomicUsize,
    roots: TrustRoots,
}

#[async_trait]
impl CertificateSource for Fixtures {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.by_url
            .get(url.as_str())
            .cloned()
            .ok_or(FetchError::Status(404))
    }
}

fn fixtures() -> Arc<Fixtures> {
    let root = ca("Test Root");
    let signer = leaf(&root, SIGNER_KEY, MICROSOFT);
    let other = leaf(&root, OTHER_KEY, "Evil Corp");
    // Microsoft's organization, but self-signed: an attacker's own certificate.
    let attacker_key = KeyPair::from_pem(OTHER_KEY).unwrap();
    let self_signed = leaf_params(MICROSOFT, 365)
        .self_signed(&attacker_key)
        .unwrap()
        .der()
        .to_vec();
    // Microsoft's organization, from a CA the verifier does not trust.
    let foreign = leaf(&ca("Foreign Root"), OTHER_KEY, MICROSOFT);
    Arc::new(Fixtures {
        by_url: HashMap::from([
            (PEM_URL.to_string(), pem_of(&signer)),
            (DER_URL.to_string(), signer.clone()),
            (OTHER_URL.to_string(), pem_of(&other)),
            (SELF_SIGNED_URL.to_string(), pem_of(&self_signed)),
            (FOREIGN_CA_URL.to_string(), pem_of(&foreign)),
            (LOOPBACK_URL.to_string(), pem_of(&signer)),
        ]),
        fetches: AtomicUsize::new(0),
        roots: TrustRoots::from_pem(root.pem.as_bytes()).unwrap(),
    })
}

fn verifier(source: Arc<Fixtures>, hosts: &[&str]) -> WebhookVerifier {
    let roots = source.roots.clone();
    WebhookVerifier::new(hosts.iter().map(|h| h.to_string()).collect(), source).with_roots(roots)
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
    // The query and fragment are not part of what is fetched or cached.
    let body = fresh("referral-updated");
    for url in [format!("{PEM_URL}?x=1"), format!("{PEM_URL}#frag")] {
        assert!(v
            .verify(&headers(&sign(SIGNER_KEY, &body), &url), &body)
            .await
            .is_ok());
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
async fn refuses_a_certificate_that_does_not_chain_to_a_trusted_root() {
    let body = fresh("referral-created");
    let v = verifier(fixtures(), &[HOST]);
    // Signed with the attacker's key, its certificate saying "Microsoft Corporation".
    for url in [SELF_SIGNED_URL, FOREIGN_CA_URL] {
        let err = v
            .verify(&headers(&sign(OTHER_KEY, &body), url), &body)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Rejection::BadCertificate(why) if why.contains("chain")),
            "{url}: {err:?}"
        );
        assert_eq!((err.http_status(), err.code()), (401, "bad_certificate"));
    }
    // The genuine chain is refused too without its root: the built-in roots do not know
    // the test CA, and no setting made them.
    let source = fixtures();
    let default_roots = WebhookVerifier::new(vec![HOST.into()], source);
    let err = default_roots
        .verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
        .await
        .unwrap_err();
    assert!(matches!(err, Rejection::BadCertificate(_)), "{err:?}");
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
async fn fetches_certificates_only_from_trusted_urls() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST, "127.0.0.1", "localhost"]);
    let body = fresh("referral-created");
    let sig = sign(SIGNER_KEY, &body);
    for (url, host) in [
        ("https://evil.example/cert/dispatch.cer", "evil.example"),
        // Plain http is refused for a listed name that is not a loopback IP.
        ("http://certs.partner.example/cert/dispatch.cer", HOST),
        ("http://localhost:9/cert/standin.cer", "localhost"),
        // Another port of a trusted https host.
        ("https://certs.partner.example:8443/cert/dispatch.cer", HOST),
        // Numeric spellings a URL parser reads as 127.0.0.1.
        ("http://0x7f.0.0.1:9/cert/standin.cer", "0x7f.0.0.1"),
        ("http://2130706433:9/cert/standin.cer", "2130706433"),
        ("http://127.1:9/cert/standin.cer", "127.1"),
        ("ftp://127.0.0.1/cert.cer", ""),
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

    // The leaves are valid for a year; ten years on they are not.
    let future = OffsetDateTime::now_utc() + time::Duration::days(3650);
    let v = verifier(fixtures(), &[HOST]).with_clock(move || future);
    let body = event("referral-created", future);
    let err = v
        .verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad_certificate");
}

#[tokio::test]
async fn refuses_stale_future_undated_unknown_and_malformed_events() {
    let v = verifier(fixtures(), &[HOST]).with_max_age(Duration::from_secs(3600));
    let check = |body: Vec<u8>| {
        let v = &v;
        async move {
            v.verify(&headers(&sign(SIGNER_KEY, &body), PEM_URL), &body)
                .await
        }
    };
    let now = OffsetDateTime::now_utc();
    let old = event("referral-updated", now - time::Duration::hours(2));
    assert_eq!(check(old).await.unwrap_err(), Rejection::Stale);
    let recent = event("referral-updated", now - time::Duration::minutes(30));
    assert!(check(recent).await.is_ok());
    // Clock skew of a minute or two is fine; an hour ahead would outlive max_age.
    let skewed = event("referral-updated", now + time::Duration::minutes(2));
    assert!(check(skewed).await.is_ok());
    let ahead = event("referral-updated", now + time::Duration::hours(1));
    let err = check(ahead).await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("future_event", 422));
    // Without a date it could be replayed forever.
    let undated = serde_json::json!({"EventName": "referral-updated", "ResourceUri": "https://x/referrals/1"}).to_string();
    assert!(matches!(
        check(undated.into_bytes()).await,
        Err(Rejection::MalformedBody(_))
    ));

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
async fn refuses_large_bodies_and_reports_fetch_failures_as_a_bad_certificate() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST]).with_max_body(100);
    let body = vec![b' '; 101];
    let err = v.verify(&headers("x", PEM_URL), &body).await.unwrap_err();
    assert_eq!(
        (err, source.fetches.load(Ordering::SeqCst)),
        (Rejection::TooLarge(100), 0)
    );

    let source = fixtures();
    let v = verifier(source.clone(), &[HOST]);
    let body = fresh("referral-created");
    let err = v
        .verify(&headers(&sign(SIGNER_KEY, &body), MISSING_URL), &body)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::CertFetch);
    // Told apart from a bad certificate in the logs only, not in the answer.
    assert_eq!((err.http_status(), err.code()), (401, "bad_certificate"));
    assert_eq!(
        err.message(),
        Rejection::BadCertificate(String::new()).message()
    );
    // The failure is remembered for a while: a burst does not refetch.
    for _ in 0..5 {
        let _ = v
            .verify(&headers(&sign(SIGNER_KEY, &body), MISSING_URL), &body)
            .await;
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn distinct_paths_fill_a_bounded_cache() {
    let source = fixtures();
    let v = verifier(source.clone(), &[HOST]);
    let body = fresh("referral-created");
    let sig = sign(SIGNER_KEY, &body);
    for i in 0..500 {
        let url = format!("https://certs.partner.example/cert/{i}.cer");
        let _ = v.verify(&headers(&sig, &url), &body).await;
    }
    let (good, bad, in_flight) = v.cache_sizes();
    assert!(
        good <= 8 && bad <= 64 && in_flight == 0,
        "{good} {bad} {in_flight}"
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
