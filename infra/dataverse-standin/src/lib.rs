//! A local, in-memory stand-in for Microsoft Entra ID's token endpoint and the Dataverse
//! Web API, covering what cosell-sync uses: opportunities, accounts, contacts, currencies,
//! opportunity closes, `WinOpportunity`/`LoseOpportunity`, `WhoAmI`, OData queries and
//! paging, optimistic concurrency, change tracking, plus fault injection and request
//! counters for tests and benchmarks. It serves plain HTTP on loopback only.

mod actions;
mod admin;
mod batch;
mod collection;
mod expand;
pub mod faults;
pub mod filter;
mod index;
pub mod journal;
mod leads;
mod metadata;
mod odata_error;
pub mod ratelimit;
mod request;
mod rows;
pub mod schema;
pub mod solution_tables;
mod state;
mod token;
mod tracking;
pub mod validation;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};
use url::Url;

pub use faults::{Fault, FaultKind, Limit, LostAs};
pub use journal::JournalEntry;
pub use schema::Attribute;
pub use state::{StandinConfig, EUR_ID, USD_ID};
pub use tracking::EXPIRED_MESSAGE;
pub use validation::WriteRejection;

use state::State;

fn router(
    state: Arc<State>,
    limiter: Arc<ratelimit::Limiter>,
    journal: Arc<journal::Journal>,
    latency: Arc<standin_kit::Latency>,
) -> Router {
    let api = Router::new()
        .route("/api/data/v9.2/$batch", post(batch::handle))
        .route(
            "/api/data/v9.2/{segment}",
            get(rows::get)
                .post(rows::post)
                .patch(rows::patch)
                .delete(rows::delete)
                .put(metadata::put_entity),
        )
        .route(
            "/api/data/v9.2/{segment}/{*rest}",
            get(metadata::get_nested).post(metadata::post_nested),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            token::require_bearer,
        ));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .merge(api)
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
            journal,
            journal::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            latency,
            standin_kit::latency::layer,
        ))
        .with_state(state)
}

/// A running stand-in. Call [`StandinHandle::shutdown`] to stop it.
pub struct StandinHandle {
    state: Arc<State>,
    server: standin_kit::Served,
    limiter: Arc<ratelimit::Limiter>,
    journal: Arc<journal::Journal>,
    latency: Arc<standin_kit::Latency>,
}

