//! The retry discipline every outward HTTP call follows: a timeout on each attempt,
//! exponential backoff with jitter on 5xx, timeouts and dropped connections, `Retry-After`
//! honoured on 429, and a typed error naming the call when it gives up. Statuses that a
//! retry cannot fix (4xx other than 429 and 408) come back as the response, for the client
//! to turn into its own typed error.
//!
//! Three things bound the retries beyond the policy:
//! - a deadline set by the caller with [`within_deadline`]: no attempt, backoff or
//!   `Retry-After` sleep runs past it (less [`DEADLINE_MARGIN`]);
//! - [`Idempotency`]: a request that is not idempotent is not sent again once it may have
//!   reached the service (it could have been applied), only after a connect error;
//! - a [`ThrottleGate`] per service and credential: after a 429 every caller of that service
//!   in the process waits out the `Retry-After` window instead of adding to the storm.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

use crate::telemetry::record;
use crate::telemetry::Service;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` we sleep through in-process. A longer one is returned as
    /// [`CallError::Throttled`] so the caller can park the work (e.g. an SQS delay) instead
    /// of burning its time budget.
    pub max_inline_wait: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_inline_wait: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests and local stand-ins: same logic, short waits.
    pub fn fast() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_inline_wait: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    /// Full-jitter exponential backoff for retry number `n` (0-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let cap = self
            .base_backoff
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_backoff);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

/// Why a call failed for good. `call` names the operation, e.g. `"get referral"`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{call}: no answer within {timeout:?} after {attempts} attempt(s)")]
    Timeout {
        call: String,
        attempts: u32,
        timeout: Duration,
    },
    #[error("{call}: connection failed after {attempts} attempt(s): {reason}")]
    Transport {
        call: String,
        attempts: u32,
        reason: String,
    },
    #[error("{call}: throttled (429); the service asks to wait {retry_after:?}")]
    Throttled { call: String, retry_after: Duration },
    #[error("{call}: HTTP {status} after {attempts} attempt(s): {body}")]
    Unavailable {
        call: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    /// The caller's deadline left no room for another attempt or wait; `last` is why the
    /// previous attempt (if any) failed.
    #[error("{call}: stopped before the caller's deadline after {attempts} attempt(s){}", last.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    DeadlineReached {
        call: String,
        attempts: u32,
        last: Option<String>,
    },
    /// A request that is not idempotent may have reached the service and was not sent
    /// again: whether it took effect is unknown. Look before trying again.
    #[error("{call}: outcome unknown (the request may have been applied; not retried): {reason}")]
    OutcomeUnknown { call: String, reason: String },
}

impl CallError {
    /// How long to wait before trying the whole operation again, when that can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Throttled { retry_after, .. } => Some(*retry_after),
            CallError::Timeout { .. }
            | CallError::Transport { .. }
            | CallError::Unavailable { .. }
            | CallError::DeadlineReached { .. }
            | CallError::OutcomeUnknown { .. } => Some(Duration::from_secs(30)),
        }
    }

    /// True when the request may have been applied although no answer said so.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CallError::OutcomeUnknown { .. })
    }
}

/// Whether sending the same request twice leaves the service as sending it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, DELETE, PATCH with `If-Match`, an upsert to a fixed key, a POST the service
    /// de-duplicates: retried after timeouts, dropped connections and 5xx.
    Idempotent,
    /// A plain POST create or action: retried only when it surely never left (a connect
    /// error) or was refused unprocessed (429); otherwise [`CallError::OutcomeUnknown`].
    NotIdempotent,
}

/// How one call is sent: whether it may be repeated, and the service's throttle gate.
#[derive(Clone, Copy)]
pub struct CallOptions<'a> {
    pub idempotency: Idempotency,
    pub gate: Option<&'a ThrottleGate>,
    /// Whom the call goes to, for the metrics (calls, retries, 429s).
    pub service: Service,
}

impl<'a> CallOptions<'a> {
    pub fn idempotent() -> Self {
        CallOptions {
            idempotency: Idempotency::Idempotent,
            gate: None,
            service: Service::Other,
        }
    }

    /// The same options, counted under `service`.
    pub fn service(mut self, service: Service) -> Self {
        self.service = service;
        self
    }

    pub fn new(idempotency: Idempotency, gate: &'a ThrottleGate) -> Self {
        CallOptions {
            idempotency,
            gate: Some(gate),
            service: Service::Other,
        }
    }
}

// ---- the caller's deadline ----

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Time kept back from a deadline: an answer that arrives at the very deadline is useless
/// to a caller that still has to act on it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Runs `fut` with `deadline` for every [`send`] awaited inside it (on this task; spawned
/// tasks do not inherit it). Nested deadlines keep the earlier one.
pub async fn within_deadline<F: Future>(deadline: Instant, fut: F) -> F::Output {
    let effective = current_deadline().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(effective, fut).await
}

/// The deadline set by [`within_deadline`] around the current task, if any.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Usable time before the deadline (margin taken off); `None` without a deadline.
fn time_left() -> Option<Duration> {
    current_deadline().map(|d| {
        d.saturating_duration_since(Instant::now())
            .saturating_sub(DEADLINE_MARGIN)
    })
}

/// True when waiting `wait` still leaves time for an attempt before the deadline.
fn wait_fits(wait: Duration) -> bool {
    time_left().is_none_or(|left| wait < left)
}

// ---- the throttle gate ----

/// Closed for the `Retry-After` window of the last 429 from one service for one credential.
/// Every caller that shares it waits until it opens (or gets [`CallError::Throttled`] when
/// the wait is longer than it may sleep).
#[derive(Debug, Default)]
pub struct ThrottleGate {
    closed_until: Mutex<Option<Instant>>,
}

impl ThrottleGate {
    /// The process-wide gate for `key` (name the service, its URL and the credential):
    /// every client built for the same service and credential gets the same gate.
    pub fn shared(key: &str) -> Arc<ThrottleGate> {
        static GATES: OnceLock<Mutex<HashMap<String, Arc<ThrottleGate>>>> = OnceLock::new();
        let mut gates = lock(GATES.get_or_init(Default::default));
        gates.entry(key.to_string()).or_default().clone()
    }

    /// Keeps the gate closed for at least `wait` from now.
    pub fn close_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut closed = lock(&self.closed_until);
        if closed.is_none_or(|c| c < until) {
            *closed = Some(until);
        }
    }

    /// Opens the gate now (for a test standing in for the window's end).
    pub fn open(&self) {
        *lock(&self.closed_until) = None;
    }

    /// How long until the gate opens; `None` when it is open.
    pub fn remaining(&self) -> Option<Duration> {
        let closed = *lock(&self.closed_until);
        closed
            .map(|c| c.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A little extra after the gate opens, so its waiters do not all return in the same instant.
fn release_jitter(wait: Duration) -> Duration {
    let cap = (wait / 4).min(Duration::from_secs(1)).as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

// ---- sending ----

/// Reads `Retry-After` as seconds (the form both Microsoft services use).
pub fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn retryable_status(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT
}

/// Sends an idempotent request that `build` makes, retrying as the policy says. `build` is
/// called once per attempt so each attempt gets a fresh body and fresh headers (e.g. a
/// refreshed token), while anything it captures (such as a request id) stays the same.
pub async fn send<F>(policy: &RetryPolicy, call: &str, build: F) -> Result<Response, CallError>
where
    F: FnMut() -> RequestBuilder,
{
    send_with(policy, call, CallOptions::idempotent(), build).await
}

/// [`send`] with the request's idempotency and its service's throttle gate.
pub async fn send_with<F>(
    policy: &RetryPolicy,
    call: &str,
    options: CallOptions<'_>,
    mut build: F,
) -> Result<Response, CallError>
where
    F: FnMut() -> RequestBuilder,
{
    run(policy, call, options, |timeout| {
        let request = build().timeout(timeout);
        async move {
            match request.send().await {
                Ok(resp) => Attempt::Answer(resp),
                Err(e) => Attempt::Failed {
                    timeout: e.is_timeout(),
                    connect: e.is_connect(),
                    reason: describe(e),
                },
            }
        }
    })
    .await
}

/// What one attempt gave.
enum Attempt {
    Answer(Response),
    /// `connect`: the request never left (no connection was made).
    Failed {
        timeout: bool,
        connect: bool,
        reason: String,
    },
}

/// The retry loop, over `attempt(timeout)` so tests can drive it without a network.
async fn run<A, Fut>(
    policy: &RetryPolicy,
    call: &str,
    options: CallOptions<'_>,
    mut attempt: A,
) -> Result<Response, CallError>
where
    A: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let may_resend = options.idempotency == Idempotency::Idempotent;
    let mut attempts: u32 = 0;
    let mut last_failure: Option<String> = None;
    let deadline_reached = |attempts: u32, last: Option<String>| CallError::DeadlineReached {
        call: call.to_string(),
        attempts,
        last,
    };
    let throttled = |wait: Duration| CallError::Throttled {
        call: call.to_string(),
        retry_after: wait,
    };
    record::call_started(options.service);
    loop {
        if let Some(wait) = options.gate.and_then(ThrottleGate::remaining) {
            if wait > policy.max_inline_wait || !wait_fits(wait) {
                return Err(throttled(wait));
            }
            tracing::debug!(
                call,
                wait_ms = wait.as_millis() as u64,
                "service throttled, waiting"
            );
            tokio::time::sleep(wait + release_jitter(wait)).await;
            continue;
        }
        let timeout = match time_left() {
            None => policy.attempt_timeout,
            Some(left) if left.is_zero() => return Err(deadline_reached(attempts, last_failure)),
            Some(left) => left.min(policy.attempt_timeout),
        };
        attempts += 1;
        if attempts > 1 {
            record::call_retried(options.service);
        }
        let last = attempts > policy.max_retries;
        let wait = match attempt(timeout).await {
            Attempt::Answer(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                // Refused unprocessed, so even a non-idempotent request may be sent again.
                let wait = retry_after(&resp).unwrap_or_else(|| policy.backoff(attempts - 1));
                record::throttled(options.service, wait);
                if let Some(gate) = options.gate {
                    gate.close_for(wait);
                }
                tracing::warn!(
                    call,
                    attempt = attempts,
                    wait_ms = wait.as_millis() as u64,
                    "throttled"
                );
                if last || wait > policy.max_inline_wait || !wait_fits(wait) {
                    return Err(throttled(wait));
                }
                wait
            }
            Attempt::Answer(resp) if retryable_status(resp.status()) => {
                let status = resp.status().as_u16();
                if !may_resend {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(CallError::OutcomeUnknown {
                        call: call.to_string(),
                        reason: format!("HTTP {status}: {}", truncate(&body, 300)),
                    });
                }
                if last {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(CallError::Unavailable {
                        call: call.to_string(),
                        status,
                        attempts,
                        body: truncate(&body, 500),
                    });
                }
                tracing::warn!(call, attempt = attempts, status, "server error, will retry");
                // A server's Retry-After must not hold the caller past the policy's wait.
                let wait = retry_after(&resp)
                    .map(|w| w.min(policy.max_inline_wait))
                    .unwrap_or_else(|| policy.backoff(attempts - 1));
                last_failure = Some(format!("HTTP {status}"));
                if !wait_fits(wait) {
                    return Err(deadline_reached(attempts, last_failure));
                }
                wait
            }
            Attempt::Answer(resp) => return Ok(resp),
            Attempt::Failed {
                timeout: timed_out,
                connect,
                reason,
            } => {
                if !connect && !may_resend {
                    return Err(CallError::OutcomeUnknown {
                        call: call.to_string(),
                        reason,
                    });
                }
                if timed_out && time_left().is_some_and(|left| left.is_zero()) {
                    return Err(deadline_reached(attempts, Some(reason)));
                }
                if last {
                    return Err(if timed_out {
                        CallError::Timeout {
                            call: call.to_string(),
                            attempts,
                            timeout,
                        }
                    } else {
                        CallError::Transport {
                            call: call.to_string(),
                            attempts,
                            reason,
                        }
                    });
                }
                tracing::warn!(call, attempt = attempts, timeout = timed_out, error = %reason, "request failed, will retry");
                let wait = policy.backoff(attempts - 1);
                if !wait_fits(wait) {
                    return Err(deadline_reached(attempts, Some(reason)));
                }
                last_failure = Some(reason);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The error chain without the URL's query string (it may hold a token).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
#[path = "retry/tests.rs"]
mod tests;
