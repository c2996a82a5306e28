//! The one-process runner, in-process: the demo converges, the webhook endpoint answers bad
//! deliveries with a JSON 4xx, shutdown finishes in-flight work, a restart loses nothing, and
//! the rotated refresh token lands in a 0600 file that the next start prefers.

use std::time::{Duration, Instant};

use cosell::config::{Config, Source};
use cosell::engine::{disposition, Origin, SyncMessage};
use cosell::queue::{OutMessage, Queue};
use cosell::store::Store;
use cosell_cli::local::demo::{self, DemoOptions};
use cosell_cli::local::runtime::{open_sync_queue, Runtime, RuntimeOptions, DATABASE_FILE};
use cosell_cli::local::standins::{overlay, Standins};
use serde_json::Value;

async fn standins() -> Standins {
    let loopback = "127.0.0.1:0".parse().unwrap();
    Standins::start(loopback, loopback)
        .await
        .expect("stand-ins start")
}

fn config(s: &Standins, dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut more: Vec<(&str, String)> = vec![
        ("COSELL_LISTEN", "127.0.0.1:0".into()),
        ("COSELL_POLL_INTERVAL", "200ms".into()),
    ];
    more.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Config::load(&Source::from_pairs(overlay(s.settings(dir), &more))).expect("valid settings")
}

