//! Authenticates a Partner Center webhook delivery as the docs prescribe: the three headers,
//! a certificate fetched only from a trusted URL (see `cert_url`), its chain to a trusted
//! root, validity and organization (`cert_trust`), an RSA PKCS#1 v1.5 SHA-256 signature over
//! the raw body, then a sanity check of the event (its date required and not in the future).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cert_cache::{CacheLimits, LookupCache};
use super::cert_trust::{self, TrustedCert};
use super::cert_url::{self, CertKey};
use super::event::{WebhookEvent, REFERRAL_CREATED, REFERRAL_UPDATED, TEST_CREATED};
use crate::retry;

pub use super::cert_fetch::{CertificateSource, FetchError, HttpCertificateSource};
pub use super::cert_trust::TrustRoots;

pub const HEADER_CERT_URL: &str = "x-ms-certificate-url";
pub const HEADER_ALGORITHM: &str = "x-ms-signature-algorithm";
/// Where the signature comes when the registration sets `SignatureTokenToMsSignatureHeader`.
pub const HEADER_MS_SIGNATURE: &str = "x-ms-signature";
/// Events are a few hundred bytes; anything far larger is not from Partner Center.
const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// How far ahead of our clock an event's date may be (clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);
/// The longest a delivery waits for its certificate, retries included.
const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_secs(6);
/// At most one WARN line a minute about failing certificate fetches (the rest go to DEBUG):
/// anyone can make the intake fetch, so each failure must not cost a log line.
const FETCH_WARN_EVERY_SECS: i64 = 60;

/// Why a delivery was refused. `code()` and `message()` make the fixed JSON answer; the
/// variants' texts are for logs only (sanitised, bounded) and never go back to the sender.
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
    #[error("event is dated in the future")]
    FutureDated,
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
}

impl Rejection {
    pub fn http_status(&self) -> u16 {
        match self {
            Rejection::MissingHeader(_)
            | Rejection::BadSignature
            | Rejection::BadCertificate(_)
            // Not told apart from a bad certificate: the answer must not say what this
            // server could reach. Partner Center retries a 401 like any non-2xx.
            | Rejection::CertFetch => 401,
            Rejection::UntrustedCertHost(_) => 403,
            Rejection::BadAlgorithm | Rejection::MalformedBody(_) => 400,
            Rejection::TooLarge(_) => 413,
            Rejection::UnknownEvent(_) | Rejection::Stale | Rejection::FutureDated => 422,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::BadAlgorithm => "bad_algorithm",
            Rejection::UntrustedCertHost(_) => "untrusted_certificate_host",
            Rejection::CertFetch | Rejection::BadCertificate(_) => "bad_certificate",
            Rejection::BadSignature => "bad_signature",
            Rejection::MalformedBody(_) => "malformed_body",
            Rejection::UnknownEvent(_) => "unknown_event",
            Rejection::Stale => "stale_event",
            Rejection::FutureDated => "future_event",
            Rejection::TooLarge(_) => "too_large",
        }
    }

    /// The fixed text sent back with `code()`: nothing from the request in it.
    pub fn message(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "a signature header is missing or malformed",
            Rejection::BadAlgorithm => "the signature algorithm is not rsa-sha256",
            Rejection::UntrustedCertHost(_) => "the certificate URL is not trusted",
            Rejection::CertFetch | Rejection::BadCertificate(_) => {
                "the signing certificate is not acceptable"
            }
            Rejection::BadSignature => "the signature does not match the body",
            Rejection::MalformedBody(_) => "the body is not a Partner Center event",
            Rejection::UnknownEvent(_) => "the event is not one this connector handles",
            Rejection::Stale => "the event is older than the accepted age",
            Rejection::FutureDated => "the event is dated in the future",
            Rejection::TooLarge(_) => "the body is too large",
        }
    }
}

/// An authenticated event. `referral_id` is `None` only for the test event.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    pub event: WebhookEvent,
    pub referral_id: Option<String>,
}

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub struct WebhookVerifier {
    allowed_hosts: Vec<String>,
    source: Arc<dyn CertificateSource>,
    roots: TrustRoots,
    organizations: Vec<String>,
    max_age: Duration,
    max_body: usize,
    fetch_deadline: Duration,
    clock: Clock,
    cache: LookupCache<CertKey, Arc<TrustedCert>, Rejection>,
    /// Unix second of the last WARN about a failing fetch.
    last_fetch_warning: AtomicI64,
}

