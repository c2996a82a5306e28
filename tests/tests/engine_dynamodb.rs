//! The pair reconcile, both directions, on the DynamoDB store (moto): the link with its
//! base and version, the conditional link writes of a second reconcile, the echo that
//! writes nothing, and the audit trail must come out as on the embedded store.

#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::sync::Arc;

use cosell::audit::{AuditQuery, Outcome};
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::store::dynamodb::DynamoStore;
use cosell::store::{aws_local, Store};
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

/// The harness with its engine on a fresh DynamoDB table; `None` without moto.
async fn on_dynamodb() -> Option<(Harness, Arc<DynamoStore>)> {
    let url = moto::url()?;
    let mut h = Harness::start().await;
    let client = aws_local::dynamodb_client(&url, moto::REGION).await;
    let store = DynamoStore::new(client, moto::unique("cosell-engine"));
    store.create_table_if_missing().await.expect("table");
    let store = Arc::new(store);
    h.engine.store = store.clone();
    Some((h, store))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

async fn patch(h: &Harness, id: &str, ops: Vec<PatchOp>) {
    let current = h.engine.pc.get_referral(id).await.expect("read referral");
    h.engine
        .pc
        .update_referral(id, current.e_tag.as_deref().expect("etag"), &ops)
        .await
        .expect("patch referral");
}

async fn from_referral(store: &DynamoStore, referral_id: &str) -> SyncMessage {
    SyncMessage::for_referral(store, referral_id, Origin::Referral, None)
        .await
        .expect("key from the store")
}

async fn audit_outcomes(store: &DynamoStore, referral_id: &str) -> Vec<Outcome> {
    let q = AuditQuery {
        referral_id: Some(referral_id.to_string()),
        ..AuditQuery::default()
    };
    let entries = store.query_audit(&q).await.expect("audit");
    entries.into_iter().map(|e| e.outcome).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_syncs_first_and_again_on_dynamodb() {
    let Some((h, store)) = on_dynamodb().await else {
        return;
    };
    let created = h.pc.create_incoming_referral("Contoso fleet", "Contoso");
    let id = created["id"].as_str().expect("referral id").to_string();
    patch(
        &h,
        &id,
        vec![PatchOp::replace(
            "/customerProfile/team",
            json!([{"firstName": "Ada", "lastName": "Buyer", "email": "ada@contoso.example"}]),
        )],
    )
    .await;

    let message = from_referral(&store, &id).await;
    assert_eq!(message.key, opportunity_id_for(&id));
    let opportunity_id = match reconcile_pair(&h.engine, &message).await.unwrap() {
        PairOutcome::OpportunityCreated {
            referral_id,
            opportunity_id,
        } => {
            assert_eq!(referral_id, id);
            opportunity_id
        }
        other => panic!("expected OpportunityCreated, got {other:?}"),
    };
    assert_eq!(opportunity_id, opportunity_id_for(&id), "the derived id");
    let v1 = store
        .get_link_by_referral(&id)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(
        (v1.version, v1.opportunity_id.as_str()),
        (1, opportunity_id.as_str())
    );
    let base = v1.base.clone().expect("the link stores the base");
    assert_eq!(
        base.fields.get("name").and_then(|v| v.as_str()),
        Some("Contoso fleet")
    );
    let after_create = audit_outcomes(&store, &id).await;
    assert!(!after_create.is_empty());

    patch(
        &h,
        &id,
        vec![PatchOp::replace("/name", json!("Contoso fleet, phase 2"))],
    )
    .await;
    // Now linked: the key comes from the link on DynamoDB.
    let message = from_referral(&store, &id).await;
    assert_eq!(message.key, opportunity_id);
    let again = reconcile_pair(&h.engine, &message).await.unwrap();
    assert!(
        matches!(&again, PairOutcome::Updated { opportunity_id: o, .. } if *o == opportunity_id),
        "{again:?}"
    );
    let v2 = store
        .get_link_by_referral(&id)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(
        v2.version, 2,
        "the second reconcile wrote over the link the first one wrote"
    );
    assert_eq!(
        v2.base
            .as_ref()
            .unwrap()
            .fields
            .get("name")
            .and_then(|v| v.as_str()),
        Some("Contoso fleet, phase 2")
    );
    let row = h.dv.row("opportunities", &opportunity_id).expect("row");
    assert!(
        row["name"].as_str().unwrap_or_default().contains("phase 2"),
        "{row}"
    );
    assert_eq!(h.dv.rows("opportunities").len(), 1, "no second opportunity");
    let after_update = audit_outcomes(&store, &id).await;
    assert!(after_update.len() > after_create.len());
    assert!(
        after_update.iter().all(|o| *o == Outcome::Success),
        "{after_update:?}"
    );

    // The same message again (our own echo): nothing written, no audit entry.
    let echo = reconcile_pair(&h.engine, &message).await.unwrap();
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    let v3 = store.get_link_by_referral(&id).await.unwrap().unwrap();
    assert_eq!(v3.version, 2);
    assert_eq!(audit_outcomes(&store, &id).await.len(), after_update.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opportunity_syncs_first_and_again_on_dynamodb() {
    let Some((h, store)) = on_dynamodb().await else {
        return;
    };
    let account = h.dv.user_insert(
        "accounts",
        obj(json!({"name": "Fabrikam Inc", "address1_city": "Redmond",
                   "address1_postalcode": "98052", "address1_country": "USA"})),
    );
    let contact = h.dv.user_insert(
        "contacts",
        obj(json!({"firstname": "Ada", "lastname": "Buyer",
                   "emailaddress1": "ada@fabrikam.example", "_parentcustomerid_value": account})),
    );
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam field service", "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "estimatedclosedate": "2026-09-30", "statecode": 0, "statuscode": 1,
        "_parentaccountid_value": account, "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    let opp = h.dv.user_insert("opportunities", row).expect("opportunity");
    let message = SyncMessage::for_opportunity(&opp, None);

    let referral_id = match reconcile_pair(&h.engine, &message).await.unwrap() {
        PairOutcome::ReferralCreated {
            referral_id,
            opportunity_id,
        } => {
            assert_eq!(opportunity_id, opp);
            referral_id
        }
        other => panic!("expected ReferralCreated, got {other:?}"),
    };
    let link = store
        .get_link_by_opportunity(&opp)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(
        (link.version, link.referral_id.as_str()),
        (1, referral_id.as_str())
    );
    assert!(link.base.is_some());
    let referral = h.pc.referral(&referral_id).expect("the referral");
    assert_eq!(referral["externalReferenceId"], opp.as_str());
    assert_eq!(
        audit_outcomes(&store, &referral_id).await,
        vec![Outcome::Success]
    );

    // Nothing changed since: the second reconcile reads the link and leaves it alone.
    let again = reconcile_pair(&h.engine, &message).await.unwrap();
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    assert_eq!(h.pc.partner_referrals().len(), 1, "no second referral");
    let link = store.get_link_by_opportunity(&opp).await.unwrap().unwrap();
    assert_eq!(link.version, 1);
    assert_eq!(audit_outcomes(&store, &referral_id).await.len(), 1);
}
