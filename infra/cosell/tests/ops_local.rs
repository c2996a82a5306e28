//! The operator commands against a local run's embedded store and queues, seeded in a temp
//! dir, run in-process through the same argument parsing as the binary.

use std::time::Duration;

use cosell::audit::{AuditEntry, Direction, Outcome};
use cosell::crosswalk::Link;
use cosell::engine::{disposition, Origin, SyncMessage};
use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::Queue;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;
use cosell_cli::local::runtime::open_sync_queue;
use cosell_cli::ops::{run_args, Exit, Settings};
use serde_json::Value;
use time::OffsetDateTime;

struct Seeded {
    dir: tempfile::TempDir,
    queue: SqliteQueue,
}

impl Seeded {
    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn settings(&self) -> Settings {
        Settings::Pairs(vec![("COSELL_DATA_DIR".into(), self.dir())])
    }
}

/// A message as the intake, poller or sweep queues it (grouped by its pair key), received
/// once and dead-lettered.
async fn dead_letter(queue: &SqliteQueue, message: &SyncMessage, reason: &str) {
    queue.send(&disposition::queued(message)).await.unwrap();
    let got = queue
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    queue.dead_letter(&got[0], reason).await.unwrap();
}

/// A referral's message, keyed by its (unlinked) referral's opportunity-to-be.
fn referral_message(referral_id: &str) -> SyncMessage {
    SyncMessage {
        key: format!("opp-of-{referral_id}"),
        origin: Origin::Referral,
        referral_id: Some(referral_id.into()),
        changed_at: None,
        deleted: false,
        version: None,
    }
}