impl WebhookVerifier {
    /// Trusts the built-in (Mozilla) roots until [`WebhookVerifier::with_roots`] says otherwise.
    pub fn new(allowed_cert_hosts: Vec<String>, cert_fetcher: Arc<dyn CertificateSource>) -> Self {
        WebhookVerifier {
            allowed_hosts: allowed_cert_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            source: cert_fetcher,
            roots: TrustRoots::mozilla(),
            organizations: vec!["Microsoft Corporation".into()],
            max_age: Duration::from_secs(24 * 3600),
            max_body: DEFAULT_MAX_BODY,
            fetch_deadline: DEFAULT_FETCH_DEADLINE,
            clock: Arc::new(OffsetDateTime::now_utc),
            cache: LookupCache::new(CacheLimits::default()),
            last_fetch_warning: AtomicI64::new(i64::MIN),
        }
    }

    /// The roots a signing certificate must chain to (instead of the built-in ones).
    pub fn with_roots(mut self, roots: TrustRoots) -> Self {
        self.roots = roots;
        self
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

    /// How long a delivery may wait for its certificate download, retries included.
    pub fn with_fetch_deadline(mut self, deadline: Duration) -> Self {
        self.fetch_deadline = deadline;
        self
    }

    pub fn with_cache_limits(mut self, limits: CacheLimits) -> Self {
        self.cache = LookupCache::new(limits);
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

    /// Cache entries held now (verified, failed, in flight).
    pub fn cache_sizes(&self) -> (usize, usize, usize) {
        self.cache.sizes()
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
        let cert_key = cert_url::check(cert_url, &self.allowed_hosts)
            .map_err(|u| Rejection::UntrustedCertHost(u.host))?;
        let cert = self.certificate(&cert_key).await?;
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

    async fn certificate(&self, key: &CertKey) -> Result<Arc<TrustedCert>, Rejection> {
        self.cache
            .get_or_fetch(key, || async {
                let fetched =
                    tokio::time::timeout(self.fetch_deadline, self.source.fetch(&key.fetch_url()))
                        .await;
                let bytes = match fetched {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(e)) => return Err(self.fetch_failed(key, &e.to_string())),
                    Err(_) => return Err(self.fetch_failed(key, "deadline passed")),
                };
                cert_trust::trust(&bytes, &self.roots, &self.organizations, (self.clock)())
                    .map(Arc::new)
                    .map_err(|e| {
                        tracing::debug!(host = %key.host, reason = %e, "webhook certificate refused");
                        Rejection::BadCertificate(e.to_string())
                    })
            })
            .await
    }

    fn fetch_failed(&self, key: &CertKey, reason: &str) -> Rejection {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let last = self.last_fetch_warning.load(Ordering::Relaxed);
        let warn = now.saturating_sub(last) >= FETCH_WARN_EVERY_SECS
            && self
                .last_fetch_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if warn {
            tracing::warn!(host = %key.host, reason, "webhook certificate fetch failed (further failures this minute at debug)");
        } else {
            tracing::debug!(host = %key.host, reason, "webhook certificate fetch failed");
        }
        Rejection::CertFetch
    }

    fn check_event(
        &self,
        raw_body: &[u8],
        now: OffsetDateTime,
    ) -> Result<VerifiedEvent, Rejection> {
        let event: WebhookEvent = serde_json::from_slice(raw_body)
            .map_err(|e| Rejection::MalformedBody(retry::truncate(&e.to_string(), 100)))?;
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
        // Without a date a captured delivery could be replayed once a day forever (the
        // de-duplication window is a day); a date ahead of us would outlive max_age.
        let date = event
            .resource_change_utc_date
            .as_deref()
            .ok_or_else(|| Rejection::MalformedBody("ResourceChangeUtcDate is missing".into()))?;
        let changed = OffsetDateTime::parse(date, &Rfc3339)
            .map_err(|_| Rejection::MalformedBody("ResourceChangeUtcDate is not a date".into()))?;
        if changed - now > MAX_FUTURE_SKEW {
            return Err(Rejection::FutureDated);
        }
        if now - changed > self.max_age {
            return Err(Rejection::Stale);
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
