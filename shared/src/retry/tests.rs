//! The retry loop against scripted attempts, on tokio's paused clock: every wait and timeout
//! is exact, and nothing touches the network.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;

/// What a scripted attempt does.
#[derive(Clone)]
enum Step {
    Status(u16, Option<u64>),
    /// Never answers: the attempt ends at its timeout.
    Hang,
    Refused,
    Dropped,
}

/// Attempts in order; each records when it started and the timeout it was given.
#[derive(Clone, Default)]
struct Script {
    steps: Arc<Mutex<VecDeque<Step>>>,
    seen: Arc<Mutex<Vec<(Instant, Duration)>>>,
}

impl Script {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Script {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            seen: Default::default(),
        }
    }

    fn starts(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|s| s.0).collect()
    }

    fn timeouts(&self) -> Vec<Duration> {
        self.seen.lock().unwrap().iter().map(|s| s.1).collect()
    }

    fn attempt(&self, timeout: Duration) -> impl Future<Output = Attempt> {
        self.seen.lock().unwrap().push((Instant::now(), timeout));
        let step = self
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Status(200, None));
        async move {
            match step {
                Step::Status(code, retry_after) => {
                    let mut b = http::Response::builder().status(code);
                    if let Some(s) = retry_after {
                        b = b.header("Retry-After", s.to_string());
                    }
                    Attempt::Answer(Response::from(b.body("").unwrap()))
                }
                Step::Hang => {
                    tokio::time::sleep(timeout).await;
                    Attempt::Failed {
                        timeout: true,
                        connect: false,
                        reason: "timed out".into(),
                    }
                }
                Step::Refused => Attempt::Failed {
                    timeout: false,
                    connect: true,
                    reason: "connection refused".into(),
                },
                Step::Dropped => Attempt::Failed {
                    timeout: false,
                    connect: false,
                    reason: "connection closed before message completed".into(),
                },
            }
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 5,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(10),
        max_inline_wait: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(20),
    }
}

