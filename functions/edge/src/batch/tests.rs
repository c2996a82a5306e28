use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::{DeadLetter, OutMessage, QueueDepth, QueueKind};
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

/// A sync message of pair `key` whose outcome the script picks by `script` (carried as the
/// referral id); `n` keeps bodies apart.
fn message(key: &str, script: &str, n: usize) -> String {
    SyncMessage {
        key: key.into(),
        origin: Origin::Referral,
        referral_id: Some(script.into()),
        changed_at: Some(format!("2026-11-20T09:00:{n:02}Z")),
        deleted: false,
        version: Some(format!("{}", 1000 + n)),
    }
    .to_body()
}

/// A queue that records every release (receipt, delay) before passing it on.
struct Recording {
    inner: SqliteQueue,
    releases: Mutex<Vec<(String, Duration)>>,
}

impl Recording {
    fn releases(&self) -> Vec<(String, Duration)> {
        self.releases.lock().unwrap().clone()
    }
}

#[async_trait]
impl Queue for Recording {
    fn kind(&self) -> QueueKind {
        self.inner.kind()
    }
    async fn send(&self, m: &OutMessage) -> Result<String, QueueError> {
        self.inner.send(m).await
    }
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(max, visibility, wait).await
    }
    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.inner.ack(receipt).await
    }
    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.releases
            .lock()
            .unwrap()
            .push((receipt.to_string(), delay));
        self.inner.release(receipt, delay).await
    }
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(message, reason).await
    }
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.list_dead_letters(limit).await
    }
    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        self.inner.replay_dead_letters(ids).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    queue: Recording,
    event: SqsEvent,
    /// Message id of each body, in the order given.
    ids: Vec<String>,
    /// Receipt of each body, in the order given.
    receipts: Vec<String>,
}

