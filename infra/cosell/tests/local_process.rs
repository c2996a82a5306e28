//! `cosell run` as a separate process over HTTP against the stand-ins: a bad setting stops it
//! with one line naming it; a signed webhook becomes an opportunity and a CRM edit updates the
//! referral; killed mid-reconcile with work queued and restarted, every pair converges and
//! nothing is lost or duplicated.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cosell::engine::pair::key::opportunity_id_for;
use cosell::queue::Queue;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;
use cosell_cli::local::runtime::{open_sync_queue, DATABASE_FILE};
use cosell_cli::local::standins::{overlay, Standins};
use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_cosell");

/// How long a received message stays hidden in `cosell run` below: the messages of a
/// killed process come back to the next one after this (the pair's only lease). Not
/// shorter: the worker keeps 5 s of it to settle the message, and a reconcile needs time
/// left for its calls (see `a_short_visibility_still_leaves_a_reconcile_time_to_run`).
const VISIBILITY: &str = "10s";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_run(settings: &[(String, String)], cwd: &Path) -> Child {
    spawn_run_with(&["run", "--visibility-timeout", VISIBILITY], settings, cwd)
}

fn spawn_run_with(args: &[&str], settings: &[(String, String)], cwd: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cosell run")
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn accounts_named(s: &Standins, name: &str) -> usize {
    s.dv.rows("accounts")
        .iter()
        .filter(|a| a.get("name").and_then(Value::as_str) == Some(name))
        .count()
}

fn opportunities_for(s: &Standins, referral_id: &str) -> Vec<Value> {
    s.dv.rows("opportunities")
        .into_iter()
        .filter(|o| o.get("cosell_referralidentifier").and_then(Value::as_str) == Some(referral_id))
        .collect()
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .env_clear()
        .env("COSELL_TENANT_ID", "contoso")
        .env("COSELL_POLL_INTERVAL", "soon")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("COSELL_"), "{stderr}");

    let missing = Command::new(BIN)
        .arg("run")
        .env_clear()
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("COSELL_TENANT_ID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosell_run_syncs_both_ways_and_survives_a_kill_with_work_queued() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let s = Standins::start(loopback, loopback).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = overlay(
        s.settings(&dir.path().join("data")),
        &[
            ("COSELL_LISTEN", format!("127.0.0.1:{port}")),
            (
                "COSELL_WEBHOOK_URL",
                format!("http://127.0.0.1:{port}/partner-center/webhook"),
            ),
            ("COSELL_POLL_INTERVAL", "300ms".into()),
        ],
    );
    let mut child = spawn_run(&settings, dir.path());
    let registered = wait_until(Duration::from_secs(30), || s.pc.registration()).await;
    assert!(registered.is_some(), "the webhook was never registered");

    // Signed webhook in, opportunity out.
    let first =
        s.pc.create_incoming_referral("Process deal", "Process Customer");
    let first_id = first["id"].as_str().unwrap().to_string();
    let opp = wait_until(Duration::from_secs(20), || {
        opportunities_for(&s, &first_id).pop()
    })
    .await;
    let opp = opp.expect("opportunity created from the webhook");
    let opp_id = opp["opportunityid"].as_str().unwrap().to_string();

    // Opportunity change in, referral update out.
    let mut change = Map::new();
    change.insert("estimatedvalue".into(), json!(31337.0));
    s.dv.user_update("opportunities", &opp_id, change).unwrap();
    let updated = wait_until(Duration::from_secs(20), || {
        s.pc.referral(&first_id)
            .filter(|r| r.pointer("/details/dealValue").and_then(Value::as_f64) == Some(31337.0))
    })
    .await;
    assert!(updated.is_some(), "{:?}", s.pc.referral(&first_id));

    // Slow Dataverse, a burst of referrals, then a kill while they are queued or in flight.
    s.dv.add_fault(dataverse_standin::Fault {
        kind: dataverse_standin::FaultKind::Delay { millis: 400 },
        count: 1000,
        method: None,
        path_contains: None,
    });
    let ids: Vec<String> = (0..4)
        .map(|i| {
            s.pc.create_incoming_referral(&format!("Burst {i}"), &format!("Burst Customer {i}"))
                ["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let delivered = wait_until(Duration::from_secs(20), || {
        let n = s
            .pc
            .deliveries()
            .iter()
            .filter(|d| {
                d.outcome == "delivered" && d.referral_id.as_ref().is_some_and(|r| ids.contains(r))
            })
            .count();
        (n == ids.len()).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "{:?}", s.pc.deliveries());
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before_kill = ids
        .iter()
        .filter(|id| !opportunities_for(&s, id).is_empty())
        .count();
    assert!(
        done_before_kill < ids.len(),
        "the kill came too late to test anything"
    );
    s.dv.clear_faults();

    let mut child = spawn_run(&settings, dir.path());
    // The messages the killed process had received come back once their visibility
    // (VISIBILITY) has passed; the others are handed out at once. A create the kill cut
    // short is found again by its derived id, not made twice.
    let all = wait_until(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| !opportunities_for(&s, id).is_empty())
            .then_some(())
    })
    .await;
    // Let any duplicate that would come, come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(all.is_some(), "lost work after the kill");
    for id in ids.iter().chain(std::iter::once(&first_id)) {
        assert_eq!(opportunities_for(&s, id).len(), 1, "{id} duplicated");
    }
    // Each pair converged: the opportunity has the id derived from its referral and is the
    // one the crosswalk links, and the customer's account was created once.
    let store = SqliteStore::open(dir.path().join("data").join(DATABASE_FILE)).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let opportunity = opportunities_for(&s, id).pop().unwrap();
        let opportunity_id = opportunity["opportunityid"].as_str().unwrap();
        assert_eq!(opportunity_id, opportunity_id_for(id), "{opportunity}");
        let link = store.get_link_by_referral(id).await.unwrap();
        assert_eq!(
            link.map(|l| l.opportunity_id).as_deref(),
            Some(opportunity_id),
            "{id} is not linked to its opportunity"
        );
        let customer = format!("Burst Customer {i}");
        assert_eq!(accounts_named(&s, &customer), 1, "{customer} duplicated");
    }
    s.shutdown().await;
}

