//! Services co-sell referrals (issue 24, item 4): partnerRole, solutionArea and solutionPlay
//! mapped from the opportunity's columns, checked against the shipped taxonomy before the
//! create is sent (a bad one is refused with the reason in the audit column and nothing
//! reaches Partner Center), and the Partner Center stand-in refusing the same bodies itself.

use std::sync::Arc;

use cosell::config::{Config, Source};
use cosell::dataverse::DataverseClient;
use cosell::engine::{reconcile_pair, wiring, PairOutcome, SyncMessage};
use cosell::mapping::taxonomy::Taxonomy;
use cosell::partner_center::{PartnerCenterError, Referral};
use cosell::retry::RetryPolicy;
use cosell_tests::harness::{token_provider, Harness};
use dataverse_standin::Attribute;
use serde_json::{json, Map, Value};

const ROLE: &str = "new_partnerrole";
/// One refused case: the three column values (`None`: empty) and the audit words expected.
type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
const AREA: &str = "new_solutionarea";
const PLAY: &str = "new_solutionplay";

/// The default mapping plus the org's three Services columns.
const MAPPING: &str = r#"
extends = "default"

[[field]]
referral = "partnerRole"
table = "opportunity"
column = "new_partnerrole"
direction = "outbound"

[[field]]
referral = "solutionArea"
table = "opportunity"
column = "new_solutionarea"
direction = "outbound"

[[field]]
referral = "solutionPlay"
table = "opportunity"
column = "new_solutionplay"
direction = "outbound"

[schema]
opportunity_columns = ["new_partnerrole", "new_solutionarea", "new_solutionplay"]
"#;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

async fn harness() -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, MAPPING).unwrap();
    let path = file.display().to_string();
    let mut h = Harness::start_with(&[("COSELL_MAPPING_FILE", &path)]).await;
    for column in [ROLE, AREA, PLAY] {
        h.dv.declare_column(Attribute::new(column, "String"));
    }
    // The harness's fast-retry client, reading the mapped columns as the connector's does.
    h.engine.dv = Arc::new(
        DataverseClient::new(
            h.http.clone(),
            Arc::new(token_provider(&h.config, &h.http, false)),
            h.config.dataverse_url.clone(),
            h.config.columns.clone(),
            RetryPolicy::fast(),
        )
        .with_mapping(&h.engine.mapping),
    );
    (h, dir)
}

/// A flagged co-sell opportunity with these Services values (`None`: column left empty).
fn opportunity(h: &Harness, role: Option<&str>, area: Option<&str>, play: Option<&str>) -> String {
    let account = h
        .dv
        .user_insert(
            "accounts",
            obj(json!({"name": "Fabrikam Inc", "address1_postalcode": "98052", "address1_country": "US"})),
        )
        .unwrap();
    let contact = h
        .dv
        .user_insert(
            "contacts",
            obj(json!({"firstname": "Ada", "lastname": "Buyer", "emailaddress1": "ada@fabrikam.example",
                       "_parentcustomerid_value": account})),
        )
        .unwrap();
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam services",
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "statecode": 0, "statuscode": 1,
        "_parentaccountid_value": account, "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    for (column, value) in [(ROLE, role), (AREA, area), (PLAY, play)] {
        if let Some(v) = value {
            row.insert(column.into(), json!(v));
        }
    }
    h.dv.user_insert("opportunities", row).unwrap()
}

fn pc_creates(h: &Harness) -> usize {
    h.pc.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/referrals"))
        .count()
}

#[tokio::test]
async fn valid_services_values_are_sent_on_both_shared_referral_steps() {
    let (h, _dir) = harness().await;
    let t = Taxonomy::shipped();
    let area = &t.areas[1];
    let opp = opportunity(
        &h,
        Some(&t.partner_roles[0]),
        Some(&area.value),
        Some(&area.plays[0]),
    );
    let outcome = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&opp, None))
        .await
        .unwrap();
    let PairOutcome::ReferralCreated { referral_id, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let own = h.pc.referral(&referral_id).unwrap();
    assert_eq!(own["partnerRole"], json!(t.partner_roles[0]));
    assert_eq!(own["solutionArea"], json!(area.value));
    assert_eq!(own["solutionPlay"], json!(area.plays[0]));
    let engagement = own["engagementId"].as_str().unwrap();
    let for_microsoft = h.pc.referrals_for_microsoft(engagement);
    assert_eq!(for_microsoft.len(), 1);
    assert_eq!(for_microsoft[0]["solutionPlay"], json!(area.plays[0]));
}

