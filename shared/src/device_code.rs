//! The OAuth 2.0 device authorization grant (RFC 8628) against Entra ID, for a person to
//! sign in once from a terminal (`cosell login`): ask `/devicecode` for a user code, show
//! it, then poll `/token` at the interval Entra gives until the person approves, declines
//! or the code expires. The refresh token it returns is what the connector keeps.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use url::Url;

use crate::retry::{self, CallError, RetryPolicy};
use crate::secret::Secret;

/// The grant type of the polling requests.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 section 3.5: after `slow_down`, poll this much less often from then on.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Entra's default when a response leaves the interval out.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What the person must do, from `/devicecode`.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    /// Entra's own instructions, in the language asked for.
    pub message: Option<String>,
    /// How long the code is valid (15 minutes at Entra by default).
    pub expires_in: Duration,
    pub interval: Duration,
}

/// What a completed sign-in returns.
#[derive(Debug, Clone)]
pub struct DeviceTokens {
    pub access_token: Secret,
    /// Only when `offline_access` was asked for.
    pub refresh_token: Option<Secret>,
    pub id_token: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceCodeError {
    #[error("the sign-in was declined (authorization_declined): nothing was stored")]
    Declined,
    #[error("the code expired before the sign-in was completed (expired_token): run the command again and sign in within {minutes} minutes")]
    Expired { minutes: u64 },
    #[error("Entra did not recognise the device code (bad_verification_code)")]
    BadVerificationCode,
    /// Any other refusal, with Entra's code and description (never a secret).
    #[error("Entra refused the request ({status}): {error}: {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    #[error(
        "the sign-in returned no refresh token: the request must include the offline_access scope"
    )]
    NoRefreshToken,
    #[error("device code request failed: {0}")]
    Call(#[from] CallError),
    #[error("unreadable answer from Entra: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct AuthorizationBody {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    interval: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Entra sends numbers, some servers strings.
fn seconds(v: Option<&serde_json::Value>, default: Duration) -> Duration {
    let secs = match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    secs.map(Duration::from_secs).unwrap_or(default)
}

/// One app registration's device flow at one tenant's endpoints.
pub struct DeviceCodeClient {
    http: reqwest::Client,
    /// `{authority}/{tenant}/oauth2/v2.0/devicecode`.
    pub devicecode_url: Url,
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub token_url: Url,
    client_id: String,
    /// Sent when polling: the connector's app is a confidential client, and the refresh
    /// token is later redeemed with the same secret.
    client_secret: Option<Secret>,
    policy: RetryPolicy,
}

/// How one poll ended.
enum Poll {
    Done(DeviceTokens),
    Pending,
    SlowDown,
}

impl DeviceCodeClient {
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        policy: RetryPolicy,
    ) -> Self {
        DeviceCodeClient {
            http,
            devicecode_url: devicecode_url_for(&token_url),
            token_url,
            client_id: client_id.into(),
            client_secret,
            policy,
        }
    }

    /// Asks for a user code; `scope` is space-separated and must hold `offline_access` for
    /// a refresh token.
    pub async fn start(&self, scope: &str) -> Result<DeviceAuthorization, DeviceCodeError> {
        let form = [("client_id", self.client_id.as_str()), ("scope", scope)];
        let resp = retry::send(&self.policy, "entra devicecode", || {
            self.http.post(self.devicecode_url.clone()).form(&form)
        })
        .await?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| DeviceCodeError::Malformed(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(rejected(status.as_u16(), &text));
        }
        let body: AuthorizationBody =
            serde_json::from_str(&text).map_err(|e| DeviceCodeError::Malformed(e.to_string()))?;
        Ok(DeviceAuthorization {
            device_code: Secret::new(body.device_code),
            user_code: body.user_code,
            verification_uri: body.verification_uri,
            message: body.message,
            expires_in: seconds(body.expires_in.as_ref(), Duration::from_secs(900)),
            interval: seconds(body.interval.as_ref(), DEFAULT_INTERVAL),
        })
    }

    /// Polls `/token` every `interval` (longer after each `slow_down`) until the person
    /// finishes, declines, or the code expires. Waits before each poll, as RFC 8628 asks.
    pub async fn wait(&self, auth: &DeviceAuthorization) -> Result<DeviceTokens, DeviceCodeError> {
        let deadline = tokio::time::Instant::now() + auth.expires_in;
        let mut interval = auth.interval;
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() > deadline {
                return Err(DeviceCodeError::Expired {
                    minutes: auth.expires_in.as_secs().div_ceil(60),
                });
            }
            match self.poll(auth).await? {
                Poll::Done(tokens) => return Ok(tokens),
                Poll::Pending => {}
                Poll::SlowDown => interval += SLOW_DOWN_STEP,
            }
        }
    }

    async fn poll(&self, auth: &DeviceAuthorization) -> Result<Poll, DeviceCodeError> {
        let mut form = vec![
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", self.client_id.as_str()),
            ("device_code", auth.device_code.expose()),
        ];
        if let Some(s) = &self.client_secret {
            form.push(("client_secret", s.expose()));
        }
        let resp = retry::send(&self.policy, "entra token (device code)", || {
            self.http.post(self.token_url.clone()).form(&form)
        })
        .await?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| DeviceCodeError::Malformed(e.without_url().to_string()))?;
        if status.is_success() {
            let body: TokenBody = serde_json::from_str(&text)
                .map_err(|e| DeviceCodeError::Malformed(e.to_string()))?;
            return Ok(Poll::Done(DeviceTokens {
                access_token: Secret::new(body.access_token),
                refresh_token: body.refresh_token.map(Secret::new),
                id_token: body.id_token.map(Secret::new),
            }));
        }
        let err: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
        match err.error.as_str() {
            "authorization_pending" => Ok(Poll::Pending),
            "slow_down" => Ok(Poll::SlowDown),
            "authorization_declined" => Err(DeviceCodeError::Declined),
            "expired_token" => Err(DeviceCodeError::Expired {
                minutes: auth.expires_in.as_secs().div_ceil(60),
            }),
            "bad_verification_code" => Err(DeviceCodeError::BadVerificationCode),
            _ => Err(rejected(status.as_u16(), &text)),
        }
    }
}

