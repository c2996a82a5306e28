//! Entra's device authorization grant (RFC 8628) as `cosell login` meets it: `/devicecode`
//! hands out a device code and a user code, `/token` answers `authorization_pending` until
//! the sign-in is approved or declined through the admin switches (the stand-in's "person
//! at the browser"), `slow_down` when polled faster than the interval, and `expired_token`
//! once the code's lifetime has passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::state::State;
use crate::token::entra_error;

pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Who approves a sign-in unless the approval names someone else.
pub const DEFAULT_USER_NAME: &str = "Referrals Admin";
pub const DEFAULT_USER_UPN: &str = "referrals.admin@contoso.example";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Pending,
    Approved { name: String, upn: String },
    Declined,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub user_code: String,
    pub scope: String,
    pub expires_at: Instant,
    pub last_poll: Option<Instant>,
    pub answer: Answer,
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`: `client_id` and `scope`, no secret.
pub(crate) async fn devicecode(
    AxState(state): AxState<Arc<State>>,
    // Like the token endpoint of this stand-in, any tenant is accepted.
    Path(_tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("client_id") != state.config.client_id {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Application not found in the directory.",
            700016,
        );
    }
    let scope = field("scope").trim().to_string();
    // A resource to sign in for is required; OIDC scopes alone give no API token.
    if !scope.split_whitespace().any(|s| s.contains("://")) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The provided value for the input parameter 'scope' is not valid.",
            70011,
        );
    }
    let device_code = format!("standin-device-{}", Uuid::new_v4().simple());
    let user_code = user_code();
    let lifetime = state.config.device_code_lifetime;
    let interval = state.config.device_code_interval;
    state.lock().device_grants.insert(
        device_code.clone(),
        DeviceGrant {
            user_code: user_code.clone(),
            scope,
            expires_at: Instant::now() + lifetime,
            last_poll: None,
            answer: Answer::Pending,
        },
    );
    let uri = format!("{}_standin/devicelogin", state.base_url);
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "expires_in": lifetime.as_secs(),
        "interval": interval.as_secs(),
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

fn user_code() -> String {
    let raw = Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    raw[..9].to_string()
}

/// The `/token` answer to `grant_type=urn:ietf:params:oauth:grant-type:device_code`; the
/// client id and secret were checked by the caller.
pub(crate) fn redeem(state: &State, device_code: &str) -> Result<DeviceSignIn, Box<Response>> {
    let mut inner = state.lock();
    let scripted_slow_down = inner.device_slow_downs > 0;
    let Some(grant) = inner.device_grants.get_mut(device_code) else {
        return Err(Box::new(entra_error(
            StatusCode::BAD_REQUEST,
            "bad_verification_code",
            "The provided device code is not valid.",
            70000,
        )));
    };
    let now = Instant::now();
    if now >= grant.expires_at {
        return Err(Box::new(entra_error(
            StatusCode::BAD_REQUEST,
            "expired_token",
            "The provided value for the 'device_code' is expired.",
            70019,
        )));
    }
    let too_soon = grant
        .last_poll
        .is_some_and(|t| now.duration_since(t) < state.config.device_code_interval);
    grant.last_poll = Some(now);
    // Polled too fast (or scripted to answer so): the client must back off by 5 s.
    if too_soon || scripted_slow_down {
        inner.device_slow_downs = inner.device_slow_downs.saturating_sub(1);
        return Err(Box::new(entra_error(
            StatusCode::BAD_REQUEST,
            "slow_down",
            "The client is polling too quickly.",
            70016,
        )));
    }
    match grant.answer.clone() {
        Answer::Declined => {
            inner.device_grants.remove(device_code);
            Err(Box::new(entra_error(
                StatusCode::BAD_REQUEST,
                "authorization_declined",
                "The user declined the sign-in request.",
                70018,
            )))
        }
        Answer::Pending => Err(Box::new(entra_error(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            70016,
        ))),
        Answer::Approved { name, upn } => {
            let scope = grant.scope.clone();
            inner.device_grants.remove(device_code);
            Ok(DeviceSignIn { scope, name, upn })
        }
    }
}

/// A completed sign-in, for the token answer.
pub(crate) struct DeviceSignIn {
    pub scope: String,
    pub name: String,
    pub upn: String,
}

impl DeviceSignIn {
    fn has(&self, scope: &str) -> bool {
        self.scope.split_whitespace().any(|s| s == scope)
    }

    pub fn wants_refresh_token(&self) -> bool {
        self.has("offline_access")
    }

    /// An unsigned JWT with the claims Entra puts in an id token, when `openid` was asked.
    pub fn id_token(&self, tenant: &str, client_id: &str) -> Option<String> {
        if !self.has("openid") {
            return None;
        }
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let claims = json!({
            "aud": client_id,
            "tid": tenant,
            "name": self.name,
            "preferred_username": self.upn,
            "upn": self.upn,
        });
        Some(format!(
            "{}.{}.",
            e(br#"{"typ":"JWT","alg":"none"}"#),
            e(claims.to_string().as_bytes())
        ))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Approval {
    pub user_code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
}

/// Sets the answer of the pending sign-in with this user code; false when there is none.
pub(crate) fn answer(state: &State, user_code: &str, answer: Answer) -> bool {
    let mut inner = state.lock();
    let found = inner.device_grants.values_mut().find(|g| {
        g.user_code.eq_ignore_ascii_case(user_code.trim()) && g.answer == Answer::Pending
    });
    match found {
        Some(g) => {
            g.answer = answer;
            true
        }
        None => false,
    }
}

pub(crate) fn pending_codes(state: &State) -> Vec<String> {
    state
        .lock()
        .device_grants
        .values()
        .filter(|g| g.answer == Answer::Pending)
        .map(|g| g.user_code.clone())
        .collect()
}

pub(crate) async fn approve(
    AxState(state): AxState<Arc<State>>,
    Json(a): Json<Approval>,
) -> StatusCode {
    let who = Answer::Approved {
        name: a.name.unwrap_or_else(|| DEFAULT_USER_NAME.into()),
        upn: a.upn.unwrap_or_else(|| DEFAULT_USER_UPN.into()),
    };
    if answer(&state, &a.user_code, who) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

pub(crate) async fn decline(
    AxState(state): AxState<Arc<State>>,
    Json(a): Json<Approval>,
) -> StatusCode {
    if answer(&state, &a.user_code, Answer::Declined) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// The "sign-in page": how to approve by hand against the stand-in.
pub(crate) async fn login_page(AxState(state): AxState<Arc<State>>) -> Response {
    let base = &state.base_url;
    let codes = pending_codes(&state).join(", ");
    format!(
        "Partner Center stand-in sign-in.\nPending codes: {codes}\nApprove:  curl -X POST {base}_standin/device/approve -H 'content-type: application/json' -d '{{\"userCode\":\"<code>\"}}'\nDecline:  curl -X POST {base}_standin/device/decline -H 'content-type: application/json' -d '{{\"userCode\":\"<code>\"}}'\n"
    )
    .into_response()
}

/// Lifetime of a device code at Entra (15 minutes) and its polling interval.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(900);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
