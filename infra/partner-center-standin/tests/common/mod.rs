//! Shared setup: a stand-in on a free loopback port and a client wired to it.

#![allow(dead_code)] // Each test binary uses a different part of this.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cosell::entra::{Grant, RefreshTokenStore, TokenProvider};
use cosell::partner_center::{PartnerCenterClient, Referral};
use cosell::retry::RetryPolicy;
use cosell::Secret;
use partner_center_standin::StandinHandle;
use serde_json::json;

pub const SCOPE: &str = "https://api.partner.microsoft.com/.default";

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub struct Env {
    pub standin: StandinHandle,
    pub tokens: Arc<TokenProvider>,
    pub client: PartnerCenterClient,
}

pub fn provider(standin: &StandinHandle, grant: Grant, secret: &str) -> TokenProvider {
    TokenProvider::new(
        reqwest::Client::new(),
        standin.token_url("contoso-tenant"),
        standin.config().client_id.clone(),
        Secret::new(secret),
        SCOPE,
        grant,
        RetryPolicy::fast(),
    )
}

pub fn client(
    standin: &StandinHandle,
    tokens: Arc<TokenProvider>,
    policy: RetryPolicy,
) -> PartnerCenterClient {
    PartnerCenterClient::new(
        reqwest::Client::new(),
        tokens,
        standin.base_url(),
        standin.base_url(),
        policy,
    )
}

pub async fn env_with(policy: RetryPolicy) -> Env {
    let (standin, _) = StandinHandle::start(loopback()).await.unwrap();
    let secret = standin.config().client_secret.clone();
    let tokens = Arc::new(provider(&standin, Grant::ClientCredentials, &secret));
    let client = client(&standin, tokens.clone(), policy);
    Env {
        standin,
        tokens,
        client,
    }
}

pub async fn env() -> Env {
    env_with(RetryPolicy::fast()).await
}

/// An outgoing co-sell referral, with a field this version does not model.
pub fn outgoing(name: &str) -> Referral {
    serde_json::from_value(json!({
        "name": name,
        "type": "Shared",
        "qualification": "SalesQualified",
        "customerProfile": {"name": "Fabrikam", "address": {"country": "US"}, "team": []},
        "consent": {"consentToToShareInfoWithOthers": true, "consentToContact": true},
        "details": {"notes": "needs help", "dealValue": 50000, "currency": "USD"},
        "callToAction": "Contact customer"
    }))
    .unwrap()
}

/// Remembers every refresh token it is given.
#[derive(Default)]
pub struct MemoryRefreshStore(pub Mutex<Vec<String>>);

#[async_trait]
impl RefreshTokenStore for MemoryRefreshStore {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        self.0.lock().unwrap().push(token.expose().to_string());
        Ok(())
    }
}
