//! The Entra token endpoint, and the bearer check the API routes share. A token is issued
//! for one resource (audience) and accepted only by the API of that audience, as
//! Entra-protected APIs do: the referrals API and the webhook registration API differ.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{IssuedToken, State};

/// The referrals API's token resource.
pub(crate) const REFERRALS_AUDIENCE: &str = "https://api.partner.microsoft.com";
/// The Partner Center REST API's (webhook registration) token resource.
pub(crate) const WEBHOOK_AUDIENCE: &str = "https://api.partnercenter.microsoft.com";
const AUDIENCES: &[&str] = &[REFERRALS_AUDIENCE, WEBHOOK_AUDIENCE];

/// The resource a token request asks for: v1 `resource=`, or the v2 `scope=` (`<resource>/.default`
/// or `<resource>/<permission>`, among `openid`, `offline_access` and the like).
fn requested_audience(form: &HashMap<String, String>) -> Option<String> {
    if let Some(r) = form.get("resource") {
        return Some(r.trim_end_matches('/').to_string());
    }
    audience_in_scope(form.get("scope")?)
}

/// The API a scope list names (`https://api.partner.microsoft.com/.default offline_access`).
fn audience_in_scope(scope: &str) -> Option<String> {
    scope
        .split_whitespace()
        .filter_map(|s| url::Url::parse(s).ok())
        .find(|u| u.scheme() == "https")
        .map(|u| u.origin().ascii_serialization())
}

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
    // A device code's token request names no scope: the sign-in's own scope applies.
    let mut signed_in_scope = None;
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
            signed_in_scope = Some(signed_in.scope.clone());
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
    let requested = requested_audience(&form)
        .or_else(|| signed_in_scope.as_deref().and_then(audience_in_scope));
    let audience = match requested {
        Some(a) if AUDIENCES.contains(&a.as_str()) => a,
        other => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                &format!(
                    "The resource principal named {} was not found in the tenant.",
                    other.unwrap_or_default()
                ),
                500011,
            )
        }
    };
    let access = format!("standin-access-{}", Uuid::new_v4());
    let lifetime = state.config.token_lifetime;
    inner.access_tokens.insert(
        access.clone(),
        IssuedToken {
            expires: OffsetDateTime::now_utc() + lifetime,
            audience: audience.clone(),
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
        "resource": audience,
    });
    if let Some(rt) = rotated {
        body["refresh_token"] = json!(rt);
    }
    if let Some(id) = id_token {
        body["id_token"] = json!(id);
    }
    Json(body).into_response()
}

/// The 401 to send when the bearer token is missing, unknown, expired, or issued for
/// another `audience` than the API's.
pub(crate) fn unauthorized(state: &State, headers: &HeaderMap, audience: &str) -> Option<Response> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = token.and_then(|t| {
        state
            .lock()
            .access_tokens
            .get(t)
            .filter(|i| i.expires > OffsetDateTime::now_utc())
            .map(|i| i.audience.clone())
    });
    let (challenge, description) = match issued {
        Some(a) if a == audience => return None,
        Some(a) => (
            format!("Bearer error=\"invalid_token\", error_description=\"The audience '{a}' is invalid\""),
            format!("Unauthorized: the token was issued for {a}, this API takes {audience}"),
        ),
        None => (
            "Bearer".to_string(),
            "Unauthorized: a valid bearer token is required".to_string(),
        ),
    };
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", challenge)],
            Json(json!({"code": "401", "description": description})),
        )
            .into_response(),
    )
}
