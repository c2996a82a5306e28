//! One contract for every `Queue` adapter: each case is written once and run against
//! SQLite (temp dir) and SQS (moto). Visibility timeouts are 1 s so the suite stays fast.
//! The `fifo_*` cases open FIFO queues (SQS: a `.fifo` queue with a `.fifo` DLQ).

mod moto_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::sqs::SqsQueue;
use cosell::queue::{
    OutMessage, Queue, QueueError, QueueKind, Received, Unsupported, MAX_RECEIVES_REASON,
};
use cosell::store::aws_local;
use tempfile::TempDir;

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Sqs,
}

struct Opened {
    queue: Arc<dyn Queue>,
    _dir: Option<TempDir>,
}

async fn open(backend: Backend, max_receive_count: u32) -> Option<Opened> {
    open_kind(backend, max_receive_count, QueueKind::Standard).await
}

async fn open_fifo(backend: Backend, max_receive_count: u32) -> Option<Opened> {
    open_kind(backend, max_receive_count, QueueKind::Fifo).await
}

async fn open_kind(backend: Backend, max_receive_count: u32, kind: QueueKind) -> Option<Opened> {
    let opened = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("queues.db");
            let queue = SqliteQueue::open_kind(path, "work", max_receive_count, kind).unwrap();
            Some(Opened {
                queue: Arc::new(queue),
                _dir: Some(dir),
            })
        }
        Backend::Sqs => {
            let url = moto_server::url()?;
            let client = aws_local::sqs_client(&url, moto_server::REGION).await;
            let mut name = moto_server::unique("cosell-work");
            if kind == QueueKind::Fifo {
                name.push_str(".fifo");
            }
            let queue = SqsQueue::create_queues_if_missing(
                client,
                &name,
                max_receive_count,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            Some(Opened {
                queue: Arc::new(queue),
                _dir: None,
            })
        }
    };
    if let Some(o) = &opened {
        assert_eq!(o.queue.kind(), kind);
    }
    opened
}

const SECOND: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(30);

/// Receives until `n` messages arrived or `within` passed (SQS may split a batch).
async fn receive_n(
    q: &dyn Queue,
    n: usize,
    visibility: Duration,
    within: Duration,
) -> Vec<Received> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = q
            .receive(n - got.len(), visibility, left.min(SECOND))
            .await
            .unwrap();
        got.extend(batch);
        if Instant::now() >= deadline {
            break;
        }
    }
    got
}

async fn nothing_visible(q: &dyn Queue) -> bool {
    q.receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty()
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn send_receive_ack(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    let ids = q
        .send_batch(&[
            OutMessage::new("one").attribute("kind", "referral"),
            OutMessage::new("two"),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    let mut got = receive_n(q, 2, LONG, Duration::from_secs(5)).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].body.as_str(), got[1].body.as_str()), ("one", "two"));
    assert_eq!(got[0].attributes, attrs(&[("kind", "referral")]));
    assert!(got[1].attributes.is_empty());
    assert!(got.iter().all(|m| m.receive_count == 1));
    assert!(ids.contains(&got[0].id) && ids.contains(&got[1].id));
    assert!(nothing_visible(q).await, "in-flight messages are hidden");

    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 2, 0));

    for m in &got {
        q.ack(&m.receipt).await.unwrap();
    }
    q.ack(&got[0].receipt).await.unwrap(); // acking twice is harmless
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}

async fn delay_is_honoured(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    let sent = Instant::now();
    q.send(&OutMessage::new("later").delay(2 * SECOND))
        .await
        .unwrap();
    q.send(&OutMessage::new("now")).await.unwrap();
    let first = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body, "now");
    assert_eq!(q.depth().await.unwrap().delayed, 1);
    let later = receive_n(q, 1, LONG, Duration::from_secs(5)).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].body, "later");
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        sent.elapsed()
    );
}

