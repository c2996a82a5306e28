//! `backfill` and `webhook` against the Partner Center stand-in, in-process, with the
//! connector's own intake answering the stand-in's deliveries.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cosell::config::{Config, Source};
use cosell::crosswalk::Link;
use cosell::engine::intake::handle_webhook;
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::wiring;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::Queue;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;
use cosell_cli::local::runtime::open_sync_queue;
use cosell_cli::ops::{run_args, Exit, Settings};
use partner_center_standin::{Fault, FaultKind, StandinHandle};
use serde_json::Value;

const TENANT: &str = "contoso-tenant";
const REFERRALS: &str = "/v1.0/engagements/referrals";

/// Settings that point the connector at the stand-in (as tests/src/harness.rs does); the
/// Dataverse URL is never called by these commands.
fn settings(pc: &StandinHandle, data_dir: &Path) -> Vec<(String, String)> {
    let cfg = pc.config();
    let host = pc.base_url().host_str().unwrap_or("127.0.0.1").to_string();
    let roots = data_dir.join("standin-root.pem");
    pc.write_root_pem(&roots).unwrap();
    [
        ("COSELL_TENANT_ID", TENANT.to_string()),
        ("COSELL_PC_TOKEN_URL", pc.token_url(TENANT).to_string()),
        ("COSELL_PC_CLIENT_ID", cfg.client_id.clone()),
        ("COSELL_PC_CLIENT_SECRET", cfg.client_secret.clone()),
        ("COSELL_PC_API_URL", pc.base_url().to_string()),
        ("COSELL_PC_WEBHOOK_API_URL", pc.base_url().to_string()),
        ("COSELL_WEBHOOK_CERT_HOSTS", host),
        (
            "COSELL_WEBHOOK_CERT_ORGS",
            partner_center_standin::CERT_ORGANIZATION.to_string(),
        ),
        ("COSELL_WEBHOOK_CERT_ROOTS", roots.display().to_string()),
        (
            "COSELL_DATAVERSE_URL",
            "https://dataverse.invalid".to_string(),
        ),
        ("COSELL_DV_CLIENT_ID", "unused".to_string()),
        ("COSELL_DV_CLIENT_SECRET", "unused".to_string()),
        ("COSELL_DATA_DIR", data_dir.display().to_string()),
        ("COSELL_HTTP_TIMEOUT", "5s".to_string()),
        // Fail fast on an injected error so a test can interrupt a backfill.
        ("COSELL_MAX_RETRIES", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

struct Env {
    pc: StandinHandle,
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    queue: Arc<SqliteQueue>,
    settings: Settings,
    pairs: Vec<(String, String)>,
}

async fn env() -> Env {
    let (pc, _) = StandinHandle::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cosell.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    // The sync queue the local runner and the operator commands open.
    let queue = Arc::new(open_sync_queue(&db, 8).unwrap());
    let pairs = settings(&pc, dir.path());
    Env {
        pc,
        dir,
        store,
        queue,
        settings: Settings::Pairs(pairs.clone()),
        pairs,
    }
}

/// Receives everything on the queue and returns the messages. Each is an operator's
/// (both sides are read) and grouped by its pair key.
async fn drain_messages(queue: &SqliteQueue) -> Vec<SyncMessage> {
    let mut messages = Vec::new();
    loop {
        let got = queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if got.is_empty() {
            return messages;
        }
        for m in got {
            let msg = SyncMessage::parse(&m.body).unwrap();
            assert_eq!(msg.origin, Origin::Operator, "{}", m.body);
            assert_eq!(m.group.as_deref(), Some(msg.key.as_str()), "{}", m.body);
            messages.push(msg);
            queue.ack(&m.receipt).await.unwrap();
        }
    }
}

/// The referral ids of everything on the queue.
async fn drain(queue: &SqliteQueue) -> Vec<String> {
    drain_messages(queue)
        .await
        .into_iter()
        .map(|m| {
            m.referral_id
                .expect("a backfill message names its referral")
        })
        .collect()
}

fn list_requests(pc: &StandinHandle) -> usize {
    pc.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == REFERRALS)
        .count()
}

fn standin_ids(pc: &StandinHandle) -> BTreeSet<String> {
    pc.referrals()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn backfill_queues_every_referral_page_by_page() {
    let e = env().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let r =
            e.pc.create_incoming_referral(&format!("Deal {i}"), "Contoso");
        created.push(r["id"].as_str().unwrap().to_string());
    }
    // One referral is already linked: its message goes to its opportunity's key.
    e.store
        .put_link(&Link::new(created[0].as_str(), "opp-linked"), None)
        .await
        .unwrap();
    let out = run_args(&["backfill", "--page-size", "3", "-o", "json"], &e.settings).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["enqueued"], 7);
    assert_eq!(v["pages"], 3);
    assert_eq!(v["resumed"], false);
    let messages = drain_messages(&e.queue).await;
    assert_eq!(messages.len(), 7);
    for m in &messages {
        let referral = m.referral_id.as_deref().unwrap();
        let key = if referral == created[0] {
            "opp-linked".to_string()
        } else {
            opportunity_id_for(referral)
        };
        assert_eq!(m.key, key, "{m:?}");
    }
    assert_eq!(
        messages
            .iter()
            .filter_map(|m| m.referral_id.clone())
            .collect::<BTreeSet<_>>(),
        standin_ids(&e.pc)
    );

    // Finished: the checkpoint has no next page, so a rerun starts from the beginning.
    let ck = cosell_cli::ops::backfill::checkpoint(e.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ck.next_link, None);
    assert_eq!(ck.enqueued, 7);

    // Nothing updated since tomorrow.
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .date()
        .to_string();
    let out = run_args(&["backfill", "--since", &tomorrow], &e.settings).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("queued 0 referral(s)"),
        "{}",
        out.stdout
    );
    assert!(drain(&e.queue).await.is_empty());
}

