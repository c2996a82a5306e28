//! Fault injection: the next N matching requests are throttled, fail, stall or lose their
//! connection; webhook deliveries can be duplicated, held back and reordered, or suppressed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::state::{RequestRecord, State};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after_secs`.
    Throttle { retry_after_secs: u64 },
    /// A 5xx (or any) status with an error body.
    Status { status: u16 },
    /// Answers normally after a pause.
    Delay { millis: u64 },
    /// Closes the connection without answering.
    Drop,
}

/// A fault for the next `count` requests that match `method` and `path_prefix` (when set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    pub fn new(kind: FaultKind, count: u32) -> Self {
        Fault {
            kind,
            count,
            method: None,
            path_prefix: None,
        }
    }

    pub fn on(mut self, method: &str, path_prefix: &str) -> Self {
        self.method = Some(method.to_string());
        self.path_prefix = Some(path_prefix.to_string());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.count > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// Switches for the next webhook deliveries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFaults {
    /// Deliver each of the next N events twice.
    #[serde(default)]
    pub duplicate: u32,
    /// Drop the next N events (a missed webhook).
    #[serde(default)]
    pub suppress: u32,
    /// Hold events until released (then they can go out in reverse order).
    #[serde(default)]
    pub hold: bool,
}

/// Records each API request, then applies the first matching fault.
pub(crate) async fn layer(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if path.starts_with("/_standin") || path.starts_with("/cert/") {
        return next.run(req).await;
    }
    // Read headers before any await: a borrow of the request would make the future !Send.
    let (request_id, correlation_id) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (header("ms-requestid"), header("ms-correlationid"))
    };
    let fault = {
        let mut inner = state.lock();
        inner.requests.push(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            request_id,
            correlation_id,
        });
        inner
            .faults
            .iter_mut()
            .find(|f| f.matches(&method, &path))
            .map(|f| {
                f.count -= 1;
                f.kind.clone()
            })
    };
    match fault {
        None => next.run(req).await,
        Some(FaultKind::Throttle { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", retry_after_secs.to_string())],
            axum::Json(serde_json::json!({"code": "429", "description": "Rate limit is exceeded"})),
        )
            .into_response(),
        Some(FaultKind::Status { status }) => Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .body(Body::from(
                serde_json::json!({"code": status.to_string(), "description": "injected failure"})
                    .to_string(),
            ))
            .expect("valid response"),
        Some(FaultKind::Delay { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(req).await
        }
        // Unwinding the connection task makes the server close the socket with no answer;
        // `resume_unwind` skips the panic hook, so nothing is printed.
        Some(FaultKind::Drop) => std::panic::resume_unwind(Box::new("injected connection drop")),
    }
}