async fn redelivered_after_visibility_timeout(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    let id = q.send(&OutMessage::new("retry me")).await.unwrap();
    let first = receive_n(q, 1, SECOND, Duration::from_secs(2)).await;
    assert_eq!(first[0].receive_count, 1);
    assert!(nothing_visible(q).await);
    let second = receive_n(q, 1, LONG, Duration::from_secs(4)).await;
    assert_eq!(second.len(), 1, "comes back after the visibility timeout");
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    q.ack(&second[0].receipt).await.unwrap();
    assert!(nothing_visible(q).await);
}

async fn release_returns_the_message(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&OutMessage::new("throttled")).await.unwrap();
    let first = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
    q.release(&first[0].receipt, Duration::ZERO).await.unwrap();
    let again = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
    assert_eq!(
        again.len(),
        1,
        "released now: visible at once despite a 30 s visibility"
    );
    assert_eq!(again[0].receive_count, 2);

    let released_at = Instant::now();
    q.release(&again[0].receipt, 2 * SECOND).await.unwrap();
    assert!(
        nothing_visible(q).await,
        "released with a delay: hidden until it passes"
    );
    let third = receive_n(q, 1, LONG, Duration::from_secs(5)).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].receive_count, 3);
    assert!(released_at.elapsed() >= Duration::from_millis(1900));
}

async fn dead_lettered_after_max_receives(backend: Backend) {
    let Some(o) = open(backend, 2).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&OutMessage::new("poison").attribute("referral", "r-9"))
        .await
        .unwrap();
    for n in 1..=2 {
        let m = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
        assert_eq!(m[0].receive_count, n);
        q.release(&m[0].receipt, Duration::ZERO).await.unwrap();
    }
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "a third receive moves it to the DLQ instead"
    );
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].reason, MAX_RECEIVES_REASON);
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(dead[0].attributes, attrs(&[("referral", "r-9")]));
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 1));
}

async fn explicit_dead_letter_keeps_the_reason(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&OutMessage::new("bad mapping").attribute("kind", "referral"))
        .await
        .unwrap();
    let m = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
    q.dead_letter(&m[0], "mapping: unknown country XX")
        .await
        .unwrap();
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "gone from the source"
    );
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "bad mapping");
    assert_eq!(dead[0].reason, "mapping: unknown country XX");
    assert_eq!(dead[0].receive_count, 1);
    assert!(dead[0].failed_at.is_some());
    assert_eq!(dead[0].attributes, attrs(&[("kind", "referral")]));
    // Listing does not consume: a second listing sees the same letter.
    assert_eq!(q.list_dead_letters(10).await.unwrap()[0].id, dead[0].id);
}

