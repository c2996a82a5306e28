//! A local stand-in for the services the connector talks to on the Partner Center side:
//! the Entra token endpoint, the referrals API, the webhook registration API and signed
//! webhook deliveries, plus fault injection so tests can exercise every failure path.
//! It serves plain HTTP on loopback only.

mod admin;
mod deliveries;
mod device;
pub mod faults;
mod filter;
mod incoming;
mod patch;
pub mod ratelimit;
mod referrals;
mod registration;
mod related;
mod signing;
mod state;
mod token;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use url::Url;

pub use deliveries::EVENT_RESOURCE_BASE;
pub use device::{DEFAULT_USER_NAME, DEFAULT_USER_UPN};
pub use faults::{DeliveryFaults, Fault, FaultKind, LostAs};
pub use related::MicrosoftSide;
pub use signing::CERT_ORGANIZATION;
pub use state::{DeliveryRecord, RequestRecord, StandinConfig};

use state::State;

fn router(
    state: Arc<State>,
    limiter: Arc<ratelimit::Limiter>,
    latency: Arc<standin_kit::Latency>,
) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device::devicecode))
        .route("/_standin/devicelogin", get(device::login_page))
        .route("/_standin/device/approve", post(device::approve))
        .route("/_standin/device/decline", post(device::decline))
        // The v1 endpoint of the referral-auth page's sample (`resource=`).
        .route("/{tenant}/oauth2/token", post(token::token))
        .route(
            "/v1.0/engagements/referrals",
            get(referrals::list).post(referrals::create),
        )
        .route(
            "/v1.0/engagements/referrals/{id}",
            get(referrals::get_one)
                .put(referrals::put)
                .patch(referrals::patch_one),
        )
        // No DELETE: the registration API does not offer one (axum answers 405).
        .route(
            "/webhooks/v1/registration",
            get(registration::get)
                .post(registration::post)
                .put(registration::put),
        )
        .route(
            "/webhooks/v1/registration/validationEvents",
            post(registration::send_validation),
        )
        .route(
            "/webhooks/v1/registration/validationEvents/{id}",
            get(registration::validation_status),
        )
        .route(
            "/cert/standin.cer",
            get(|axum::extract::State(s): axum::extract::State<Arc<State>>| async move {
                s.cert_der()
            }),
        )
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            ratelimit::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            latency,
            standin_kit::latency::layer,
        ))
        .with_state(state)
}

/// A running stand-in. Dropping it leaves the server running until the runtime ends;
/// call [`StandinHandle::shutdown`] to stop it.
pub struct StandinHandle {
    state: Arc<State>,
    server: standin_kit::Served,
    limiter: Arc<ratelimit::Limiter>,
    latency: Arc<standin_kit::Latency>,
}

impl StandinHandle {
    /// Serves the stand-in on `addr` (use `127.0.0.1:0` for a free port) with defaults.
    pub async fn start(addr: SocketAddr) -> std::io::Result<(StandinHandle, Url)> {
        Self::start_with(addr, StandinConfig::default()).await
    }

    pub async fn start_with(
        addr: SocketAddr,
        config: StandinConfig,
    ) -> std::io::Result<(StandinHandle, Url)> {
        let (listener, base_url) = standin_kit::listen(addr).await?;
        let state = State::new(config, base_url.clone());
        let limiter = Arc::new(ratelimit::Limiter::default());
        let latency = Arc::new(standin_kit::Latency::default());
        let app = router(state.clone(), limiter.clone(), latency.clone());
        let server = standin_kit::Served::spawn(listener, app, "partner center stand-in");
        tracing::info!(%base_url, "partner center stand-in listening");
        Ok((
            StandinHandle {
                state,
                server,
                limiter,
                latency,
            },
            base_url,
        ))
    }

    pub fn base_url(&self) -> Url {
        self.state.base_url.clone()
    }