/// Puts `(group, body)` messages on a fresh queue, receives them, and makes the SQS event
/// Lambda would deliver for them (the fixture's record shape with the real ids, receipts
/// and groups). A FIFO queue hands out one message per group at a time, so batches with
/// several messages of one group come from a standard queue; the batch driver reads the
/// group from the record either way.
async fn setup_on(kind: QueueKind, messages: &[(&str, String)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteQueue::open_kind(dir.path().join("q.db"), "sync", 10, kind).unwrap();
    for (i, (group, body)) in messages.iter().enumerate() {
        let mut m = OutMessage::new(body.clone())
            .attribute("origin", "webhook")
            .group(*group);
        if kind == QueueKind::Fifo {
            m = m.dedup_id(format!("setup-{i}"));
        }
        inner.send(&m).await.unwrap();
    }
    let got = inner
        .receive(10, Duration::from_secs(300), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        messages.len(),
        "one receive gets the whole batch"
    );
    let (mut records, mut ids, mut receipts) = (Vec::new(), Vec::new(), Vec::new());
    for (group, body) in messages {
        let m = got.iter().find(|m| &m.body == body).unwrap();
        let mut r = fixture_record();
        r["messageId"] = Value::String(m.id.clone());
        r["receiptHandle"] = Value::String(m.receipt.clone());
        r["body"] = Value::String(m.body.clone());
        r["attributes"]["MessageGroupId"] = Value::String(group.to_string());
        r["attributes"]["ApproximateReceiveCount"] = Value::String("1".into());
        r["messageAttributes"] = serde_json::json!({
            "origin": {"stringValue": "webhook", "dataType": "String",
                       "stringListValues": [], "binaryListValues": []}
        });
        records.push(r);
        ids.push(m.id.clone());
        receipts.push(m.receipt.clone());
    }
    let event: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    Setup {
        _dir: dir,
        queue: Recording {
            inner,
            releases: Mutex::new(Vec::new()),
        },
        event,
        ids,
        receipts,
    }
}

/// Each body in a group of its own.
async fn setup(bodies: &[String]) -> Setup {
    let groups: Vec<String> = (0..bodies.len()).map(|i| format!("pair-{i}")).collect();
    let messages: Vec<(&str, String)> = groups
        .iter()
        .map(String::as_str)
        .zip(bodies.iter().cloned())
        .collect();
    setup_on(QueueKind::Standard, &messages).await
}

/// One message per pair: the script is the first part of the key.
fn single(script: &str) -> String {
    message(&format!("{script}-pair"), script, 0)
}

/// The sync under test: its outcome is chosen by the script in the referral id.
async fn scripted(m: SyncMessage) -> Result<PairOutcome, SyncError> {
    match m.referral_id.as_deref().unwrap_or_default() {
        "ok" => Ok(PairOutcome::Unchanged {
            referral_id: m.referral_id.clone(),
            opportunity_id: m.key.clone(),
        }),
        "throttled" => Err(SyncError::retry(
            Some(Duration::from_secs(1)),
            "Partner Center: 429",
        )),
        "flaky" => Err(SyncError::retry(None, "Dataverse: 503")),
        "bad" => Err(SyncError::permanent("Dataverse: name is required")),
        "forward" => Ok(PairOutcome::Forwarded {
            to: m.forwarded_to("right-pair"),
        }),
        other => panic!("unexpected script {other}"),
    }
}

const RULES: RetryRules = RetryRules {
    max_attempts: 8,
    fallback: Duration::from_secs(30),
};

async fn run(s: &Setup) -> BatchOutcome {
    drive(
        &s.queue,
        &s.event,
        DEFAULT_CONCURRENCY,
        RULES,
        SyncMessage::parse,
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

fn kinds(outcome: &BatchOutcome) -> Vec<&'static str> {
    outcome
        .handled
        .iter()
        .map(|(_, h)| match h {
            Handled::Done => "done",
            Handled::Forwarded => "forwarded",
            Handled::Retried { .. } => "retried",
            Handled::DeadLettered { .. } => "dead",
            Handled::Held => "held",
            Handled::Unsettled { .. } => "unsettled",
        })
        .collect()
}

async fn dead(queue: &dyn Queue) -> Vec<DeadLetter> {
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
async fn a_throttled_message_extends_its_visibility_and_is_reported_failed() {
    let s = setup(&[single("throttled")]).await;
    let outcome = run(&s).await;
    assert_eq!(failures(&outcome), vec![s.ids[0].clone()]);
    assert_eq!(
        outcome.handled[0].1,
        Handled::Retried {
            delay: Duration::from_secs(1),
            reason: "Partner Center: 429".into()
        }
    );
    // The message itself waits out the delay (no fresh copy, no dead letter)...
    assert_eq!(
        s.queue.releases(),
        vec![(s.receipts[0].clone(), Duration::from_secs(1))]
    );
    let depth = s.queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 1), "{depth:?}");
    assert!(dead(&s.queue).await.is_empty());
    // ...then comes back: the same message, its next attempt.
    let again = s
        .queue
        .receive(10, Duration::from_secs(60), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, s.ids[0]);
    assert_eq!(again[0].body, single("throttled"));
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn a_transient_failure_is_reported_by_its_message_id_only() {
    let s = setup(&[single("ok"), single("flaky"), message("ok-2", "ok", 1)]).await;
    let outcome = run(&s).await;
    assert_eq!(failures(&outcome), vec![s.ids[1].clone()]);
    assert!(dead(&s.queue).await.is_empty());
    // Without a wait from the service, the fallback.
    assert_eq!(
        s.queue.releases(),
        vec![(s.receipts[1].clone(), RULES.fallback)]
    );
    // The wire form Lambda reads.
    let wire = serde_json::to_value(&outcome.response).unwrap();
    assert_eq!(
        wire,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": s.ids[1]}]})
    );
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dlq_with_its_reason() {
    let s = setup(&[single("bad")]).await;
    let outcome = run(&s).await;
    assert!(failures(&outcome).is_empty());
    let dead = dead(&s.queue).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, single("bad"));
    assert_eq!(dead[0].reason, "Dataverse: name is required");
}

#[tokio::test]
async fn a_mixed_batch_of_five() {
    let bodies = [
        single("ok"),
        single("throttled"),
        single("flaky"),
        single("bad"),
        r#"{"key":"k5","origin":"referral","referral_id":""}"#.to_string(),
    ];
    let s = setup(&bodies).await;
    let outcome = run(&s).await;
    assert_eq!(failures(&outcome), vec![s.ids[1].clone(), s.ids[2].clone()]);
    assert_eq!(
        kinds(&outcome),
        ["done", "retried", "retried", "dead", "dead"]
    );
    let handled_ids: Vec<&String> = outcome.handled.iter().map(|(id, _)| id).collect();
    assert_eq!(handled_ids, s.ids.iter().collect::<Vec<_>>());
    let mut reasons: Vec<String> = dead(&s.queue).await.into_iter().map(|d| d.reason).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0], "Dataverse: name is required");
    assert!(reasons[1].contains("empty referral_id"), "{}", reasons[1]);
    assert_eq!(s.queue.releases().len(), 2);
}