async fn dead_letters_replay_selectively_or_all(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    for body in ["a", "b", "c"] {
        q.send(&OutMessage::new(body).attribute("body", body))
            .await
            .unwrap();
    }
    for m in receive_n(q, 3, LONG, Duration::from_secs(5)).await {
        q.dead_letter(&m, "downstream down").await.unwrap();
    }
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(q.list_dead_letters(2).await.unwrap().len(), 2, "limit");
    let b = dead.iter().find(|d| d.body == "b").unwrap();

    assert_eq!(
        q.replay_dead_letters(Some(std::slice::from_ref(&b.id)))
            .await
            .unwrap(),
        1
    );
    let back = receive_n(q, 1, LONG, Duration::from_secs(2)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, "b");
    assert_eq!(back[0].receive_count, 1, "a replay starts counting again");
    assert_eq!(
        back[0].attributes,
        attrs(&[("body", "b")]),
        "no dead-letter attributes leak"
    );
    q.ack(&back[0].receipt).await.unwrap();
    let mut left: Vec<_> = q
        .list_dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect();
    left.sort();
    assert_eq!(left, vec!["a", "c"]);

    assert_eq!(
        q.replay_dead_letters(Some(&["no-such-id".into()]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(q.replay_dead_letters(None).await.unwrap(), 2);
    assert!(q.list_dead_letters(10).await.unwrap().is_empty());
    let mut bodies: Vec<_> = receive_n(q, 2, LONG, Duration::from_secs(3))
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec!["a", "c"]);
}

// ---- FIFO queues ---------------------------------------------------------------------------

fn in_group(body: &str, group: &str) -> OutMessage {
    OutMessage::new(body).group(group)
}

fn bodies(messages: &[Received]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// Receives and acks until `n` messages arrived or `within` passed, keeping the order in
/// which they were handed out (SQS may hand out a run of one group in one batch).
async fn drain_acking(q: &dyn Queue, n: usize, within: Duration) -> Vec<Received> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for m in q.receive(10, LONG, left.min(SECOND)).await.unwrap() {
            q.ack(&m.receipt).await.unwrap();
            got.push(m);
        }
    }
    got
}

/// One receive of at most one message, waiting up to 2 s for it.
async fn receive_one(q: &dyn Queue, visibility: Duration) -> Received {
    let mut got = receive_n(q, 1, visibility, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1, "a message within 2 s");
    got.remove(0)
}

async fn fifo_hands_a_group_out_in_send_order(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send_batch(&[in_group("g1", "g"), in_group("g2", "g")])
        .await
        .unwrap();
    q.send(&in_group("g3", "g")).await.unwrap();
    let first = receive_one(q, SECOND).await;
    assert_eq!(first.body, "g1");
    assert_eq!(first.group.as_deref(), Some("g"));
    // Not acked: once its visibility has passed it is still ahead of the rest of its group
    // (a standard queue would hand out g2 and g3 meanwhile).
    let all = drain_acking(q, 3, Duration::from_secs(5)).await;
    assert_eq!(bodies(&all), ["g1", "g2", "g3"]);
    assert_eq!(all[0].receive_count, 2);
    assert!(all.iter().all(|m| m.group.as_deref() == Some("g")));
}

async fn fifo_blocks_a_group_while_one_is_in_flight(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("g1", "g")).await.unwrap();
    q.send(&in_group("g2", "g")).await.unwrap();
    let first = receive_one(q, LONG).await;
    assert_eq!(first.body, "g1");
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "g2 waits while g1 is in flight"
    );
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (1, 1));
    q.ack(&first.receipt).await.unwrap();
    let second = receive_one(q, LONG).await;
    assert_eq!(second.body, "g2");
    assert_eq!(second.receive_count, 1);
}

async fn fifo_other_groups_are_not_blocked(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("g1", "g")).await.unwrap();
    q.send(&in_group("g2", "g")).await.unwrap();
    q.send(&in_group("h1", "h")).await.unwrap();
    let first = receive_one(q, LONG).await;
    let (blocked, other_head) = match first.body.as_str() {
        "g1" => ("g", "h1"),
        "h1" => ("h", "g1"),
        other => panic!("{other} is not the head of a group"),
    };
    let rest = q.receive(10, LONG, 2 * SECOND).await.unwrap();
    assert_eq!(
        rest.first().map(|m| m.body.as_str()),
        Some(other_head),
        "the other group is served while {blocked} is in flight"
    );
    assert!(
        rest.iter().all(|m| m.group.as_deref() != Some(blocked)),
        "{:?}",
        bodies(&rest)
    );
}

async fn fifo_release_with_delay_keeps_the_group_blocked(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("g1", "g")).await.unwrap();
    q.send(&in_group("g2", "g")).await.unwrap();
    let first = receive_one(q, LONG).await;
    assert_eq!(first.body, "g1");
    let released_at = Instant::now();
    q.release(&first.receipt, 2 * SECOND).await.unwrap(); // throttled: wait 2 s
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "g2 is not handed out while g1 waits out its delay"
    );
    let back = receive_n(q, 1, LONG, Duration::from_secs(5)).await;
    assert_eq!(bodies(&back), ["g1"], "g1 comes back first");
    assert_eq!(back[0].receive_count, 2);
    assert!(released_at.elapsed() >= Duration::from_millis(1900));
    q.ack(&back[0].receipt).await.unwrap();
    assert_eq!(
        bodies(&drain_acking(q, 1, Duration::from_secs(3)).await),
        ["g2"]
    );
}

