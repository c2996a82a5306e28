//! The webhook registration API: where Partner Center sends referral events, and its
//! validation (test) event.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{read_json, PartnerCenterClient};
use super::error::PartnerCenterError;
use super::referral::Extra;

const REGISTRATION_PATH: &str = "webhooks/v1/registration";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    #[serde(rename = "WebhookUrl")]
    pub webhook_url: String,
    #[serde(rename = "WebhookEvents", default)]
    pub webhook_events: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
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
            .send("get webhook registration", "registration", &|| {
                self.http.get(url.clone())
            })
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
        self.write_registration(
            "register webhook",
            reqwest::Method::POST,
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
            webhook_url,
            events,
        )
        .await
    }

    async fn write_registration(
        &self,
        call: &str,
        method: reqwest::Method,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<Registration, PartnerCenterError> {
        let url = self.registration_url(&[]);
        let body =
            serde_json::json!({ "WebhookUrl": webhook_url, "WebhookEvents": events }).to_string();
        let resp = self
            .send(call, "registration", &|| {
                self.http
                    .request(method.clone(), url.clone())
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        read_json(call, resp).await
    }

    /// Removes the registration; removing none is not an error.
    pub async fn delete_registration(&self) -> Result<(), PartnerCenterError> {
        let url = self.registration_url(&[]);
        match self
            .send("delete webhook registration", "registration", &|| {
                self.http.delete(url.clone())
            })
            .await
        {
            Ok(_) | Err(PartnerCenterError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the service to send a `test-created` event; returns its correlation id.
    pub async fn send_test_event(&self) -> Result<String, PartnerCenterError> {
        let call = "send webhook test event";
        let url = self.registration_url(&["validationEvents"]);
        let resp = self
            .send(call, "registration", &|| {
                self.http.post(url.clone()).header("Content-Length", "0")
            })
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
            .send(call, correlation_id, &|| self.http.get(url.clone()))
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