/// `COSELL_SYNC_LEASE` (README: the local worker's hold on a pair's message) decides how long
/// a reconcile cut short by a kill keeps its pair: with an 8 s lease and no
/// `--visibility-timeout`, the restarted process takes the pair over within 30 s, not after
/// the 2 min default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_lease_is_how_long_a_killed_reconcile_holds_its_pair() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let s = Standins::start(loopback, loopback).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let settings = overlay(
        s.settings(&data),
        &[
            ("COSELL_LISTEN", format!("127.0.0.1:{port}")),
            (
                "COSELL_WEBHOOK_URL",
                format!("http://127.0.0.1:{port}/partner-center/webhook"),
            ),
            ("COSELL_POLL_INTERVAL", "300ms".into()),
            ("COSELL_SYNC_LEASE", "8s".into()),
        ],
    );
    let mut child = spawn_run_with(&["run"], &settings, dir.path());
    let registered = wait_until(Duration::from_secs(30), || s.pc.registration()).await;
    assert!(registered.is_some(), "the webhook was never registered");

    // Every Dataverse call is slow, so the kill lands inside the reconcile.
    s.dv.add_fault(dataverse_standin::Fault {
        kind: dataverse_standin::FaultKind::Delay { millis: 1000 },
        count: 1000,
        method: None,
        path_contains: None,
    });
    let id =
        s.pc.create_incoming_referral("Lease deal", "Lease Customer")["id"]
            .as_str()
            .unwrap()
            .to_string();
    let queue = open_sync_queue(&data.join(DATABASE_FILE), 8).unwrap();
    let mut in_flight = false;
    for _ in 0..400 {
        if queue.depth().await.unwrap().in_flight == 1 {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(in_flight, "the message was never received");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        opportunities_for(&s, &id).is_empty(),
        "the reconcile finished before the kill: nothing to test"
    );
    s.dv.clear_faults();

    let mut child = spawn_run_with(&["run"], &settings, dir.path());
    let found = wait_until(Duration::from_secs(30), || opportunities_for(&s, &id).pop()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        found.is_some(),
        "the pair was still held 30 s after the kill: {:?}",
        queue.depth().await
    );
    assert_eq!(opportunities_for(&s, &id).len(), 1);
    s.shutdown().await;
}

/// A short visibility (2 s here) makes a short lease, not a connector that cannot sync:
/// each reconcile still gets time for its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_visibility_still_leaves_a_reconcile_time_to_run() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let s = Standins::start(loopback, loopback).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = overlay(
        s.settings(&dir.path().join("data")),
        &[
            ("COSELL_LISTEN", format!("127.0.0.1:{port}")),
            (
                "COSELL_WEBHOOK_URL",
                format!("http://127.0.0.1:{port}/partner-center/webhook"),
            ),
        ],
    );
    let mut child = spawn_run_with(
        &["run", "--visibility-timeout", "2s"],
        &settings,
        dir.path(),
    );
    let registered = wait_until(Duration::from_secs(30), || s.pc.registration()).await;
    assert!(registered.is_some(), "the webhook was never registered");
    let id =
        s.pc.create_incoming_referral("Short lease", "Short Customer")["id"]
            .as_str()
            .unwrap()
            .to_string();
    let found = wait_until(Duration::from_secs(20), || opportunities_for(&s, &id).pop()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(found.is_some(), "no opportunity for {id} after 20 s");
    s.shutdown().await;
}