/// Two links, audit entries at known times, and dead letters on the sync queue: two from
/// referrals, one from an opportunity.
async fn seed() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cosell.db");
    let store = SqliteStore::open(&db).unwrap();
    let mut link = Link::new("ref-1", "opp-1");
    link.pc_etag = Some("\"pc-etag-7\"".into());
    link.dv_etag = Some("W/\"90210\"".into());
    link.pc_updated = Some("2026-04-01T10:00:00Z".into());
    link.dv_modified = Some("2026-04-02T11:00:00Z".into());
    let stored = store.put_link(&link, None).await.unwrap();
    store.put_link(&stored, Some(stored.version)).await.unwrap();
    store
        .put_link(&Link::new("ref-2", "opp-2"), None)
        .await
        .unwrap();

    let now = OffsetDateTime::now_utc();
    let hours = |h: i64| now - time::Duration::hours(h);
    let entries = [
        AuditEntry::new(Direction::Inbound, "create_opportunity", Outcome::Success)
            .referral("ref-1")
            .opportunity("opp-1")
            .detail("created from referral")
            .at(hours(72)),
        AuditEntry::new(Direction::Outbound, "update_referral", Outcome::Failed)
            .referral("ref-1")
            .opportunity("opp-1")
            .error("412 precondition failed")
            .at(hours(2)),
        AuditEntry::new(Direction::Outbound, "update_referral", Outcome::Success)
            .opportunity("opp-1")
            .detail("only the opportunity id")
            .at(hours(1)),
        AuditEntry::new(Direction::Inbound, "create_opportunity", Outcome::Failed)
            .referral("ref-9")
            .error("account lookup failed")
            .at(hours(5)),
        AuditEntry::new(Direction::Inbound, "update_opportunity", Outcome::Skipped)
            .referral("ref-2")
            .opportunity("opp-2")
            .at(hours(30)),
    ];
    for e in &entries {
        store.append_audit(e).await.unwrap();
    }

    // The queue the local runner (and so the operator commands) opens.
    let queue = open_sync_queue(&db, 8).unwrap();
    dead_letter(
        &queue,
        &referral_message("ref-1"),
        "permanent: referral is gone",
    )
    .await;
    dead_letter(
        &queue,
        &referral_message("ref-3"),
        "gave up after 8 attempts: dataverse timed out",
    )
    .await;
    dead_letter(
        &queue,
        &SyncMessage::for_opportunity("opp-2", None),
        "permanent: missing required field name",
    )
    .await;
    Seeded { dir, queue }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn status_finds_a_link_by_referral_or_opportunity_id() {
    let s = seed().await;
    for id in ["ref-1", "opp-1"] {
        let out = run_args(&["status", id], &s.settings()).await;
        assert_eq!(out.exit, Exit::Ok, "{id}: {}", out.stderr);
        for expected in [
            "ref-1",
            "opp-1",
            "\"pc-etag-7\"",
            "W/\"90210\"",
            "2026-04-01T10:00:00Z",
            "2026-04-02T11:00:00Z",
            "412 precondition failed",
            "only the opportunity id",
        ] {
            assert!(
                out.stdout.contains(expected),
                "{id}: missing {expected} in\n{}",
                out.stdout
            );
        }
        // The Logs Insights query for the pair's lines across the functions.
        assert!(
            out.stdout
                .contains("@message like \"opp-1\" or @message like \"ref-1\"")
                && out.stdout.contains("/aws/lambda/<stack>/pair-sync"),
            "{}",
            out.stdout
        );
        // Entries of other referrals are not shown.
        assert!(
            !out.stdout.contains("account lookup failed"),
            "{}",
            out.stdout
        );
    }

    let out = run_args(
        &["status", "opp-1", "--output", "json", "--entries", "2"],
        &s.settings(),
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["link"]["referral_id"], "ref-1");
    assert_eq!(v["link"]["version"], 2);
    let audit = v["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 2);
    // Newest first: the opportunity-only entry (1 h ago), then the failure (2 h ago).
    assert_eq!(audit[0]["detail"], "only the opportunity id");
    assert_eq!(audit[1]["outcome"], "failed");
}

#[tokio::test]
async fn status_of_an_unknown_id_fails_clearly_but_shows_its_audit_trail() {
    let s = seed().await;
    let out = run_args(&["status", "nobody"], &s.settings()).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(out.stdout.contains("no link for nobody"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("neither a linked referral nor a linked opportunity"),
        "{}",
        out.stderr
    );

    // A referral whose first sync failed has no link, but its audit entry explains why.
    let out = run_args(&["status", "ref-9"], &s.settings()).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stdout.contains("account lookup failed"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn audit_filters_by_time_outcome_and_ids() {
    let s = seed().await;
    let settings = s.settings();
    let count = |stdout: &str| json(stdout).as_array().unwrap().len();

    let all = run_args(&["audit", "-o", "json"], &settings).await;
    assert_eq!(all.exit, Exit::Ok, "{}", all.stderr);
    assert_eq!(count(&all.stdout), 5);

    let failed = run_args(&["audit", "--failed", "-o", "json"], &settings).await;
    let v = json(&failed.stdout);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["outcome"] == "failed"));

    let recent = run_args(&["audit", "--since", "24h", "-o", "json"], &settings).await;
    assert_eq!(count(&recent.stdout), 3, "{}", recent.stdout);
    let two_days = run_args(&["audit", "--since", "2d", "-o", "json"], &settings).await;
    assert_eq!(count(&two_days.stdout), 4);

    let by_ref = run_args(&["audit", "--referral", "ref-1", "-o", "json"], &settings).await;
    assert_eq!(count(&by_ref.stdout), 2);
    let by_opp = run_args(
        &["audit", "--opportunity", "opp-1", "--failed", "-o", "json"],
        &settings,
    )
    .await;
    assert_eq!(count(&by_opp.stdout), 1);
    let limited = run_args(&["audit", "--limit", "1", "-o", "json"], &settings).await;
    assert_eq!(
        json(&limited.stdout)[0]["detail"],
        "only the opportunity id"
    );

    let table = run_args(&["audit", "--failed"], &settings).await;
    assert_eq!(table.exit, Exit::Ok);
    assert!(table.stdout.starts_with("AT"), "{}", table.stdout);
    assert!(table.stdout.contains("error: 412 precondition failed"));
    assert!(
        !table.stdout.contains('\x1b'),
        "no colours when not a terminal"
    );

    let bad = run_args(&["audit", "--since", "last tuesday"], &settings).await;
    assert_eq!(bad.exit, Exit::Usage);
    assert!(bad.stderr.contains("--since"), "{}", bad.stderr);
}

#[tokio::test]
async fn dlq_lists_shows_and_replays_with_counts() {
    let s = seed().await;
    let settings = s.settings();

    let list = run_args(&["dlq", "list", "-o", "json"], &settings).await;
    assert_eq!(list.exit, Exit::Ok, "{}", list.stderr);
    let letters = json(&list.stdout);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|d| d["queue"] == "sync"), "{letters:?}");
    let gone = letters
        .iter()
        .find(|d| d["reason"] == "permanent: referral is gone")
        .unwrap();
    assert_eq!(gone["receive_count"], 1);
    let gone_id = gone["id"].as_str().unwrap().to_string();

    let only_sync = run_args(&["dlq", "list", "--queue", "sync"], &settings).await;
    assert_eq!(only_sync.exit, Exit::Ok, "{}", only_sync.stderr);
    assert!(only_sync.stdout.contains("missing required field name"));
    assert!(only_sync.stdout.contains("gave up after 8 attempts"));
    assert!(
        only_sync.stdout.contains("3 dead letter(s)"),
        "{}",
        only_sync.stdout
    );
    // The per-direction queues are gone, and naming one is a usage error.
    for old in ["inbound", "outbound"] {
        let out = run_args(&["dlq", "list", "--queue", old], &settings).await;
        assert_eq!(out.exit, Exit::Usage, "{old}: {}", out.stdout);
    }

    let show = run_args(&["dlq", "show", &gone_id], &settings).await;
    assert_eq!(show.exit, Exit::Ok, "{}", show.stderr);
    assert!(
        show.stdout.contains("\"referral_id\": \"ref-1\""),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("opp-of-ref-1"), "{}", show.stdout);
    let missing = run_args(&["dlq", "show", "no-such-id"], &settings).await;
    assert_eq!(missing.exit, Exit::Failure);

    // Replay one by id: exactly that message is back on the sync queue, in its pair's group.
    let one = run_args(&["dlq", "replay", &gone_id, "-o", "json"], &settings).await;
    assert_eq!(one.exit, Exit::Ok, "{}", one.stderr);
    let v = json(&one.stdout);
    assert_eq!(v["moved"], 1);
    assert_eq!(v["per_queue"]["sync"], 1);
    let back = s
        .queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].group.as_deref(), Some("opp-of-ref-1"));
    assert_eq!(
        SyncMessage::parse(&back[0].body).unwrap(),
        referral_message("ref-1")
    );

    // An unknown id is reported and fails the command; nothing else moves.
    let unknown = run_args(&["dlq", "replay", "no-such-id"], &settings).await;
    assert_eq!(unknown.exit, Exit::Failure);
    assert!(unknown.stdout.contains("moved 0"), "{}", unknown.stdout);
    assert!(unknown.stdout.contains("not found: no-such-id"));
    assert_eq!(s.queue.depth().await.unwrap().dead, 2);

    let all = run_args(&["dlq", "replay", "--all"], &settings).await;
    assert_eq!(all.exit, Exit::Ok, "{}", all.stderr);
    assert!(
        all.stdout.contains("moved 2 dead letter(s)"),
        "{}",
        all.stdout
    );
    assert!(all.stdout.contains("(sync: 2)"), "{}", all.stdout);
    let rest = s
        .queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    let mut groups: Vec<_> = rest.iter().filter_map(|r| r.group.clone()).collect();
    groups.sort();
    assert_eq!(groups, ["opp-2", "opp-of-ref-3"]);
    let opportunity = rest
        .iter()
        .find(|r| r.group.as_deref() == Some("opp-2"))
        .unwrap();
    assert_eq!(
        SyncMessage::parse(&opportunity.body).unwrap(),
        SyncMessage::for_opportunity("opp-2", None)
    );
    let empty = run_args(&["dlq", "list"], &settings).await;
    assert!(empty.stdout.contains("no dead letters"), "{}", empty.stdout);

    let nothing_named = run_args(&["dlq", "replay"], &settings).await;
    assert_eq!(nothing_named.exit, Exit::Usage);
}

