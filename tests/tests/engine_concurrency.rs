//! Messages are delivered at least once and workers run in parallel. The sync queue hands
//! out one message per pair at a time, and every write is conditional besides: racing
//! reconciles of one pair (a duplicate delivery, a visibility that ran out) must still
//! leave exactly one record on each side, and both sides equal.

use std::sync::Arc;
use std::time::Duration;

use cosell::engine::disposition::queued;
use cosell::engine::pair::key;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::queue::Queue;
use cosell_tests::harness::Harness;
use cosell_tests::queue_worker::QueueWorker;
use serde_json::{json, Map, Value};

const WORKERS: usize = 8;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// Runs `attempt` until it stops asking for a retry, as the queue would.
async fn settle<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SyncError>>,
{
    for _ in 0..50 {
        match attempt().await {
            Ok(v) => return v,
            Err(SyncError::Retry { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("permanent failure: {e}"),
        }
    }
    panic!("still retrying after 50 attempts");
}

/// A flagged opportunity for Fabrikam with every outbound field set.
fn flagged_opportunity(h: &Harness) -> String {
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
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout",
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}

fn referrals_for(h: &Harness, opp: &str) -> Vec<Value> {
    h.pc.partner_referrals()
        .into_iter()
        .filter(|r| r["externalReferenceId"] == json!(opp))
        .collect()
}

/// Both sides hold the same mapped values and status as the link's base (what the next
/// reconcile compares against): nothing is left to copy either way.
async fn both_sides_equal(h: &Harness, rid: &str, opp: &str) {
    let link = h
        .engine
        .store
        .get_link_by_opportunity(opp)
        .await
        .expect("store")
        .expect("link");
    assert_eq!(link.referral_id, rid);
    let base = link.base.expect("base");
    let referral = h.engine.pc.get_referral(rid).await.unwrap();
    assert_eq!(base.fields, h.engine.mapping.referral_values(&referral));
    let writes = h.pc.requests().len();
    let etag = h.dv.row("opportunities", opp).unwrap()["@odata.etag"].clone();
    let operator = SyncMessage {
        origin: Origin::Operator,
        ..SyncMessage::for_opportunity(opp, None)
    };
    let out = reconcile_pair(&h.engine, &operator).await.unwrap();
    assert!(matches!(out, PairOutcome::Unchanged { .. }), "{out:?}");
    let pc_written = h.pc.requests()[writes..]
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(pc_written, 0, "nothing left to send to Partner Center");
    assert_eq!(
        h.dv.row("opportunities", opp).unwrap()["@odata.etag"],
        etag,
        "nothing left to write in the CRM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_deliveries_of_a_new_referral_create_one_opportunity_and_one_account() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let id = created["id"].as_str().expect("referral id").to_string();
    // Slow lookups widen the window in which every reconcile has found nothing yet.
    h.dv.add_fault(
        dataverse_standin::Fault::new(
            dataverse_standin::FaultKind::Delay { millis: 150 },
            WORKERS as u32,
        )
        .on("GET", "accounts"),
    );
    h.dv.add_fault(
        dataverse_standin::Fault::new(
            dataverse_standin::FaultKind::Delay { millis: 150 },
            WORKERS as u32,
        )
        .on("GET", "opportunities"),
    );

    let message = SyncMessage::for_referral(h.store.as_ref(), &id, Origin::Referral, None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let engine = h.engine.clone();
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            settle(|| reconcile_pair(&engine, &message)).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }

    let created_count = outcomes
        .iter()
        .filter(|o| matches!(o, PairOutcome::OpportunityCreated { .. }))
        .count();
    // At most one reports the create: a creator that then loses the link write to an
    // adopter finds the pair linked on its retry and reports what that retry saw.
    assert!(created_count <= 1, "{outcomes:?}");
    let column = &h.engine.columns.referral_id;
    let opps: Vec<Value> =
        h.dv.rows("opportunities")
            .into_iter()
            .filter(|r| r[column.as_str()] == json!(id))
            .collect();
    assert_eq!(opps.len(), 1, "{opps:#?}");
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    let accounts: Vec<Value> =
        h.dv.rows("accounts")
            .into_iter()
            .filter(|r| r["name"] == json!("Contoso Ltd"))
            .collect();
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    let opp = key::opportunity_id_for(&id);
    assert_eq!(opps[0]["opportunityid"].as_str().unwrap(), opp);
    both_sides_equal(&h, &id, &opp).await;
}

/// Many copies of the poller's message for a new flagged opportunity, on the sync queue,
/// with several workers taking from it at once (one message each at a time): the queue
/// gives the pair to one worker at a time, so one referral is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_polls_of_a_new_flagged_opportunity_create_one_referral() {
    let h = Harness::start().await;
    let opp = flagged_opportunity(&h);
    // A slow lookup widens the window in which a second reconcile would find nothing.
    h.pc.add_fault(
        partner_center_standin::Fault::new(
            partner_center_standin::FaultKind::Delay { millis: 150 },
            WORKERS as u32,
        )
        .on("GET", "/v1.0/engagements/referrals"),
    );
    for i in 0..WORKERS {
        // Distinct change times: distinct messages, not de-duplicated by the queue.
        let m = SyncMessage::for_opportunity(&opp, Some(format!("2026-01-01T00:00:0{i}Z")));
        h.queue.send(&queued(&m)).await.unwrap();
    }

    let queue: Arc<dyn Queue> = h.queue.clone();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let engine = h.engine.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..200 {
                let batch = queue
                    .receive(1, Duration::from_secs(60), Duration::ZERO)
                    .await
                    .unwrap();
                let Some(received) = batch.into_iter().next() else {
                    let d = queue.depth().await.unwrap();
                    if d.visible + d.in_flight + d.delayed == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let m = SyncMessage::parse(&received.body).unwrap();
                let result = reconcile_pair(&engine, &m).await;
                let ok = result.as_ref().ok().cloned();
                let disposition = cosell::engine::Disposition::of(
                    &result,
                    received.receive_count,
                    8,
                    Duration::from_millis(20),
                );
                match disposition {
                    cosell::engine::Disposition::Retry { .. } => queue
                        .release(&received.receipt, Duration::ZERO)
                        .await
                        .unwrap(),
                    d => d.apply(queue.as_ref(), &received).await.unwrap(),
                }
                outcomes.extend(ok);
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.expect("task"));
    }
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, PairOutcome::ReferralCreated { .. }))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert_eq!(outcomes.len(), WORKERS, "{outcomes:?}");
    let referrals = referrals_for(&h, &opp);
    assert_eq!(referrals.len(), 1, "{referrals:#?}");
    let rid = referrals[0]["id"].as_str().unwrap().to_string();
    both_sides_equal(&h, &rid, &opp).await;
}

