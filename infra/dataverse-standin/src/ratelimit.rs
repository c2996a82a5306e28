//! An optional request-rate limit, as Dataverse's service protection enforces one: a token
//! bucket over API requests (token and `/_standin` requests are free). A request with no
//! token left gets a 429 with `Retry-After` in whole seconds (at least 1) and the
//! "number of requests" limit's code. Off unless set; counted requests include throttled ones.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;
use standin_kit::retry_after_secs;
pub use standin_kit::{Limiter, RateLimit};

use crate::faults::Limit;

pub(crate) async fn layer(
    AxState(limiter): AxState<Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path.starts_with("/_standin") || path.ends_with("/oauth2/v2.0/token") {
        return next.run(req).await;
    }
    match limiter.take() {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let limit = Limit::Requests;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", retry_after_secs(wait).to_string())],
                Json(json!({"error": {"code": limit.code(), "message": limit.message()}})),
            )
                .into_response()
        }
    }
}
