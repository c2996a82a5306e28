use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cosell::engine::{InboundMessage, InboundTrigger};
use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::{DeadLetter, QueueDepth};
use serde_json::Value;

use super::*;

/// The SQS record of the committed fixture, as the template for the records of a test.
fn fixture_record() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/events/sqs-batch.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    event["Records"][0].clone()
}

fn inbound(referral_id: &str) -> String {
    InboundMessage {
        referral_id: referral_id.into(),
        trigger: InboundTrigger::ReferralUpdated,
        changed_at: None,
    }
    .to_body()
}

struct Setup {
    _dir: tempfile::TempDir,
    queue: SqliteQueue,
    event: SqsEvent,
    /// Message id of each body, in the order given.
    ids: Vec<String>,
}

/// Puts `bodies` on a fresh queue, receives them, and makes the SQS event Lambda would
/// deliver for them (the fixture's record shape with the real ids and receipts).
async fn setup(bodies: &[String]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(dir.path().join("q.db"), "inbound", 5).unwrap();
    for b in bodies {
        let m = OutMessage::new(b.clone()).attribute("origin", "webhook");
        queue.send(&m).await.unwrap();
    }
    let got = queue
        .receive(10, Duration::from_secs(300), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), bodies.len());
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for body in bodies {
        let m = got.iter().find(|m| &m.body == body).unwrap();
        let mut r = fixture_record();
        r["messageId"] = Value::String(m.id.clone());
        r["receiptHandle"] = Value::String(m.receipt.clone());
        r["body"] = Value::String(m.body.clone());
        r["messageAttributes"] = serde_json::json!({
            "origin": {"stringValue": "webhook", "dataType": "String",
                       "stringListValues": [], "binaryListValues": []}
        });
        records.push(r);
        ids.push(m.id.clone());
    }
    let event: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    Setup {
        _dir: dir,
        queue,
        event,
        ids,
    }
}

/// The sync under test: its outcome is chosen by the referral id.
async fn scripted(m: InboundMessage) -> Result<(), SyncError> {
    match m.referral_id.as_str() {
        "ok" => Ok(()),
        "throttled" => Err(SyncError::retry(
            Some(Duration::from_secs(1)),
            "Partner Center: 429",
        )),
        "flaky" => Err(SyncError::retry(None, "Dataverse: 503")),
        "bad" => Err(SyncError::permanent("Dataverse: name is required")),
        other => panic!("unexpected referral {other}"),
    }
}

async fn run(s: &Setup) -> BatchOutcome {
    drive(
        &s.queue,
        &s.event,
        DEFAULT_CONCURRENCY,
        InboundMessage::parse,
        scripted,
    )
    .await
}

fn failures(outcome: &BatchOutcome) -> Vec<String> {
    outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn dead(queue: &SqliteQueue) -> Vec<DeadLetter> {
    queue.list_dead_letters(10).await.unwrap()
}

#[tokio::test]
async fn a_poison_body_goes_to_the_dlq_with_its_reason_and_is_not_a_failure() {
    let s = setup(&["not json at all".to_string()]).await;
    let outcome = run(&s).await;
    assert!(failures(&outcome).is_empty());
    assert!(
        matches!(&outcome.handled[0].1, Handled::DeadLettered { reason } if reason.starts_with("poison message"))
    );
    let dead = dead(&s.queue).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "not json at all");
    assert!(
        dead[0].reason.contains("unreadable message body"),
        "{}",
        dead[0].reason
    );
    // The message attributes travel along to the dead letter.
    assert_eq!(
        dead[0].attributes.get("origin").map(String::as_str),
        Some("webhook")
    );
}

