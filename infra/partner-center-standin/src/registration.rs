//! `/webhooks/v1/registration`: one registration per partner, and validation events. As the
//! docs describe it: no DELETE (retire a registration by updating it), a validation event only
//! for a registration that includes `test-created`, and at most 2 of them a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::deliveries::{self, TEST_EVENT};
use crate::referrals::error;
use crate::state::State;
use crate::token::{unauthorized, WEBHOOK_AUDIENCE};

const EVENTS: &[&str] = &[
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
    TEST_EVENT,
];

/// "A throttle limit of 2 requests per minute is enforced when posting a test-created event."
const VALIDATIONS_PER_MINUTE: usize = 2;

/// `create`: POST. An update (PUT) may name no events, which stops all deliveries (the docs
/// offer no other way to retire a registration; whether the live service accepts an empty
/// list is not documented).
fn parse(body: &[u8], create: bool) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let url = v["WebhookUrl"].as_str().ok_or("WebhookUrl is required")?;
    let parsed = url::Url::parse(url).map_err(|_| "WebhookUrl must be an absolute URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("WebhookUrl must be http(s)".into());
    }
    let events = v["WebhookEvents"]
        .as_array()
        .ok_or("WebhookEvents is required")?;
    if create && events.is_empty() {
        return Err("WebhookEvents must name at least one event".into());
    }
    for e in events {
        let name = e.as_str().unwrap_or_default();
        if !EVENTS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(format!("'{name}' is not a known event"));
        }
    }
    let in_header = match v.get("SignatureTokenToMsSignatureHeader") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("SignatureTokenToMsSignatureHeader must be a boolean".into()),
    };
    Ok(json!({
        "SubscriberId": Uuid::new_v4(),
        "WebhookUrl": url,
        "WebhookEvents": events,
        "SignatureTokenToMsSignatureHeader": in_header,
    }))
}

pub(crate) async fn get(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&state, &headers, WEBHOOK_AUDIENCE) {
        return r;
    }
    match &state.lock().registration {
        Some(r) => Json(r.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no webhook registration"),
    }
}

async fn write(state: Arc<State>, headers: HeaderMap, body: Bytes, create: bool) -> Response {
    if let Some(r) = unauthorized(&state, &headers, WEBHOOK_AUDIENCE) {
        return r;
    }
    let reg = match parse(&body, create) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mut inner = state.lock();
    if create && inner.registration.is_some() {
        return error(
            StatusCode::CONFLICT,
            "a registration exists; update it with PUT",
        );
    }
    inner.registration = Some(reg.clone());
    Json(reg).into_response()
}

pub(crate) async fn post(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(state, headers, body, true).await
}

pub(crate) async fn put(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(state, headers, body, false).await
}

pub(crate) async fn send_validation(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, WEBHOOK_AUDIENCE) {
        return r;
    }
    let correlation = Uuid::new_v4().to_string();
    {
        let mut inner = state.lock();
        let Some(reg) = &inner.registration else {
            return error(StatusCode::NOT_FOUND, "no webhook registration");
        };
        let has_test_event = reg["WebhookEvents"].as_array().is_some_and(|evs| {
            evs.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(TEST_EVENT))
            })
        });
        if !has_test_event {
            return error(
                StatusCode::BAD_REQUEST,
                "You must be registered for the test-created event before sending a validation event",
            );
        }
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        inner
            .validation_posts
            .retain(|t| now.duration_since(*t) < minute);
        if inner.validation_posts.len() >= VALIDATIONS_PER_MINUTE {
            let oldest = inner.validation_posts[0];
            let wait = minute.saturating_sub(now.duration_since(oldest));
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", wait.as_secs().max(1).to_string())],
                Json(json!({"code": "429", "description": "Only 2 validation events a minute"})),
            )
                .into_response();
        }
        inner.validation_posts.push(now);
        inner
            .validation_events
            .insert(correlation.clone(), "pending".into());
    }
    deliveries::emit(&state, TEST_EVENT, None, Some(correlation.clone()));
    Json(json!({"correlationId": correlation})).into_response()
}

pub(crate) async fn validation_status(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, WEBHOOK_AUDIENCE) {
        return r;
    }
    match state.lock().validation_events.get(&id) {
        Some(s) => Json(json!({"correlationId": id, "status": s})).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no validation event {id}")),
    }
}
