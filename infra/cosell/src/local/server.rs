//! The HTTP side of the local runner: the same webhook intake as the Lambda function, and a
//! health check.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cosell::engine::intake;
use cosell::partner_center::webhook_verify::WebhookVerifier;
use cosell::queue::Queue;
use cosell::store::Store;

pub const WEBHOOK_PATH: &str = "/partner-center/webhook";
pub const HEALTH_PATH: &str = "/healthz";

/// What the webhook route needs.
pub struct Intake {
    pub verifier: WebhookVerifier,
    pub store: Arc<dyn Store>,
    pub inbound: Arc<dyn Queue>,
}

pub fn router(intake: Arc<Intake>) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(
            HEALTH_PATH,
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(intake)
}

async fn webhook(State(s): State<Arc<Intake>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = intake::handle_webhook(
        &s.verifier,
        s.store.as_ref(),
        s.inbound.as_ref(),
        &headers,
        &body,
    )
    .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}
