//! `/webhooks/v1/registration`: one registration per partner, and validation events.

use std::sync::Arc;

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
use crate::token::unauthorized;

const EVENTS: &[&str] = &[
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
];

fn parse(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let url = v["WebhookUrl"].as_str().ok_or("WebhookUrl is required")?;
    let parsed = url::Url::parse(url).map_err(|_| "WebhookUrl must be an absolute URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("WebhookUrl must be http(s)".into());
    }
    let events = v["WebhookEvents"]
        .as_array()
        .ok_or("WebhookEvents is required")?;
    if events.is_empty() {
        return Err("WebhookEvents must name at least one event".into());
    }
    for e in events {
        let name = e.as_str().unwrap_or_default();
        if !EVENTS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(format!("'{name}' is not a known event"));
        }
    }
    Ok(json!({"SubscriberId": Uuid::new_v4(), "WebhookUrl": url, "WebhookEvents": events}))
}

pub(crate) async fn get(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    match &state.lock().registration {
        Some(r) => Json(r.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no webhook registration"),
    }
}

async fn write(state: Arc<State>, headers: HeaderMap, body: Bytes, create: bool) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    let reg = match parse(&body) {
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

pub(crate) async fn delete(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    match state.lock().registration.take() {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, "no webhook registration"),
    }
}

pub(crate) async fn send_validation(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    let correlation = Uuid::new_v4().to_string();
    {
        let mut inner = state.lock();
        if inner.registration.is_none() {
            return error(StatusCode::NOT_FOUND, "no webhook registration");
        }
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
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    match state.lock().validation_events.get(&id) {
        Some(s) => Json(json!({"correlationId": id, "status": s})).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no validation event {id}")),
    }
}