async fn go(script: &Script, options: CallOptions<'_>) -> Result<Response, CallError> {
    run(&policy(), "test call", options, |t| script.attempt(t)).await
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_a_retry_after_is_slept_through() {
    let script = Script::new([Step::Status(429, Some(10))]);
    let start = Instant::now();
    go(&script, CallOptions::idempotent()).await.unwrap();
    let starts = script.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1] - start, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_is_not_slept() {
    let script = Script::new([Step::Status(429, Some(10))]);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let err = within_deadline(deadline, go(&script, CallOptions::idempotent()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Throttled { retry_after, .. } if retry_after == Duration::from_secs(10)),
        "{err:?}"
    );
    assert_eq!(script.starts().len(), 1);
    assert_eq!(Instant::now(), start, "no sleep was taken");
}

#[tokio::test(start_paused = true)]
async fn each_attempt_timeout_is_capped_by_the_time_left() {
    let script = Script::new([Step::Hang, Step::Hang, Step::Hang]);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(7);
    let err = within_deadline(deadline, go(&script, CallOptions::idempotent()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::DeadlineReached { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        script.timeouts(),
        vec![Duration::from_secs(7) - DEADLINE_MARGIN]
    );
    assert!(Instant::now() <= deadline - DEADLINE_MARGIN);
}

#[tokio::test(start_paused = true)]
async fn server_errors_stop_before_the_deadline() {
    // 503 with Retry-After 2: attempts at 0, 2, 4 s; the next wait would end at 6 s, past
    // the usable 5.5 s.
    let script = Script::new((0..6).map(|_| Step::Status(503, Some(2))));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(6);
    let err = within_deadline(deadline, go(&script, CallOptions::idempotent()))
        .await
        .unwrap_err();
    match err {
        CallError::DeadlineReached { attempts, last, .. } => {
            assert_eq!(attempts, 3);
            assert_eq!(last.as_deref(), Some("HTTP 503"));
        }
        other => panic!("expected DeadlineReached, got {other:?}"),
    }
    assert_eq!(Instant::now() - start, Duration::from_secs(4));
    assert!(err_is_retry_later(&CallError::DeadlineReached {
        call: String::new(),
        attempts: 3,
        last: None
    }));
}

fn err_is_retry_later(e: &CallError) -> bool {
    e.retry_after().is_some()
}

#[tokio::test(start_paused = true)]
async fn nested_deadlines_keep_the_earlier() {
    let start = Instant::now();
    let outer = start + Duration::from_secs(3);
    let inner = start + Duration::from_secs(60);
    let seen = within_deadline(outer, within_deadline(inner, async { current_deadline() })).await;
    assert_eq!(seen, Some(outer));
    assert_eq!(current_deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_when_the_deadline_has_passed() {
    let script = Script::new([]);
    let deadline = Instant::now() + Duration::from_millis(100);
    let err = within_deadline(deadline, go(&script, CallOptions::idempotent()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CallError::DeadlineReached { attempts: 0, .. }
    ));
    assert!(script.starts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_request_is_not_resent_once_it_may_have_arrived() {
    let gate = ThrottleGate::default();
    let once = CallOptions::new(Idempotency::NotIdempotent, &gate);
    for step in [Step::Status(503, None), Step::Hang, Step::Dropped] {
        let script = Script::new([step, Step::Status(201, None)]);
        let err = go(&script, once).await.unwrap_err();
        assert!(err.outcome_unknown(), "{err:?}");
        assert_eq!(script.starts().len(), 1);
    }
    // The same faults are retried for an idempotent request.
    let again = CallOptions::new(Idempotency::Idempotent, &gate);
    for step in [Step::Status(503, None), Step::Hang, Step::Dropped] {
        let script = Script::new([step, Step::Status(200, None)]);
        go(&script, again).await.unwrap();
        assert_eq!(script.starts().len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_request_is_resent_after_a_connect_error_or_a_429() {
    let gate = ThrottleGate::default();
    let once = CallOptions::new(Idempotency::NotIdempotent, &gate);
    let script = Script::new([
        Step::Refused,
        Step::Status(429, Some(1)),
        Step::Status(201, None),
    ]);
    let resp = go(&script, once).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(script.starts().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn after_a_429_every_caller_of_the_service_waits_out_the_window() {
    let gate = ThrottleGate::default();
    let first = Script::new([Step::Status(429, Some(5))]);
    let other = Script::new([]);
    let start = Instant::now();
    let options = CallOptions::new(Idempotency::Idempotent, &gate);
    let a = go(&first, options);
    let b = async {
        // Starts after the first caller's 429 is in.
        tokio::time::sleep(Duration::from_millis(10)).await;
        go(&other, options).await
    };
    let (ra, rb) = tokio::join!(a, b);
    ra.unwrap();
    rb.unwrap();
    let b_start = other.starts()[0];
    assert!(
        b_start - start >= Duration::from_secs(5),
        "the other caller went at {:?}",
        b_start - start
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_gate_longer_than_the_inline_wait_comes_back_throttled_unsent() {
    let gate = ThrottleGate::default();
    gate.close_for(Duration::from_secs(120));
    let script = Script::new([]);
    let err = go(&script, CallOptions::new(Idempotency::Idempotent, &gate))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Throttled { .. }), "{err:?}");
    assert!(script.starts().is_empty());
}

#[test]
fn shared_gates_are_one_per_key() {
    let a = ThrottleGate::shared("svc-a|cred");
    let b = ThrottleGate::shared("svc-a|cred");
    let c = ThrottleGate::shared("svc-b|cred");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
}

/// A 429 then an answer: one call, one retry, one throttle with the wait it asked for, all
/// under the call's service.
#[tokio::test(start_paused = true)]
async fn a_throttled_call_counts_its_429_wait_and_retry() {
    use crate::telemetry::names::{self, dim};
    let recorded = crate::telemetry::testing::Recorded::default();
    let _guard = metrics::set_default_local_recorder(&recorded.recorder);
    let script = Script::new([Step::Status(429, Some(3)), Step::Status(200, None)]);
    let options = CallOptions::idempotent().service(Service::Dataverse);
    go(&script, options).await.unwrap();
    let dv = [(dim::SERVICE, "dataverse")];
    assert_eq!(recorded.counter(names::CALLS.name, &dv), 1);
    assert_eq!(recorded.counter(names::RETRIES.name, &dv), 1);
    assert_eq!(recorded.counter(names::THROTTLES.name, &dv), 1);
    assert_eq!(
        recorded.values(names::RETRY_AFTER_WAIT.name, &dv),
        vec![3000.0]
    );
    // An answer at once: a call and no retry.
    go(&Script::new([]), options).await.unwrap();
    assert_eq!(recorded.counter(names::CALLS.name, &dv), 2);
    assert_eq!(recorded.counter(names::RETRIES.name, &dv), 1);
}
