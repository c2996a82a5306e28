//! The bare baseline: the HTTP requests one inbound sync involves (the webhook delivery,
//! posted to an endpoint that only answers 200; then read the referral, look up the
//! currency, find and create the account, look for the opportunity, create it), sent
//! straight to the stand-ins with no signature check, queue, store, mapping or retry logic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use cosell::config::Config;
use cosell::engine::wiring;
use cosell::entra::{Grant, TokenProvider};
use cosell::retry::RetryPolicy;
use serde_json::json;

use crate::env::{self, Pc};
use crate::inbound::{futures_join, Delivery};
use crate::stats::SyncRun;

struct Target {
    http: reqwest::Client,
    webhook_url: String,
    pc_api: url::Url,
    dv_api: url::Url,
    pc_token: String,
    dv_token: String,
    referral_id_column: String,
}

async fn token(config: &Config, http: &reqwest::Client, pc: bool) -> anyhow::Result<String> {
    let p = if pc {
        TokenProvider::new(
            http.clone(),
            config.pc_token_url(),
            config.pc_client_id.clone(),
            config.pc_client_secret.clone(),
            cosell::partner_center::REFERRALS_SCOPE.to_string(),
            Grant::ClientCredentials,
            RetryPolicy::default(),
        )
    } else {
        TokenProvider::new(
            http.clone(),
            config.dv_token_url(),
            config.dv_client_id.clone(),
            config.dv_client_secret.clone(),
            cosell::dataverse::DataverseClient::scope_for(&config.dataverse_url),
            Grant::ClientCredentials,
            RetryPolicy::default(),
        )
    };
    Ok(p.token().await?.expose().to_string())
}

/// One sync's requests for `d`; errors on any non-2xx answer.
async fn one_sync(t: &Target, d: &Delivery, n: usize) -> anyhow::Result<()> {
    let referral_id = d.referral_id.as_str();
    ok(t.http
        .post(&t.webhook_url)
        .headers(d.headers.clone())
        .body(d.body.clone())
        .send()
        .await?)?;
    let pc_bearer = format!("Bearer {}", t.pc_token);
    let dv_bearer = format!("Bearer {}", t.dv_token);
    let referral_url = t
        .pc_api
        .join(&format!("v1.0/engagements/referrals/{referral_id}"))?;
    let referral: serde_json::Value = ok(t
        .http
        .get(referral_url)
        .header("Authorization", &pc_bearer)
        .send()
        .await?)?
    .json()
    .await?;
    let customer = referral["customerProfile"]["name"]
        .as_str()
        .unwrap_or("Customer")
        .to_string();
    let dv = |path: &str| t.dv_api.join(path).expect("static path");
    let get = |url: url::Url, query: Vec<(&'static str, String)>| {
        t.http
            .get(url)
            .query(&query)
            .header("Authorization", &dv_bearer)
            .header("Accept", "application/json")
            .send()
    };
    let post = |url: url::Url, body: serde_json::Value| {
        t.http
            .post(url)
            .header("Authorization", &dv_bearer)
            .header("Prefer", "return=representation")
            .json(&body)
            .send()
    };
    ok(get(
        dv("transactioncurrencies"),
        vec![
            ("$select", "transactioncurrencyid,isocurrencycode".into()),
            ("$filter", "isocurrencycode eq 'USD'".into()),
        ],
    )
    .await?)?;
    ok(get(
        dv("accounts"),
        vec![
            ("$filter", format!("name eq '{customer}'")),
            ("$orderby", "createdon asc,accountid asc".into()),
        ],
    )
    .await?)?;
    let account: serde_json::Value = ok(post(dv("accounts"), json!({"name": customer})).await?)?
        .json()
        .await?;
    let account_id = account["accountid"].as_str().unwrap_or_default();
    ok(get(
        dv("opportunities"),
        vec![
            (
                "$filter",
                format!("{} eq '{referral_id}'", t.referral_id_column),
            ),
            ("$orderby", "createdon asc,opportunityid asc".into()),
        ],
    )
    .await?)?;
    ok(post(
        dv("opportunities"),
        json!({
            "name": format!("Bench deal {n}"),
            t.referral_id_column.clone(): referral_id,
            "customerid_account@odata.bind": format!("/accounts({account_id})"),
            "parentaccountid@odata.bind": format!("/accounts({account_id})"),
        }),
    )
    .await?)?;
    Ok(())
}

fn ok(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if !resp.status().is_success() {
        bail!("{} answered {}", resp.url().path(), resp.status());
    }
    Ok(resp)
}

/// Syncs `deliveries[1..]` barely with `clients` at once (`deliveries[0]` warms the
/// connections up).
pub async fn run(
    pc: &Pc,
    deliveries: Arc<Vec<Delivery>>,
    clients: usize,
) -> anyhow::Result<SyncRun> {
    let dv = env::start_dv().await?;
    let listener = tokio::net::TcpListener::bind(env::loopback()).await?;
    let webhook_url = format!("http://{}/webhook", listener.local_addr()?);
    let sink = axum::Router::new().route(
        "/webhook",
        axum::routing::post(|_body: axum::body::Bytes| async { http::StatusCode::OK }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, sink).await;
    });
    let dir = tempfile::tempdir()?;
    let c = env::Connector::open(pc, &dv, dir.path())?;
    let http = wiring::http_client(&c.config)?;
    let target = Arc::new(Target {
        pc_token: token(&c.config, &http, true).await?,
        dv_token: token(&c.config, &http, false).await?,
        http,
        webhook_url,
        pc_api: c.config.pc_api_url.clone(),
        dv_api: c.engine.dv.api_base().clone(),
        referral_id_column: c.config.columns.referral_id.clone(),
    });
    if let Some(first) = deliveries.first() {
        one_sync(&target, first, 0).await?;
    }
    dv.reset_request_counts();
    let pc_before = pc.requests().len();
    let next = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (t, next, deliveries) = (target.clone(), next.clone(), deliveries.clone());
            async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = deliveries.get(i) else { break };
                    let t0 = Instant::now();
                    one_sync(&t, d, i).await?;
                    lat.push(t0.elapsed());
                }
                anyhow::Ok(lat)
            }
        })
        .collect();
    let mut all = Vec::new();
    for r in futures_join(tasks).await {
        all.extend(r?);
    }
    let run = SyncRun::new(
        all,
        started.elapsed(),
        pc.requests().len() - pc_before,
        dv.request_counts(),
    );
    dv.shutdown().await;
    server.abort();
    Ok(run)
}
