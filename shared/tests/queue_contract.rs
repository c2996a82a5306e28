//! One contract for every `Queue` adapter: each case is written once and run against
//! SQLite (temp dir) and SQS (moto). Visibility timeouts are 1 s so the suite stays fast.

mod moto_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::sqs::SqsQueue;
use cosell::queue::{OutMessage, Queue, QueueError, Received, MAX_RECEIVES_REASON};
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
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let queue =
                SqliteQueue::open(dir.path().join("queues.db"), "work", max_receive_count).unwrap();
            Some(Opened {
                queue: Arc::new(queue),
                _dir: Some(dir),
            })
        }
        Backend::Sqs => {
            let url = moto_server::url()?;
            let client = aws_local::sqs_client(&url, moto_server::REGION).await;
            let name = moto_server::unique("cosell-work");
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
    }
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
