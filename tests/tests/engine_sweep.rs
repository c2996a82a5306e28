//! The referral sweep against the Partner Center stand-in: what is queued relative to the
//! watermark and overlap, paging, and how the watermark moves.
//!
//! The rule under test: a sweep queues every referral with
//! `updatedDateTime >= watermark - overlap` and then stores the newest `updatedDateTime` it
//! saw (the first sweep looks back `overlap` from now). Each message is keyed by its pair
//! (the linked opportunity, else the id the referral's opportunity gets), and the same
//! referral version queued again within five minutes is a FIFO duplicate: dropped.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use cosell::crosswalk::Link;
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::reconcile::{sweep_referrals, sweep_referrals_paged, SWEEP_STATE_KEY};
use cosell::engine::{Origin, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use support::drain::drain;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn parse(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap()
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Ids of the stand-in's referrals updated at or after `since`, and the newest update.
fn updated_since(h: &Harness, since: OffsetDateTime) -> (BTreeSet<String>, OffsetDateTime) {
    let all = h.pc.referrals();
    let newest = all
        .iter()
        .map(|r| parse(r["updatedDateTime"].as_str().unwrap()))
        .max()
        .unwrap();
    let ids = all
        .iter()
        .filter(|r| parse(r["updatedDateTime"].as_str().unwrap()) >= since)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (ids, newest)
}

async fn queued(h: &Harness) -> Vec<SyncMessage> {
    drain(h.queue.as_ref())
        .await
        .iter()
        .map(|b| SyncMessage::parse(b).unwrap())
        .collect()
}

fn referral(m: &SyncMessage) -> String {
    m.referral_id
        .clone()
        .expect("a sweep message names its referral")
}

fn ids(messages: &[SyncMessage]) -> BTreeSet<String> {
    messages.iter().map(referral).collect()
}

async fn watermark(h: &Harness) -> OffsetDateTime {
    let (value, _) = h.store.get_state(SWEEP_STATE_KEY).await.unwrap().unwrap();
    parse(&value)
}

#[tokio::test]
async fn referrals_updated_since_the_watermark_are_queued_across_pages() {
    let h = Harness::start().await;
    let old: Vec<String> = (0..2)
        .map(|i| {
            h.pc.create_incoming_referral(&format!("Old {i}"), "Contoso")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mark = OffsetDateTime::now_utc();
    h.store
        .put_state(SWEEP_STATE_KEY, &fmt(mark), None)
        .await
        .unwrap();
    let new: BTreeSet<String> = (0..5)
        .map(|i| {
            h.pc.create_incoming_referral(&format!("New {i}"), "Fabrikam")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let overlap = Duration::from_millis(100);
    let report = sweep_referrals_paged(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        overlap,
        Some(2),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, 5);
    assert_eq!(report.pages, 3, "5 referrals, 2 a page");
    let msgs = queued(&h).await;
    assert_eq!(ids(&msgs), new);
    assert!(old.iter().all(|id| !ids(&msgs).contains(id)));
    assert!(msgs.iter().all(|m| m.origin == Origin::Referral));
    for m in &msgs {
        assert_eq!(
            m.key,
            opportunity_id_for(&referral(m)),
            "unlinked: the derived key"
        );
        let stored = h.pc.referral(&referral(m)).unwrap();
        assert_eq!(
            m.changed_at.as_deref(),
            stored["updatedDateTime"].as_str(),
            "changed_at is the referral's updatedDateTime"
        );
    }
    let (_, newest) = updated_since(&h, mark);
    assert_eq!(
        watermark(&h).await,
        newest,
        "the watermark is the newest update seen"
    );
    assert_eq!(report.watermark.map(|w| parse(&w)), Some(newest));

    // No changes: exactly the referrals inside the overlap before the watermark are sent
    // again, and the queue drops them (the same versions, within five minutes).
    let (expected, _) = updated_since(&h, newest - overlap);
    let report = sweep_referrals_paged(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        overlap,
        Some(2),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, expected.len());
    assert!(queued(&h).await.is_empty(), "duplicates were queued");
    assert!(!expected.is_empty() && expected.is_subset(&new));
    assert_eq!(watermark(&h).await, newest, "unchanged");

    // With no overlap only the referral at the watermark itself is sent again.
    let report = sweep_referrals(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let (at_mark, _) = updated_since(&h, newest);
    assert_eq!(at_mark.len(), 1);
    assert_eq!(report.enqueued, 1);
    assert!(queued(&h).await.is_empty());

    // An old referral edited now is found, and moves the watermark.
    let edited = h.engine.pc.get_referral(&old[0]).await.unwrap();
    let etag = edited.e_tag.clone().expect("eTag");
    h.engine
        .pc
        .update_referral(
            &old[0],
            &etag,
            &[PatchOp::replace("/details/notes", "moved")],
        )
        .await
        .unwrap();
    sweep_referrals(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let msgs = queued(&h).await;
    assert!(ids(&msgs).contains(&old[0]), "{msgs:?}");
    assert!(!ids(&msgs).contains(&old[1]));
    let updated = parse(
        h.pc.referral(&old[0]).unwrap()["updatedDateTime"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(watermark(&h).await, updated);
}

#[tokio::test]
async fn the_first_sweep_looks_back_only_the_overlap() {
    let h = Harness::start().await;
    let overlap = Duration::from_millis(400);

    // Nothing there: the watermark starts at "now - overlap".
    let before = OffsetDateTime::now_utc();
    let report = sweep_referrals(&h.engine.pc, h.store.as_ref(), h.queue.as_ref(), overlap)
        .await
        .unwrap();
    assert_eq!((report.enqueued, report.pages), (0, 1));
    let mark = watermark(&h).await;
    assert!(mark >= before - overlap, "{mark} vs {before}");
    assert!(mark <= OffsetDateTime::now_utc() - overlap);
}

#[tokio::test]
async fn without_a_watermark_older_referrals_are_left_to_backfill() {
    let h = Harness::start().await;
    let overlap = Duration::from_millis(400);
    let early = h.pc.create_incoming_referral("Early", "Contoso")["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let late = h.pc.create_incoming_referral("Late", "Contoso")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = sweep_referrals(&h.engine.pc, h.store.as_ref(), h.queue.as_ref(), overlap)
        .await
        .unwrap();
    assert_eq!(report.enqueued, 1);
    let msgs = queued(&h).await;
    assert_eq!(ids(&msgs), BTreeSet::from([late.clone()]));
    assert!(!ids(&msgs).contains(&early));
    let late_at = parse(
        h.pc.referral(&late).unwrap()["updatedDateTime"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(watermark(&h).await, late_at);
}

#[tokio::test]
async fn an_unreadable_watermark_falls_back_to_the_overlap_window() {
    let h = Harness::start().await;
    h.store
        .put_state(SWEEP_STATE_KEY, "not a time", None)
        .await
        .unwrap();
    let id = h.pc.create_incoming_referral("Fresh", "Contoso")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = sweep_referrals(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, 1);
    assert_eq!(ids(&queued(&h).await), BTreeSet::from([id.clone()]));
    let at = parse(
        h.pc.referral(&id).unwrap()["updatedDateTime"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(watermark(&h).await, at, "repaired");
}

#[tokio::test]
async fn a_linked_referral_is_queued_under_its_opportunity() {
    let h = Harness::start().await;
    let id = h.pc.create_incoming_referral("Linked", "Contoso")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let opportunity = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    h.store
        .put_link(&Link::new(id.clone(), opportunity), None)
        .await
        .unwrap();
    let report = sweep_referrals(
        &h.engine.pc,
        h.store.as_ref(),
        h.queue.as_ref(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, 1);
    let msgs = queued(&h).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].key, opportunity);
    assert_eq!(referral(&msgs[0]), id);
}
