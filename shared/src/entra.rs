//! Microsoft Entra ID (Azure AD) access tokens: client credentials or refresh-token grant,
//! cached and renewed before they expire, one token request for many calls. A refresh token
//! that Entra rotates is handed to a [`RefreshTokenStore`] so the next cold start uses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::retry::{self, CallError, CallOptions, RetryPolicy};
use crate::secret::Secret;
use crate::telemetry::{record, Service};

/// Renew this long before expiry, so a token never dies mid-call.
const RENEW_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub enum Grant {
    /// App-only: `grant_type=client_credentials`.
    ClientCredentials,
    /// App + user: `grant_type=refresh_token` with a Referrals admin's refresh token.
    RefreshToken(Secret),
}

/// Where a rotated refresh token is kept (Secrets Manager in AWS, the data dir locally).
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    async fn save(&self, token: &Secret) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token request failed: {0}")]
    Call(#[from] CallError),
    /// Entra said no; `error` is its code (e.g. `invalid_client`), never the secret.
    #[error("token request rejected ({status}): {error}: {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    #[error("token response unreadable: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// A cached token source for one resource (`scope` ends in `/.default`). Providers made with
/// [`TokenProvider::for_scope`] share the grant: one refresh token, rotated once for all.
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: String,
    policy: RetryPolicy,
    cached: Mutex<Option<Cached>>,
    /// Locked for the whole token request, so siblings never present the same refresh
    /// token twice (a rotated one is spent).
    grant: Arc<Mutex<Grant>>,
    refresh_store: Option<Arc<dyn RefreshTokenStore>>,
    fetches: std::sync::atomic::AtomicU64,
    /// The service whose audience the tokens are for (metrics only).
    service: Service,
}

impl TokenProvider {
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: Secret,
        scope: impl Into<String>,
        grant: Grant,
        policy: RetryPolicy,
    ) -> Self {
        TokenProvider {
            http,
            token_url,
            client_id: client_id.into(),
            client_secret,
            scope: scope.into(),
            policy,
            cached: Mutex::new(None),
            grant: Arc::new(Mutex::new(grant)),
            refresh_store: None,
            fetches: Default::default(),
            service: Service::Other,
        }
    }

    /// A provider for another resource (audience) with the same app and the same grant:
    /// its own token cache, the refresh token shared with this one.
    pub fn for_scope(&self, scope: impl Into<String>) -> TokenProvider {
        TokenProvider {
            http: self.http.clone(),
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scope: scope.into(),
            policy: self.policy.clone(),
            cached: Mutex::new(None),
            grant: self.grant.clone(),
            refresh_store: self.refresh_store.clone(),
            fetches: Default::default(),
            service: self.service,
        }
    }

    /// The scope this provider asks tokens for.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Names the app and token endpoint (no secret): part of a throttle-gate key.
    pub fn credential_key(&self) -> String {
        format!("{}|{}", self.token_url, self.client_id)
    }

    /// Counts this provider's renewals under `service` (the audience's service).
    pub fn for_service(mut self, service: Service) -> Self {
        self.service = service;
        self
    }

    pub fn with_refresh_store(mut self, store: Arc<dyn RefreshTokenStore>) -> Self {
        self.refresh_store = Some(store);
        self
    }

    /// How many token requests this provider has made (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid bearer token, from the cache when it has one.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let mut grant = self.grant.lock().await;
        let fetched = self.fetch(&grant).await;
        record::token_renewal(self.service, fetched.is_ok());
        let (token, lifetime, rotated) = fetched?;
        if let (Some(new_rt), Grant::RefreshToken(old)) = (rotated, &*grant) {
            if new_rt.expose() != old.expose() {
                if let Some(store) = &self.refresh_store {
                    if let Err(e) = store.save(&new_rt).await {
                        tracing::error!(error = %e, "could not store the rotated refresh token");
                    }
                }
                *grant = Grant::RefreshToken(new_rt);
            }
        }
        drop(grant);
        let renew_in = lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2));
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + renew_in,
        });
        Ok(token)
    }

    /// Drops the cached token (after a 401), so the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, grant: &Grant) -> Result<(Secret, Duration, Option<Secret>), TokenError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
            ("scope", &self.scope),
        ];
        match grant {
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
            Grant::RefreshToken(rt) => {
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", rt.expose()));
            }
        }
        let options = CallOptions::idempotent().service(Service::Entra);
        let resp = retry::send_with(&self.policy, "entra token", options, || {
            self.http.post(self.token_url.clone()).form(&form)
        })
        .await?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| TokenError::Malformed(e.without_url().to_string()))?;
        if !status.is_success() {
            let err: TokenErrorBody = serde_json::from_str(&body).unwrap_or_default();
            return Err(TokenError::Rejected {
                status: status.as_u16(),
                error: err.error,
                description: retry::truncate(&err.error_description, 300),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let secs = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3599),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599),
            _ => 3599,
        };
        Ok((
            Secret::new(parsed.access_token),
            Duration::from_secs(secs),
            parsed.refresh_token.map(Secret::new),
        ))
    }
}