async fn fifo_drops_a_repeated_dedup_id(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("first", "g").dedup_id("evt-1"))
        .await
        .unwrap();
    // Accepted, and dropped: same id within the window (in any group: the scope is the queue).
    q.send(&in_group("again", "g").dedup_id("evt-1"))
        .await
        .unwrap();
    q.send(&in_group("elsewhere", "h").dedup_id("evt-1"))
        .await
        .unwrap();
    q.send(&in_group("second", "g").dedup_id("evt-2"))
        .await
        .unwrap();
    // No id: never a duplicate, even with the same body.
    q.send(&in_group("second", "g")).await.unwrap();
    let all = drain_acking(q, 4, Duration::from_secs(4)).await;
    assert_eq!(bodies(&all), ["first", "second", "second"]);
}

async fn fifo_refuses_what_sqs_refuses(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    let delayed = in_group("later", "g").delay(2 * SECOND);
    assert!(matches!(
        q.send(&delayed).await,
        Err(QueueError::Unsupported(Unsupported::DelayOnFifo))
    ));
    assert!(matches!(
        q.send_batch(&[in_group("fine", "g"), delayed]).await,
        Err(QueueError::Unsupported(Unsupported::DelayOnFifo))
    ));
    assert!(matches!(
        q.send(&OutMessage::new("no group")).await,
        Err(QueueError::Unsupported(Unsupported::NoGroupOnFifo))
    ));
    assert!(matches!(
        q.send(&in_group("bad group", "has space")).await,
        Err(QueueError::Invalid(_))
    ));
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "nothing refused was enqueued"
    );
}

async fn standard_carries_groups_but_refuses_dedup_ids(backend: Backend) {
    let Some(o) = open(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    assert!(matches!(
        q.send(&OutMessage::new("x").dedup_id("evt-1")).await,
        Err(QueueError::Unsupported(Unsupported::DedupOnStandard))
    ));
    q.send(&in_group("g1", "g")).await.unwrap();
    q.send(&in_group("g2", "g")).await.unwrap();
    // A standard queue orders nothing: both of one group are handed out at once.
    let got = receive_n(q, 2, LONG, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.group.as_deref() == Some("g")));
}

async fn fifo_dead_letter_keeps_group_and_reason(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("g1", "pair-1").attribute("kind", "referral"))
        .await
        .unwrap();
    q.send(&in_group("g2", "pair-1")).await.unwrap();
    let m = receive_one(q, LONG).await;
    q.dead_letter(&m, "mapping: unknown country XX")
        .await
        .unwrap();
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "g1");
    assert_eq!(dead[0].group.as_deref(), Some("pair-1"));
    assert_eq!(dead[0].reason, "mapping: unknown country XX");
    assert_eq!(dead[0].receive_count, 1);
    assert_eq!(dead[0].attributes, attrs(&[("kind", "referral")]));
    // Dead-lettering ends g1's flight: its group moves on.
    let next = receive_one(q, LONG).await;
    assert_eq!(next.body, "g2");
}

async fn fifo_replay_puts_letters_back_in_their_group(backend: Backend) {
    let Some(o) = open_fifo(backend, 5).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("g1", "g")).await.unwrap();
    q.send(&in_group("h1", "h")).await.unwrap();
    for m in drain_received(q, 2).await {
        q.dead_letter(&m, "downstream down").await.unwrap();
    }
    assert_eq!(q.replay_dead_letters(None).await.unwrap(), 2);
    assert!(q.list_dead_letters(10).await.unwrap().is_empty());
    let mut back = drain_received(q, 2).await;
    q.send(&in_group("g2", "g")).await.unwrap();
    back.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(bodies(&back), ["g1", "h1"]);
    assert_eq!(back[0].group.as_deref(), Some("g"));
    assert_eq!(back[1].group.as_deref(), Some("h"));
    assert!(back.iter().all(|m| m.receive_count == 1));
    assert!(
        q.receive(10, LONG, SECOND).await.unwrap().is_empty(),
        "the replayed g1 blocks its group like any message of it"
    );
    q.ack(&back[0].receipt).await.unwrap();
    assert_eq!(
        bodies(&drain_acking(q, 1, Duration::from_secs(3)).await),
        ["g2"]
    );
}

