//! Entra ID's token endpoint (client-credentials grant only) and the bearer check in front
//! of the Web API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use http::StatusCode;
use serde_json::json;

use crate::state::State;

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        })),
    )
        .into_response()
}

pub async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let cfg = &state.config;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if tenant != cfg.tenant {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if field("grant_type") != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != cfg.client_id {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    if field("client_secret") != cfg.client_secret {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    if !field("scope").ends_with("/.default") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let access_token = format!("dvs.{}", uuid::Uuid::new_v4().simple());
    state.lock().access_tokens.insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(cfg.token_lifetime_secs),
    );
    Json(json!({
        "token_type": "Bearer",
        "expires_in": cfg.token_lifetime_secs,
        "ext_expires_in": cfg.token_lifetime_secs,
        "access_token": access_token,
    }))
    .into_response()
}

/// Rejects Web API calls without a live bearer token issued here.
pub async fn require_bearer(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = presented.is_some_and(|t| {
        state
            .lock()
            .access_tokens
            .get(t)
            .is_some_and(|expiry| Instant::now() < *expiry)
    });
    if !valid {
        let authority = format!(
            "Bearer authorization_uri={}{}/oauth2/authorize",
            state.base_url, state.config.tenant
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", authority)],
            Json(json!({"error": {"code": "0x80072560", "message": "The user is not authenticated: a valid bearer token is required."}})),
        )
            .into_response();
    }
    next.run(req).await
}
