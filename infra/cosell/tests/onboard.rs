//! `cosell login partner-center`, `cosell setup dataverse` and `cosell doctor` against the
//! stand-ins, in-process: each happy path, and each failure the issue names (a declined or
//! expired sign-in, a wrong secret, a second setup that changes nothing, a pre-existing
//! column of the wrong type, missing customizer rights, and a doctor that finds a missing
//! column, change tracking off, a webhook elsewhere and a wrong secret).

#[path = "../../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::path::Path;
use std::time::{Duration, Instant};

use cosell::config::{Config, Source};
use cosell::store::aws_local;
use cosell_cli::local::refresh_file::REFRESH_TOKEN_FILE;
use cosell_cli::local::runtime::{Runtime, RuntimeOptions};
use cosell_cli::local::standins::{overlay, Standins};
use cosell_cli::onboard::run_args;
use cosell_cli::ops::{Exit, Outcome, Settings};
use dataverse_standin::Attribute;
use serde_json::{json, Value};

async fn standins(connector_columns: bool) -> Standins {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let pc = partner_center_standin::StandinConfig {
        device_code_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let dv = dataverse_standin::StandinConfig {
        connector_columns,
        ..Default::default()
    };
    Standins::start_with(loopback, loopback, pc, dv)
        .await
        .expect("stand-ins start")
}

fn settings(s: &Standins, dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let more: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
    Settings::Pairs(overlay(s.settings(dir), &more))
}

async fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `args` in a task, and hands the user code shown to `answer` (the person at the
/// browser) once the sign-in waits for it.
async fn login_with(
    s: &Standins,
    settings: Settings,
    args: &[&str],
    answer: impl FnOnce(&Standins, &str),
) -> Outcome {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let task = tokio::spawn(async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_args(&refs, &settings).await
    });
    // A bound, not a verdict: under load moto and the first calls can take a while.
    let code = wait_until(Duration::from_secs(60), || {
        if task.is_finished() {
            return Some(None);
        }
        s.pc.pending_user_codes().pop().map(Some)
    })
    .await
    .expect("the sign-in asks for a user code");
    let Some(code) = code else {
        let out = task.await.expect("login task");
        panic!("login ended before asking for a code: {out:?}");
    };
    answer(s, &code);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("login finishes")
        .expect("login task")
}

fn approve(s: &Standins, code: &str) {
    assert!(s
        .pc
        .approve_device(code, "Ada Lovelace", "ada@contoso.example"));
}

#[tokio::test]
async fn login_stores_a_checked_refresh_token_owner_only() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = settings(&s, &data, &[]);
    let out = login_with(&s, cfg, &["login", "partner-center"], approve).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    assert!(out.stdout.contains("enter the code"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Signed in as Ada Lovelace <ada@contoso.example>"),
        "{}",
        out.stdout
    );
    let file = data.join(REFRESH_TOKEN_FILE);
    let token = std::fs::read_to_string(&file).unwrap();
    // The stored token is the one the check rotated to, and it still works.
    assert!(
        s.pc.refresh_token_valid(token.trim()),
        "stored token is live"
    );
    assert!(
        !out.stdout.contains(token.trim()),
        "the token is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn a_declined_sign_in_stores_nothing() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = login_with(
        &s,
        settings(&s, dir.path(), &[]),
        &["login", "partner-center"],
        |s, code| assert!(s.pc.decline_device(code)),
    )
    .await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stderr.contains("declined"), "{}", out.stderr);
    assert!(out.stderr.contains("fix:"), "{}", out.stderr);
    assert!(!dir.path().join(REFRESH_TOKEN_FILE).exists());
    s.shutdown().await;
}