/// Receives (without acking) until `n` messages are held; across several receives, since a
/// FIFO receive may hand out one group at a time.
async fn drain_received(q: &dyn Queue, n: usize) -> Vec<Received> {
    let got = receive_n(q, n, LONG, Duration::from_secs(5)).await;
    assert_eq!(got.len(), n, "{:?}", bodies(&got));
    got
}

/// The engine's bounded retries: the attempt count grows by one per receive, and at
/// attempt N it dead-letters with its last reason, before the redrive backstop (which
/// would only move it on the next receive).
async fn failing_message_reaches_the_dlq_at_attempt_n(backend: Backend, kind: QueueKind) {
    const N: u32 = 3;
    let Some(o) = open_kind(backend, N, kind).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("times out", "g")).await.unwrap();
    for attempt in 1..=N {
        let m = receive_one(q, LONG).await;
        assert_eq!(m.receive_count, attempt);
        let reason = format!("timeout on attempt {}", m.receive_count);
        if m.receive_count < N {
            q.release(&m.receipt, Duration::ZERO).await.unwrap();
        } else {
            q.dead_letter(&m, &reason).await.unwrap();
        }
    }
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "timeout on attempt 3");
    assert_eq!(dead[0].receive_count, N);
    assert_eq!(dead[0].group.as_deref(), Some("g"));
}

async fn standard_failing_message_reaches_the_dlq_at_attempt_n(backend: Backend) {
    failing_message_reaches_the_dlq_at_attempt_n(backend, QueueKind::Standard).await
}

async fn fifo_failing_message_reaches_the_dlq_at_attempt_n(backend: Backend) {
    failing_message_reaches_the_dlq_at_attempt_n(backend, QueueKind::Fifo).await
}

/// The backstop on FIFO: past the max receive count the message goes to the DLQ (keeping its
/// group) and frees its group for the next one.
async fn fifo_dead_lettered_after_max_receives(backend: Backend) {
    let Some(o) = open_fifo(backend, 2).await else {
        return;
    };
    let q = o.queue.as_ref();
    q.send(&in_group("poison", "g")).await.unwrap();
    q.send(&in_group("next", "g")).await.unwrap();
    for n in 1..=2 {
        let m = receive_one(q, LONG).await;
        assert_eq!((m.body.as_str(), m.receive_count), ("poison", n));
        q.release(&m.receipt, Duration::ZERO).await.unwrap();
    }
    let next = receive_one(q, LONG).await;
    assert_eq!(
        next.body, "next",
        "the third receive moves poison to the DLQ"
    );
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].reason, MAX_RECEIVES_REASON);
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(dead[0].group.as_deref(), Some("g"));
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Sqlite).await
            })*
        }
        mod sqs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Sqs).await
            })*
        }
    };
}

contract!(
    send_receive_ack,
    delay_is_honoured,
    redelivered_after_visibility_timeout,
    release_returns_the_message,
    dead_lettered_after_max_receives,
    explicit_dead_letter_keeps_the_reason,
    dead_letters_replay_selectively_or_all,
    standard_carries_groups_but_refuses_dedup_ids,
    standard_failing_message_reaches_the_dlq_at_attempt_n,
    fifo_hands_a_group_out_in_send_order,
    fifo_blocks_a_group_while_one_is_in_flight,
    fifo_other_groups_are_not_blocked,
    fifo_release_with_delay_keeps_the_group_blocked,
    fifo_drops_a_repeated_dedup_id,
    fifo_refuses_what_sqs_refuses,
    fifo_dead_letter_keeps_group_and_reason,
    fifo_replay_puts_letters_back_in_their_group,
    fifo_failing_message_reaches_the_dlq_at_attempt_n,
    fifo_dead_lettered_after_max_receives,
);

// ---- SQLite specifics -------------------------------------------------------------------

