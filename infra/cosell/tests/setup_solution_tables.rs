//! `cosell setup dataverse` and `cosell doctor` with a mapping that keeps solutions as rows:
//! the tables are checked with the queries the connector sends, not created; the text
//! column is not created; tables the org lacks are named, and setup then changes nothing.

use std::path::Path;

use cosell_cli::local::standins::{overlay, Standins};
use cosell_cli::onboard::run_args;
use cosell_cli::ops::{Exit, Settings};
use serde_json::Value;

async fn fresh_org() -> Standins {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let dv = dataverse_standin::StandinConfig {
        connector_columns: false,
        ..Default::default()
    };
    Standins::start_with(loopback, loopback, Default::default(), dv)
        .await
        .expect("stand-ins start")
}

/// Settings with a mapping file of `solutions` (the `[solutions]` section's body).
fn settings(s: &Standins, dir: &Path, solutions: &str) -> Settings {
    let file = dir.join("mapping.toml");
    std::fs::write(
        &file,
        format!("extends = \"default\"\n\n[solutions]\nlayout = \"table\"\n{solutions}"),
    )
    .unwrap();
    let more = [("COSELL_MAPPING_FILE", file.display().to_string())];
    Settings::Pairs(overlay(s.settings(&dir.join("data")), &more))
}

/// The doctor's JSON report's check named `name`.
fn named_check(report: &Value, name: &str) -> Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
        .clone()
}

#[tokio::test]
async fn setup_checks_the_tables_and_leaves_the_text_column_out() {
    let s = fresh_org().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = settings(&s, dir.path(), "");
    let out = run_args(&["setup", "dataverse", "--key-poll", "50ms"], &cfg).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    assert!(
        out.stdout.contains("ok       solution tables"),
        "{}",
        out.stdout
    );
    let columns = s.dv.custom_columns();
    assert!(columns.contains(&"cosell_audit".to_string()), "{columns:?}");
    assert!(
        !columns.contains(&"cosell_solutions".to_string()),
        "{columns:?}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn tables_the_org_lacks_are_named_and_nothing_is_changed() {
    let s = fresh_org().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = settings(
        &s,
        dir.path(),
        "set = \"new_dealsolutions\"\nnavigation = \"new_opportunity_dealsolutions\"\n",
    );
    let out = run_args(&["setup", "dataverse"], &cfg).await;
    assert_eq!(out.exit, Exit::Failure, "{out:?}");
    assert!(
        out.stdout
            .contains("missing  solution rows table new_dealsolutions"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("new_opportunity_dealsolutions"),
        "{}",
        out.stdout
    );
    // The catalogue the mapping names does exist: not reported.
    assert!(
        !out.stdout.contains("missing  solution catalogue"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("setup does not create tables"),
        "{}",
        out.stderr
    );
    assert!(s.dv.custom_columns().is_empty(), "nothing was created");
    assert!(s.dv.alternate_keys().is_empty());

    let doctor = run_args(&["doctor", "--output", "json"], &cfg).await;
    let report: Value =
        serde_json::from_str(&doctor.stdout).unwrap_or_else(|e| panic!("{e}: {doctor:?}"));
    let check = named_check(&report, "solution tables");
    assert_eq!(check["status"], "problem", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("new_dealsolutions"),
        "{check}"
    );
    s.shutdown().await;
}

/// The doctor's check of the rows' change tracking: ok when on, a warning with the fix when
/// off (the poll then misses removed rows).
#[tokio::test]
async fn doctor_warns_when_the_rows_table_tracks_no_changes() {
    let s = fresh_org().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = settings(&s, dir.path(), "");
    let out = run_args(&["setup", "dataverse", "--key-poll", "50ms"], &cfg).await;
    assert_eq!(out.exit, Exit::Ok, "{out:?}");
    let tracking = |report: &Value| named_check(report, "solution rows tracking");
    let doctor = run_args(&["doctor", "--output", "json"], &cfg).await;
    let report: Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert_eq!(tracking(&report)["status"], "ok", "{report}");

    assert!(s
        .dv
        .set_change_tracking(dataverse_standin::solution_tables::CHILD_SET, false));
    let doctor = run_args(&["doctor", "--output", "json"], &cfg).await;
    let report: Value = serde_json::from_str(&doctor.stdout).unwrap();
    let check = tracking(&report);
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["fix"].as_str().unwrap().contains("Track changes"),
        "{check}"
    );
    s.shutdown().await;
}