#[tokio::test]
async fn a_throttled_message_is_requeued_with_a_delay_and_is_not_a_failure() {
    let s = setup(&[inbound("throttled")]).await;
    let outcome = run(&s).await;
    assert!(failures(&outcome).is_empty());
    assert_eq!(
        outcome.handled[0].1,
        Handled::Requeued {
            delay: Duration::from_secs(1)
        }
    );
    // A fresh copy waits out the delay...
    let depth: QueueDepth = s.queue.depth().await.unwrap();
    assert_eq!(depth.delayed, 1, "{depth:?}");
    assert!(dead(&s.queue).await.is_empty());
    // ...then arrives with the original body, attributes, and why it was requeued.
    let copy = s
        .queue
        .receive(10, Duration::from_secs(60), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(copy.len(), 1);
    assert_ne!(copy[0].id, s.ids[0]);
    assert_eq!(copy[0].body, inbound("throttled"));
    assert_eq!(
        copy[0].receive_count, 1,
        "a new message starts its count again"
    );
    assert_eq!(copy[0].attributes["origin"], "webhook");
    assert_eq!(copy[0].attributes[REQUEUED_BECAUSE], "Partner Center: 429");
}

#[tokio::test]
async fn a_transient_failure_is_reported_by_its_message_id_only() {
    let s = setup(&[inbound("ok"), inbound("flaky"), inbound("ok")]).await;
    let outcome = run(&s).await;
    assert_eq!(failures(&outcome), vec![s.ids[1].clone()]);
    assert!(dead(&s.queue).await.is_empty());
    assert_eq!(s.queue.depth().await.unwrap().delayed, 0);
    // The wire form Lambda reads.
    let wire = serde_json::to_value(&outcome.response).unwrap();
    assert_eq!(
        wire,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": s.ids[1]}]})
    );
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dlq_with_its_reason() {
    let s = setup(&[inbound("bad")]).await;
    let outcome = run(&s).await;
    assert!(failures(&outcome).is_empty());
    let dead = dead(&s.queue).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, inbound("bad"));
    assert_eq!(dead[0].reason, "Dataverse: name is required");
}

#[tokio::test]
async fn a_mixed_batch_of_five() {
    let bodies = [
        inbound("ok"),
        inbound("throttled"),
        inbound("flaky"),
        inbound("bad"),
        r#"{"referral_id":"","trigger":"manual"}"#.to_string(),
    ];
    let s = setup(&bodies).await;
    let outcome = run(&s).await;
    assert_eq!(failures(&outcome), vec![s.ids[2].clone()]);
    let kinds: Vec<&str> = outcome
        .handled
        .iter()
        .map(|(_, h)| match h {
            Handled::Done => "done",
            Handled::Requeued { .. } => "requeued",
            Handled::Failed { .. } => "failed",
            Handled::DeadLettered { .. } => "dead",
        })
        .collect();
    assert_eq!(kinds, ["done", "requeued", "failed", "dead", "dead"]);
    let handled_ids: Vec<&String> = outcome.handled.iter().map(|(id, _)| id).collect();
    assert_eq!(handled_ids, s.ids.iter().collect::<Vec<_>>());
    let mut reasons: Vec<String> = dead(&s.queue).await.into_iter().map(|d| d.reason).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0], "Dataverse: name is required");
    assert!(reasons[1].contains("empty referral_id"), "{}", reasons[1]);
    assert_eq!(s.queue.depth().await.unwrap().delayed, 1);
}

#[tokio::test]
async fn messages_are_synced_concurrently_but_bounded() {
    let bodies: Vec<String> = (0..8).map(|_| inbound("ok")).collect();
    let s = setup(&bodies).await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let outcome = drive(&s.queue, &s.event, 3, InboundMessage::parse, |_m| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await;
    assert!(failures(&outcome).is_empty());
    assert_eq!(outcome.handled.len(), 8);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

/// A queue whose every call fails, as SQS does without permission or network.
struct Unreachable;

#[async_trait]
impl Queue for Unreachable {
    async fn send(&self, _: &OutMessage) -> Result<String, QueueError> {
        Err(QueueError::Backend("sqs SendMessage: access denied".into()))
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        Err(QueueError::Backend("unreachable".into()))
    }
    async fn ack(&self, _: &str) -> Result<(), QueueError> {
        Err(QueueError::Backend("unreachable".into()))
    }
    async fn release(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        Err(QueueError::Backend("unreachable".into()))
    }
    async fn dead_letter(&self, _: &Received, _: &str) -> Result<(), QueueError> {
        Err(QueueError::Backend(
            "sqs SendMessage (DLQ): access denied".into(),
        ))
    }
    async fn list_dead_letters(&self, _: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(Vec::new())
    }
    async fn replay_dead_letters(&self, _: Option<&[String]>) -> Result<usize, QueueError> {
        Ok(0)
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(QueueDepth::default())
    }
}

#[tokio::test]
async fn when_the_requeue_or_dead_letter_send_fails_the_message_is_reported_failed() {
    let s = setup(&[
        inbound("throttled"),
        inbound("bad"),
        "garbage".into(),
        inbound("ok"),
    ])
    .await;
    let outcome = drive(&Unreachable, &s.event, 2, InboundMessage::parse, scripted).await;
    assert_eq!(failures(&outcome), s.ids[..3].to_vec());
}

#[tokio::test]
async fn a_record_without_a_message_id_fails_the_whole_batch() {
    let s = setup(&[inbound("ok")]).await;
    let mut event = s.event.clone();
    event.records[0].message_id = None;
    let outcome = drive(&s.queue, &event, 2, InboundMessage::parse, scripted).await;
    assert_eq!(failures(&outcome), vec![String::new()]);
}
