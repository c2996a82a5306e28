//! `/_standin/...`: the fault and inspection switches of [`crate::StandinHandle`] over HTTP,
//! for tests that drive the stand-in as a separate process: faults (armed, listed, cleared),
//! per-route request counts, deliveries, incoming referrals, token revocation, a snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::faults::{DeliveryFaults, Fault};
use crate::state::State;
use crate::{deliveries, incoming};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingRequest {
    name: String,
    customer_name: String,
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(
            "/_standin/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route(
            "/_standin/requests",
            get(request_counts).delete(reset_request_counts),
        )
        .route("/_standin/deliveries", get(list_deliveries))
        .route("/_standin/deliveries/faults", post(set_delivery_faults))
        .route("/_standin/deliveries/release", post(release))
        .route("/_standin/referrals/incoming", post(create_incoming))
        .route("/_standin/tokens", delete(revoke_tokens))
        .route("/_standin/state", get(snapshot))
}

async fn add_fault(AxState(state): AxState<Arc<State>>, Json(fault): Json<Fault>) -> StatusCode {
    state.lock().faults.push(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(AxState(state): AxState<Arc<State>>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn list_faults(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.pending_faults()).into_response()
}

async fn request_counts(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.lock().request_counts.clone()).into_response()
}

async fn reset_request_counts(AxState(state): AxState<Arc<State>>) -> StatusCode {
    state.lock().request_counts.clear();
    StatusCode::NO_CONTENT
}

async fn list_deliveries(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.lock().deliveries.clone()).into_response()
}

async fn set_delivery_faults(
    AxState(state): AxState<Arc<State>>,
    Json(f): Json<DeliveryFaults>,
) -> StatusCode {
    state.lock().delivery_faults = f;
    StatusCode::NO_CONTENT
}

async fn release(
    AxState(state): AxState<Arc<State>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let reverse = q.get("reverse").is_some_and(|v| v == "true");
    Json(json!({"released": deliveries::release(&state, reverse)})).into_response()
}

async fn create_incoming(
    AxState(state): AxState<Arc<State>>,
    Json(req): Json<IncomingRequest>,
) -> Response {
    (
        StatusCode::CREATED,
        Json(incoming::create(&state, &req.name, &req.customer_name)),
    )
        .into_response()
}

async fn revoke_tokens(AxState(state): AxState<Arc<State>>) -> StatusCode {
    state.lock().access_tokens.clear();
    StatusCode::NO_CONTENT
}

async fn snapshot(AxState(state): AxState<Arc<State>>) -> Response {
    let inner = state.lock();
    Json(json!({
        "referrals": inner.referrals,
        "registration": inner.registration,
        "tokenRequests": inner.token_requests,
        "requests": inner.requests,
        "deliveries": inner.deliveries,
    }))
    .into_response()
}