/// Run again (after a fix, say) within the sync queue's five-minute de-duplication window,
/// a backfill must queue every referral again, as it reports, and not be swallowed as a
/// duplicate of the first run's messages.
#[tokio::test]
async fn a_backfill_run_again_queues_every_referral_again() {
    let e = env().await;
    for i in 0..7 {
        e.pc.create_incoming_referral(&format!("Deal {i}"), "Contoso");
    }
    let out = run_args(&["backfill", "--page-size", "3"], &e.settings).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    assert_eq!(drain(&e.queue).await.len(), 7);

    let out = run_args(&["backfill", "--since", "30d"], &e.settings).await;
    assert!(
        out.stdout.contains("queued 7 referral(s)"),
        "{}",
        out.stdout
    );
    assert_eq!(drain(&e.queue).await.len(), 7, "the rerun's messages");

    // --restart reads everything again even with a checkpoint pending.
    e.pc.add_fault(Fault::new(FaultKind::Delay { millis: 0 }, 1).on("GET", REFERRALS));
    e.pc.add_fault(Fault::new(FaultKind::Status { status: 503 }, 1).on("GET", REFERRALS));
    assert_eq!(
        run_args(&["backfill", "--page-size", "3"], &e.settings)
            .await
            .exit,
        Exit::Failure
    );
    let restarted = run_args(&["backfill", "--page-size", "3", "--restart"], &e.settings).await;
    assert_eq!(restarted.exit, Exit::Ok, "{}", restarted.stderr);
    assert!(
        restarted
            .stdout
            .contains("queued 7 referral(s) from 3 page(s) for"),
        "{}",
        restarted.stdout
    );
    assert_eq!(drain(&e.queue).await.len(), 3 + 7);
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_from_its_checkpoint() {
    let e = env().await;
    for i in 0..7 {
        e.pc.create_incoming_referral(&format!("Deal {i}"), "Fabrikam");
    }
    // The first page answers normally; the second fails (no retries configured).
    e.pc.add_fault(Fault::new(FaultKind::Delay { millis: 0 }, 1).on("GET", REFERRALS));
    e.pc.add_fault(Fault::new(FaultKind::Status { status: 503 }, 1).on("GET", REFERRALS));

    let first = run_args(&["backfill", "--page-size", "3"], &e.settings).await;
    assert_eq!(first.exit, Exit::Failure, "{}", first.stdout);
    assert!(
        first
            .stderr
            .contains("stopped after 3 referral(s) from 1 page(s)"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("run the same command again"),
        "{}",
        first.stderr
    );
    let ck = cosell_cli::ops::backfill::checkpoint(e.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(ck.next_link.is_some());
    assert_eq!(ck.enqueued, 3);
    assert_eq!(list_requests(&e.pc), 2);

    // A different --since would not match the saved pages.
    let other = run_args(
        &["backfill", "--page-size", "3", "--since", "2020-01-01"],
        &e.settings,
    )
    .await;
    assert_eq!(other.exit, Exit::Usage, "{}", other.stderr);
    assert!(other.stderr.contains("--restart"), "{}", other.stderr);

    let second = run_args(&["backfill", "--page-size", "3"], &e.settings).await;
    assert_eq!(second.exit, Exit::Ok, "{}", second.stderr);
    assert!(
        second
            .stdout
            .contains("queued 4 referral(s) from 2 page(s) (resumed from the checkpoint)"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("7 queued in all runs"),
        "{}",
        second.stdout
    );
    // The first page was not read again.
    assert_eq!(list_requests(&e.pc), 4);
    let ids = drain(&e.queue).await;
    assert_eq!(ids.len(), 7, "each referral queued exactly once: {ids:?}");
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        standin_ids(&e.pc)
    );
}

#[tokio::test]
async fn backfill_without_partner_center_settings_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path().join("cosell.db")).unwrap();
    let settings = Settings::Pairs(vec![(
        "COSELL_DATA_DIR".into(),
        dir.path().display().to_string(),
    )]);
    let out = run_args(&["backfill"], &settings).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stderr.contains("missing setting COSELL_TENANT_ID"),
        "{}",
        out.stderr
    );
}

