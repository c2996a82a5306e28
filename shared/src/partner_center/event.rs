//! The body of a Partner Center webhook delivery. It is only a pointer: the connector always
//! fetches the referral for its current state.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::referral::Extra;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    #[serde(rename = "EventName")]
    pub event_name: String,
    #[serde(rename = "ResourceUri")]
    pub resource_uri: String,
    #[serde(
        rename = "ResourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_name: Option<String>,
    #[serde(rename = "AuditUri", default)]
    pub audit_uri: Option<Value>,
    #[serde(
        rename = "ResourceChangeUtcDate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_change_utc_date: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The webhook events the connector handles.
pub const REFERRAL_CREATED: &str = "referral-created";
pub const REFERRAL_UPDATED: &str = "referral-updated";
/// Partner Center's validation (test) event.
pub const TEST_CREATED: &str = "test-created";

impl WebhookEvent {
    /// The referral id: the last path segment of `ResourceUri`.
    pub fn referral_id(&self) -> Option<&str> {
        let path = self.resource_uri.split(['?', '#']).next()?;
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }
}
