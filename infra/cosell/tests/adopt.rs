//! `cosell adopt` against both stand-ins, in-process, on an org set up as Microsoft's
//! co-sell connector leaves it: its columns (under the names of the shipped
//! `microsoft-connector.settings.toml`) and opportunities whose referral id column names
//! their referrals. Every test also counts the requests that write: adopt sends none to
//! either side.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cosell::config::Config;
use cosell::crosswalk::Link;
use cosell::engine::{reconcile_pair, wiring, Engine, Origin, PairOutcome, SyncMessage};
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;
use cosell_cli::local::runtime::DATABASE_FILE;
use cosell_cli::local::standins::{overlay, Standins};
use cosell_cli::onboard::run_args;
use cosell_cli::ops::{Exit, Outcome, Settings};
use dataverse_standin::Attribute;
use serde_json::{json, Map, Value};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The shipped settings for Microsoft's connector, as `KEY = "value"` pairs (the mapping
/// path made absolute: the file's is relative to a checkout's root).
fn microsoft_settings() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_file(
        "shared/mapping/microsoft-connector.settings.toml",
    ))
    .unwrap();
    let table: toml::Table = text.parse().unwrap();
    table
        .into_iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap().to_string();
            if k == "COSELL_MAPPING_FILE" {
                (k, repo_file(&v).display().to_string())
            } else {
                (k, v)
            }
        })
        .collect()
}

struct Org {
    s: Standins,
    _dir: tempfile::TempDir,
    data: PathBuf,
    pairs: Vec<(String, String)>,
    config: Config,
}

impl Org {
    async fn new() -> Org {
        let loopback = "127.0.0.1:0".parse().unwrap();
        let s = Standins::start(loopback, loopback).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let microsoft = microsoft_settings();
        let extra: Vec<(&str, String)> = microsoft
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let pairs = overlay(s.settings(&data), &extra);
        let config = Settings::Pairs(pairs.clone()).config().unwrap();
        // Microsoft's columns, as its solution adds them (the stand-in starts with this
        // connector's own, which keep the solutions and the decision).
        let c = &config.columns;
        s.dv.declare_column(Attribute::new(&c.sync_flag, "Boolean"));
        s.dv.declare_column(Attribute::new(&c.referral_id, "String"));
        s.dv.declare_column(Attribute::new(&c.referral_link, "String").with_format("Url"));
        s.dv.declare_column(
            Attribute::new(&c.help_needed, "Picklist")
                .with_options(&[(100000000, "Architecture and technical design")]),
        );
        s.dv.declare_column(Attribute::new(&c.audit, "Memo"));
        Org {
            s,
            _dir: dir,
            data,
            pairs,
            config,
        }
    }

    /// A referral Microsoft shared; returns its id.
    fn referral(&self, name: &str) -> String {
        let r = self.s.pc.create_incoming_referral(name, "Fabrikam");
        r["id"].as_str().unwrap().to_string()
    }

    /// An opportunity Microsoft's flows made, naming `referral_id`; returns its id.
    fn opportunity(&self, name: &str, referral_id: &str) -> String {
        let c = &self.config.columns;
        let mut row: Map<String, Value> = json!({
            "name": name,
            "estimatedvalue": 25000.0,
            "_transactioncurrencyid_value": dataverse_standin::USD_ID,
            "statecode": 0,
            "statuscode": 1,
        })
        .as_object()
        .unwrap()
        .clone();
        row.insert(c.sync_flag.clone(), json!(true));
        row.insert(c.referral_id.clone(), json!(referral_id));
        self.s.dv.user_insert("opportunities", row).unwrap()
    }

    async fn adopt(&self, args: &[&str]) -> Outcome {
        let mut all = vec!["adopt", "--data-dir"];
        let data = self.data.display().to_string();
        all.push(&data);
        all.extend_from_slice(args);
        run_args(&all, &Settings::Pairs(self.pairs.clone())).await
    }

    async fn adopt_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.adopt(&all).await;
        assert_eq!(out.exit, Exit::Ok, "{out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn store(&self) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open(self.data.join(DATABASE_FILE)).unwrap())
    }

