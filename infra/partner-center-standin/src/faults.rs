//! Fault injection: the next N matching requests are throttled, fail, stall or lose their
//! connection, or the next N writes run and commit, then lose their answer; webhook
//! deliveries can be duplicated, held back and reordered, or suppressed. Every API request
//! is recorded and counted per route, faulted ones included.

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
    /// Closes the connection without answering (the handler never runs).
    Drop,
    /// Runs the write to its end, then loses the answer as `lost_as` says. Armed for writes
    /// only (POST, PATCH, PUT, DELETE; not the token endpoint): reads pass it by.
    LoseResponse {
        #[serde(default)]
        lost_as: LostAs,
    },
}

/// How the client sees an answer lost after the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LostAs {
    /// The socket closes with no response.
    #[default]
    Drop,
    /// 504 Gateway Timeout, as a proxy in front of the service sends.
    GatewayTimeout,
}

impl From<LostAs> for standin_kit::Lost {
    fn from(l: LostAs) -> Self {
        match l {
            LostAs::Drop => standin_kit::Lost::Drop,
            LostAs::GatewayTimeout => standin_kit::Lost::GatewayTimeout,
        }
    }
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
    /// Matching requests let through before the fault fires (e.g. `1`: the second POST of
    /// a shared referral's two steps).
    #[serde(default)]
    pub skip: u32,
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
            skip: 0,
        }
    }

    /// Lets the first `n` matching requests through before the fault fires.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    pub fn on(mut self, method: &str, path_prefix: &str) -> Self {
        self.method = Some(method.to_string());
        self.path_prefix = Some(path_prefix.to_string());
        self
    }

    /// A lost answer after the write, for the next `count` matching writes.
    pub fn lose_response(lost_as: LostAs, count: u32) -> Self {
        Fault::new(FaultKind::LoseResponse { lost_as }, count)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let armed = match self.kind {
            FaultKind::LoseResponse { .. } => {
                standin_kit::is_write(method) && !path.ends_with(TOKEN_PATH)
            }
            _ => true,
        };
        armed
            && self.count > 0
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

const TOKEN_PATH: &str = "/oauth2/v2.0/token";

/// The counter key of a request: method and route with ids replaced, e.g. `GET referrals`,
/// `PATCH referrals/{id}`, `PUT registration`, `POST token`.
pub fn route_key(method: &str, path: &str) -> String {
    if path.ends_with(TOKEN_PATH) {
        return format!("{method} token");
    }
    let route = ["/v1.0/engagements/", "/webhooks/v1/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .unwrap_or(path);
    let named = ["referrals", "registration", "validationEvents", "events"];
    let route: Vec<&str> = route
        .split('/')
        .map(|seg| if named.contains(&seg) { seg } else { "{id}" })
        .collect();
    format!("{method} {}", route.join("/"))
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
        *inner
            .request_counts
            .entry(route_key(&method, &path))
            .or_default() += 1;
        inner.requests.push(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            request_id,
            correlation_id,
        });
        match inner.faults.iter_mut().find(|f| f.matches(&method, &path)) {
            Some(f) if f.skip > 0 => {
                f.skip -= 1;
                None
            }
            Some(f) => {
                f.count -= 1;
                Some(f.kind.clone())
            }
            None => None,
        }
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
        Some(FaultKind::Drop) => standin_kit::lost::drop_connection(),
        Some(FaultKind::LoseResponse { lost_as }) => {
            standin_kit::lost::after_handler(req, next, lost_as.into()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_hide_ids() {
        let id = "7eb682f1-ca75-e511-80d4-00155d2a68d1";
        for (method, path, key) in [
            (
                "GET",
                "/v1.0/engagements/referrals".to_string(),
                "GET referrals",
            ),
            (
                "PATCH",
                format!("/v1.0/engagements/referrals/{id}"),
                "PATCH referrals/{id}",
            ),
            (
                "PUT",
                "/webhooks/v1/registration".to_string(),
                "PUT registration",
            ),
            (
                "GET",
                format!("/webhooks/v1/registration/validationEvents/{id}"),
                "GET registration/validationEvents/{id}",
            ),
            (
                "POST",
                "/contoso/oauth2/v2.0/token".to_string(),
                "POST token",
            ),
        ] {
            assert_eq!(route_key(method, &path), key);
        }
    }
}
