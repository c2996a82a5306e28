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
    /// The same link under the name the docs' event-model table gives it.
    #[serde(rename = "AuditUrl", default, skip_serializing_if = "Option::is_none")]
    pub audit_url: Option<Value>,
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
/// Another referral of the same engagement was created or changed.
pub const RELATED_REFERRAL_CREATED: &str = "related-referral-created";
pub const RELATED_REFERRAL_UPDATED: &str = "related-referral-updated";
/// Partner Center's validation (test) event.
pub const TEST_CREATED: &str = "test-created";

/// The referral events the connector handles (all four, as Microsoft's own connectors
/// register them).
pub const REFERRAL_EVENTS: [&str; 4] = [
    REFERRAL_CREATED,
    REFERRAL_UPDATED,
    RELATED_REFERRAL_CREATED,
    RELATED_REFERRAL_UPDATED,
];

/// What the connector registers: the referral events, plus `test-created`, without which
/// Partner Center refuses to send a validation event.
pub fn registered_events() -> Vec<String> {
    REFERRAL_EVENTS
        .iter()
        .chain([&TEST_CREATED])
        .map(|e| e.to_string())
        .collect()
}

impl WebhookEvent {
    /// The audit record link, under either documented name (`AuditUri` or `AuditUrl`).
    pub fn audit_link(&self) -> Option<&str> {
        [&self.audit_uri, &self.audit_url]
            .into_iter()
            .find_map(|v| v.as_ref().and_then(Value::as_str))
            .filter(|s| !s.is_empty())
    }

    /// The referral id: the last path segment of `ResourceUri`.
    pub fn referral_id(&self) -> Option<&str> {
        let path = self.resource_uri.split(['?', '#']).next()?;
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(audit: &str) -> WebhookEvent {
        serde_json::from_str(&format!(
            r#"{{"EventName":"referral-updated","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/r1",{audit}"ResourceChangeUtcDate":"2026-12-01T00:00:00.0000000+00:00"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn the_audit_link_is_read_under_either_documented_name() {
        let link = "https://api.partnercenter.microsoft.com/auditactivity/v1/auditrecords/a1";
        let uri = event(&format!(r#""AuditUri":"{link}","#));
        let url = event(&format!(r#""AuditUrl":"{link}","#));
        assert_eq!(uri.audit_link(), Some(link));
        assert_eq!(url.audit_link(), Some(link));
        assert_eq!(event(r#""AuditUri":null,"#).audit_link(), None);
        assert_eq!(url.referral_id(), Some("r1"));
    }

    #[test]
    fn the_connector_registers_every_referral_event_and_the_test_event() {
        let events = registered_events();
        assert_eq!(events.len(), 5);
        assert!(events.iter().any(|e| e == TEST_CREATED));
        assert!(events.iter().any(|e| e == RELATED_REFERRAL_UPDATED));
    }
}