impl StandinHandle {
    /// Serves the stand-in on `addr` (use `127.0.0.1:0` for a free port) with the default
    /// tenant and credentials; the second value is the org URL (also the token authority).
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
        let journal = Arc::new(journal::Journal::default());
        let latency = Arc::new(standin_kit::Latency::default());
        let app = router(
            state.clone(),
            limiter.clone(),
            journal.clone(),
            latency.clone(),
        );
        let server = standin_kit::Served::spawn(listener, app, "dataverse stand-in");
        tracing::info!(%base_url, "dataverse stand-in listening");
        Ok((
            StandinHandle {
                state,
                server,
                limiter,
                journal,
                latency,
            },
            base_url,
        ))
    }

    /// The org URL: `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> Url {
        self.state.base_url.clone()
    }

    /// Answers every API request no sooner than `latency` after it came (zero: at once).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.latency.set(latency);
    }

    /// `{base}{tenant}/oauth2/v2.0/token` for the configured tenant.
    pub fn token_url(&self) -> Url {
        self.state
            .base_url
            .join(&format!("{}/oauth2/v2.0/token", self.state.config.tenant))
            .expect("tenant forms a path")
    }

    pub fn config(&self) -> &StandinConfig {
        &self.state.config
    }

    pub fn add_fault(&self, fault: Fault) {
        self.state.add_fault(fault);
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

    /// Every Web API request so far, in order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.journal.clear();
    }

    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Faults not used up yet, with their remaining counts.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.state.pending_faults()
    }

    /// From now on, writes matching `rule` fail with a 400 (a business rule).
    pub fn reject_writes(&self, rule: WriteRejection) {
        self.state.lock().rejections.push(rule);
    }

    pub fn clear_write_rejections(&self) {
        self.state.lock().rejections.clear();
    }

    /// Makes every delta link handed out so far fail with the expiry error.
    pub fn expire_delta_tokens(&self) {
        self.state.expire_delta_tokens();
    }

    /// Turns change tracking on or off for an entity set; false for an unknown set.
    pub fn set_change_tracking(&self, set: &str, enabled: bool) -> bool {
        self.state.set_change_tracking(set, enabled)
    }

    /// Invalidates every access token issued so far (the next API call gets a 401).
    pub fn revoke_tokens(&self) {
        self.state.revoke_tokens();
    }

    /// Requests per route (see [`faults::route_key`]), token requests under `POST token`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state.request_counts()
    }

    pub fn request_count(&self, route: &str) -> u64 {
        self.state.request_counts().get(route).copied().unwrap_or(0)
    }

    /// All API requests counted so far, token requests included.
    pub fn total_requests(&self) -> u64 {
        self.state.request_counts().values().sum()
    }

    pub fn reset_request_counts(&self) {
        self.state.reset_request_counts();
    }

    pub fn token_requests(&self) -> u64 {
        self.request_count("POST token")
    }

    pub fn row(&self, set: &str, id: &str) -> Option<Value> {
        self.state.row(set, id)
    }

    pub fn rows(&self, set: &str) -> Vec<Value> {
        self.state.rows(set)
    }

    /// Inserts a row as a user or import would (columns as given, no API rules).
    pub fn user_insert(&self, set: &str, data: Map<String, Value>) -> Option<String> {
        self.state.user_insert(set, data)
    }

    /// Edits a row as a user in the CRM would: new etag, version and modifiedon.
    pub fn user_update(&self, set: &str, id: &str, changes: Map<String, Value>) -> Option<Value> {
        self.state.user_update(set, id, changes)
    }

    pub fn user_delete(&self, set: &str, id: &str) -> bool {
        self.state.user_delete(set, id)
    }

    /// Logical names of the opportunity's custom (`cosell_`) columns.
    pub fn custom_columns(&self) -> Vec<String> {
        self.state.lock().schema.columns.keys().cloned().collect()
    }

    /// The lead's custom columns' logical names.
    pub fn lead_custom_columns(&self) -> Vec<String> {
        self.state
            .lock()
            .schema
            .lead_columns
            .keys()
            .cloned()
            .collect()
    }

    /// A custom column as its metadata describes it.
    pub fn custom_column(&self, logical: &str) -> Option<Attribute> {
        self.state.lock().schema.columns.get(logical).cloned()
    }

    /// Adds (or replaces) a custom column, as someone in the maker portal would.
    pub fn declare_column(&self, attribute: Attribute) {
        let mut inner = self.state.lock();
        inner
            .schema
            .columns
            .insert(attribute.logical_name.clone(), attribute);
    }

    /// Removes a custom column (writes naming it then fail).
    pub fn remove_column(&self, logical: &str) -> bool {
        self.state.lock().schema.columns.remove(logical).is_some()
    }

    /// Whether the application user may change metadata (the System Customizer role).
    pub fn set_customizer(&self, allowed: bool) {
        self.state.lock().schema.customizer = allowed;
    }

    /// Takes a privilege (e.g. `prvWriteOpportunity`) away from the application user.
    pub fn revoke_privilege(&self, name: &str) -> bool {
        self.state.lock().schema.privileges.remove(name).is_some()
    }

    /// `(schema name, attributes, index status)` of the opportunity's alternate keys.
    pub fn alternate_keys(&self) -> Vec<(String, Vec<String>, String)> {
        self.state
            .lock()
            .schema
            .keys
            .iter()
            .map(|k| {
                (
                    k.schema_name.clone(),
                    k.attributes.clone(),
                    k.status.clone(),
                )
            })
            .collect()
    }

    /// `PublishXml` calls so far.
    pub fn publishes(&self) -> u64 {
        self.state.lock().schema.publishes
    }

    /// The opportunity table's display labels by language code.
    pub fn entity_labels(&self) -> BTreeMap<u64, String> {
        self.state.lock().schema.labels.clone()
    }

    /// Whether change tracking is on for an entity set.
    pub fn change_tracking(&self, set: &str) -> bool {
        self.state
            .lock()
            .tables
            .get(set)
            .is_some_and(|t| t.change_tracking)
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
