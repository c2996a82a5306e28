//! The Entra token endpoint, and the bearer check the API routes share.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::State;

pub(crate) fn entra_error(
    status: StatusCode,
    error: &str,
    description: &str,
    code: u32,
) -> Response {
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": OffsetDateTime::now_utc().to_string(),
            "trace_id": Uuid::new_v4(),
            "correlation_id": Uuid::new_v4(),
        })),
    )
        .into_response()
}

pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let mut inner = state.lock();
    inner.token_requests += 1;
    if field("client_id") != state.config.client_id {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Application not found in the directory.",
            700016,
        );
    }
    // A confidential client must authenticate on every grant, the device code's included.
    if !form.contains_key("client_secret") {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            7000218,
        );
    }
    if field("client_secret") != state.config.client_secret {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client secret provided.",
            7000215,
        );
    }
    let mut id_token = None;
    let rotated = match field("grant_type") {
        "client_credentials" => None,
        crate::device::GRANT_TYPE => {
            drop(inner);
            let signed_in = match crate::device::redeem(&state, field("device_code")) {
                Ok(s) => s,
                Err(answer) => return *answer,
            };
            inner = state.lock();
            id_token = signed_in.id_token(&tenant, &state.config.client_id);
            signed_in.wants_refresh_token().then(|| {
                let rt = format!("standin-refresh-{}", Uuid::new_v4());
                inner.refresh_tokens.insert(rt.clone());
                rt
            })
        }
        "refresh_token" => {
            let presented = field("refresh_token");
            if !inner.refresh_tokens.remove(presented) {
                return entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid or expired.",
                    70000,
                );
            }
            let next = format!("standin-refresh-{}", Uuid::new_v4());
            inner.refresh_tokens.insert(next.clone());
            Some(next)
        }
        other => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("The grant type '{other}' is not supported."),
                70003,
            )
        }
    };
    let access = format!("standin-access-{}", Uuid::new_v4());
    let lifetime = state.config.token_lifetime;
    inner
        .access_tokens
        .insert(access.clone(), OffsetDateTime::now_utc() + lifetime);
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
    });
    if let Some(rt) = rotated {
        body["refresh_token"] = json!(rt);
    }
    if let Some(id) = id_token {
        body["id_token"] = json!(id);
    }
    Json(body).into_response()
}

/// The 401 to send when the bearer token is missing, unknown or expired.
pub(crate) fn unauthorized(state: &State, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = token.is_some_and(|t| {
        state
            .lock()
            .access_tokens
            .get(t)
            .is_some_and(|exp| *exp > OffsetDateTime::now_utc())
    });
    if valid {
        None
    } else {
        Some((
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", "Bearer")],
            Json(json!({"code": "401", "description": "Unauthorized: a valid bearer token is required"})),
        )
            .into_response())
    }
}
