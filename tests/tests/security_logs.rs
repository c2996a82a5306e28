//! Secrets never reach the logs. Everything `tracing` emits at TRACE level (the connector,
//! its HTTP stack and the stand-ins) is captured while token fetches (client credentials
//! and a rotating refresh token), Partner Center and Dataverse calls succeed and fail
//! (revoked token -> 401, 429, 5xx, a bad client secret) and the intake rejects a delivery;
//! then no client secret, refresh token or access token value may appear in the text,
//! while the expected lines do (so the capture is real).

// The same moto launcher as the store and queue contract suites.
#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cosell::dataverse::DataverseClient;
use cosell::entra::{Grant, RefreshTokenStore, TokenProvider};
use cosell::partner_center::{ListQuery, PartnerCenterClient};
use cosell::retry::RetryPolicy;
use cosell::secret::Secret;
use cosell::store::aws_local;
use cosell_tests::harness::Harness;
use cosell_tests::intake_fixture::IntakeFixture;
use cosell_tests::log_capture::LogCapture;
use dataverse_standin::{Fault as DvFault, FaultKind as DvKind};
use partner_center_standin::{Fault, FaultKind};
use tracing_subscriber::layer::SubscriberExt;

/// Remembers every refresh token the provider rotates to.
#[derive(Default)]
struct Rotations(Mutex<Vec<String>>);

#[async_trait]
impl RefreshTokenStore for Rotations {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        self.0.lock().unwrap().push(token.expose().to_string());
        Ok(())
    }
}

/// Records the token the provider holds now (fetching one if it has none).
async fn remember(tokens: &TokenProvider, seen: &mut Vec<String>) {
    if let Ok(t) = tokens.token().await {
        seen.push(t.expose().to_string());
    }
}

#[tokio::test]
async fn no_secret_or_token_reaches_the_logs() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let f = IntakeFixture::start().await;
    let h: &Harness = &f.h;
    let policy = RetryPolicy::fast();
    let mut seen_tokens: Vec<String> = Vec::new();

    // Partner Center as a Referrals admin: refresh-token grant, rotated on every use.
    let rotations = Arc::new(Rotations::default());
    let initial_refresh = h.pc.config().refresh_token.clone();
    let pc_tokens = Arc::new(
        TokenProvider::new(
            h.http.clone(),
            h.config.pc_token_url(),
            h.config.pc_client_id.clone(),
            h.config.pc_client_secret.clone(),
            cosell::partner_center::REFERRALS_SCOPE,
            Grant::RefreshToken(Secret::new(initial_refresh.clone())),
            policy.clone(),
        )
        .with_refresh_store(rotations.clone()),
    );
    let pc = PartnerCenterClient::new(
        h.http.clone(),
        pc_tokens.clone(),
        h.config.pc_api_url.clone(),
        h.config.pc_webhook_api_url.clone(),
        policy.clone(),
    );
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let id = created["id"].as_str().unwrap().to_string();
    pc.list_first_page(&ListQuery::default())
        .await
        .expect("list");
    remember(&pc_tokens, &mut seen_tokens).await;
    // Revoked: the call gets a 401, the client renews the token once and succeeds.
    h.pc.revoke_tokens();
    pc.get_referral(&id).await.expect("get after revoke");
    remember(&pc_tokens, &mut seen_tokens).await;
    // Throttled, then answered.
    h.pc.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 1,
            },
            1,
        )
        .on("GET", "/v1.0/engagements/referrals"),
    );
    pc.get_referral(&id).await.expect("get after 429");
    // Server errors until the retries run out: an error the edge would log.
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 500 }, 20).on("GET", "/v1.0/engagements/referrals"),
    );
    let err = pc.get_referral(&id).await.expect_err("5xx persists");
    tracing::error!(error = %err, debug = ?err, "partner center call failed");
    h.pc.clear_faults();
    // Revoke again and keep the 401 coming: the renewed token is refused too.
    h.pc.revoke_tokens();
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 401 }, 5).on("GET", "/v1.0/engagements/referrals"),
    );
    let err = pc.get_referral(&id).await.expect_err("401 persists");
    tracing::error!(error = %err, debug = ?err, "partner center call failed");
    h.pc.clear_faults();
    remember(&pc_tokens, &mut seen_tokens).await;

    // Dataverse with client credentials (the engine's client).
    let dv = &h.engine.dv;
    dv.who_am_i().await.expect("WhoAmI");
    h.dv.revoke_tokens();
    dv.who_am_i().await.expect("WhoAmI after revoke");
    h.dv.add_fault(DvFault::new(
        DvKind::Throttle {
            retry_after_secs: 1,
            limit: Default::default(),
        },
        1,
    ));
    dv.who_am_i().await.expect("WhoAmI after 429");
    h.dv.add_fault(DvFault::new(DvKind::Unavailable, 20));
    let err = dv.who_am_i().await.expect_err("503 persists");
    tracing::error!(error = %err, debug = ?err, "dataverse call failed");
    h.dv.clear_faults();
    // Its tokens, fetched through a provider of our own with the same credentials.
    let dv_tokens = TokenProvider::new(
        h.http.clone(),
        h.config.dv_token_url(),
        h.config.dv_client_id.clone(),
        h.config.dv_client_secret.clone(),
        DataverseClient::scope_for(&h.config.dataverse_url),
        Grant::ClientCredentials,
        policy.clone(),
    );
    remember(&dv_tokens, &mut seen_tokens).await;

    // A wrong client secret: the token endpoint refuses it.
    let bad_secret = "wrong-secret-3f9d2c71";
    let bad = Arc::new(TokenProvider::new(
        h.http.clone(),
        h.config.dv_token_url(),
        h.config.dv_client_id.clone(),
        Secret::new(bad_secret),
        DataverseClient::scope_for(&h.config.dataverse_url),
        Grant::ClientCredentials,
        policy.clone(),
    ));
    let bad_dv = DataverseClient::new(
        h.http.clone(),
        bad,
        h.config.dataverse_url.clone(),
        h.config.columns.clone(),
        policy,
    );
    let err = bad_dv.who_am_i().await.expect_err("bad secret");
    tracing::error!(error = %err, debug = ?err, "dataverse call failed");

    // An intake rejection (a forged signature).
    let (mut headers, body) = f.signer.referral_updated(&id);
    headers.insert(
        "authorization",
        http::HeaderValue::from_static("Signature AAAA"),
    );
    assert_eq!(f.post(&headers, &body).await.status, 401);
    // And the config itself, as an operator might log it.
    tracing::info!(config = ?h.config, "loaded configuration");

    let text = capture.text();
    let rotated = rotations.0.lock().unwrap().clone();
    assert!(!rotated.is_empty(), "the refresh token never rotated");
    assert!(seen_tokens.len() >= 3, "{seen_tokens:?}");
    let pc_secret = h.config.pc_client_secret.expose().to_string();
    let dv_secret = h.config.dv_client_secret.expose().to_string();
    let mut secrets = vec![
        pc_secret,
        dv_secret,
        bad_secret.to_string(),
        initial_refresh,
    ];
    secrets.extend(rotated);
    secrets.extend(seen_tokens);
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(
            !text.contains(s.as_str()),
            "a secret or token appears in the logs: {}…",
            &s[..6.min(s.len())]
        );
    }
    // Token shapes the stand-ins issue, whoever holds them.
    for prefix in [
        "standin-access-",
        "standin-refresh-",
        "dvs.",
        "Bearer ",
        "bearer ",
        "access_token\":\"",
        "client_secret=",
    ] {
        assert!(!text.contains(prefix), "found {prefix:?} in the logs");
    }

    // The capture is real: the lines these failures produce are there.
    for expected in [
        "401, renewing the token once",
        "will retry",
        "webhook delivery rejected",
        "partner center call failed",
        "dataverse call failed",
        "loaded configuration",
    ] {
        assert!(
            text.contains(expected),
            "expected {expected:?} in the captured logs"
        );
    }
    println!(
        "captured {} log lines, {} secret values checked",
        text.lines().count(),
        secrets.len()
    );
}

