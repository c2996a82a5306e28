//! A stand-in plus a client wired to it, as the connector would build them.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cosell::config::ColumnNames;
use cosell::dataverse::DataverseClient;
use cosell::entra::{Grant, TokenProvider};
use cosell::retry::RetryPolicy;
use cosell::Secret;
use dataverse_standin::StandinHandle;
use serde_json::{Map, Value};

pub struct Env {
    pub standin: StandinHandle,
    pub client: DataverseClient,
    pub tokens: Arc<TokenProvider>,
    pub http: reqwest::Client,
}

pub fn columns() -> ColumnNames {
    ColumnNames {
        sync_flag: "cosell_syncwithpartnercenter".into(),
        referral_id: "cosell_referralidentifier".into(),
        referral_link: "cosell_referrallink".into(),
        help_needed: "cosell_howcanmicrosofthelp".into(),
        solutions: "cosell_solutions".into(),
        audit: "cosell_audit".into(),
        decision: "cosell_referraldecision".into(),
        visibility: "cosell_referralvisibility".into(),
    }
}

pub async fn start() -> Env {
    start_with(RetryPolicy::fast(), 50).await
}

pub async fn start_with(policy: RetryPolicy, page_size: u32) -> Env {
    let (standin, org) = StandinHandle::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let cfg = standin.config().clone();
    let tokens = Arc::new(TokenProvider::new(
        http.clone(),
        standin.token_url(),
        cfg.client_id,
        Secret::new(cfg.client_secret),
        DataverseClient::scope_for(&org),
        Grant::ClientCredentials,
        policy.clone(),
    ));
    let client = DataverseClient::new(http.clone(), tokens.clone(), org, columns(), policy)
        .with_page_size(page_size);
    Env {
        standin,
        client,
        tokens,
        http,
    }
}

pub fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A policy whose attempts give up quickly, for slow-response tests.
pub fn short_timeout(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        attempt_timeout: Duration::from_millis(300),
        ..RetryPolicy::fast()
    }
}