fn rejected(status: u16, text: &str) -> DeviceCodeError {
    let err: ErrorBody = serde_json::from_str(text).unwrap_or_default();
    DeviceCodeError::Rejected {
        status,
        error: err.error,
        description: retry::truncate(&err.error_description, 300),
    }
}

/// `/devicecode` next to a `/token` endpoint (`.../oauth2/v2.0/token`).
pub fn devicecode_url_for(token_url: &Url) -> Url {
    let mut url = token_url.clone();
    let path = token_url.path();
    let base = path.strip_suffix("/token").unwrap_or(path);
    url.set_path(&format!("{base}/devicecode"));
    url
}

/// Who signed in, from a token's claims (the id token, else the access token). The
/// signature is not checked: this is for display only, never for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedInAccount {
    pub name: Option<String>,
    pub username: Option<String>,
    pub tenant: Option<String>,
}

impl SignedInAccount {
    /// `"Ada Lovelace <ada@contoso.com>"`, or whichever part is known.
    pub fn display(&self) -> String {
        match (&self.name, &self.username) {
            (Some(n), Some(u)) => format!("{n} <{u}>"),
            (Some(n), None) => n.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => "an account whose token names no user".to_string(),
        }
    }
}

/// The account in a JWT's payload, or `None` when the token is not a readable JWT.
pub fn account_from_jwt(token: &str) -> Option<SignedInAccount> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let account = SignedInAccount {
        name: text("name"),
        username: text("upn")
            .or_else(|| text("preferred_username"))
            .or_else(|| text("unique_name")),
        tenant: text("tid"),
    };
    (account != SignedInAccount::default()).then_some(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.sig",
            e(br#"{"alg":"none"}"#),
            e(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn the_account_comes_from_upn_then_preferred_username() {
        let a = account_from_jwt(&jwt(
            serde_json::json!({"name": "Ada", "upn": "ada@contoso.com", "preferred_username": "x"}),
        ))
        .unwrap();
        assert_eq!(a.display(), "Ada <ada@contoso.com>");
        let b =
            account_from_jwt(&jwt(serde_json::json!({"preferred_username": "bo@f.com"}))).unwrap();
        assert_eq!(b.display(), "bo@f.com");
        assert_eq!(account_from_jwt("opaque-token"), None);
        assert_eq!(
            account_from_jwt(&jwt(serde_json::json!({"aud": "x"}))),
            None
        );
    }

    #[test]
    fn devicecode_sits_next_to_token() {
        let t = Url::parse("https://login.microsoftonline.com/contoso/oauth2/v2.0/token").unwrap();
        assert_eq!(
            devicecode_url_for(&t).as_str(),
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/devicecode"
        );
    }
}