/// Serves the connector's webhook intake on a free port; returns its URL.
async fn start_intake(e: &Env) -> String {
    let config = Config::load(&Source::from_pairs(e.pairs.clone())).unwrap();
    let verifier = Arc::new(wiring::webhook_verifier(&config).expect("webhook verifier"));
    let store = e.store.clone();
    let queue = e.queue.clone();
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move |headers: http::HeaderMap, body: bytes::Bytes| {
            let (verifier, store, queue) = (verifier.clone(), store.clone(), queue.clone());
            async move {
                let r = handle_webhook(
                    &verifier,
                    store.as_ref(),
                    queue.as_ref() as &dyn Queue,
                    &headers,
                    &body,
                )
                .await;
                (
                    http::StatusCode::from_u16(r.status).unwrap(),
                    axum::Json(r.body),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/webhook")
}

#[tokio::test]
async fn webhook_register_show_and_test_end_to_end() {
    let e = env().await;
    let show = run_args(&["webhook", "show"], &e.settings).await;
    assert_eq!(show.exit, Exit::Failure);
    assert!(
        show.stderr.contains("no webhook registration"),
        "{}",
        show.stderr
    );

    let url = start_intake(&e).await;
    let reg = run_args(&["webhook", "register", "--url", &url], &e.settings).await;
    assert_eq!(reg.exit, Exit::Ok, "{}", reg.stderr);
    assert!(reg.stdout.contains("webhook registered"), "{}", reg.stdout);
    assert_eq!(e.pc.registration().unwrap()["WebhookUrl"], url.as_str());
    let again = run_args(&["webhook", "register", "--url", &url], &e.settings).await;
    assert!(again.stdout.contains("already current"), "{}", again.stdout);

    let test = run_args(&["webhook", "test", "--wait", "10"], &e.settings).await;
    assert_eq!(test.exit, Exit::Ok, "{}\n{}", test.stdout, test.stderr);
    assert!(
        test.stdout.contains("delivered and verified"),
        "{}",
        test.stdout
    );

    let show = run_args(&["webhook", "show", "-o", "json"], &e.settings).await;
    assert_eq!(show.exit, Exit::Ok, "{}", show.stderr);
    let v: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["registration"]["WebhookUrl"], url.as_str());
    assert_eq!(v["recorded"]["url"], url.as_str());
    assert_eq!(v["last_test_event"]["event"]["EventName"], "test-created");
    let _ = &e.dir;
}

#[tokio::test]
async fn webhook_test_reports_an_unreachable_intake() {
    let e = env().await;
    // A port with nothing listening: every delivery attempt fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/webhook");
    assert_eq!(
        run_args(&["webhook", "register", "--url", &url], &e.settings)
            .await
            .exit,
        Exit::Ok
    );
    let test = run_args(&["webhook", "test", "--wait", "10"], &e.settings).await;
    assert_eq!(test.exit, Exit::Failure, "{}", test.stdout);
    assert!(test.stdout.contains("not delivered"), "{}", test.stdout);
    assert!(test.stderr.contains("webhook test"), "{}", test.stderr);

    let bad = run_args(
        &["webhook", "register", "--url", "ftp://example.com/x"],
        &e.settings,
    )
    .await;
    assert_eq!(bad.exit, Exit::Usage);
    let none = run_args(&["webhook", "register"], &e.settings).await;
    assert_eq!(none.exit, Exit::Usage);
}

#[tokio::test]
async fn webhook_test_says_when_the_registration_lacks_test_created_and_unregister_clears_it() {
    let e = env().await;
    let url = start_intake(&e).await;
    let reg = run_args(&["webhook", "register", "--url", &url], &e.settings).await;
    assert_eq!(reg.exit, Exit::Ok, "{}", reg.stderr);
    let events = e.pc.registration().unwrap()["WebhookEvents"].clone();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "test-created"),
        "{events}"
    );

    // A registration made elsewhere, without the test event.
    let config = Config::load(&Source::from_pairs(e.pairs.clone())).unwrap();
    let http = wiring::http_client(&config).unwrap();
    let pc = wiring::partner_center_client(&config, &http, None);
    pc.update_registration(&url, &["referral-created", "referral-updated"])
        .await
        .unwrap();
    let test = run_args(&["webhook", "test", "--wait", "5"], &e.settings).await;
    assert_eq!(test.exit, Exit::Failure, "{}", test.stdout);
    assert!(
        test.stderr.contains("does not include test-created")
            && test.stderr.contains("cosell webhook register"),
        "{}",
        test.stderr
    );
    assert!(
        e.pc.deliveries().is_empty(),
        "nothing was asked of Partner Center"
    );

    let gone = run_args(&["webhook", "unregister"], &e.settings).await;
    assert_eq!(gone.exit, Exit::Ok, "{}", gone.stderr);
    assert!(gone.stdout.contains("no events"), "{}", gone.stdout);
    assert_eq!(
        e.pc.registration().unwrap()["WebhookEvents"],
        serde_json::json!([])
    );
}
