//! The retry discipline every outward HTTP call follows: a timeout on each attempt,
//! exponential backoff with jitter on 5xx, timeouts and dropped connections, `Retry-After`
//! honoured on 429, and a typed error naming the call when it gives up. Statuses that a
//! retry cannot fix (4xx other than 429 and 408) come back as the response, for the client
//! to turn into its own typed error.

use std::time::Duration;

use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};

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
}

impl CallError {
    /// How long to wait before trying the whole operation again, when that can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Throttled { retry_after, .. } => Some(*retry_after),
            CallError::Timeout { .. }
            | CallError::Transport { .. }
            | CallError::Unavailable { .. } => Some(Duration::from_secs(30)),
        }
    }
}

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

/// Sends the request that `build` makes, retrying as the policy says. `build` is called once
/// per attempt so each attempt gets a fresh body and fresh headers (e.g. a refreshed token),
/// while anything it captures (such as a request id) stays the same across retries.
pub async fn send<F>(policy: &RetryPolicy, call: &str, mut build: F) -> Result<Response, CallError>
where
    F: FnMut() -> RequestBuilder,
{
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let result = build().timeout(policy.attempt_timeout).send().await;
        let last = attempt > policy.max_retries;
        let wait = match result {
            Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(&resp).unwrap_or_else(|| policy.backoff(attempt - 1));
                tracing::warn!(
                    call,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "throttled"
                );
                if last || wait > policy.max_inline_wait {
                    return Err(CallError::Throttled {
                        call: call.to_string(),
                        retry_after: wait,
                    });
                }
                wait
            }
            Ok(resp) if retryable_status(resp.status()) => {
                let status = resp.status().as_u16();
                if last {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(CallError::Unavailable {
                        call: call.to_string(),
                        status,
                        attempts: attempt,
                        body: truncate(&body, 500),
                    });
                }
                tracing::warn!(call, attempt, status, "server error, will retry");
                // A server's Retry-After must not hold the caller past the policy's wait.
                retry_after(&resp)
                    .map(|w| w.min(policy.max_inline_wait))
                    .unwrap_or_else(|| policy.backoff(attempt - 1))
            }
            Ok(resp) => return Ok(resp),
            Err(e) => {
                let timeout = e.is_timeout();
                let reason = describe(e);
                if last {
                    return Err(if timeout {
                        CallError::Timeout {
                            call: call.to_string(),
                            attempts: attempt,
                            timeout: policy.attempt_timeout,
                        }
                    } else {
                        CallError::Transport {
                            call: call.to_string(),
                            attempts: attempt,
                            reason,
                        }
                    });
                }
                tracing::warn!(call, attempt, timeout, error = %reason, "request failed, will retry");
                policy.backoff(attempt - 1)
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
