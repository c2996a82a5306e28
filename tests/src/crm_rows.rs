//! Rows a seller has in the CRM, shared by the engine scenarios.

use serde_json::{json, Map, Value};

use crate::harness::Harness;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// The "How can Microsoft help?" value the co-sell fixtures ask ("Demo or proof of concept").
pub const HELP_DEMO: i64 = 100_000_003;

/// A seller's flagged, open opportunity for Fabrikam (account and contact with an e-mail,
/// a deal value in USD, a close date, a solution) with what a co-sell referral needs; `help`
/// and `visibility` set the two deal-type columns (`None`: empty).
pub fn flagged_opportunity(h: &Harness, help: Option<i64>, visibility: Option<i64>) -> String {
    let account =
        h.dv.user_insert(
            "accounts",
            obj(json!({
                "name": "Fabrikam Inc",
                "address1_city": "Redmond",
                "address1_postalcode": "98052",
                "address1_country": "USA",
            })),
        )
        .expect("account");
    let contact =
        h.dv.user_insert(
            "contacts",
            obj(json!({
                "firstname": "Ada",
                "lastname": "Buyer",
                "emailaddress1": "ada@fabrikam.example",
                "_parentcustomerid_value": account,
            })),
        )
        .expect("contact");
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam field service",
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout to 40 technicians",
        "statecode": 0,
        "statuscode": 1,
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(help));
    row.insert(c.visibility.clone(), json!(visibility));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}
