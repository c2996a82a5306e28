//! Authenticates a Partner Center webhook delivery as the docs prescribe: the three headers,
//! a certificate fetched only from a trusted host (cached), its validity and organization,
//! an RSA PKCS#1 v1.5 SHA-256 signature over the raw body, then a sanity check of the event.
//!
//! The certificate's chain is not walked: there is no trust store here. Trust rests on the
//! certificate coming over TLS from an allow-listed host, its validity period and its subject
//! organization.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use http::HeaderMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;
use x509_cert::der::{oid::ObjectIdentifier, Decode, DecodePem};
use x509_cert::Certificate;

use super::event::{WebhookEvent, REFERRAL_CREATED, REFERRAL_UPDATED, TEST_CREATED};
use crate::retry::{self, RetryPolicy};

pub const HEADER_CERT_URL: &str = "x-ms-certificate-url";
pub const HEADER_ALGORITHM: &str = "x-ms-signature-algorithm";
/// Where the signature comes when the registration sets `SignatureTokenToMsSignatureHeader`.
pub const HEADER_MS_SIGNATURE: &str = "x-ms-signature";
const ORGANIZATION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const RSA_ENCRYPTION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// Events are a few hundred bytes; anything far larger is not from Partner Center.
const DEFAULT_MAX_BODY: usize = 64 * 1024;
const MAX_CERT_BYTES: usize = 64 * 1024;

/// Why a delivery was refused. `code()` is stable for JSON error bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing or empty header {0}")]
    MissingHeader(&'static str),
    #[error("unsupported signature algorithm")]
    BadAlgorithm,
    #[error("certificate host {0} is not trusted")]
    UntrustedCertHost(String),
    #[error("certificate could not be fetched")]
    CertFetch,
    #[error("certificate is not acceptable: {0}")]
    BadCertificate(String),
    #[error("signature does not match the body")]
    BadSignature,
    #[error("event body is malformed: {0}")]
    MalformedBody(String),
    #[error("event {0} is not one this connector handles")]
    UnknownEvent(String),
    #[error("event is older than the accepted age")]
    Stale,
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
}

impl Rejection {
    pub fn http_status(&self) -> u16 {
        match self {
            Rejection::MissingHeader(_)
            | Rejection::BadSignature
            | Rejection::BadCertificate(_) => 401,
            Rejection::UntrustedCertHost(_) => 403,
            Rejection::BadAlgorithm | Rejection::MalformedBody(_) => 400,
            Rejection::TooLarge(_) => 413,
            Rejection::UnknownEvent(_) | Rejection::Stale => 422,
            // Our side could not reach the certificate: a 5xx makes Partner Center retry.
            Rejection::CertFetch => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::BadAlgorithm => "bad_algorithm",
            Rejection::UntrustedCertHost(_) => "untrusted_certificate_host",
            Rejection::CertFetch => "certificate_fetch_failed",
            Rejection::BadCertificate(_) => "bad_certificate",
            Rejection::BadSignature => "bad_signature",
            Rejection::MalformedBody(_) => "malformed_body",
            Rejection::UnknownEvent(_) => "unknown_event",
            Rejection::Stale => "stale_event",
            Rejection::TooLarge(_) => "too_large",
        }
    }
}

/// An authenticated event. `referral_id` is `None` only for the test event.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    pub event: WebhookEvent,
    pub referral_id: Option<String>,
}

/// Where certificate bytes (DER or PEM) come from.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, String>;
}

/// Downloads certificates over HTTP with a short timeout and a size cap.
pub struct HttpCertificateSource {
    http: reqwest::Client,
    policy: RetryPolicy,
}

impl HttpCertificateSource {
    pub fn new(http: reqwest::Client) -> Self {
        HttpCertificateSource {
            http,
            policy: RetryPolicy {
                max_retries: 2,
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                max_inline_wait: Duration::from_secs(2),
                attempt_timeout: Duration::from_secs(5),
            },
        }
    }
}

