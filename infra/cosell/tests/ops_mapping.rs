//! `cosell mapping check`: the shipped default passes and prints; broken files list every problem.

use cosell_cli::ops::{run_args, Exit, Settings};
use serde_json::Value;

const DEFAULT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/mapping/default.toml"
);

#[tokio::test]
async fn the_default_mapping_is_valid_and_printed_as_table_and_json() {
    let settings = Settings::Pairs(vec![]);
    let out = run_args(&["mapping", "check", DEFAULT_FILE], &settings).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    let mapping = cosell::mapping::Mapping::default_mapping();
    assert!(out.stdout.starts_with("REFERRAL FIELD"), "{}", out.stdout);
    assert!(out.stdout.contains("details.dealValue"));
    assert!(out.stdout.contains("opportunity.estimatedvalue"));
    assert!(out
        .stdout
        .contains(&format!("valid: {} field(s)", mapping.fields.len())));

    let out = run_args(&["mapping", "check", DEFAULT_FILE, "-o", "json"], &settings).await;
    assert_eq!(out.exit, Exit::Ok);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    let fields = v["fields"].as_array().unwrap();
    assert_eq!(fields.len(), mapping.fields.len());
    let deal = fields
        .iter()
        .find(|f| f["referral"] == "details.dealValue")
        .unwrap();
    assert_eq!(deal["column"], "estimatedvalue");
    assert_eq!(deal["transform"], "money");
    assert_eq!(deal["direction"], "both");
}

#[tokio::test]
async fn a_broken_mapping_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        r#"
[[field]]
referral = "details.noSuchThing"
table = "opportunity"
column = "name"

[[field]]
referral = "name"
table = "invoice"
column = "name"
direction = "sideways"
"#,
    )
    .unwrap();
    let path = file.display().to_string();
    let out = run_args(&["mapping", "check", &path], &Settings::Pairs(vec![])).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stdout.contains("unknown referral field path"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("unknown table 'invoice'"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("unknown direction 'sideways'"),
        "{}",
        out.stdout
    );

    let out = run_args(
        &["mapping", "check", &path, "-o", "json"],
        &Settings::Pairs(vec![]),
    )
    .await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["errors"].as_array().unwrap().len() >= 3);

    std::fs::write(&file, "this is = = not toml").unwrap();
    let out = run_args(&["mapping", "check", &path], &Settings::Pairs(vec![])).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(out.stdout.contains("not valid TOML"), "{}", out.stdout);

    let out = run_args(
        &["mapping", "check", "/nonexistent/mapping.toml"],
        &Settings::Pairs(vec![]),
    )
    .await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stdout.contains("cannot read mapping file"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn configured_column_names_are_used_and_checked() {
    // A file using a connector column placeholder validates with renamed columns too.
    let renamed = Settings::Pairs(vec![(
        "COSELL_COL_REFERRAL_ID".into(),
        "new_referralid".into(),
    )]);
    let out = run_args(&["mapping", "check", DEFAULT_FILE], &renamed).await;
    assert_eq!(out.exit, Exit::Ok, "{}", out.stderr);
    let bad = Settings::Pairs(vec![("COSELL_COL_REFERRAL_ID".into(), "bad name!".into())]);
    let out = run_args(&["mapping", "check", DEFAULT_FILE], &bad).await;
    assert_eq!(out.exit, Exit::Failure);
    assert!(
        out.stderr.contains("COSELL_COL_REFERRAL_ID"),
        "{}",
        out.stderr
    );
}