#[tokio::test]
async fn an_expired_code_is_named_with_its_fix() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let pc = partner_center_standin::StandinConfig {
        device_code_interval: Duration::from_secs(1),
        device_code_lifetime: Duration::from_secs(2),
        ..Default::default()
    };
    let s = Standins::start_with(loopback, loopback, pc, Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = login_with(
        &s,
        settings(&s, dir.path(), &[]),
        &["login", "partner-center"],
        |_, _| {},
    )
    .await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
    assert!(!dir.path().join(REFRESH_TOKEN_FILE).exists());
    s.shutdown().await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_named_without_its_value() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = login_with(
        &s,
        settings(&s, dir.path(), &[("COSELL_PC_CLIENT_SECRET", "hunter2")]),
        &["login", "partner-center"],
        approve,
    )
    .await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stderr.contains("invalid_client"), "{}", out.stderr);
    assert!(out.stderr.contains("client secret"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"));
    s.shutdown().await;
}

#[tokio::test]
async fn slow_down_makes_the_poller_wait_longer_and_still_finish() {
    let s = standins(true).await;
    s.pc.slow_down_device_polls(1);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = login_with(
        &s,
        settings(&s, dir.path(), &[]),
        &["login", "partner-center"],
        approve,
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    // One interval (1 s), slow_down, then the interval plus RFC 8628's 5 s.
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn login_into_a_secret_updates_only_its_refresh_token() {
    let Some(moto) = moto::url() else { return };
    let s = standins(true).await;
    let sm = aws_sdk_secretsmanager::Client::new(&aws_local::sdk_config(&moto, moto::REGION).await);
    let pc = s.pc.config().clone();
    let arn = sm
        .create_secret()
        .name(moto::unique("cosell/pc"))
        .secret_string(
            json!({"client_id": pc.client_id, "client_secret": pc.client_secret, "note": "kept"})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let before = cosell_edge::secrets::read_current(&sm, &arn).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The client secret comes from the secret, not from these settings.
    let cfg = settings(
        &s,
        dir.path(),
        &[("COSELL_PC_CLIENT_SECRET", "not-this-one")],
    );
    let out = login_with(
        &s,
        cfg,
        &[
            "login",
            "partner-center",
            "--secret-arn",
            &arn,
            "--endpoint-url",
            &moto,
        ],
        approve,
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    let after = cosell_edge::secrets::read_current(&sm, &arn).await.unwrap();
    assert_ne!(after.version_id, before.version_id);
    let token = after.value["refresh_token"].as_str().unwrap();
    assert!(s.pc.refresh_token_valid(token));
    assert_eq!(after.value["note"], "kept");
    assert_eq!(after.value["client_secret"], pc.client_secret.as_str());
    assert!(!dir.path().join(REFRESH_TOKEN_FILE).exists());
    s.shutdown().await;
}

// ---- setup ----

fn column_type(s: &Standins, name: &str) -> Option<String> {
    s.dv.custom_column(name).map(|a| a.attribute_type)
}

#[tokio::test]
async fn setup_creates_the_columns_key_and_tracking_then_changes_nothing() {
    let s = standins(false).await;
    s.dv.set_change_tracking("opportunities", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = settings(&s, dir.path(), &[]);
    let args = ["setup", "dataverse", "--key-poll", "50ms"];
    let first = run_args(&args, &cfg).await;
    assert_eq!(first.exit, Exit::Ok, "{first:?}");
    assert_eq!(
        column_type(&s, "cosell_syncwithpartnercenter").as_deref(),
        Some("Boolean")
    );
    assert_eq!(
        column_type(&s, "cosell_referralidentifier").as_deref(),
        Some("String")
    );
    let link = s.dv.custom_column("cosell_referrallink").unwrap();
    assert_eq!(link.format.as_deref(), Some("Url"));
    let help = s.dv.custom_column("cosell_howcanmicrosofthelp").unwrap();
    assert_eq!(help.attribute_type, "Picklist");
    assert_eq!(help.options.len(), 6);
    assert_eq!(column_type(&s, "cosell_audit").as_deref(), Some("Memo"));
    let decision = s.dv.custom_column("cosell_referraldecision").unwrap();
    assert_eq!(
        decision.options.iter().map(|o| o.0).collect::<Vec<_>>(),
        vec![100000000, 100000001]
    );
    let keys = s.dv.alternate_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, vec!["cosell_referralidentifier".to_string()]);
    assert_eq!(keys[0].2, "Active");
    assert!(
        first.stdout.contains("key index: Active"),
        "{}",
        first.stdout
    );
    assert!(s.dv.change_tracking("opportunities"));
    // The whole definition was PUT with merged labels: the French label survived.
    assert!(s.dv.entity_labels().contains_key(&1036));
    let published = s.dv.publishes();
    assert!(published >= 1);

    let second = run_args(&args, &cfg).await;
    assert_eq!(second.exit, Exit::Ok, "{second:?}");
    assert!(
        second.stdout.contains("Nothing to change"),
        "{}",
        second.stdout
    );
    assert_eq!(
        s.dv.publishes(),
        published,
        "a second run publishes nothing"
    );
    assert_eq!(s.dv.alternate_keys().len(), 1);
    assert_eq!(s.dv.custom_columns().len(), 11);
    // Leads land as leads by default: the lead has the connector's five columns.
    assert_eq!(
        s.dv.lead_custom_columns(),
        vec![
            "cosell_audit".to_string(),
            "cosell_referraldecision".into(),
            "cosell_referralidentifier".into(),
            "cosell_referrallink".into(),
            "cosell_syncwithpartnercenter".into(),
        ]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let s = standins(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_args(
        &["setup", "dataverse", "--dry-run"],
        &settings(&s, dir.path(), &[]),
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    assert!(out.stdout.contains("cosell_referrallink"), "{}", out.stdout);
    assert!(out.stdout.contains("create"), "{}", out.stdout);
    assert!(out.stdout.contains("Dry run"), "{}", out.stdout);
    assert!(s.dv.custom_columns().is_empty());
    assert!(s.dv.alternate_keys().is_empty());
    assert_eq!(s.dv.publishes(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn a_column_of_the_wrong_type_is_reported_and_nothing_is_changed() {
    let s = standins(false).await;
    s.dv.declare_column(Attribute::new("cosell_referrallink", "Memo"));
    let dir = tempfile::tempdir().unwrap();
    let out = run_args(&["setup", "dataverse"], &settings(&s, dir.path(), &[])).await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stdout.contains("WRONG TYPE"), "{}", out.stdout);
    assert!(out.stderr.contains("wrong type"), "{}", out.stderr);
    assert_eq!(
        s.dv.custom_columns(),
        vec!["cosell_referrallink".to_string()]
    );
    assert_eq!(
        column_type(&s, "cosell_referrallink").as_deref(),
        Some("Memo")
    );
    assert!(s.dv.alternate_keys().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn setup_without_customizer_rights_says_so_plainly() {
    let s = standins(false).await;
    s.dv.set_customizer(false);
    let dir = tempfile::tempdir().unwrap();
    let out = run_args(&["setup", "dataverse"], &settings(&s, dir.path(), &[])).await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stderr.contains("System Customizer"), "{}", out.stderr);
    assert!(out.stderr.contains("prvCreateAttribute"), "{}", out.stderr);
    assert!(s.dv.custom_columns().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn a_key_over_duplicate_referral_ids_fails_and_is_reported() {
    let s = standins(true).await;
    for name in ["a", "b"] {
        let mut row = serde_json::Map::new();
        row.insert("name".into(), json!(name));
        row.insert("cosell_referralidentifier".into(), json!("same-id"));
        s.dv.user_insert("opportunities", row).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_args(
        &["setup", "dataverse", "--key-poll", "50ms"],
        &settings(&s, dir.path(), &[]),
    )
    .await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(out.stdout.contains("key index: Failed"), "{}", out.stdout);
    assert!(out.stderr.contains("share a value"), "{}", out.stderr);
    s.shutdown().await;
}

async fn dv_bearer(s: &Standins) -> String {
    let token: Value = reqwest::Client::new()
        .post(s.dv.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.dv.config().client_id.as_str()),
            ("client_secret", s.dv.config().client_secret.as_str()),
            ("scope", &format!("{}.default", s.dv_url())),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"].as_str().unwrap().to_string()
}

/// The stand-in's table definition behaves as Dataverse documents: updated only by a PUT of
/// the whole definition, other languages' labels kept only with `MSCRM.MergeLabels: true`,
/// and change tracking never turned off again.
#[tokio::test]
async fn the_table_definition_takes_a_whole_put_and_merges_labels_only_when_asked() {
    let s = standins(true).await;
    let http = reqwest::Client::new();
    let bearer = dv_bearer(&s).await;
    let url = s
        .dv_url()
        .join("api/data/v9.2/EntityDefinitions(LogicalName='opportunity')")
        .unwrap();
    let mut def: Value = http
        .get(url.clone())
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = |body: Value, merge: bool| {
        let req = http.put(url.clone()).bearer_auth(&bearer).json(&body);
        if merge {
            req.header("MSCRM.MergeLabels", "true")
        } else {
            req
        }
    };
    // A partial body (PATCH-style) is refused.
    let partial = put(json!({"ChangeTrackingEnabled": true}), true)
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 400);
    // Only the English label sent: merged, the French one stays; not merged, it is gone.
    def["DisplayName"]["LocalizedLabels"] = json!([{"Label": "Deal", "LanguageCode": 1033}]);
    assert_eq!(put(def.clone(), true).send().await.unwrap().status(), 204);
    let labels = s.dv.entity_labels();
    assert_eq!(labels.get(&1033).map(String::as_str), Some("Deal"));
    assert!(labels.contains_key(&1036), "{labels:?}");
    assert_eq!(put(def.clone(), false).send().await.unwrap().status(), 204);
    assert!(!s.dv.entity_labels().contains_key(&1036));
    // Change tracking is on in this org and cannot be switched off.
    def["ChangeTrackingEnabled"] = json!(false);
    assert_eq!(put(def, true).send().await.unwrap().status(), 400);
    assert!(s.dv.change_tracking("opportunities"));
    s.shutdown().await;
}

#[tokio::test]
async fn writes_naming_a_column_the_org_lacks_fail_as_dataverse_fails() {
    let s = standins(false).await;
    let http = reqwest::Client::new();
    let bearer = dv_bearer(&s).await;
    let url = s.dv_url().join("api/data/v9.2/opportunities").unwrap();
    let resp = http
        .post(url.clone())
        .bearer_auth(&bearer)
        .json(&json!({"name": "x", "cosell_referralidentifier": "r-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("The property 'cosell_referralidentifier' does not exist on type 'Microsoft.Dynamics.CRM.opportunity'"));
    let resp = http
        .get(url)
        .query(&[("$filter", "cosell_referralidentifier eq 'r-1'")])
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    s.shutdown().await;
}

// ---- doctor ----

fn doctor_json(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn status_of<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// The connector running against the stand-ins, its webhook registered.
async fn running(s: &Standins, dir: &Path) -> (Runtime, String) {
    let cfg = overlay(
        s.settings(dir),
        &[
            ("COSELL_LISTEN", "127.0.0.1:0".into()),
            ("COSELL_POLL_INTERVAL", "500ms".into()),
        ],
    );
    let config = Config::load(&Source::from_pairs(cfg)).unwrap();
    let runtime = Runtime::start(
        &config,
        RuntimeOptions {
            register_own_url: true,
            ..RuntimeOptions::default()
        },
    )
    .await
    .unwrap();
    let url = runtime.intake_url().to_string();
    wait_until(Duration::from_secs(5), || s.pc.registration())
        .await
        .expect("the runtime registers its webhook");
    (runtime, url)
}

#[tokio::test]
async fn doctor_passes_on_a_set_up_tenant_and_finds_each_problem() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, url) = running(&s, dir.path()).await;
    let token = s.pc.config().refresh_token.clone();
    let base = [
        ("COSELL_PC_REFRESH_TOKEN", token.as_str()),
        ("COSELL_WEBHOOK_URL", url.as_str()),
    ];
    let args = ["doctor", "--output", "json", "--test-event-wait", "10"];

    let ok = run_args(&args, &settings(&s, dir.path(), &base)).await;
    let report = doctor_json(&ok);
    assert_eq!(ok.exit, Exit::Ok, "{report:#}");
    assert_eq!(report["ok"], true);
    for name in [
        "partner center token",
        "dataverse token",
        "partner center referrals",
        "dataverse access",
        "dataverse columns",
        "change tracking",
        "mapping",
        "webhook registration",
        "webhook test event",
    ] {
        assert_eq!(status_of(&report, name), "ok", "{name}: {report:#}");
    }

    // A missing column.
    s.dv.remove_column("cosell_audit");
    let out = run_args(&args, &settings(&s, dir.path(), &base)).await;
    let report = doctor_json(&out);
    assert_eq!(out.exit, Exit::Failure);
    assert_eq!(status_of(&report, "dataverse columns"), "problem");
    assert!(
        report.to_string().contains("missing: cosell_audit"),
        "{report:#}"
    );
    assert!(report.to_string().contains("cosell setup dataverse"));
    s.dv.declare_column(Attribute::new("cosell_audit", "Memo"));

    // Change tracking off.
    s.dv.set_change_tracking("opportunities", false);
    let out = run_args(&args, &settings(&s, dir.path(), &base)).await;
    assert_eq!(out.exit, Exit::Failure);
    assert_eq!(status_of(&doctor_json(&out), "change tracking"), "problem");
    s.dv.set_change_tracking("opportunities", true);

    // The webhook points elsewhere than the configured URL.
    let elsewhere = "http://127.0.0.1:9/partner-center/webhook";
    let moved = [base[0], ("COSELL_WEBHOOK_URL", elsewhere)];
    let out = run_args(&args, &settings(&s, dir.path(), &moved)).await;
    let report = doctor_json(&out);
    assert_eq!(out.exit, Exit::Failure);
    assert_eq!(status_of(&report, "webhook registration"), "problem");
    assert!(
        report.to_string().contains(&format!("not to {elsewhere}")),
        "{report:#}"
    );

    // A wrong Dataverse secret.
    let wrong = [base[0], base[1], ("COSELL_DV_CLIENT_SECRET", "hunter2")];
    let out = run_args(&args, &settings(&s, dir.path(), &wrong)).await;
    let report = doctor_json(&out);
    assert_eq!(out.exit, Exit::Failure);
    assert_eq!(status_of(&report, "dataverse token"), "problem");
    assert_eq!(status_of(&report, "dataverse columns"), "skipped");
    assert!(
        report.to_string().contains("client secret is wrong"),
        "{report:#}"
    );
    assert!(!out.stdout.contains("hunter2"));

    // A privilege taken away.
    s.dv.revoke_privilege("prvWriteOpportunity");
    let out = run_args(&args, &settings(&s, dir.path(), &base)).await;
    let report = doctor_json(&out);
    assert_eq!(status_of(&report, "dataverse access"), "problem");
    assert!(
        report.to_string().contains("prvWriteOpportunity"),
        "{report:#}"
    );

    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn doctor_without_a_sign_in_or_a_wrong_partner_center_secret_says_what_to_do() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_args(&["doctor"], &settings(&s, dir.path(), &[])).await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(
        out.stdout.contains("cosell login partner-center"),
        "{}",
        out.stdout
    );

    let token = s.pc.config().refresh_token.clone();
    let out = run_args(
        &["doctor", "--output", "json"],
        &settings(
            &s,
            dir.path(),
            &[
                ("COSELL_PC_REFRESH_TOKEN", &token),
                ("COSELL_PC_CLIENT_SECRET", "hunter2"),
            ],
        ),
    )
    .await;
    let report = doctor_json(&out);
    assert_eq!(status_of(&report, "partner center token"), "problem");
    assert_eq!(status_of(&report, "partner center referrals"), "skipped");
    assert!(!out.stdout.contains("hunter2"));
    s.shutdown().await;
}

/// `--stack NAME`: the secrets come from the stack's parameters (moto's CloudFormation);
/// login writes the secret's refresh token, and doctor redeems it and saves the rotated one.
#[tokio::test]
async fn login_and_doctor_find_the_secrets_through_the_stack() {
    let Some(moto) = moto::url() else { return };
    let s = standins(true).await;
    let sdk = aws_local::sdk_config(&moto, moto::REGION).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let create = |name: &str, value: Value| {
        let sm = sm.clone();
        let name = moto::unique(name);
        async move {
            sm.create_secret()
                .name(name)
                .secret_string(value.to_string())
                .send()
                .await
                .unwrap()
                .arn()
                .unwrap()
                .to_string()
        }
    };
    let pc = s.pc.config().clone();
    let dv = s.dv.config().clone();
    let pc_arn = create(
        "cosell/pc",
        json!({"client_id": pc.client_id, "client_secret": pc.client_secret}),
    )
    .await;
    let dv_arn = create(
        "cosell/dv",
        json!({"client_id": dv.client_id, "client_secret": dv.client_secret}),
    )
    .await;
    let template = json!({
        "Parameters": {
            "TenantId": {"Type": "String"},
            "DataverseUrl": {"Type": "String"},
            "PartnerCenterSecretArn": {"Type": "String"},
            "DataverseSecretArn": {"Type": "String"},
        },
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"WebhookUrl": {"Value": "https://example.invalid/partner-center/webhook"}},
    });
    let param = |k: &str, v: &str| {
        aws_sdk_cloudformation::types::Parameter::builder()
            .parameter_key(k)
            .parameter_value(v)
            .build()
    };
    let stack = moto::unique("cosell-sync");
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .parameters(param("TenantId", "contoso-tenant"))
        .parameters(param("DataverseUrl", s.dv_url().as_str()))
        .parameters(param("PartnerCenterSecretArn", &pc_arn))
        .parameters(param("DataverseSecretArn", &dv_arn))
        .send()
        .await
        .expect("create the stack in moto");
    let dir = tempfile::tempdir().unwrap();
    // No client secrets locally: they come from the stack's secrets.
    let cfg = settings(
        &s,
        dir.path(),
        &[
            ("COSELL_PC_CLIENT_SECRET", "local-not-used"),
            ("COSELL_DV_CLIENT_SECRET", "local-not-used"),
        ],
    );
    let aws = ["--stack", stack.as_str(), "--endpoint-url", moto.as_str()];
    let mut args = vec!["login", "partner-center"];
    args.extend(aws);
    let out = login_with(&s, cfg.clone(), &args, approve).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    let signed = cosell_edge::secrets::read_current(&sm, &pc_arn)
        .await
        .unwrap();
    let first = signed.value["refresh_token"].as_str().unwrap().to_string();
    assert!(s.pc.refresh_token_valid(&first));

    // Setup with the stack's Dataverse app (the local secret is wrong on purpose).
    let mut args = vec!["setup", "dataverse", "--dry-run"];
    args.extend(aws);
    let out = run_args(&args, &cfg).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    let ok_columns = out
        .stdout
        .lines()
        .filter(|l| l.trim_end().ends_with(" ok"))
        .count();
    // Eleven on the opportunity, five on the lead (leads land as leads by default).
    assert_eq!(ok_columns, 16, "{}", out.stdout);
    assert!(out.stdout.contains("Dry run"), "{}", out.stdout);

    let mut args = vec!["doctor", "--output", "json"];
    args.extend(aws);
    let out = run_args(&args, &cfg).await;
    let report = doctor_json(&out);
    assert_eq!(
        status_of(&report, "partner center token"),
        "ok",
        "{report:#}"
    );
    assert_eq!(status_of(&report, "dataverse token"), "ok", "{report:#}");
    assert_eq!(status_of(&report, "refresh token age"), "ok", "{report:#}");
    // Nothing is registered for the stack's URL yet.
    assert_eq!(status_of(&report, "webhook registration"), "problem");
    assert_eq!(out.exit, Exit::Failure);
    let after = cosell_edge::secrets::read_current(&sm, &pc_arn)
        .await
        .unwrap();
    let rotated = after.value["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, first, "doctor saved the rotated token back");
    assert!(s.pc.refresh_token_valid(rotated));
    s.shutdown().await;
}

/// The refresh token's age is the stored file's last write (each use rewrites it): a warning
/// past 60 days, a problem past Entra's 90.
#[tokio::test]
async fn doctor_warns_about_an_old_refresh_token() {
    let s = standins(true).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(REFRESH_TOKEN_FILE);
    for (days, want) in [(70u64, "warn"), (95, "problem"), (1, "ok")] {
        // A live token, written `days` ago.
        let live = s.pc.config().refresh_token.clone();
        let current = std::fs::read_to_string(&file).unwrap_or(live);
        std::fs::write(&file, current.trim()).unwrap();
        let then = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(then)
            .unwrap();
        let out = run_args(
            &["doctor", "--output", "json"],
            &settings(&s, dir.path(), &[]),
        )
        .await;
        let report = doctor_json(&out);
        assert_eq!(
            status_of(&report, "refresh token age"),
            want,
            "{days} days: {report:#}"
        );
        assert_eq!(
            status_of(&report, "partner center token"),
            "ok",
            "{report:#}"
        );
    }
    s.shutdown().await;
}