/// Creates a secret and writes a new value into it, as the refresh-token write-back does.
async fn put_secret_values(moto: &str, first: &str, second: &str) {
    let sm = aws_sdk_secretsmanager::Client::new(&aws_local::sdk_config(moto, moto::REGION).await);
    let arn = sm
        .create_secret()
        .name(moto::unique("cosell/pc"))
        .secret_string(first)
        .send()
        .await
        .expect("create secret")
        .arn()
        .unwrap()
        .to_string();
    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string(second)
        .send()
        .await
        .expect("put secret value");
    // Read back as a function's start-up does: the response carries the whole secret.
    sm.get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("get secret value");
    tracing::info!("secret values written and read");
}

/// The AWS SDK logs HTTP bodies at trace; those of secret operations only with its own
/// switch `LOG_SENSITIVE_BODIES=true`, which this test sets (an operator debugging a
/// deployment might). Secret writes and reads then carry the client secret and the refresh
/// token. With the functions' own log layer at `trace`, the most an operator can set, none of
/// it appears; with every target at trace it does.
#[tokio::test]
async fn aws_sdk_bodies_never_reach_the_logs_even_at_trace() {
    let Some(moto) = moto::url() else { return };
    // Read by the SDK when it logs; no other test in this file calls the SDK.
    std::env::set_var("LOG_SENSITIVE_BODIES", "true");
    let secret = |n: u32| {
        serde_json::json!({
            "client_id": "pc-app",
            "client_secret": format!("client-secret-9d3f{n}"),
            "refresh_token": format!("refresh-token-7c1e{n}"),
        })
        .to_string()
    };
    let values = [
        "client-secret-9d3f1",
        "refresh-token-7c1e1",
        "client-secret-9d3f2",
        "refresh-token-7c1e2",
    ];

    let production = LogCapture::default();
    {
        let subscriber = tracing_subscriber::registry().with(cosell_edge::logging::json_layer(
            production.clone(),
            "trace",
        ));
        let _guard = tracing::subscriber::set_default(subscriber);
        put_secret_values(&moto, &secret(1), &secret(2)).await;
    }
    let text = production.text();
    assert!(
        text.contains("secret values written"),
        "the capture is real"
    );
    for v in values {
        assert!(
            !text.contains(v),
            "{v} reached the functions' logs at trace"
        );
    }

    // The same calls with every target at trace: the SDK does write the secret, so the
    // filter above is what keeps it out.
    let unfiltered = LogCapture::default();
    {
        let _guard = unfiltered.install();
        put_secret_values(&moto, &secret(1), &secret(2)).await;
    }
    let text = unfiltered.text();
    assert!(
        values.iter().any(|v| text.contains(v)),
        "the SDK logged no secret unfiltered: this test proves nothing"
    );
}
