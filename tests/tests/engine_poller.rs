//! The opportunity poller against the Dataverse stand-in: which changes become outbound
//! messages, what a quiet poll costs, full resync after token expiry, the `modifiedon`
//! fallback without change tracking, and that a failed enqueue never advances the cursor.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use cosell::crosswalk::Link;
use cosell::engine::poller::{poll_opportunities, DeltaState, PollReport, DELTA_STATE_KEY};
use cosell::engine::{OutboundMessage, SyncError};
use cosell::queue::Queue;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};
use support::drain::drain;
use support::failing_queue::FailingQueue;

const SET: &str = "opportunities";

fn insert(h: &Harness, name: &str, flagged: bool, referral_id: Option<&str>) -> String {
    let mut row = Map::new();
    row.insert("name".into(), json!(name));
    row.insert(h.config.columns.sync_flag.clone(), json!(flagged));
    if let Some(r) = referral_id {
        row.insert(h.config.columns.referral_id.clone(), json!(r));
    }
    h.dv.user_insert(SET, row).expect("opportunity table")
}

fn update(h: &Harness, id: &str, column: &str, value: Value) {
    let mut changes = Map::new();
    changes.insert(column.into(), value);
    h.dv.user_update(SET, id, changes).expect("row exists");
}

async fn poll(h: &Harness, queue: &dyn Queue) -> Result<PollReport, SyncError> {
    poll_opportunities(&h.engine.dv, h.store.as_ref(), queue, &h.config.columns).await
}

async fn drained(h: &Harness) -> Vec<OutboundMessage> {
    drain(h.outbound.as_ref())
        .await
        .iter()
        .map(|b| OutboundMessage::parse(b).unwrap())
        .collect()
}

fn ids(messages: &[OutboundMessage]) -> BTreeSet<String> {
    messages.iter().map(|m| m.opportunity_id.clone()).collect()
}

fn set(items: &[&String]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn state(h: &Harness) -> (DeltaState, u64) {
    let (value, version) = h.store.get_state(DELTA_STATE_KEY).await.unwrap().unwrap();
    (serde_json::from_str(&value).unwrap(), version)
}

#[tokio::test]
async fn flagged_and_linked_changes_are_queued_and_a_quiet_poll_is_one_request() {
    let h = Harness::start().await;
    let flagged = insert(&h, "Flagged", true, None);
    let plain = insert(&h, "Not for co-sell", false, None);
    let linked = insert(&h, "Linked", false, Some("ref-linked"));

    let first = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert!(first.full_resync);
    assert_eq!((first.enqueued, first.deleted), (2, 0));
    let msgs = drained(&h).await;
    assert_eq!(ids(&msgs), set(&[&flagged, &linked]));
    assert!(msgs.iter().all(|m| !m.deleted && m.modified_on.is_some()));
    assert!(state(&h).await.0.delta_link.is_some());

    // Edits, a new row, a linked row deleted, an unlinked row created and deleted.
    update(&h, &flagged, "name", json!("Flagged, renamed"));
    update(&h, &plain, &h.config.columns.sync_flag, json!(true));
    let added = insert(&h, "New", true, None);
    h.store
        .put_link(&Link::new("ref-linked", linked.clone()), None)
        .await
        .unwrap();
    assert!(h.dv.user_delete(SET, &linked));
    let fleeting = insert(&h, "Fleeting", true, None);
    assert!(h.dv.user_delete(SET, &fleeting));

    let second = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert!(!second.full_resync);
    assert_eq!((second.enqueued, second.deleted), (4, 1));
    let msgs = drained(&h).await;
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    let upserts: Vec<_> = msgs.iter().filter(|m| !m.deleted).cloned().collect();
    assert_eq!(ids(&upserts), set(&[&flagged, &plain, &added]));
    let deletes: Vec<_> = msgs.iter().filter(|m| m.deleted).cloned().collect();
    assert_eq!(ids(&deletes), set(&[&linked]));

    h.dv.reset_request_counts();
    let quiet = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert_eq!(quiet, PollReport::default());
    assert!(drained(&h).await.is_empty());
    assert_eq!(h.dv.total_requests(), 1, "{:?}", h.dv.request_counts());
}

#[tokio::test]
async fn an_expired_delta_token_means_a_full_resync() {
    let h = Harness::start().await;
    let a = insert(&h, "A", true, None);
    let b = insert(&h, "B", false, Some("ref-b"));
    insert(&h, "C", false, None);
    poll(&h, h.outbound.as_ref()).await.unwrap();
    drained(&h).await;

    h.dv.expire_delta_tokens();
    let report = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert!(report.full_resync);
    assert_eq!(report.enqueued, 2);
    assert_eq!(ids(&drained(&h).await), set(&[&a, &b]));
    // The fresh link works again.
    let quiet = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert_eq!(quiet, PollReport::default());
}

#[tokio::test]
async fn without_change_tracking_the_poller_uses_a_modifiedon_watermark() {
    let h = Harness::start().await;
    assert!(h.dv.set_change_tracking(SET, false));
    let a = insert(&h, "A", true, None);
    let b = insert(&h, "B", false, None);

    let first = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert!(first.full_resync);
    assert_eq!(first.enqueued, 1);
    assert_eq!(ids(&drained(&h).await), set(&[&a]));
    let (st, _) = state(&h).await;
    assert!(st.delta_link.is_none());
    assert!(st.watermark.is_some());

    // Rows at the watermark come back from `ge`; they are not queued twice.
    let again = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert_eq!(again.enqueued, 0);
    assert!(drained(&h).await.is_empty());

    update(&h, &b, &h.config.columns.sync_flag, json!(true));
    let third = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert!(!third.full_resync);
    assert_eq!(third.enqueued, 1);
    assert_eq!(ids(&drained(&h).await), set(&[&b]));
}

#[tokio::test]
async fn a_failing_queue_leaves_the_delta_link_where_it_was() {
    let h = Harness::start().await;
    poll(&h, h.outbound.as_ref()).await.unwrap();
    let before = state(&h).await;
    let added: Vec<String> = (0..12)
        .map(|i| insert(&h, &format!("Deal {i}"), true, None))
        .collect();

    let flaky = FailingQueue::after(h.outbound.clone() as Arc<dyn Queue>, 5);
    let err = poll(&h, &flaky).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(state(&h).await, before, "the cursor did not move");
    assert_eq!(
        drained(&h).await.len(),
        5,
        "what got through before the failure"
    );

    // The next poll reads the same changes again: nothing is lost.
    let report = poll(&h, h.outbound.as_ref()).await.unwrap();
    assert_eq!(report.enqueued, 12);
    let all: Vec<&String> = added.iter().collect();
    assert_eq!(ids(&drained(&h).await), set(&all));
    assert_ne!(state(&h).await, before);
}
