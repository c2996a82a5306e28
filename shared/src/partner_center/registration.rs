//! The webhook registration API: where Partner Center sends referral events, and its
//! validation (test) event. The API has no DELETE: a registration is retired by updating
//! it to no events ([`PartnerCenterClient::clear_registration`]).

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{read_json, Api, PartnerCenterClient};
use super::error::PartnerCenterError;
use super::event::TEST_CREATED;
use super::referral::Extra;
use crate::retry::Idempotency;

const REGISTRATION_PATH: &str = "webhooks/v1/registration";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    #[serde(rename = "WebhookUrl")]
    pub webhook_url: String,
    #[serde(rename = "WebhookEvents", default)]
    pub webhook_events: Vec<String>,
    /// Signature in `x-ms-signature` instead of `Authorization`.
    #[serde(
        rename = "SignatureTokenToMsSignatureHeader",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub signature_in_ms_header: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Registration {
    /// Whether the registration includes `event` (names compare case-insensitively).
    pub fn includes(&self, event: &str) -> bool {
        self.webhook_events
            .iter()
            .any(|e| e.trim().eq_ignore_ascii_case(event))
    }

    /// A validation event can only be sent to a registration that includes `test-created`.
    pub fn accepts_test_event(&self) -> bool {
        self.includes(TEST_CREATED)
    }
}

/// How [`PartnerCenterClient::clear_registration`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleared {
    /// There was no registration, or one with no events.
    NoneRegistered,
    /// Updated to no events: nothing is delivered any more.
    Cleared,
    /// The service refused an empty event list; the registration is left as it was.
    LeftInPlace { reason: String },
}

/// What the service says about a validation event it was asked to send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEventStatus {
    pub correlation_id: String,
    pub status: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CorrelationBody {
    correlation_id: String,
}

impl PartnerCenterClient {
    fn registration_url(&self, tail: &[&str]) -> Url {
        let mut url = self
            .webhook_api_base
            .join(REGISTRATION_PATH)
            .expect("static path joins onto a base URL");
        url.path_segments_mut()
            .expect("http(s) base URL")
            .extend(tail);
        url
    }

    /// The current registration, or `None` when there is none.
    pub async fn get_registration(&self) -> Result<Option<Registration>, PartnerCenterError> {
        let url = self.registration_url(&[]);
        match self
            .send(
                "get webhook registration",
                "registration",
                Api::Webhooks,
                Idempotency::Idempotent,
                &|| self.http.get(url.clone()),
            )
            .await
        {
            Ok(resp) => Ok(Some(read_json("get webhook registration", resp).await?)),
            Err(PartnerCenterError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn register(
        &self,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<Registration, PartnerCenterError> {
        // A replay of a POST that was applied would be refused ("use PUT"): not idempotent.
        self.write_registration(
            "register webhook",
            reqwest::Method::POST,
            Idempotency::NotIdempotent,
            webhook_url,
            events,
        )
        .await
    }

    /// Overwrites the registration (PUT).
    pub async fn update_registration(
        &self,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<Registration, PartnerCenterError> {
        self.write_registration(
            "update webhook registration",
            reqwest::Method::PUT,
            Idempotency::Idempotent,
            webhook_url,
            events,
        )
        .await
    }

    async fn write_registration(
        &self,
        call: &str,
        method: reqwest::Method,
        idempotency: Idempotency,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<Registration, PartnerCenterError> {
        let url = self.registration_url(&[]);
        // The signature stays in `Authorization`, where the docs put it by default.
        let body = serde_json::json!({
            "WebhookUrl": webhook_url,
            "WebhookEvents": events,
            "SignatureTokenToMsSignatureHeader": false,
        })
        .to_string();
        let resp = self
            .send(call, "registration", Api::Webhooks, idempotency, &|| {
                self.http
                    .request(method.clone(), url.clone())
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        read_json(call, resp).await
    }

    /// Retires the registration the only way the API offers (it has no DELETE): an update
    /// to the same URL with no events. When the service refuses that, the registration is
    /// left in place and the answer says why.
    pub async fn clear_registration(&self) -> Result<Cleared, PartnerCenterError> {
        let current = match self.get_registration().await? {
            Some(r) if !r.webhook_events.is_empty() => r,
            _ => return Ok(Cleared::NoneRegistered),
        };
        match self.update_registration(&current.webhook_url, &[]).await {
            Ok(_) => Ok(Cleared::Cleared),
            Err(PartnerCenterError::Invalid {
                status, message, ..
            }) if (400..500).contains(&status) => {
                tracing::warn!(status, %message, "Partner Center refused a registration with no events; leaving it in place");
                Ok(Cleared::LeftInPlace { reason: message })
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the service to send a `test-created` event; returns its correlation id. The
    /// registration must include `test-created` (see [`Registration::accepts_test_event`]).
    pub async fn send_test_event(&self) -> Result<String, PartnerCenterError> {
        let call = "send webhook test event";
        let url = self.registration_url(&["validationEvents"]);
        // Each request sends an event (and counts against 2 a minute): not idempotent.
        let resp = self
            .send(
                call,
                "registration",
                Api::Validation,
                Idempotency::NotIdempotent,
                &|| self.http.post(url.clone()).header("Content-Length", "0"),
            )
            .await?;
        let body: CorrelationBody = read_json(call, resp).await?;
        Ok(body.correlation_id)
    }

    pub async fn test_event_status(
        &self,
        correlation_id: &str,
    ) -> Result<TestEventStatus, PartnerCenterError> {
        let call = "webhook test event status";
        let url = self.registration_url(&["validationEvents", correlation_id]);
        let resp = self
            .send(
                call,
                correlation_id,
                Api::Webhooks,
                Idempotency::Idempotent,
                &|| self.http.get(url.clone()),
            )
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Err(PartnerCenterError::Malformed {
                call: call.into(),
                reason: "empty answer".into(),
            });
        }
        read_json(call, resp).await
    }
}
