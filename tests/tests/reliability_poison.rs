//! Poison messages: a referral the CRM rejects permanently (a business rule refuses its
//! opportunity) goes to the dead-letter queue with the reason, the rest of its batch syncs,
//! the failure is in the audit trail, and once the rule is lifted a replay syncs it.

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::AuditQuery;
use cosell::engine::disposition::queued;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::{OutMessage, Queue};
use cosell::store::Store;
use cosell_tests::harness::Harness;
use cosell_tests::queue_worker::QueueWorker;
use dataverse_standin::WriteRejection;
use serde_json::Value;

const RULE: &str = "Deals for sanctioned customers cannot be saved";

fn opportunities_for(h: &Harness, referral_id: &str) -> Vec<Value> {
    let column = &h.config.columns.referral_id;
    h.dv.rows("opportunities")
        .into_iter()
        .filter(|r| r[column.as_str()] == referral_id)
        .collect()
}

#[tokio::test]
async fn a_permanently_rejected_referral_is_dead_lettered_and_replays_after_the_fix() {
    let h = Harness::start().await;
    h.dv.reject_writes(WriteRejection {
        set: "opportunities".into(),
        column: "name".into(),
        contains: "SANCTIONED".into(),
        message: RULE.into(),
    });
    let names = [
        "Contoso ERP",
        "Northwind CRM",
        "Fabrikam SANCTIONED deal",
        "Tailspin analytics",
        "Wingtip migration",
    ];
    let ids: Vec<String> = names
        .iter()
        .map(|n| {
            h.pc.create_incoming_referral(n, &format!("{n} customer"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let poison = ids[2].clone();
    // One batch, the poison in the middle, each in its pair's group.
    let mut batch: Vec<OutMessage> = Vec::new();
    for id in &ids {
        let m = SyncMessage::for_referral(h.store.as_ref(), id, Origin::Referral, None)
            .await
            .unwrap();
        batch.push(queued(&m));
    }
    h.queue.send_batch(&batch).await.unwrap();

    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone() as Arc<dyn Queue>);
    assert!(
        worker.drain(Duration::from_secs(30)).await,
        "queues did not drain"
    );

    // The others synced, including those after the poison in the batch.
    for id in ids.iter().filter(|id| **id != poison) {
        assert_eq!(
            opportunities_for(&h, id).len(),
            1,
            "referral {id} not synced"
        );
        assert!(h.store.get_link_by_referral(id).await.unwrap().is_some());
    }
    assert!(opportunities_for(&h, &poison).is_empty());
    assert!(h
        .store
        .get_link_by_referral(&poison)
        .await
        .unwrap()
        .is_none());

    // Dead-lettered once, at the first attempt, with the CRM's reason.
    assert_eq!(worker.stats.dead_lettered, 1, "{:?}", worker.stats);
    let dead = h.queue.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains(RULE), "{}", dead[0].reason);
    assert_eq!(
        SyncMessage::parse(&dead[0].body)
            .unwrap()
            .referral_id
            .as_deref(),
        Some(poison.as_str())
    );
    assert_eq!(dead[0].receive_count, 1);

    // The audit trail has the failure, with the reason.
    let failures = h
        .store
        .query_audit(&AuditQuery {
            referral_id: Some(poison.clone()),
            failed_only: true,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(!failures.is_empty(), "no failed audit entry");
    assert!(
        failures
            .iter()
            .any(|e| e.error.as_deref().is_some_and(|t| t.contains(RULE))),
        "{failures:?}"
    );

    // The cause is fixed: replay brings it back and it syncs, once.
    h.dv.clear_write_rejections();
    assert_eq!(h.queue.replay_dead_letters(None).await.unwrap(), 1);
    assert!(worker.drain(Duration::from_secs(30)).await);
    assert_eq!(opportunities_for(&h, &poison).len(), 1);
    let link = h
        .store
        .get_link_by_referral(&poison)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        opportunities_for(&h, &poison)[0]["opportunityid"].as_str(),
        Some(link.opportunity_id.as_str())
    );
    assert!(h.queue.list_dead_letters(10).await.unwrap().is_empty());
    assert_eq!(worker.stats.dead_lettered, 1);
    // Five referrals, five opportunities: nothing was duplicated along the way.
    assert_eq!(h.dv.rows("opportunities").len(), 5);
}