#[tokio::test]
async fn missing_unknown_or_misplaced_values_are_refused_before_sending() {
    let (h, _dir) = harness().await;
    let t = Taxonomy::shipped();
    let (a, b) = (&t.areas[0], &t.areas[2]);
    let role = t.partner_roles[0].as_str();
    // (partnerRole, solutionArea, solutionPlay, words of the audit text)
    let cases: [Case; 4] = [
        (
            None,
            Some(&a.value),
            Some(&a.plays[0]),
            "Services co-sell: a Services co-sell referral needs partnerRole, solutionArea and solutionPlay; missing: partnerRole",
        ),
        (
            Some(role),
            Some("Modern Work"),
            Some(&a.plays[0]),
            "Services co-sell: 'Modern Work' is not a solutionArea of the services taxonomy",
        ),
        (
            Some(role),
            Some(&a.value),
            Some("Not A Play"),
            "'Not A Play' is not a solutionPlay of the services taxonomy",
        ),
        (
            Some(role),
            Some(&a.value),
            Some(&b.plays[0]),
            "does not belong to solution area",
        ),
    ];
    for (role, area, play, words) in cases {
        let opp = opportunity(&h, role, area, play);
        let err = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&opp, None))
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        let row = h.dv.row("opportunities", &opp).unwrap();
        let audit = row[&h.engine.columns.audit].as_str().unwrap_or_default();
        assert!(audit.contains("cannot create a referral"), "{audit}");
        assert!(audit.contains(words), "{words}: {audit}");
        assert_eq!(row["name"], "Fabrikam services ✘");
    }
    assert_eq!(pc_creates(&h), 0, "nothing was sent to Partner Center");
}

/// The same bodies sent straight to the stand-in, past the connector's check: it answers 400
/// as the service does.
#[tokio::test]
async fn the_partner_center_standin_refuses_the_same_values() {
    let (h, _dir) = harness().await;
    let t = Taxonomy::shipped();
    let (a, b) = (&t.areas[0], &t.areas[1]);
    let role = t.partner_roles[0].as_str();
    let body = |services: Value| -> Referral {
        let mut r = json!({
            "name": "Direct",
            "type": "Independent",
            "customerProfile": {"name": "Fabrikam", "address": {"country": "US"},
                                "team": [{"firstName": "Ada", "lastName": "Buyer", "email": "ada@fabrikam.example"}]},
            "consent": {"consentToShareReferralWithMicrosoftSellers": false},
            "details": {"dealValue": 10, "currency": "USD",
                        "requirements": {"solutions": [{"id": "Dynamics365forFieldService", "type": "Category"}]}},
            "target": [],
        });
        for (k, v) in services.as_object().unwrap() {
            r[k] = v.clone();
        }
        serde_json::from_value(r).unwrap()
    };
    let valid =
        body(json!({"partnerRole": role, "solutionArea": a.value, "solutionPlay": a.plays[0]}));
    h.engine
        .pc
        .create_referral(&valid)
        .await
        .expect("a valid triple is taken");
    for (services, words) in [
        (
            json!({"solutionArea": a.value, "solutionPlay": a.plays[0]}),
            "requires partnerRole",
        ),
        (
            json!({"partnerRole": role, "solutionArea": "Modern Work", "solutionPlay": a.plays[0]}),
            "not a valid solutionArea",
        ),
        (
            json!({"partnerRole": "Nobody", "solutionArea": a.value, "solutionPlay": a.plays[0]}),
            "not a valid partnerRole",
        ),
        (
            json!({"partnerRole": role, "solutionArea": a.value, "solutionPlay": b.plays[0]}),
            "not a valid solutionPlay for solutionArea",
        ),
    ] {
        let err = h
            .engine
            .pc
            .create_referral(&body(services))
            .await
            .unwrap_err();
        match err {
            PartnerCenterError::Invalid {
                status, message, ..
            } => {
                assert_eq!(status, 400);
                assert!(message.contains(words), "{words}: {message}");
            }
            other => panic!("{words}: {other:?}"),
        }
    }
}

/// `COSELL_SERVICES_TAXONOMY_FILE` replaces the shipped lists (Microsoft changed them); a
/// file that does not hold together stops start-up.
#[test]
fn a_taxonomy_file_of_ones_own_replaces_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taxonomy.toml");
    let config = |text: &str| -> Config {
        std::fs::write(&file, text).unwrap();
        Config::load(&Source::from_pairs([
            ("COSELL_TENANT_ID", "t".to_string()),
            ("COSELL_PC_CLIENT_ID", "pc".to_string()),
            ("COSELL_PC_CLIENT_SECRET", "s".to_string()),
            (
                "COSELL_DATAVERSE_URL",
                "https://org.crm.dynamics.com".to_string(),
            ),
            ("COSELL_DV_CLIENT_ID", "dv".to_string()),
            ("COSELL_DV_CLIENT_SECRET", "s".to_string()),
            ("COSELL_SERVICES_TAXONOMY_FILE", file.display().to_string()),
        ]))
        .unwrap()
    };
    let own = config(
        "partner_roles = [\"Builder\"]\n[[solution_area]]\nvalue = \"Next Area\"\nplays = [\"Next Play\"]\n",
    );
    let mapping = wiring::mapping(&own).expect("the own file loads");
    let body =
        json!({"partnerRole": "Builder", "solutionArea": "Next Area", "solutionPlay": "Next Play"});
    assert_eq!(mapping.services.check(&body), Ok(()));
    assert!(
        Taxonomy::shipped().check(&body).is_err(),
        "not the shipped lists"
    );

    let broken = config(
        "partner_roles = [\"Builder\"]\n[[solution_area]]\nvalue = \"Next Area\"\nplays = []\n",
    );
    let err = wiring::mapping(&broken).unwrap_err();
    assert!(err.to_string().contains("has no plays"), "{err}");
}
