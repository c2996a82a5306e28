//! An optional request-rate limit, as Partner Center throttles callers: a token
//! bucket over API requests (token, certificate and `/_standin` requests are free). A request with no
//! token left gets a 429 with `Retry-After` in whole seconds (at least 1). Off unless set;
//! the request log includes throttled requests.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;
use standin_kit::retry_after_secs;
pub use standin_kit::{Limiter, RateLimit};

pub(crate) async fn layer(
    AxState(limiter): AxState<Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path.starts_with("/_standin")
        || path.starts_with("/cert/")
        || path.ends_with("/oauth2/v2.0/token")
        || path.ends_with("/oauth2/token")
    {
        return next.run(req).await;
    }
    match limiter.take() {
        Ok(()) => next.run(req).await,
        Err(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", retry_after_secs(wait).to_string())],
            Json(json!({"code": "429", "description": "Rate limit is exceeded"})),
        )
            .into_response(),
    }
}
