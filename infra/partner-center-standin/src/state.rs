//! Everything the stand-in remembers: referrals, tokens, the webhook registration, pending
//! faults and what it delivered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use url::Url;

use crate::faults::{DeliveryFaults, Fault};
use crate::signing::SigningIdentity;

/// The stand-in's fixed test key (see keys/README.md): not a secret of anything real.
const KEY_PEM: &str = include_str!("../keys/standin.key.pem");

#[derive(Debug, Clone)]
pub struct StandinConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token valid at start; each use rotates it.
    pub refresh_token: String,
    pub token_lifetime: Duration,
    /// Page size when the caller sends no `$top`.
    pub page_size: usize,
    pub delivery_attempts: u32,
    pub delivery_backoff: Duration,
    pub delivery_timeout: Duration,
    /// Device authorization grant: how long a user code stays valid, and the polling
    /// interval it asks for (Entra: 15 minutes, 5 seconds).
    pub device_code_lifetime: Duration,
    pub device_code_interval: Duration,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            client_id: "standin-client".into(),
            client_secret: "standin-secret".into(),
            refresh_token: "standin-refresh-0".into(),
            token_lifetime: Duration::from_secs(3600),
            page_size: 100,
            delivery_attempts: 3,
            delivery_backoff: Duration::from_millis(50),
            delivery_timeout: Duration::from_secs(5),
            device_code_lifetime: crate::device::DEFAULT_LIFETIME,
            device_code_interval: crate::device::DEFAULT_INTERVAL,
        }
    }
}

/// How one webhook delivery ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub event_name: String,
    pub referral_id: Option<String>,
    pub body: String,
    /// `delivered`, `failed` or `suppressed`.
    pub outcome: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
}

/// One request the API side received (for assertions on headers and retries).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// An access token the endpoint issued.
pub(crate) struct IssuedToken {
    pub expires: OffsetDateTime,
    /// The resource it was issued for.
    pub audience: String,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Referrals in creation order, as JSON so unknown fields survive.
    pub referrals: Vec<Value>,
    /// Position of each referral in `referrals` by id: a scan per lookup made the stand-in
    /// the bottleneck of a 10,000-referral benchmark.
    by_id: HashMap<String, usize>,
    /// Referrals of another organization in the partner's engagements (Microsoft's own, for
    /// a co-sell): found by id and in their engagement's list only, and read-only.
    pub related: HashSet<String>,
    pub access_tokens: HashMap<String, IssuedToken>,
    pub refresh_tokens: HashSet<String>,
    pub token_requests: u64,
    pub registration: Option<Value>,
    pub validation_events: HashMap<String, String>,
    /// When validation events were asked for (2 a minute are allowed).
    pub validation_posts: Vec<std::time::Instant>,
    pub faults: Vec<Fault>,
    pub delivery_faults: DeliveryFaults,
    pub deliveries: Vec<DeliveryRecord>,
    pub held: Vec<crate::deliveries::PendingDelivery>,
    pub requests: Vec<RequestRecord>,
    /// Requests per [`crate::faults::route_key`]; reset apart from `requests`.
    pub request_counts: BTreeMap<String, u64>,
    pub last_write: Option<OffsetDateTime>,
    /// Device codes handed out, by device code.
    pub device_grants: HashMap<String, crate::device::DeviceGrant>,
    /// Polls of pending device codes still to answer with `slow_down`.
    pub device_slow_downs: u32,
}

pub(crate) struct State {
    pub config: StandinConfig,
    pub base_url: Url,
    pub inner: Mutex<Inner>,
    pub http: reqwest::Client,
    pub signer: SigningKey<Sha256>,
    /// The certificate chain for `signer`, made at start.
    pub identity: SigningIdentity,
    pub deliveries_changed: tokio::sync::Notify,
}

impl State {
    pub fn new(config: StandinConfig, base_url: Url) -> Arc<Self> {
        let key =
            RsaPrivateKey::from_pkcs8_pem(KEY_PEM).expect("the committed stand-in key parses");
        let inner = Inner {
            refresh_tokens: HashSet::from([config.refresh_token.clone()]),
            ..Default::default()
        };
        Arc::new(State {
            config,
            base_url,
            inner: Mutex::new(inner),
            http: reqwest::Client::new(),
            signer: SigningKey::new(key),
            identity: SigningIdentity::generate(KEY_PEM),
            deliveries_changed: tokio::sync::Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.identity.leaf_der.clone()
    }

    pub fn cert_url(&self) -> Url {
        self.base_url.join("cert/standin.cer").expect("static path")
    }

    pub fn referral_url(&self, id: &str) -> String {
        format!("{}v1.0/engagements/referrals/{id}", self.base_url)
    }

    /// Faults still armed, with what is left of their counts.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.lock()
            .faults
            .iter()
            .filter(|f| f.count > 0)
            .cloned()
            .collect()
    }
}

impl Inner {
    pub fn find(&self, id: &str) -> Option<&Value> {
        self.position(id).map(|i| &self.referrals[i])
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Stores a new referral (ids never change and referrals are never removed).
    pub fn add_referral(&mut self, referral: Value) {
        if let Some(id) = referral["id"].as_str() {
            self.by_id.insert(id.to_string(), self.referrals.len());
        }
        self.referrals.push(referral);
    }

    /// A write timestamp, strictly after the previous one so `gt` filters see every write.
    pub fn next_write_time(&mut self) -> OffsetDateTime {
        let mut now = OffsetDateTime::now_utc();
        if let Some(last) = self.last_write {
            if now <= last {
                now = last + time::Duration::microseconds(1);
            }
        }
        self.last_write = Some(now);
        now
    }
}
