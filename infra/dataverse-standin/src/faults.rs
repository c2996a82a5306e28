//! Fault injection and request counting. The next N matching requests are throttled (429
//! with `Retry-After` and a service-protection code), fail with 503, answer late, or lose
//! their connection; or the next N writes run and commit, then lose their answer. Every API
//! request is counted per route, faulted ones included.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::{State, API_PREFIX};

/// Which service-protection limit a 429 claims was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    #[default]
    Requests,
    ExecutionTime,
    Concurrency,
}

impl Limit {
    pub fn code(self) -> &'static str {
        match self {
            Limit::Requests => "0x80072322",
            Limit::ExecutionTime => "0x80072321",
            Limit::Concurrency => "0x80072326",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Limit::Requests => "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            Limit::ExecutionTime => "Combined execution time of incoming requests exceeded limit of 1,200,000  milliseconds over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
            Limit::Concurrency => "Number of concurrent requests exceeded the limit of 52.",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after_secs` and the limit's code and message.
    Throttle {
        retry_after_secs: u64,
        #[serde(default)]
        limit: Limit,
    },
    /// 503 Service Unavailable.
    Unavailable,
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

/// A fault for the next `count` requests whose method and path match (when set).
/// `path_contains` is matched against the path, e.g. `"opportunities"` or `"WinOpportunity"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
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
            path_contains: None,
        }
    }

    pub fn on(mut self, method: &str, path_contains: &str) -> Self {
        self.method = Some(method.to_string());
        self.path_contains = Some(path_contains.to_string());
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
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

const TOKEN_PATH: &str = "/oauth2/v2.0/token";

/// The counter key of a request: method and route with row ids replaced, e.g.
/// `GET opportunities`, `PATCH opportunities({id})`, `POST WinOpportunity`, `POST token`.
pub fn route_key(method: &str, path: &str) -> String {
    if path.ends_with(TOKEN_PATH) {
        return format!("{method} token");
    }
    let route = path.strip_prefix(API_PREFIX).unwrap_or(path);
    let route = match (route.find('('), route.rfind(')')) {
        (Some(open), Some(close)) if close > open => {
            format!("{}({{id}}){}", &route[..open], &route[close + 1..])
        }
        _ => route.to_string(),
    };
    format!("{method} {route}")
}

pub(crate) async fn layer(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_standin") {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_string();
    let fault = {
        let mut inner = state.lock();
        *inner.requests.entry(route_key(&method, &path)).or_default() += 1;
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
        Some(FaultKind::Throttle {
            retry_after_secs,
            limit,
        }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", retry_after_secs.to_string())],
            Json(json!({"error": {"code": limit.code(), "message": limit.message()}})),
        )
            .into_response(),
        Some(FaultKind::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "", "message": "The service is temporarily unavailable (injected)."}})),
        )
            .into_response(),
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
        assert_eq!(
            route_key(
                "PATCH",
                "/api/data/v9.2/opportunities(7eb682f1-ca75-e511-80d4-00155d2a68d1)"
            ),
            "PATCH opportunities({id})"
        );
        assert_eq!(
            route_key("GET", "/api/data/v9.2/opportunities"),
            "GET opportunities"
        );
        assert_eq!(route_key("POST", "/t/oauth2/v2.0/token"), "POST token");
    }
}