#[tokio::test]
async fn sqlite_unacked_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    {
        let q = SqliteQueue::open(&path, "work", 5).unwrap();
        q.send(&OutMessage::new("in flight")).await.unwrap();
        q.send(&OutMessage::new("waiting")).await.unwrap();
        let got = q.receive(1, SECOND, Duration::ZERO).await.unwrap();
        assert_eq!(got[0].body, "in flight");
        let doomed = q.send(&OutMessage::new("doomed")).await.unwrap();
        let all = q.receive(5, LONG, Duration::ZERO).await.unwrap();
        let doomed = all.iter().find(|m| m.id == doomed).unwrap();
        q.dead_letter(doomed, "bad").await.unwrap();
        // Dropped without acking: as if the process were killed.
    }
    let q = SqliteQueue::open(&path, "work", 5).unwrap();
    let back = receive_n(&q, 1, LONG, Duration::from_secs(3)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, "in flight");
    assert_eq!(back[0].receive_count, 2);
    let dead = q.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "bad");
}

#[tokio::test]
async fn sqlite_queues_in_one_file_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    let inbound = SqliteQueue::open(&path, "inbound", 5).unwrap();
    let outbound = SqliteQueue::open(&path, "outbound", 5).unwrap();
    inbound.send(&OutMessage::new("in")).await.unwrap();
    assert!(outbound
        .receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let got = inbound.receive(10, LONG, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(matches!(
        outbound.release(&got[0].receipt, Duration::ZERO).await,
        Err(QueueError::InvalidReceipt)
    ));
    assert_eq!(outbound.depth().await.unwrap().in_flight, 0);
    assert_eq!(inbound.depth().await.unwrap().in_flight, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_receivers_never_share_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    let q = SqliteQueue::open(&path, "work", 5).unwrap();
    let messages: Vec<_> = (0..40).map(|i| OutMessage::new(i.to_string())).collect();
    q.send_batch(&messages).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        // Separate connections, as separate processes would have.
        let q = SqliteQueue::open(&path, "work", 5).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            loop {
                let got = q.receive(3, LONG, Duration::ZERO).await.unwrap();
                if got.is_empty() {
                    return bodies;
                }
                bodies.extend(got.into_iter().map(|m| m.body));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|b| b.parse::<u32>().unwrap());
    let expected: Vec<_> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(all, expected, "each message exactly once");
}

#[tokio::test]
async fn sqlite_fifo_hands_out_one_message_per_group_per_receive() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open_fifo(dir.path().join("queues.db"), "sync", 5).unwrap();
    for (body, group) in [("g1", "g"), ("g2", "g"), ("h1", "h"), ("h2", "h")] {
        q.send(&in_group(body, group)).await.unwrap();
    }
    let got = q.receive(10, LONG, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&got), ["g1", "h1"]);
    assert!(q
        .receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

/// SQS keeps a de-duplication id for 5 minutes from its first send, consumed or not (moto
/// forgets it once the message is deleted, so this half is SQLite's alone).
#[tokio::test]
async fn sqlite_dedup_id_outlives_its_message_until_the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    let q = SqliteQueue::open_fifo(&path, "sync", 5).unwrap();
    let first = q
        .send(&in_group("first", "g").dedup_id("evt-1"))
        .await
        .unwrap();
    let m = q.receive(10, LONG, Duration::ZERO).await.unwrap();
    q.ack(&m[0].receipt).await.unwrap();
    let again = q
        .send(&in_group("again", "g").dedup_id("evt-1"))
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "a dropped duplicate answers with the first message's id"
    );
    assert!(q
        .receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());

    // The window ends (moved into the past rather than waited for).
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE queue_dedup SET expires_at_ms = expires_at_ms - 300000",
        [],
    )
    .unwrap();
    let later = q
        .send(&in_group("later", "g").dedup_id("evt-1"))
        .await
        .unwrap();
    assert_ne!(later, first);
    let got = q.receive(10, LONG, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&got), ["later"]);
}

