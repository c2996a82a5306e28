//! Both sync directions on the DynamoDB store (moto). There a lease can tell a first sync
//! (no holder ever), and the engine then keeps the link it read while taking the lease;
//! any later sync finds the marker of the last release and reads the link again. Either
//! way the crosswalk, the rows and the audit trail must come out as on the embedded store.

#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::{AuditQuery, Outcome};
use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::outbound::{sync_opportunity, OutboundOutcome};
use cosell::engine::{InboundMessage, InboundTrigger, OutboundMessage};
use cosell::partner_center::PatchOp;
use cosell::store::dynamodb::DynamoStore;
use cosell::store::{aws_local, LeaseClaim, Store};
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

fn inbound(referral_id: &str) -> InboundMessage {
    InboundMessage {
        referral_id: referral_id.to_string(),
        trigger: InboundTrigger::ReferralUpdated,
        changed_at: None,
    }
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

    let opportunity_id = match sync_referral(&h.engine, &inbound(&id)).await.unwrap() {
        InboundOutcome::Created { opportunity_id } => opportunity_id,
        other => panic!("expected Created, got {other:?}"),
    };
    let v1 = store
        .get_link_by_referral(&id)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(
        (v1.version, v1.opportunity_id.as_str()),
        (1, opportunity_id.as_str())
    );

    patch(
        &h,
        &id,
        vec![PatchOp::replace("/name", json!("Contoso fleet, phase 2"))],
    )
    .await;
    let again = sync_referral(&h.engine, &inbound(&id)).await.unwrap();
    assert_eq!(
        again,
        InboundOutcome::Updated {
            opportunity_id: opportunity_id.clone()
        }
    );
    let v2 = store
        .get_link_by_referral(&id)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(
        v2.version, 2,
        "the second sync read the link the first one wrote"
    );
    let row = h.dv.row("opportunities", &opportunity_id).expect("row");
    assert!(
        row["name"].as_str().unwrap_or_default().contains("phase 2"),
        "{row}"
    );
    assert_eq!(h.dv.rows("opportunities").len(), 1, "no second opportunity");
    assert_eq!(
        audit_outcomes(&store, &id).await,
        vec![Outcome::Success, Outcome::Success]
    );
    // Each sync gave its lease back, leaving the marker that makes the next claim re-read.
    let lease = format!("lease/sync/inbound/{id}");
    let claim = store
        .claim_lease(&lease, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(claim, LeaseClaim::Reclaimed);
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
        "name": "Fabrikam field service", "estimatedvalue": 50000.0,
        "estimatedclosedate": "2026-09-30", "statecode": 0, "statuscode": 1,
        "_parentaccountid_value": account, "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    let opp = h.dv.user_insert("opportunities", row).expect("opportunity");
    let message = OutboundMessage {
        opportunity_id: opp.clone(),
        modified_on: None,
        deleted: false,
    };

    let referral_id = match sync_opportunity(&h.engine, &message).await.unwrap() {
        OutboundOutcome::Created { referral_id } => referral_id,
        other => panic!("expected Created, got {other:?}"),
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
    assert!(h.pc.referral(&referral_id).is_some());
    assert_eq!(
        audit_outcomes(&store, &referral_id).await,
        vec![Outcome::Success]
    );

    // Nothing changed since: the second sync reads the link again and leaves it alone.
    let again = sync_opportunity(&h.engine, &message).await.unwrap();
    assert!(
        matches!(again, OutboundOutcome::Unchanged { .. }),
        "{again:?}"
    );
    assert_eq!(h.pc.referrals().len(), 1, "no second referral");
    let lease = format!("lease/sync/outbound/{opp}");
    let claim = store
        .claim_lease(&lease, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(claim, LeaseClaim::Reclaimed);
}