/// Lambda's FIFO rule: once a message of a group fails, the later messages of that group
/// in the batch fail with it (unprocessed), or they would overtake it. Other groups go on.
#[tokio::test]
async fn a_failed_message_holds_the_rest_of_its_group_and_other_groups_go_on() {
    let messages = [
        ("pair-a", message("pair-a", "ok", 1)),
        ("pair-a", message("pair-a", "flaky", 2)),
        ("pair-b", message("pair-b", "ok", 3)),
        ("pair-a", message("pair-a", "ok", 4)),
        ("pair-b", message("pair-b", "ok", 5)),
        ("pair-a", message("pair-a", "bad", 6)),
    ];
    let s = setup_on(QueueKind::Standard, &messages).await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let outcome = drive(
        &s.queue,
        &s.event,
        DEFAULT_CONCURRENCY,
        RULES,
        SyncMessage::parse,
        |m: SyncMessage| {
            calls
                .lock()
                .unwrap()
                .push((m.key.clone(), m.changed_at.clone().unwrap_or_default()));
            scripted(m)
        },
    )
    .await;
    assert_eq!(
        kinds(&outcome),
        ["done", "retried", "done", "held", "done", "held"]
    );
    assert_eq!(
        failures(&outcome),
        vec![s.ids[1].clone(), s.ids[3].clone(), s.ids[5].clone()]
    );
    // The held messages were not reconciled at all (not even the one that would have been
    // dead-lettered), and each group ran in its order.
    let calls = calls.lock().unwrap().clone();
    let of = |pair: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|(k, _)| k == pair)
            .map(|(_, at)| at[at.len() - 3..].to_string())
            .collect()
    };
    assert_eq!(of("pair-a"), ["01Z", "02Z"]);
    assert_eq!(of("pair-b"), ["03Z", "05Z"]);
    assert!(
        dead(&s.queue).await.is_empty(),
        "the held poison was left alone"
    );
    // Only the failed message's visibility was touched; the held ones come back when theirs
    // ends, after it.
    assert_eq!(
        s.queue.releases(),
        vec![(s.receipts[1].clone(), RULES.fallback)]
    );
}

/// A message that is settled (dead-lettered) is no failure: the rest of its group goes on.
#[tokio::test]
async fn a_dead_lettered_message_does_not_hold_its_group() {
    let messages = [
        ("pair-a", message("pair-a", "bad", 1)),
        ("pair-a", message("pair-a", "ok", 2)),
    ];
    let s = setup_on(QueueKind::Standard, &messages).await;
    let outcome = run(&s).await;
    assert_eq!(kinds(&outcome), ["dead", "done"]);
    assert!(failures(&outcome).is_empty());
}

