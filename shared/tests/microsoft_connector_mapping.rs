//! The shipped files for moving off Microsoft's co-sell connector
//! (`shared/mapping/microsoft-connector.toml` and its `.settings.toml`), loaded the way the
//! connector loads its settings and mapping: the config file through `Source::with_file`,
//! the mapping through `wiring::mapping` (what `Engine::from_config` calls).

use std::path::{Path, PathBuf};

use cosell::config::{Config, Source};
use cosell::engine::wiring;
use cosell::mapping::{resolve_column, Side};

const MAPPING: &str = "microsoft-connector.toml";
const SETTINGS: &str = "microsoft-connector.settings.toml";

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mapping")
        .join(name)
}

/// The settings file's keys with the credentials a full load requires; the mapping path is
/// made absolute (the file's is relative to a checkout's root, where cosell runs).
fn config() -> Config {
    let source = Source::from_pairs([
        ("COSELL_TENANT_ID", "contoso.onmicrosoft.com".to_string()),
        ("COSELL_PC_CLIENT_ID", "pc".to_string()),
        ("COSELL_PC_CLIENT_SECRET", "pc-secret".to_string()),
        (
            "COSELL_DATAVERSE_URL",
            "https://contoso.crm.dynamics.com".to_string(),
        ),
        ("COSELL_DV_CLIENT_ID", "dv".to_string()),
        ("COSELL_DV_CLIENT_SECRET", "dv-secret".to_string()),
        (
            "COSELL_MAPPING_FILE",
            shipped(MAPPING).display().to_string(),
        ),
    ])
    .with_file(&shipped(SETTINGS))
    .expect("the settings file parses");
    Config::load(&source).expect("the settings load")
}

#[test]
fn the_settings_point_the_connector_columns_at_microsofts_and_the_mapping_loads() {
    let config = config();
    let cols = &config.columns;
    assert_eq!(cols.sync_flag, "msp_syncwithpartnercenter");
    assert_eq!(cols.referral_id, "msp_referralidentifier");
    assert_eq!(cols.referral_link, "msp_referrallink");
    assert_eq!(cols.help_needed, "msp_howcanmicrosofthelp");
    assert_eq!(cols.audit, "msp_audit");
    // Microsoft's connector has none of these two: they stay this connector's.
    assert_eq!(cols.solutions, "cosell_solutions");
    assert_eq!(cols.decision, "cosell_referraldecision");

    let mapping = wiring::mapping(&config).expect("the Microsoft connector mapping validates");
    let id = mapping.field("id").expect("the referral id is mapped");
    assert_eq!(
        resolve_column(&id.column, cols),
        Ok("msp_referralidentifier")
    );
    assert_eq!(
        resolve_column(&mapping.deal_type.column, cols),
        Ok("msp_howcanmicrosofthelp")
    );
    // It extends the default: the default's fields are all there.
    for path in ["name", "details.dealValue", "customerProfile.name"] {
        assert!(mapping.field(path).is_some(), "{path} is mapped");
    }
    // The referral's solutions fill the new text column on an adopted pair's first sync.
    assert_eq!(
        mapping
            .conflict
            .fields
            .get("details.requirements.solutions"),
        Some(&Side::PartnerCenter)
    );
    assert_eq!(mapping.value_maps["help_needed"].entries.len(), 6);
}

#[test]
fn each_unverified_column_name_is_one_line_to_change() {
    let text = std::fs::read_to_string(shipped(SETTINGS)).unwrap();
    for key in [
        "COSELL_COL_SYNC",
        "COSELL_COL_REFERRAL_ID",
        "COSELL_COL_REFERRAL_LINK",
        "COSELL_COL_HELP",
        "COSELL_COL_AUDIT",
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{key} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{key} is set on exactly one line");
        assert!(lines[0].contains("UNVERIFIED"), "{key}: {}", lines[0]);
    }
}

#[test]
fn the_settings_name_the_shipped_mapping_relative_to_a_checkout() {
    let table: toml::Table = std::fs::read_to_string(shipped(SETTINGS))
        .unwrap()
        .parse()
        .unwrap();
    let path = table["COSELL_MAPPING_FILE"].as_str().unwrap();
    assert!(Path::new(path).is_relative(), "{path}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert_eq!(root.join(path), shipped(MAPPING));
}