fn quick() -> RuntimeOptions {
    RuntimeOptions {
        fail_delay: Duration::from_millis(200),
        receive_wait: Duration::from_millis(100),
        ..RuntimeOptions::default()
    }
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

fn opportunities_for(s: &Standins, referral_id: &str) -> usize {
    s.dv.rows("opportunities")
        .iter()
        .filter(|o| o.get("cosell_referralidentifier").and_then(Value::as_str) == Some(referral_id))
        .count()
}

async fn audit(runtime: &Runtime) -> Vec<cosell::audit::AuditEntry> {
    let q = cosell::audit::AuditQuery::default();
    runtime.store().query_audit(&q).await.unwrap_or_default()
}

fn queue_only() -> RuntimeOptions {
    RuntimeOptions {
        schedules: false,
        ..quick()
    }
}

/// "Look at this referral" under its pair's key, as an operator's backfill queues it.
async fn referral_message(runtime: &Runtime, referral_id: &str) -> OutMessage {
    let message = SyncMessage::for_referral(
        runtime.store().as_ref(),
        referral_id,
        Origin::Operator,
        None,
    )
    .await
    .unwrap();
    disposition::queued(&message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_converges_on_every_step() {
    let data = tempfile::tempdir().unwrap();
    let options = DemoOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..DemoOptions::default()
    };
    let report = demo::run(&options).await.expect("demo starts");
    for step in &report.steps {
        assert!(step.result.is_ok(), "{}: {:?}", step.title, step.result);
        assert!(
            step.elapsed < Duration::from_secs(20),
            "{}: {:?}",
            step.title,
            step.elapsed
        );
    }
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.steps.len(), 6);
    // Issue 21: step (d)'s co-sell went through the documented shared-referral steps: the
    // seller's own Shared referral, then one connected referral for Microsoft in its
    // engagement, each POST a logical create of its own (two request ids, in that order).
    let co_sell = report.co_sell.as_ref().expect("the co-sell deal");
    let own = &co_sell.referral;
    assert_eq!(own["type"], "Shared");
    assert_eq!(
        own["consent"]["consentToShareReferralWithMicrosoftSellers"],
        true
    );
    assert_eq!(own["details"]["currency"], "USD");
    let ms = &co_sell.for_microsoft;
    assert_eq!(ms["engagementId"], own["engagementId"]);
    assert_eq!(
        ms["target"],
        serde_json::json!([{"type": "BusinessProfileLocation", "id": "msft"}])
    );
    assert_eq!(
        ms["inviteContext"]["notes"],
        "Help needed from Microsoft: Demo or proof of concept"
    );
    assert!(
        own["createdDateTime"].as_str() < ms["createdDateTime"].as_str(),
        "{own} {ms}"
    );
    let opp = own["externalReferenceId"].as_str().unwrap();
    assert_eq!(ms["externalReferenceId"], opp);
    let first = cosell::engine::pair::key::create_request_id(opp);
    let second = cosell::engine::pair::key::connect_request_id(opp);
    let ours: Vec<_> = co_sell
        .posts
        .iter()
        .flatten()
        .filter(|id| **id == first || **id == second)
        .collect();
    assert_eq!(ours, [&first, &second], "{:?}", co_sell.posts);
    // Four deals' worth of syncs each left at least one audit entry.
    assert!(report.audit.len() >= 4, "{:?}", report.audit);
    status_shows_the_demos_counters(data.path()).await;
}

/// `cosell status` on the demo's data directory: the counters of the run (this process's;
/// other tests of this file may add to them, hence the lower bounds).
async fn status_shows_the_demos_counters(dir: &std::path::Path) {
    use cosell::telemetry::names;
    use cosell_cli::ops::{run_args, Exit, Settings};
    let settings = Settings::Pairs(vec![]);
    let dir = dir.display().to_string();
    let out = run_args(
        &["status", "--data-dir", &dir, "--output", "json"],
        &settings,
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    let series: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let count = |name: &str, dims: &[(&str, &str)]| -> u64 {
        series
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| dims.iter().all(|(k, v)| s["dimensions"][*k] == *v))
            .map(|s| s["count"].as_u64().unwrap())
            .sum()
    };
    let created = |direction| [("Direction", direction), ("Outcome", "created")];
    // Step (a): a referral became an opportunity; step (d): an opportunity a referral.
    assert!(
        count(names::SYNCS.name, &created("inbound")) >= 1,
        "{series:#?}"
    );
    assert!(
        count(names::SYNCS.name, &created("outbound")) >= 1,
        "{series:#?}"
    );
    assert!(
        count(names::SYNC_LATENCY.name, &[("Direction", "inbound")]) >= 1,
        "{series:#?}"
    );
    assert!(
        count(names::WEBHOOK_DELIVERIES.name, &[("Status", "202")])
            + count(names::WEBHOOK_DELIVERIES.name, &[("Status", "200")])
            >= 1,
        "{series:#?}"
    );
    for service in ["partner-center", "dataverse"] {
        let s = [("Service", service)];
        assert!(
            count(names::TOKEN_RENEWALS.name, &s) >= 1,
            "{service}: {series:#?}"
        );
        assert!(count(names::CALLS.name, &s) >= 1, "{service}: {series:#?}");
    }
    assert!(
        count(names::CHANGES_FOUND.name, &[("Source", "opportunity-poll")]) >= 1,
        "{series:#?}"
    );
    // The table says the same for people.
    let out = run_args(&["status", "--data-dir", &dir], &settings).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("Direction=inbound Outcome=created"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TokenRenewals"), "{}", out.stdout);
}

#[tokio::test]
async fn the_webhook_endpoint_answers_bad_deliveries_with_json_and_queues_nothing() {
    let s = standins().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(&config(&s, dir.path(), &[]), quick())
        .await
        .expect("runtime starts");
    let http = reqwest::Client::new();

    let health = http
        .get(format!("http://{}/healthz", runtime.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let unsigned = http
        .post(runtime.intake_url())
        .header("content-type", "application/json")
        .body(r#"{"EventName":"referral-created","ResourceUri":"https://x/referrals/r1"}"#)
        .send()
        .await
        .unwrap();
    let status = unsigned.status().as_u16();
    assert!((400..500).contains(&status), "status {status}");
    let body: Value = unsigned.json().await.expect("a JSON body");
    assert!(
        body.pointer("/error/code")
            .and_then(Value::as_str)
            .is_some(),
        "{body}"
    );

    let depth = runtime.queue().depth().await.unwrap();
    assert_eq!(
        depth.visible + depth.in_flight + depth.delayed,
        0,
        "{depth:?}"
    );
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_signed_webhook_from_the_stand_in_becomes_an_opportunity() {
    let s = standins().await;
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        register_own_url: true,
        ..quick()
    };
    let runtime = Runtime::start(&config(&s, dir.path(), &[]), options)
        .await
        .expect("runtime starts");
    let registration = s.pc.registration().expect("webhook registered at start");
    assert_eq!(
        registration["webhookUrl"]
            .as_str()
            .or(registration["WebhookUrl"].as_str()),
        Some(runtime.intake_url().as_str()),
        "{registration}"
    );
    let referral =
        s.pc.create_incoming_referral("Northwind CRM", "Northwind Traders");
    let id = referral["id"].as_str().unwrap().to_string();
    let found = wait_until(Duration::from_secs(15), || {
        (opportunities_for(&s, &id) == 1).then_some(())
    })
    .await;
    if found.is_none() {
        eprintln!("audit: {:?}", audit(&runtime).await);
    }
    assert!(
        found.is_some(),
        "no opportunity for {id}: {:?}",
        s.pc.deliveries()
    );
    let delivery =
        s.pc.deliveries()
            .into_iter()
            .find(|d| d.referral_id.as_deref() == Some(&id));
    assert!(delivery.is_some_and(|d| d.last_status.is_some_and(|c| (200..300).contains(&c))));
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_at_shutdown_are_processed_after_a_restart_once_each() {
    let s = standins().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&s, dir.path(), &[]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let r =
                s.pc.create_incoming_referral(&format!("Deal {i}"), &format!("Customer {i}"));
            r["id"].as_str().unwrap().to_string()
        })
        .collect();

    // One reconcile at a time, each slow (every Dataverse call waits), so the shutdown lands
    // while the first is in flight and the others are still queued. (The FIFO sync queue
    // takes no per-message delay to hold them back otherwise.)
    s.dv.add_fault(dataverse_standin::Fault {
        kind: dataverse_standin::FaultKind::Delay { millis: 300 },
        count: 1000,
        method: None,
        path_contains: None,
    });
    let one_at_a_time = RuntimeOptions {
        concurrency: 1,
        ..queue_only()
    };
    let first = Runtime::start(&cfg, one_at_a_time).await.unwrap();
    let mut messages = Vec::new();
    for id in &ids {
        messages.push(referral_message(&first, id).await);
    }
    first.queue().send_batch(&messages).await.unwrap();
    let picked = wait_until(Duration::from_secs(5), || {
        let depth = futures_now(first.queue().depth()).ok()?;
        (depth.in_flight == 1).then_some(())
    })
    .await;
    assert!(picked.is_some(), "no message was received");
    first.shutdown().await;
    s.dv.clear_faults();
    let left: Vec<&String> = ids
        .iter()
        .filter(|id| opportunities_for(&s, id) == 0)
        .collect();
    assert!(
        !left.is_empty(),
        "every message was handled before the shutdown: nothing left to test"
    );
    let reopened = open_sync_queue(&dir.path().join(DATABASE_FILE), 8).unwrap();
    let depth = reopened.depth().await.unwrap();
    assert_eq!(depth.visible, left.len() as u64, "{depth:?}");
    assert_eq!(depth.in_flight + depth.dead, 0, "{depth:?}");

    let second = Runtime::start(&cfg, queue_only()).await.unwrap();
    let all = wait_until(Duration::from_secs(20), || {
        ids.iter()
            .all(|id| opportunities_for(&s, id) >= 1)
            .then_some(())
    })
    .await;
    assert!(all.is_some(), "not all synced: {:?}", audit(&second).await);
    // Settle: the queue empties, nothing dead-lettered, no duplicates.
    let mut depth = second.queue().depth().await.unwrap();
    for _ in 0..100 {
        if depth.visible + depth.in_flight + depth.delayed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        depth = second.queue().depth().await.unwrap();
    }
    assert_eq!(
        depth.visible + depth.in_flight + depth.delayed + depth.dead,
        0,
        "{depth:?}"
    );
    for id in &ids {
        assert_eq!(opportunities_for(&s, id), 1, "{id} duplicated");
    }
    second.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_sync_in_flight() {
    let s = standins().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&s, dir.path(), &[]);
    let referral = s.pc.create_incoming_referral("Slow deal", "Slow Customer");
    let id = referral["id"].as_str().unwrap().to_string();
    // Every Dataverse call of this sync takes a while, so shutdown lands mid-sync.
    s.dv.add_fault(dataverse_standin::Fault {
        kind: dataverse_standin::FaultKind::Delay { millis: 300 },
        count: 20,
        method: None,
        path_contains: None,
    });
    let runtime = Runtime::start(&cfg, queue_only()).await.unwrap();
    let message = referral_message(&runtime, &id).await;
    runtime.queue().send(&message).await.unwrap();
    let picked = wait_until(Duration::from_secs(5), || {
        let depth = futures_now(runtime.queue().depth()).ok()?;
        (depth.in_flight == 1).then_some(())
    })
    .await;
    assert!(picked.is_some(), "the message was never received");
    let queue = runtime.queue();
    let started = Instant::now();
    runtime.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        opportunities_for(&s, &id),
        1,
        "the in-flight sync did not finish"
    );
    let depth = queue.depth().await.unwrap();
    assert_eq!(
        depth.visible + depth.in_flight + depth.delayed + depth.dead,
        0,
        "{depth:?}"
    );
    s.shutdown().await;
}

/// Polls a future once per probe (probes are sync closures).
fn futures_now<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotated_refresh_token_is_kept_owner_only_and_preferred_at_the_next_start() {
    use cosell_cli::local::refresh_file::REFRESH_TOKEN_FILE;
    use std::os::unix::fs::PermissionsExt;

    let s = standins().await;
    let dir = tempfile::tempdir().unwrap();
    let configured = s.pc.config().refresh_token.clone();
    let cfg = config(
        &s,
        dir.path(),
        &[("COSELL_PC_REFRESH_TOKEN", configured.as_str())],
    );
    let options = RuntimeOptions {
        register_own_url: true,
        ..queue_only()
    };
    let first = Runtime::start(&cfg, options.clone()).await.unwrap();
    first.shutdown().await;
    let file = dir.path().join(REFRESH_TOKEN_FILE);
    let saved = std::fs::read_to_string(&file).expect("rotated token saved");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_ne!(saved, configured);
    assert!(s.pc.refresh_token_valid(&saved));
    assert!(
        !s.pc.refresh_token_valid(&configured),
        "Entra retired the configured token"
    );

    // Same settings (with the retired token): the saved one is used, and rotated again.
    let second = Runtime::start(&cfg, options).await.unwrap();
    let page = second
        .engine()
        .pc
        .list_first_page(&cosell::partner_center::ListQuery::default())
        .await;
    assert!(page.is_ok(), "{page:?}");
    second.shutdown().await;
    let newer = std::fs::read_to_string(&file).unwrap();
    assert!(s.pc.refresh_token_valid(&newer));
    s.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_database_are_for_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = standins().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("new").join("data");
    let runtime = Runtime::start(&config(&s, &dir, &[]), queue_only())
        .await
        .expect("runtime starts");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "data dir");
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600, "database file");
    runtime.shutdown().await;
    s.shutdown().await;
}