#[tokio::test]
async fn sqlite_queue_keeps_the_kind_it_was_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    SqliteQueue::open(&path, "inbound", 5).unwrap();
    SqliteQueue::open_fifo(&path, "sync", 5).unwrap();
    assert!(matches!(
        SqliteQueue::open_fifo(&path, "inbound", 5),
        Err(QueueError::KindMismatch {
            existing: QueueKind::Standard,
            ..
        })
    ));
    assert!(matches!(
        SqliteQueue::open(&path, "sync", 5),
        Err(QueueError::KindMismatch {
            existing: QueueKind::Fifo,
            ..
        })
    ));
    assert_eq!(
        SqliteQueue::open(&path, "inbound", 5).unwrap().kind(),
        QueueKind::Standard
    );
}

/// A file written before FIFO queues existed (no group columns) opens, keeps its messages
/// and dead letters, and takes FIFO queues.
#[tokio::test]
async fn sqlite_file_from_before_groups_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE queue_messages (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 queue TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT NOT NULL,
                 visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
                 receipt TEXT UNIQUE);
             CREATE TABLE queue_dead_letters (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 queue TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT NOT NULL,
                 reason TEXT NOT NULL, receive_count INTEGER NOT NULL, failed_at TEXT NOT NULL);
             INSERT INTO queue_messages (id, queue, body, attributes, visible_at_ms)
                 VALUES ('m-1', 'inbound', 'old', '{}', 0);
             INSERT INTO queue_dead_letters (id, queue, body, attributes, reason, receive_count, failed_at)
                 VALUES ('d-1', 'inbound', 'old dead', '{}', 'bad', 2, '2026-11-30T10:00:00Z');",
        )
        .unwrap();
    }
    let inbound = SqliteQueue::open(&path, "inbound", 5).unwrap();
    let got = inbound.receive(10, LONG, Duration::ZERO).await.unwrap();
    assert_eq!((bodies(&got), got[0].group.clone()), (vec!["old"], None));
    let dead = inbound.list_dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].body.as_str(), dead[0].group.clone()),
        ("old dead", None)
    );
    let sync = SqliteQueue::open_fifo(&path, "sync", 5).unwrap();
    sync.send(&in_group("new", "g")).await.unwrap();
    let got = sync.receive(10, LONG, Duration::ZERO).await.unwrap();
    assert_eq!(got[0].group.as_deref(), Some("g"));
}

/// Four receivers on one FIFO queue: each group is worked on by one of them at a time, in
/// send order, while the groups proceed side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fifo_concurrent_receivers_keep_each_group_serial() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const MESSAGES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.db");
    let q = SqliteQueue::open_fifo(&path, "sync", 5).unwrap();
    let messages: Vec<_> = (0..MESSAGES)
        .map(|i| in_group(&i.to_string(), &format!("pair-{}", i % 4)))
        .collect();
    q.send_batch(&messages).await.unwrap();
    let holding = Arc::new(Mutex::new(HashSet::new()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let q = SqliteQueue::open_fifo(&path, "sync", 5).unwrap();
        let (holding, log, done) = (holding.clone(), log.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < MESSAGES {
                let got = q.receive(3, LONG, Duration::ZERO).await.unwrap();
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                for m in got {
                    let group = m.group.clone().unwrap();
                    assert!(
                        holding.lock().unwrap().insert(group.clone()),
                        "{group} handed out twice at once"
                    );
                    log.lock()
                        .unwrap()
                        .push((group.clone(), m.body.parse::<usize>().unwrap()));
                    tokio::task::yield_now().await;
                    holding.lock().unwrap().remove(&group);
                    q.ack(&m.receipt).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), MESSAGES);
    for g in 0..4 {
        let order: Vec<usize> = log
            .iter()
            .filter(|(group, _)| *group == format!("pair-{g}"))
            .map(|(_, n)| *n)
            .collect();
        let sent: Vec<usize> = (0..MESSAGES).filter(|i| i % 4 == g).collect();
        assert_eq!(order, sent, "pair-{g} in send order");
    }
}
