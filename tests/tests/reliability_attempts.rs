//! Bounded retries: a message whose reconcile fails every time, however transient each
//! failure looks (here Dataverse answers every opportunity write with 503), is tried
//! `max_attempts` times and then goes to the dead-letter queue with its last reason. It never
//! cycles on the queue forever, and nothing half-made is left behind.

use std::sync::Arc;
use std::time::Duration;

use cosell::engine::disposition::queued;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::Queue;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use cosell_tests::queue_worker::QueueWorker;
use dataverse_standin::{Fault, FaultKind};

const MAX_ATTEMPTS: u32 = 3;

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_after_its_attempts() {
    let h = Harness::start().await;
    // Every opportunity write fails as an overloaded service does; the engine's in-call
    // retries give up each time and the queue's attempts are what is left.
    // (A new customer's rows are made with the opportunity in one `$batch`.)
    h.dv.add_fault(Fault::new(FaultKind::Unavailable, u32::MAX).on("PATCH", "opportunities"));
    h.dv.add_fault(Fault::new(FaultKind::Unavailable, u32::MAX).on("POST", "$batch"));
    let id = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let message = SyncMessage::for_referral(h.store.as_ref(), &id, Origin::Referral, None)
        .await
        .unwrap();
    h.queue.send(&queued(&message)).await.unwrap();

    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone() as Arc<dyn Queue>);
    worker.max_attempts = MAX_ATTEMPTS;
    assert!(
        worker.drain(Duration::from_secs(60)).await,
        "the message still cycles: {:?}",
        worker.stats
    );

    assert_eq!(
        worker.stats.handled,
        u64::from(MAX_ATTEMPTS),
        "{:?}",
        worker.stats
    );
    assert_eq!(worker.stats.retried, u64::from(MAX_ATTEMPTS - 1));
    assert_eq!(worker.stats.dead_lettered, 1);
    let dead = h.queue.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].reason;
    assert!(
        reason.starts_with(&format!("gave up after {MAX_ATTEMPTS} attempts: ")),
        "{reason}"
    );
    assert!(reason.contains("Dataverse"), "the last reason: {reason}");
    assert_eq!(dead[0].receive_count, MAX_ATTEMPTS);
    assert_eq!(dead[0].group.as_deref(), Some(message.key.as_str()));
    assert_eq!(SyncMessage::parse(&dead[0].body).unwrap(), message);
    assert_eq!(worker.pending().await, 0, "nothing left on the queue");
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.store.get_link_by_referral(&id).await.unwrap().is_none());

    // Once Dataverse is back, a replay syncs it, once.
    h.dv.clear_faults();
    assert_eq!(h.queue.replay_dead_letters(None).await.unwrap(), 1);
    assert!(worker.drain(Duration::from_secs(30)).await);
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert!(h.store.get_link_by_referral(&id).await.unwrap().is_some());
}
