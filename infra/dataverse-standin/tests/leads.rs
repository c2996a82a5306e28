//! The lead table as the client uses it: creates with a chosen id, the state rules, the
//! connector's lead columns, and `QualifyLead` making the rows it is asked for.

mod common;

use common::*;
use cosell::dataverse::{DataverseError, Qualify};
use serde_json::json;

const LEAD: &str = "5a0e4c33-2f5d-4a0e-9b7d-1d2c3b4a5f60";

fn select() -> Vec<String> {
    vec![
        "subject".into(),
        "companyname".into(),
        columns().sync_flag,
        columns().referral_id,
    ]
}

async fn lead(env: &Env) {
    let body = map(json!({
        "subject": "Tailspin wants a demo", "companyname": "Tailspin Toys",
        "firstname": "Ana", "lastname": "Diaz", "emailaddress1": "ana@tailspin.example",
        "cosell_syncwithpartnercenter": true, "cosell_referralidentifier": "r-1"
    }));
    let made = env
        .client
        .create_lead_with_id(LEAD, &body, &select())
        .await
        .unwrap();
    assert_eq!(made.leadid.as_deref(), Some(LEAD));
    assert_eq!(made.statecode, Some(0));
}

#[tokio::test]
async fn a_lead_is_made_once_on_its_id_and_reads_back_with_its_columns() {
    let env = start().await;
    lead(&env).await;
    match env
        .client
        .create_lead_with_id(LEAD, &map(json!({"subject": "again"})), &select())
        .await
    {
        Err(DataverseError::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let read = env.client.get_lead(LEAD, &select()).await.unwrap().unwrap();
    assert_eq!(
        read.column("subject"),
        Some(&json!("Tailspin wants a demo"))
    );
    assert!(env
        .client
        .get_lead(&uuid(), &select())
        .await
        .unwrap()
        .is_none());
    // A connector column the lead lacks is refused, as Dataverse refuses it.
    let err = env
        .client
        .update_lead(LEAD, "*", &map(json!({"cosell_solutions": "x"})), &select())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cosell_solutions"), "{err}");
}

#[tokio::test]
async fn a_lead_cannot_be_qualified_by_an_update_and_is_read_only_once_closed() {
    let env = start().await;
    lead(&env).await;
    let qualify = map(json!({"statecode": 1, "statuscode": 3}));
    assert!(env
        .client
        .update_lead(LEAD, "*", &qualify, &select())
        .await
        .is_err());
    let disqualify = map(json!({"statecode": 2, "statuscode": 6}));
    let closed = env
        .client
        .update_lead(LEAD, "*", &disqualify, &select())
        .await
        .unwrap();
    assert_eq!(closed.statecode, Some(2));
    let edit = map(json!({"subject": "edited"}));
    let err = env
        .client
        .update_lead(LEAD, "*", &edit, &select())
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::ReadOnly { .. }), "{err:?}");
    // Reactivated, it takes edits again.
    let reopen = map(json!({"statecode": 0, "statuscode": 1}));
    env.client
        .update_lead(LEAD, "*", &reopen, &select())
        .await
        .unwrap();
    env.client
        .update_lead(LEAD, "*", &edit, &select())
        .await
        .unwrap();
}

#[tokio::test]
async fn qualifying_makes_the_rows_asked_for_each_pointing_back_at_the_lead() {
    let env = start().await;
    lead(&env).await;
    let made = env
        .client
        .qualify_lead(
            LEAD,
            Qualify {
                create_account: true,
                create_contact: true,
                create_opportunity: true,
            },
        )
        .await
        .unwrap();
    let id = |entity: &str| {
        made.iter()
            .find(|(e, _)| e == entity)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("no {entity} in {made:?}"))
    };
    let (account, contact, opp) = (id("account"), id("contact"), id("opportunity"));
    let o = env.standin.row("opportunities", &opp).unwrap();
    assert_eq!(o["name"], json!("Tailspin wants a demo"));
    assert_eq!(o["_originatingleadid_value"], json!(LEAD));
    assert_eq!(o["_customerid_value"], json!(account));
    assert_eq!(o["_parentcontactid_value"], json!(contact));
    let a = env.standin.row("accounts", &account).unwrap();
    assert_eq!(a["name"], json!("Tailspin Toys"));
    let c = env.standin.row("contacts", &contact).unwrap();
    assert_eq!(c["_parentcustomerid_value"], json!(account));
    let l = env.standin.row("leads", LEAD).unwrap();
    assert_eq!(
        (l["statecode"].clone(), l["statuscode"].clone()),
        (json!(1), json!(3))
    );
    let found = env
        .client
        .opportunity_from_lead(LEAD)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.opportunityid.as_deref(), Some(opp.as_str()));

    // A qualified lead cannot be qualified again.
    let again = env
        .client
        .qualify_lead(
            LEAD,
            Qualify {
                create_account: false,
                create_contact: false,
                create_opportunity: true,
            },
        )
        .await;
    assert!(again.is_err(), "{again:?}");
    assert_eq!(env.standin.rows("opportunities").len(), 1);
}

#[tokio::test]
async fn flagged_leads_are_listed_by_modifiedon() {
    let env = start().await;
    lead(&env).await;
    env.standin
        .user_insert("leads", map(json!({"subject": "not flagged"})));
    let rows = env
        .client
        .flagged_leads_since(
            time::OffsetDateTime::UNIX_EPOCH,
            &columns().sync_flag,
            &select(),
        )
        .await
        .unwrap();
    let ids: Vec<Option<&str>> = rows.iter().map(|l| l.leadid.as_deref()).collect();
    assert_eq!(ids, vec![Some(LEAD)]);
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let none = env
        .client
        .flagged_leads_since(later, &columns().sync_flag, &select())
        .await
        .unwrap();
    assert!(none.is_empty());
}

fn uuid() -> String {
    "00000000-0000-4000-8000-000000000001".into()
}
