//! What travels on the queues. Messages are pointers, never state: a worker always reads the
//! current referral or opportunity, so a late or duplicated message cannot write old data.

use serde::{Deserialize, Serialize};

/// Why an inbound message exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InboundTrigger {
    /// A `referral-created` webhook.
    ReferralCreated,
    /// A `referral-updated` webhook.
    ReferralUpdated,
    /// The periodic sweep found the referral updated since its watermark.
    Reconcile,
    /// An operator asked for it (backfill, replay).
    Manual,
}

/// Inbound queue: "look at this referral".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub referral_id: String,
    pub trigger: InboundTrigger,
    /// `ResourceChangeUtcDate` or the referral's `updatedDateTime`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
}

/// Outbound queue: "look at this opportunity".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub opportunity_id: String,
    /// `modifiedon` seen by the poller, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
    /// The row was deleted in the CRM.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// A message body that is not one of ours: permanent, goes to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
#[error("unreadable message body: {0}")]
pub struct BadMessage(pub String);

impl InboundMessage {
    pub fn parse(body: &str) -> Result<Self, BadMessage> {
        let m: Self = serde_json::from_str(body).map_err(|e| BadMessage(e.to_string()))?;
        if m.referral_id.trim().is_empty() {
            return Err(BadMessage("empty referral_id".into()));
        }
        Ok(m)
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("plain struct serializes")
    }
}

impl OutboundMessage {
    pub fn parse(body: &str) -> Result<Self, BadMessage> {
        let m: Self = serde_json::from_str(body).map_err(|e| BadMessage(e.to_string()))?;
        if m.opportunity_id.trim().is_empty() {
            return Err(BadMessage("empty opportunity_id".into()));
        }
        Ok(m)
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("plain struct serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_round_trips_and_rejects_garbage() {
        let m = InboundMessage {
            referral_id: "r1".into(),
            trigger: InboundTrigger::ReferralUpdated,
            changed_at: Some("2026-01-01T00:00:00Z".into()),
        };
        let body = m.to_body();
        assert!(body.contains("\"referral-updated\""));
        assert_eq!(InboundMessage::parse(&body).unwrap(), m);
        assert!(InboundMessage::parse("{}").is_err());
        assert!(InboundMessage::parse("not json").is_err());
        assert!(InboundMessage::parse(r#"{"referral_id":" ","trigger":"manual"}"#).is_err());
        assert!(InboundMessage::parse(r#"{"referral_id":"x","trigger":"bogus"}"#).is_err());
    }

    #[test]
    fn outbound_round_trips_and_omits_defaults() {
        let m = OutboundMessage {
            opportunity_id: "o1".into(),
            modified_on: None,
            deleted: false,
        };
        assert_eq!(m.to_body(), r#"{"opportunity_id":"o1"}"#);
        assert_eq!(OutboundMessage::parse(&m.to_body()).unwrap(), m);
        let d = OutboundMessage::parse(r#"{"opportunity_id":"o2","deleted":true}"#).unwrap();
        assert!(d.deleted);
        assert!(OutboundMessage::parse(r#"{"opportunity_id":""}"#).is_err());
    }
}