#[tokio::test]
async fn targets_are_chosen_explicitly_or_from_the_data_dir_setting() {
    let s = seed().await;
    // --data-dir works without the setting.
    let out = run_args(
        &["status", "ref-2", "--data-dir", &s.dir()],
        &Settings::Pairs(vec![]),
    )
    .await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    assert!(out.stdout.contains("opp-2"));

    // A directory without connector data is an error, and no database is created there.
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().display().to_string();
    let out = run_args(&["audit", "--data-dir", &dir], &Settings::Pairs(vec![])).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stderr.contains("no local connector data"),
        "{}",
        out.stderr
    );
    assert!(!empty.path().join("cosell.db").exists());

    let both = run_args(
        &["audit", "--data-dir", &dir, "--stack", "prod"],
        &s.settings(),
    )
    .await;
    assert_eq!(both.exit, Exit::Usage);
    let half = run_args(&["audit", "--table", "t"], &s.settings()).await;
    assert_eq!(half.exit, Exit::Usage);
}

#[tokio::test]
async fn every_command_has_help_and_bad_arguments_exit_2() {
    let settings = Settings::Pairs(vec![]);
    for args in [
        vec!["status", "--help"],
        vec!["audit", "--help"],
        vec!["dlq", "--help"],
        vec!["dlq", "replay", "--help"],
        vec!["backfill", "--help"],
        vec!["webhook", "test", "--help"],
        vec!["mapping", "check", "--help"],
    ] {
        let out = run_args(&args, &settings).await;
        assert_eq!(out.exit, Exit::Ok, "{args:?}");
        assert!(out.stdout.contains("Usage:"), "{args:?}: {}", out.stdout);
    }
    let out = run_args(&["status", "--entries", "many"], &settings).await;
    assert_eq!(out.exit, Exit::Usage);
    // Without an id, status shows a local run's counters: none in an empty directory.
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().display().to_string();
    let out = run_args(&["status", "--data-dir", &dir], &settings).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(out.stderr.contains("no metrics in"), "{}", out.stderr);
    let out = run_args(&["audit", "--output", "yaml"], &settings).await;
    assert_eq!(out.exit, Exit::Usage);
    let out = run_args(&["dlq", "replay", "x", "--all"], &settings).await;
    assert_eq!(out.exit, Exit::Usage);
}