/// The same queue path, through the test worker the other suites use: the copies after
/// the create are our own echo.
#[tokio::test]
async fn the_worker_drains_duplicate_polls_into_one_referral() {
    let h = Harness::start().await;
    let opp = flagged_opportunity(&h);
    for i in 0..3 {
        let m = SyncMessage::for_opportunity(&opp, Some(format!("2026-01-01T00:00:0{i}Z")));
        h.queue.send(&queued(&m)).await.unwrap();
    }
    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone());
    assert!(worker.drain(Duration::from_secs(20)).await);
    assert_eq!(worker.stats.done, 3, "{:?}", worker.stats);
    assert_eq!(worker.stats.dead_lettered, 0);
    assert_eq!(referrals_for(&h, &opp).len(), 1);
}

/// Two reconciles of one linked pair at the same moment (a duplicate delivery, or a
/// visibility that ran out mid-reconcile), with both sides edited: the conditional writes
/// make the loser read again, and both edits land once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_reconciles_of_one_linked_pair_racing_leave_both_sides_equal() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let message = SyncMessage::for_referral(h.store.as_ref(), &rid, Origin::Referral, None)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        settle(|| reconcile_pair(&h.engine, &message)),
        settle(|| reconcile_pair(&h.engine, &message)),
    );
    let creates = [&a, &b]
        .iter()
        .filter(|o| matches!(o, PairOutcome::OpportunityCreated { .. }))
        .count();
    assert!(creates <= 1, "{a:?} {b:?}");
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    let opp = key::opportunity_id_for(&rid);

    // Microsoft renames the deal while the seller changes its value; both messages race.
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "Contoso ERP phase 2")],
        )
        .await
        .unwrap();
    h.dv.user_update(
        "opportunities",
        &opp,
        obj(json!({"estimatedvalue": 77000.0})),
    )
    .unwrap();
    let webhook = SyncMessage::for_referral(h.store.as_ref(), &rid, Origin::Referral, None)
        .await
        .unwrap();
    let poll = SyncMessage::for_opportunity(&opp, None);
    let (a, b) = tokio::join!(
        settle(|| reconcile_pair(&h.engine, &webhook)),
        settle(|| reconcile_pair(&h.engine, &poll)),
    );
    assert!(
        [&a, &b]
            .iter()
            .any(|o| matches!(o, PairOutcome::Updated { .. })),
        "{a:?} {b:?}"
    );
    assert_eq!(h.pc.partner_referrals().len(), 1);
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert!(
        row["name"]
            .as_str()
            .unwrap()
            .starts_with("Contoso ERP phase 2"),
        "{row:#}"
    );
    assert_eq!(row["estimatedvalue"].as_f64(), Some(77000.0));
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(referral["details"]["dealValue"].as_f64(), Some(77000.0));
    both_sides_equal(&h, &rid, &opp).await;
}

/// Two reconciles of a new flagged opportunity at the same moment, outside the queue's
/// one-per-pair rule (a visibility that ran out during a slow create): still one referral.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "limitation: Partner Center has no conditional create, so two reconciles of one new pair running at once (outside the FIFO queue, which never hands out two of one pair) can both create; the loser no longer fails permanently"]
async fn two_reconciles_of_a_new_flagged_opportunity_racing_create_one_referral() {
    let h = Harness::start().await;
    let opp = flagged_opportunity(&h);
    let poll = SyncMessage::for_opportunity(&opp, None);
    let (a, b) = tokio::join!(
        settle(|| reconcile_pair(&h.engine, &poll)),
        settle(|| reconcile_pair(&h.engine, &poll)),
    );
    let referrals = referrals_for(&h, &opp);
    assert_eq!(referrals.len(), 1, "{a:?} {b:?} {referrals:#?}");
    let rid = referrals[0]["id"].as_str().unwrap().to_string();
    both_sides_equal(&h, &rid, &opp).await;
}