#[async_trait]
impl CertificateSource for HttpCertificateSource {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, String> {
        let resp = retry::send(&self.policy, "fetch webhook certificate", || {
            self.http.get(url.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if bytes.len() > MAX_CERT_BYTES {
            return Err("certificate too large".into());
        }
        Ok(bytes.to_vec())
    }
}

struct TrustedCert {
    /// The PKCS#1 RSAPublicKey, verified with aws-lc (already linked for TLS): the pure-Rust
    /// `rsa` crate's public operation was a third of the intake's CPU time.
    key: UnparsedPublicKey<Vec<u8>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub struct WebhookVerifier {
    allowed_hosts: Vec<String>,
    source: Arc<dyn CertificateSource>,
    organizations: Vec<String>,
    max_age: Duration,
    max_body: usize,
    clock: Clock,
    cache: Mutex<HashMap<String, Arc<TrustedCert>>>,
}

impl WebhookVerifier {
    pub fn new(allowed_cert_hosts: Vec<String>, cert_fetcher: Arc<dyn CertificateSource>) -> Self {
        WebhookVerifier {
            allowed_hosts: allowed_cert_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            source: cert_fetcher,
            organizations: vec!["Microsoft Corporation".into()],
            max_age: Duration::from_secs(24 * 3600),
            max_body: DEFAULT_MAX_BODY,
            clock: Arc::new(OffsetDateTime::now_utc),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Subject organizations (O=) accepted on the certificate.
    pub fn with_organizations(mut self, organizations: Vec<String>) -> Self {
        self.organizations = organizations;
        self
    }

    /// Events whose `ResourceChangeUtcDate` is older than this are refused as replays.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Replaces the clock (tests of expiry and staleness).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub async fn verify(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<VerifiedEvent, Rejection> {
        if raw_body.len() > self.max_body {
            return Err(Rejection::TooLarge(self.max_body));
        }
        // `x-ms-signature` when the registration asks for it, `Authorization` by default.
        let auth = match header(headers, HEADER_MS_SIGNATURE) {
            Ok(v) => v,
            Err(_) => header(headers, "authorization")?,
        };
        let cert_url = header(headers, HEADER_CERT_URL)?;
        let algorithm = header(headers, HEADER_ALGORITHM)?;
        if !algorithm.eq_ignore_ascii_case("rsa-sha256") {
            return Err(Rejection::BadAlgorithm);
        }
        let signature = parse_signature(auth)?;
        let cert_url = self.trusted_url(cert_url)?;
        let cert = self.certificate(&cert_url).await?;
        let now = (self.clock)();
        if now < cert.not_before || now > cert.not_after {
            return Err(Rejection::BadCertificate(
                "outside its validity period".into(),
            ));
        }
        cert.key
            .verify(raw_body, &signature)
            .map_err(|_| Rejection::BadSignature)?;
        self.check_event(raw_body, now)
    }

    fn trusted_url(&self, raw: &str) -> Result<Url, Rejection> {
        let url = Url::parse(raw)
            .map_err(|_| Rejection::UntrustedCertHost(raw.chars().take(100).collect()))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let listed = self.allowed_hosts.contains(&host);
        let ok = match url.scheme() {
            "https" => listed,
            // Plain http only for a local stand-in: a loopback IP that is also listed.
            "http" => {
                listed
                    && host
                        .trim_matches(['[', ']'])
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        };
        if ok {
            Ok(url)
        } else {
            Err(Rejection::UntrustedCertHost(host))
        }
    }

    async fn certificate(&self, url: &Url) -> Result<Arc<TrustedCert>, Rejection> {
        // The lock is held across the download so concurrent first deliveries fetch once;
        // misses are rare (one per certificate URL) and the fetch has a timeout.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(url.as_str()) {
            return Ok(c.clone());
        }
        let bytes = self.source.fetch(url).await.map_err(|e| {
            tracing::warn!(url = %url, error = %e, "webhook certificate fetch failed");
            Rejection::CertFetch
        })?;
        let cert = Arc::new(self.parse_certificate(&bytes)?);
        cache.insert(url.as_str().to_string(), cert.clone());
        Ok(cert)
    }

    fn parse_certificate(&self, bytes: &[u8]) -> Result<TrustedCert, Rejection> {
        let bad = |why: &str| Rejection::BadCertificate(why.to_string());
        let cert = if bytes.starts_with(b"-----BEGIN") {
            Certificate::from_pem(bytes).map_err(|_| bad("not a PEM certificate"))?
        } else {
            Certificate::from_der(bytes).map_err(|_| bad("not a DER certificate"))?
        };
        let tbs = &cert.tbs_certificate;
        let orgs = organizations(&tbs.subject);
        if !orgs
            .iter()
            .any(|o| self.organizations.iter().any(|a| a == o))
        {
            return Err(bad("subject organization is not trusted"));
        }
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION_OID {
            return Err(bad("not an RSA key"));
        }
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("unreadable public key"))?
            .to_vec();
        let to_time = |t: x509_cert::time::Time| {
            OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64)
                .map_err(|_| bad("validity out of range"))
        };
        Ok(TrustedCert {
            key: UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key),
            not_before: to_time(tbs.validity.not_before)?,
            not_after: to_time(tbs.validity.not_after)?,
        })
    }

    fn check_event(
        &self,
        raw_body: &[u8],
        now: OffsetDateTime,
    ) -> Result<VerifiedEvent, Rejection> {
        let event: WebhookEvent = serde_json::from_slice(raw_body)
            .map_err(|e| Rejection::MalformedBody(e.to_string()))?;
        let name = event.event_name.to_ascii_lowercase();
        let is_referral_event = name == REFERRAL_CREATED
            || name == REFERRAL_UPDATED
            || name.starts_with("related-referral-");
        if !is_referral_event && name != TEST_CREATED {
            return Err(Rejection::UnknownEvent(retry::truncate(
                &event.event_name,
                100,
            )));
        }
        let referral_id = event.referral_id().map(str::to_string);
        if is_referral_event && referral_id.is_none() {
            return Err(Rejection::MalformedBody(
                "ResourceUri names no referral".into(),
            ));
        }
        if let Some(date) = &event.resource_change_utc_date {
            let changed = OffsetDateTime::parse(date, &Rfc3339).map_err(|_| {
                Rejection::MalformedBody("ResourceChangeUtcDate is not a date".into())
            })?;
            if now - changed > self.max_age {
                return Err(Rejection::Stale);
            }
        }
        Ok(VerifiedEvent { event, referral_id })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Rejection> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(Rejection::MissingHeader(name))
}

fn parse_signature(auth: &str) -> Result<Vec<u8>, Rejection> {
    let (scheme, value) = auth
        .split_once(' ')
        .ok_or(Rejection::MissingHeader("authorization"))?;
    if !scheme.eq_ignore_ascii_case("Signature") {
        return Err(Rejection::MissingHeader("authorization"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| Rejection::BadSignature)
}

/// The subject's O= values. The raw content works for UTF8String and PrintableString alike.
fn organizations(name: &x509_cert::name::Name) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == ORGANIZATION_OID)
        .filter_map(|atv| {
            std::str::from_utf8(atv.value.value())
                .ok()
                .map(str::to_string)
        })
        .collect()
}
