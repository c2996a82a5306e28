//! The opportunity poller against the Dataverse stand-in: which changes become sync
//! messages (keyed and grouped by the opportunity, the pair key), what a quiet poll costs,
//! full resync after token expiry, the `modifiedon` fallback without change tracking, and
//! that a failed enqueue never advances the cursor.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cosell::crosswalk::Link;
use cosell::engine::poller::{poll_opportunities, DeltaState, PollReport, DELTA_STATE_KEY};
use cosell::engine::{Origin, SyncError, SyncMessage};
use cosell::queue::Queue;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};
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

/// Every queued message; each is in its pair's group and comes from the poll.
async fn drained(h: &Harness) -> Vec<SyncMessage> {
    let mut out = Vec::new();
    loop {
        let got = h
            .queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if got.is_empty() {
            return out;
        }
        for m in got {
            h.queue.ack(&m.receipt).await.unwrap();
            let message = SyncMessage::parse(&m.body).unwrap();
            assert_eq!(m.group.as_deref(), Some(message.key.as_str()));
            assert_eq!(message.origin, Origin::Opportunity);
            assert!(message.referral_id.is_none());
            out.push(message);
        }
    }
}

fn ids(messages: &[SyncMessage]) -> BTreeSet<String> {
    messages.iter().map(|m| m.key.clone()).collect()
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

    let first = poll(&h, h.queue.as_ref()).await.unwrap();
    assert!(first.full_resync);
    assert_eq!((first.enqueued, first.deleted), (2, 0));
    let msgs = drained(&h).await;
    assert_eq!(ids(&msgs), set(&[&flagged, &linked]));
    assert!(msgs.iter().all(|m| !m.deleted && m.changed_at.is_some()));
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

    let second = poll(&h, h.queue.as_ref()).await.unwrap();
    assert!(!second.full_resync);
    assert_eq!((second.enqueued, second.deleted), (4, 1));
    let msgs = drained(&h).await;
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    let upserts: Vec<_> = msgs.iter().filter(|m| !m.deleted).cloned().collect();
    assert_eq!(ids(&upserts), set(&[&flagged, &plain, &added]));
    let deletes: Vec<_> = msgs.iter().filter(|m| m.deleted).cloned().collect();
    assert_eq!(ids(&deletes), set(&[&linked]));

    h.dv.reset_request_counts();
    let quiet = poll(&h, h.queue.as_ref()).await.unwrap();
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
    poll(&h, h.queue.as_ref()).await.unwrap();
    drained(&h).await;

    update(&h, &a, "name", json!("A, renamed"));
    h.dv.expire_delta_tokens();
    let report = poll(&h, h.queue.as_ref()).await.unwrap();
    assert!(report.full_resync);
    assert_eq!(report.enqueued, 2);
    // Both are sent again: the edited one for its change; the other one too (the same
    // version, which the queue may drop as a duplicate).
    let again = ids(&drained(&h).await);
    assert!(again.contains(&a), "{again:?}");
    assert!(again.is_subset(&set(&[&a, &b])), "{again:?}");
    // The fresh link works again.
    let quiet = poll(&h, h.queue.as_ref()).await.unwrap();
    assert_eq!(quiet, PollReport::default());
}

#[tokio::test]
async fn without_change_tracking_the_poller_uses_a_modifiedon_watermark() {
    let h = Harness::start().await;
    assert!(h.dv.set_change_tracking(SET, false));
    let a = insert(&h, "A", true, None);
    let b = insert(&h, "B", false, None);

    let first = poll(&h, h.queue.as_ref()).await.unwrap();
    assert!(first.full_resync);
    assert_eq!(first.enqueued, 1);
    assert_eq!(ids(&drained(&h).await), set(&[&a]));
    let (st, _) = state(&h).await;
    assert!(st.delta_link.is_none());
    assert!(st.watermark.is_some());

    // Rows at the watermark come back from `ge`; they are not queued twice.
    let again = poll(&h, h.queue.as_ref()).await.unwrap();
    assert_eq!(again.enqueued, 0);
    assert!(drained(&h).await.is_empty());

    update(&h, &b, &h.config.columns.sync_flag, json!(true));
    let third = poll(&h, h.queue.as_ref()).await.unwrap();
    assert!(!third.full_resync);
    assert_eq!(third.enqueued, 1);
    assert_eq!(ids(&drained(&h).await), set(&[&b]));
}