/// The last allowed attempt (the record's ApproximateReceiveCount) dead-letters any
/// failure with the count and the last reason; an earlier one retries.
#[tokio::test]
async fn the_last_attempt_dead_letters_whatever_the_error() {
    let bodies = [
        single("flaky"),
        single("throttled"),
        message("flaky-2", "flaky", 1),
    ];
    let mut s = setup(&bodies).await;
    for (record, count) in s.event.records.iter_mut().zip(["3", "4", "2"]) {
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), count.into());
    }
    let rules = RetryRules {
        max_attempts: 3,
        ..RULES
    };
    let outcome = drive(
        &s.queue,
        &s.event,
        DEFAULT_CONCURRENCY,
        rules,
        SyncMessage::parse,
        scripted,
    )
    .await;
    assert_eq!(kinds(&outcome), ["dead", "dead", "retried"]);
    assert_eq!(failures(&outcome), vec![s.ids[2].clone()]);
    let mut dead = dead(&s.queue).await;
    dead.sort_by(|a, b| a.body.cmp(&b.body));
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "gave up after 3 attempts: Dataverse: 503",
            "gave up after 4 attempts: Partner Center: 429"
        ]
    );
    assert_eq!(dead[0].body, single("flaky"));
}

/// A message under the wrong key is sent to the pair that owns it (its group, its
/// de-duplication id) and is not a failure.
#[tokio::test]
async fn a_forwarded_message_is_sent_under_the_new_key() {
    let body = message("wrong-pair", "forward", 1);
    let s = setup_on(QueueKind::Fifo, &[("wrong-pair", body.clone())]).await;
    let outcome = run(&s).await;
    assert_eq!(kinds(&outcome), ["forwarded"]);
    assert!(failures(&outcome).is_empty());
    let expected = SyncMessage::parse(&body)
        .unwrap()
        .forwarded_to("right-pair");
    let got = s
        .queue
        .receive(10, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        1,
        "the original stays in flight for Lambda to delete"
    );
    assert_eq!(got[0].group.as_deref(), Some("right-pair"));
    assert_eq!(SyncMessage::parse(&got[0].body).unwrap(), expected);
    // Sent with the change's de-duplication id: the same forward again is dropped.
    s.queue
        .send(&cosell::engine::disposition::queued(&expected))
        .await
        .unwrap();
    assert_eq!(s.queue.depth().await.unwrap().visible, 0);
}

#[tokio::test]
async fn pairs_are_synced_concurrently_but_bounded_and_one_group_in_order() {
    let keys: Vec<String> = (0..8).map(|i| format!("pair-{}", i % 4)).collect();
    let messages: Vec<(&str, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), message(k, "ok", i)))
        .collect();
    let s = setup_on(QueueKind::Standard, &messages).await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let in_group = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let overlap = Arc::new(AtomicUsize::new(0));
    let outcome = drive(
        &s.queue,
        &s.event,
        3,
        RULES,
        SyncMessage::parse,
        |m: SyncMessage| {
            let (running, peak, in_group, overlap) = (
                running.clone(),
                peak.clone(),
                in_group.clone(),
                overlap.clone(),
            );
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                {
                    let mut g = in_group.lock().unwrap();
                    let n = g.entry(m.key.clone()).or_default();
                    *n += 1;
                    if *n > 1 {
                        overlap.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                *in_group.lock().unwrap().get_mut(&m.key).unwrap() -= 1;
                running.fetch_sub(1, Ordering::SeqCst);
                scripted(m).await
            }
        },
    )
    .await;
    assert!(failures(&outcome).is_empty());
    assert_eq!(outcome.handled.len(), 8);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(overlap.load(Ordering::SeqCst), 0, "two of one pair at once");
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
async fn when_the_forward_or_dead_letter_send_fails_the_message_is_reported_failed() {
    let s = setup(&[
        single("throttled"),
        single("bad"),
        "garbage".into(),
        single("forward"),
        single("ok"),
    ])
    .await;
    let outcome = drive(
        &Unreachable,
        &s.event,
        2,
        RULES,
        SyncMessage::parse,
        scripted,
    )
    .await;
    assert_eq!(
        kinds(&outcome),
        ["retried", "unsettled", "unsettled", "unsettled", "done"]
    );
    assert_eq!(failures(&outcome), s.ids[..4].to_vec());
}

#[tokio::test]
async fn a_record_without_a_message_id_fails_the_whole_batch() {
    let s = setup(&[single("ok")]).await;
    let mut event = s.event.clone();
    event.records[0].message_id = None;
    let outcome = drive(&s.queue, &event, 2, RULES, SyncMessage::parse, scripted).await;
    assert_eq!(failures(&outcome), vec![String::new()]);
}