    /// API requests that write, on either side (token requests aside).
    fn writes(&self) -> (Vec<String>, Vec<String>) {
        let pc = self
            .s
            .pc
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/token"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let dv = self
            .s
            .dv
            .journal()
            .into_iter()
            .filter(|r| r.method != "GET" && r.path.contains("/api/data/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        (pc, dv)
    }

    fn assert_no_writes(&self) {
        let (pc, dv) = self.writes();
        assert!(pc.is_empty(), "writes sent to Partner Center: {pc:?}");
        assert!(dv.is_empty(), "writes sent to Dataverse: {dv:?}");
    }
}

fn kinds(report: &Value) -> Vec<String> {
    let mut k: Vec<String> = report["unmatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let org = Org::new().await;
    let r1 = org.referral("Adopted deal");
    let o1 = org.opportunity("Adopted deal", &r1);

    let out = org.adopt(&[]).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    assert!(
        out.stdout.contains("would link 1 pair(s)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("referral {r1}  <->  opportunity {o1}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("dry run: nothing was written"),
        "{}",
        out.stdout
    );
    // No store was created, and nothing was sent that writes.
    assert!(!org.data.join(DATABASE_FILE).exists());
    org.assert_no_writes();

    // A dry run against an existing store leaves it as it was.
    let store = org.store();
    let again = org.adopt(&[]).await;
    assert_eq!(again.exit, Exit::Ok, "{again:?}");
    assert_eq!(store.get_link_by_referral(&r1).await.unwrap(), None);
    org.assert_no_writes();
}

#[tokio::test]
async fn apply_links_the_pairs_once_and_the_next_sync_creates_nothing() {
    let org = Org::new().await;
    let r1 = org.referral("Adopted deal");
    let o1 = org.opportunity("Adopted deal", &r1);

    let first = org.adopt_json(&["--apply"]).await;
    assert_eq!(first["applied"], json!(true));
    assert_eq!(first["link"].as_array().unwrap().len(), 1, "{first}");
    let store = org.store();
    let link = store
        .get_link_by_referral(&r1)
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(link.opportunity_id, o1);
    // As a link from an earlier version: the first reconcile builds the base.
    assert_eq!(link.base, None);
    org.assert_no_writes();

    // Idempotent: a second apply finds the pair linked and changes nothing.
    let second = org.adopt_json(&["--apply"]).await;
    assert_eq!(second["link"], json!([]), "{second}");
    assert_eq!(second["already_linked"].as_array().unwrap().len(), 1);
    let after = store.get_link_by_referral(&r1).await.unwrap().unwrap();
    assert_eq!(after.version, link.version);
    org.assert_no_writes();

    // The connector's sync of the adopted pair, either way, updates it: no second
    // opportunity for the referral, no new referral for the opportunity.
    let http = wiring::http_client(&org.config).unwrap();
    let engine = Engine::from_config(&org.config, &http, store.clone(), None).unwrap();
    let inbound = SyncMessage::for_referral(store.as_ref(), &r1, Origin::Referral, None)
        .await
        .unwrap();
    let outcome = reconcile_pair(&engine, &inbound).await.unwrap();
    assert!(
        !matches!(outcome, PairOutcome::OpportunityCreated { .. }),
        "{outcome:?}"
    );
    let outbound = SyncMessage::for_opportunity(&o1, None);
    let outcome = reconcile_pair(&engine, &outbound).await.unwrap();
    assert!(
        !matches!(outcome, PairOutcome::ReferralCreated { .. }),
        "{outcome:?}"
    );
    assert_eq!(org.s.dv.rows("opportunities").len(), 1);
    assert_eq!(org.s.pc.partner_referrals().len(), 1);
    let synced = store.get_link_by_referral(&r1).await.unwrap().unwrap();
    assert_eq!(synced.opportunity_id, o1);
    assert!(synced.base.is_some(), "the reconcile stored a base");
    // The write counter sees writes: the sync made some (the checkmark, the link column).
    assert!(!org.writes().1.is_empty(), "the sync's writes are counted");
}

#[tokio::test]
async fn each_kind_of_mismatch_is_reported_and_not_linked() {
    let org = Org::new().await;
    // Matched.
    let ok = org.referral("Matched");
    org.opportunity("Matched", &ok);
    // An opportunity naming a referral Partner Center does not have.
    let ghost = "00000000-0000-0000-0000-0000000000aa";
    org.opportunity("Ghost", ghost);
    // One referral named by two opportunities.
    let twice = org.referral("Twice");
    org.opportunity("Twice A", &twice);
    org.opportunity("Twice B", &twice);
    // A referral no opportunity names.
    let lonely = org.referral("Lonely");
    // A referral the crosswalk links to another opportunity already.
    let moved = org.referral("Moved");
    org.opportunity("Moved here", &moved);
    // An opportunity the crosswalk links to another referral already.
    let other = org.referral("Other");
    let taken = org.opportunity("Taken", &org.referral("Named by Taken"));
    let store = Arc::new(
        SqliteStore::open({
            std::fs::create_dir_all(&org.data).unwrap();
            org.data.join(DATABASE_FILE)
        })
        .unwrap(),
    );
    store
        .put_link(
            &Link::new(&moved, "11111111-0000-0000-0000-000000000001"),
            None,
        )
        .await
        .unwrap();
    store
        .put_link(&Link::new(&other, &taken), None)
        .await
        .unwrap();

    let report = org.adopt_json(&["--apply"]).await;
    assert_eq!(
        kinds(&report),
        [
            "opportunity-linked-elsewhere",
            "referral-linked-elsewhere",
            "referral-not-found",
            "referral-on-several-opportunities",
            "referral-without-opportunity",
        ],
        "{report:#}"
    );
    let linked: Vec<&str> = report["link"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["referral_id"].as_str().unwrap())
        .collect();
    assert_eq!(linked, [ok.as_str()]);
    let text = report.to_string();
    for id in [ghost, &twice, &lonely, &moved, &taken] {
        assert!(text.contains(id), "{id} is named in the report");
    }
    assert_eq!(store.get_link_by_referral(&twice).await.unwrap(), None);
    assert_eq!(store.get_link_by_referral(&lonely).await.unwrap(), None);
    org.assert_no_writes();

    // The table says the same in words.
    let out = org.adopt(&[]).await;
    for words in [
        "which Partner Center does not have",
        "is named by 2 opportunities",
        "has no opportunity",
        "is already linked to opportunity",
        "but is already linked to referral",
    ] {
        assert!(out.stdout.contains(words), "{words}: {}", out.stdout);
    }
}

#[tokio::test]
async fn by_id_reads_each_named_referral_and_reports_the_missing_one() {
    let org = Org::new().await;
    let ok = org.referral("Matched");
    let o = org.opportunity("Matched", &ok);
    let ghost = "00000000-0000-0000-0000-0000000000bb";
    org.opportunity("Ghost", ghost);
    org.referral("Lonely");

    let report = org.adopt_json(&["--by-id"]).await;
    assert_eq!(kinds(&report), ["referral-not-found"], "{report:#}");
    assert_eq!(report["link"][0]["opportunity_id"], json!(o));
    let reads: Vec<String> = org
        .s
        .pc
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        reads.iter().all(|r| !r.ends_with("/referrals")),
        "no list read: {reads:?}"
    );
    org.assert_no_writes();
}