#[tokio::test]
async fn a_failing_queue_leaves_the_delta_link_where_it_was() {
    let h = Harness::start().await;
    poll(&h, h.queue.as_ref()).await.unwrap();
    let before = state(&h).await;
    let added: Vec<String> = (0..12)
        .map(|i| insert(&h, &format!("Deal {i}"), true, None))
        .collect();

    let flaky = FailingQueue::after(h.queue.clone() as Arc<dyn Queue>, 5);
    let err = poll(&h, &flaky).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(state(&h).await, before, "the cursor did not move");
    let first = drained(&h).await;
    assert_eq!(first.len(), 5, "what got through before the failure");

    // The next poll reads the same changes again: nothing is lost (what got through before
    // is sent again too; see the de-duplication test below).
    let report = poll(&h, h.queue.as_ref()).await.unwrap();
    assert_eq!(report.enqueued, 12);
    let second = drained(&h).await;
    let all: Vec<&String> = added.iter().collect();
    let missed: BTreeSet<String> = &set(&all) - &ids(&first);
    assert_eq!(missed.len(), 7);
    assert!(ids(&second).is_superset(&missed), "{second:?}");
    assert_eq!(&ids(&first) | &ids(&second), set(&all));
    assert_ne!(state(&h).await, before);
}

/// A seller's edit in the same second as the change the last poll queued gets the same
/// `modifiedon` (whole seconds): the poll must still queue it, since the first message may
/// have been reconciled before the edit.
#[tokio::test]
async fn an_edit_in_the_same_second_as_the_last_poll_is_queued_again() {
    let h = Harness::start().await;
    poll(&h, h.queue.as_ref()).await.unwrap();
    for attempt in 0..5 {
        let id = insert(&h, &format!("Same second {attempt}"), true, None);
        poll(&h, h.queue.as_ref()).await.unwrap();
        let first = drained(&h).await;
        assert_eq!(ids(&first), set(&[&id]));
        // The worker reconciled it (acked above); now the seller edits.
        update(&h, &id, "name", json!("Edited at once"));
        let row = h.dv.row(SET, &id).unwrap();
        if row["modifiedon"].as_str() != first[0].changed_at.as_deref() {
            continue; // the clock crossed a second: not the case under test, try again
        }
        let report = poll(&h, h.queue.as_ref()).await.unwrap();
        assert_eq!(report.enqueued, 1);
        assert_eq!(
            ids(&drained(&h).await),
            set(&[&id]),
            "the edit never reached the queue"
        );
        return;
    }
    panic!("no edit landed in the same second as its insert in 5 tries");
}

/// One change read twice (a poll that failed midway is repeated, or a full resync) names
/// the row's version, so the FIFO queue takes it once within five minutes.
#[tokio::test]
async fn a_change_read_twice_by_the_delta_poll_is_queued_once() {
    let h = Harness::start().await;
    poll(&h, h.queue.as_ref()).await.unwrap();
    let id = insert(&h, "Read twice", true, None);
    let flaky = FailingQueue::after(h.queue.clone() as Arc<dyn Queue>, 1);
    let late = insert(&h, "Not sent the first time", true, None);
    assert!(poll(&h, &flaky).await.is_err());
    let first = drained(&h).await;
    assert_eq!(first.len(), 1);
    assert!(first[0].version.is_some(), "{first:?}");
    poll(&h, h.queue.as_ref()).await.unwrap();
    let second = ids(&drained(&h).await);
    let sent_first = first[0].key.clone();
    assert!(!second.contains(&sent_first), "queued twice: {second:?}");
    assert_eq!(&ids(&first) | &second, set(&[&id, &late]));
}
