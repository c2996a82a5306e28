//! Messages are delivered at least once and workers run in parallel: many syncs of the same
//! new record at the same moment must still create exactly one record on the other side.

use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::outbound::{sync_opportunity, OutboundOutcome};
use cosell::engine::{InboundMessage, InboundTrigger, OutboundMessage, SyncError};
use cosell_tests::harness::Harness;
use dataverse_standin::{Fault, FaultKind};
use serde_json::{json, Map, Value};

const WORKERS: usize = 8;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// Runs `attempt` until it stops asking for a retry (the loser of the creation lease is
/// told to look again shortly).
async fn settle<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SyncError>>,
{
    for _ in 0..50 {
        match attempt().await {
            Ok(v) => return v,
            Err(SyncError::Retry { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => panic!("permanent failure: {e}"),
        }
    }
    panic!("still retrying after 50 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_deliveries_of_a_new_referral_create_one_opportunity_and_one_account() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let id = created["id"].as_str().expect("referral id").to_string();
    // Slow lookups widen the window in which every worker has found nothing yet.
    h.dv.add_fault(
        Fault::new(FaultKind::Delay { millis: 150 }, WORKERS as u32).on("GET", "accounts"),
    );
    h.dv.add_fault(
        Fault::new(FaultKind::Delay { millis: 150 }, WORKERS as u32).on("GET", "opportunities"),
    );

    let mut tasks = Vec::new();
    for i in 0..WORKERS {
        let engine = h.engine.clone();
        let message = InboundMessage {
            referral_id: id.clone(),
            trigger: if i % 2 == 0 {
                InboundTrigger::ReferralCreated
            } else {
                InboundTrigger::ReferralUpdated
            },
            changed_at: None,
        };
        tasks.push(tokio::spawn(async move {
            settle(|| sync_referral(&engine, &message)).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }

    let created_count = outcomes
        .iter()
        .filter(|o| matches!(o, InboundOutcome::Created { .. }))
        .count();
    assert_eq!(created_count, 1, "{outcomes:?}");
    let column = &h.engine.columns.referral_id;
    let opps: Vec<Value> =
        h.dv.rows("opportunities")
            .into_iter()
            .filter(|r| r[column.as_str()] == json!(id))
            .collect();
    assert_eq!(opps.len(), 1, "{opps:#?}");
    let accounts: Vec<Value> =
        h.dv.rows("accounts")
            .into_iter()
            .filter(|r| r["name"] == json!("Contoso Ltd"))
            .collect();
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    let link = h
        .engine
        .store
        .get_link_by_referral(&id)
        .await
        .expect("store")
        .expect("link");
    assert_eq!(
        link.opportunity_id,
        opps[0]["opportunityid"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_polls_of_a_new_flagged_opportunity_create_one_referral() {
    let h = Harness::start().await;
    let account = h
        .dv
        .user_insert(
            "accounts",
            obj(json!({"name": "Fabrikam Inc", "address1_postalcode": "98052", "address1_country": "USA"})),
        )
        .expect("account");
    let contact = h
        .dv
        .user_insert(
            "contacts",
            obj(json!({"firstname": "Ada", "lastname": "Buyer", "emailaddress1": "ada@fabrikam.example", "_parentcustomerid_value": account})),
        )
        .expect("contact");
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam field service",
        "estimatedvalue": 50000.0,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout",
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    let opp = h.dv.user_insert("opportunities", row).expect("opportunity");

    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let engine = h.engine.clone();
        let message = OutboundMessage {
            opportunity_id: opp.clone(),
            modified_on: None,
            deleted: false,
        };
        tasks.push(tokio::spawn(async move {
            settle(|| sync_opportunity(&engine, &message)).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let created_count = outcomes
        .iter()
        .filter(|o| matches!(o, OutboundOutcome::Created { .. }))
        .count();
    assert_eq!(created_count, 1, "{outcomes:?}");
    let referrals: Vec<Value> =
        h.pc.referrals()
            .into_iter()
            .filter(|r| r["externalReferenceId"] == json!(opp))
            .collect();
    assert_eq!(referrals.len(), 1, "{referrals:#?}");
}