    /// Answers every API request no sooner than `latency` after it came (zero: at once).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.latency.set(latency);
    }

    /// The token endpoint URL for `tenant`.
    /// The test CA (PEM) that issued the signing certificate: give it to a verifier as its
    /// roots (`COSELL_WEBHOOK_CERT_ROOTS`) to trust this stand-in's deliveries.
    pub fn root_pem(&self) -> &str {
        &self.state.identity.root_pem
    }

    /// Writes [`StandinHandle::root_pem`] to `path`, for `COSELL_WEBHOOK_CERT_ROOTS`.
    pub fn write_root_pem(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.root_pem())
    }

    pub fn token_url(&self, tenant: &str) -> Url {
        self.state
            .base_url
            .join(&format!("{tenant}/oauth2/v2.0/token"))
            .expect("tenant forms a path")
    }

    pub fn config(&self) -> &StandinConfig {
        &self.state.config
    }

    pub fn add_fault(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Limits API requests to a token bucket (429 with `Retry-After` beyond it); `None` lifts it.
    pub fn set_rate_limit(&self, limit: Option<ratelimit::RateLimit>) {
        self.limiter.set(limit);
    }

    /// API requests the rate limit answered with a 429 so far.
    pub fn rate_limited(&self) -> u64 {
        self.limiter.throttled()
    }

    /// API requests that arrived inside a `Retry-After` window announced earlier.
    pub fn ignored_retry_after(&self) -> u64 {
        self.limiter.ignored_retry_after()
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Faults not used up yet, with their remaining counts.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.state.pending_faults()
    }

    pub fn set_delivery_faults(&self, faults: DeliveryFaults) {
        self.state.lock().delivery_faults = faults;
    }

    /// Sends held deliveries, in reverse order when asked; returns how many.
    pub fn release_held(&self, reverse: bool) -> usize {
        deliveries::release(&self.state, reverse)
    }

    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.state.lock().deliveries.clone()
    }

    /// Waits until at least `n` delivery outcomes are recorded, or `timeout` passes.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<DeliveryRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.deliveries_changed.notified();
            let now = self.deliveries();
            if now.len() >= n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Creates a referral as Microsoft would (incoming, shared) and emits `referral-created`.
    pub fn create_incoming_referral(&self, name: &str, customer_name: &str) -> Value {
        incoming::create(&self.state, name, customer_name)
    }

    /// Creates a lead as Microsoft would (`Independent`, the given qualification) and emits
    /// `referral-created`.
    pub fn create_incoming_lead(
        &self,
        name: &str,
        customer_name: &str,
        qualification: &str,
    ) -> Value {
        incoming::create_lead(&self.state, name, customer_name, qualification)
    }

    pub fn referral(&self, id: &str) -> Option<Value> {
        self.state.lock().find(id).cloned()
    }

    /// Every referral of the partner's, the connected referrals for Microsoft included
    /// (not the related referrals of other organizations).
    pub fn referrals(&self) -> Vec<Value> {
        let inner = self.state.lock();
        inner
            .referrals
            .iter()
            .filter(|r| !inner.related.contains(r["id"].as_str().unwrap_or_default()))
            .cloned()
            .collect()
    }

    /// Microsoft's side of the engagement `engagement_id` (one of the partner's): its own
    /// referral, emitting `related-referral-created`. `None` for an unknown engagement.
    pub fn add_microsoft_referral(
        &self,
        engagement_id: &str,
        side: &MicrosoftSide,
    ) -> Option<Value> {
        related::add(&self.state, engagement_id, side)
    }

    /// Microsoft's side moves its referral (`Active`/`Accepted` when its seller accepts),
    /// emitting `related-referral-updated`.
    pub fn set_microsoft_referral_status(
        &self,
        id: &str,
        status: &str,
        substatus: &str,
    ) -> Option<Value> {
        related::set_status(&self.state, id, status, substatus)
    }

    /// The partner's own referrals: all but the connected referrals for Microsoft (the
    /// second shared-referral step, target `BusinessProfileLocation`/`msft`).
    pub fn partner_referrals(&self) -> Vec<Value> {
        let all = self.referrals();
        all.into_iter()
            .filter(|r| !validate::targets_microsoft(r))
            .collect()
    }

    /// The connected referrals for Microsoft in the engagement `engagement_id`.
    pub fn referrals_for_microsoft(&self, engagement_id: &str) -> Vec<Value> {
        let all = self.referrals();
        all.into_iter()
            .filter(|r| r["engagementId"].as_str() == Some(engagement_id))
            .filter(validate::targets_microsoft)
            .collect()
    }

    pub fn registration(&self) -> Option<Value> {
        self.state.lock().registration.clone()
    }

    /// Token requests answered so far (good and bad).
    pub fn token_requests(&self) -> u64 {
        self.state.lock().token_requests
    }

    /// API requests received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().requests.clone()
    }

    /// Requests per route (see [`faults::route_key`]), token requests under `POST token`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().request_counts.clone()
    }

    pub fn request_count(&self, route: &str) -> u64 {
        self.state
            .lock()
            .request_counts
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Clears the per-route counts (not the [`StandinHandle::requests`] log).
    pub fn reset_request_counts(&self) {
        self.state.lock().request_counts.clear();
    }

    /// Forgets every access token, so the next API call gets a 401.
    pub fn revoke_tokens(&self) {
        self.state.lock().access_tokens.clear();
    }

    /// True while `token` would be accepted by the refresh-token grant.
    pub fn refresh_token_valid(&self, token: &str) -> bool {
        self.state.lock().refresh_tokens.contains(token)
    }

    /// `/devicecode` next to the token endpoint for `tenant`.
    pub fn devicecode_url(&self, tenant: &str) -> Url {
        self.state
            .base_url
            .join(&format!("{tenant}/oauth2/v2.0/devicecode"))
            .expect("tenant forms a path")
    }

    /// The user codes of sign-ins nobody has answered yet.
    pub fn pending_user_codes(&self) -> Vec<String> {
        device::pending_codes(&self.state)
    }

    /// The person at the browser approves the sign-in with this user code, as `name`
    /// (`upn`); false when no sign-in waits for it.
    pub fn approve_device(&self, user_code: &str, name: &str, upn: &str) -> bool {
        device::answer(
            &self.state,
            user_code,
            device::Answer::Approved {
                name: name.into(),
                upn: upn.into(),
            },
        )
    }

    /// The person declines the sign-in with this user code.
    pub fn decline_device(&self, user_code: &str) -> bool {
        device::answer(&self.state, user_code, device::Answer::Declined)
    }

    /// The next `n` polls of a pending device code are answered `slow_down`.
    pub fn slow_down_device_polls(&self, n: u32) {
        self.state.lock().device_slow_downs = n;
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
