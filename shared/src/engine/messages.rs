//! What travels on the sync queue. Messages are pointers, never state: a reconcile always
//! reads the current referral and opportunity, so a late or duplicated message cannot
//! write old data. Every message names its pair by the key (the opportunity id), which is
//! also its FIFO message group.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::pair::key;
use crate::store::{Store, StoreError};

/// Which side said something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A Partner Center webhook, or the sweep that catches missed ones.
    Referral,
    /// The Dataverse poll.
    Opportunity,
    /// An operator (backfill, replay) or a forward between keys: both sides are read.
    Operator,
    /// A related referral (another organization's in one of our engagements: Microsoft's,
    /// for a co-sell) changed. `referral_id` names it until the message is forwarded to its
    /// engagement's pair, then that pair's own referral.
    Related,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    /// The pair key: the opportunity id (for an unlinked referral, the id its opportunity
    /// gets).
    pub key: String,
    pub origin: Origin,
    /// The referral, when the sender knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_id: Option<String>,
    /// The change's own time (`ResourceChangeUtcDate`, `updatedDateTime`, `modifiedon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
    /// The opportunity was deleted in the CRM.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The change's version on its side, when the sender knows one (the row's
    /// `versionnumber`, the referral's eTag): messages for one version are one change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A message body that is not one of ours: permanent, goes to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
#[error("unreadable message body: {0}")]
pub struct BadMessage(pub String);

impl SyncMessage {
    /// "Look at this referral": keyed by its link, else by the id its opportunity gets.
    pub async fn for_referral(
        store: &dyn Store,
        referral_id: &str,
        origin: Origin,
        changed_at: Option<String>,
    ) -> Result<SyncMessage, StoreError> {
        Ok(SyncMessage {
            key: key::key_for_referral(store, referral_id).await?,
            origin,
            referral_id: Some(referral_id.trim().to_string()),
            changed_at,
            deleted: false,
            version: None,
        })
    }

    /// "Look at this opportunity".
    /// A related referral's webhook: keyed by the id an opportunity made from it would get
    /// (a group of its own) until the reconcile finds its engagement's pair.
    pub fn for_related(related_id: &str, changed_at: Option<String>) -> SyncMessage {
        SyncMessage {
            key: key::opportunity_id_for(related_id),
            origin: Origin::Related,
            referral_id: Some(related_id.trim().to_string()),
            changed_at,
            deleted: false,
            version: None,
        }
    }

    pub fn for_opportunity(opportunity_id: &str, modified_on: Option<String>) -> SyncMessage {
        SyncMessage {
            key: opportunity_id.trim().to_string(),
            origin: Origin::Opportunity,
            referral_id: None,
            changed_at: modified_on,
            deleted: false,
            version: None,
        }
    }

    /// The same message, naming the change's version (see [`SyncMessage::version`]).
    pub fn with_version(mut self, version: Option<String>) -> SyncMessage {
        self.version = version.filter(|v| !v.trim().is_empty());
        self
    }

    /// The same pair under the key that owns it: both sides are read there.
    pub fn forwarded_to(&self, key: &str) -> SyncMessage {
        SyncMessage {
            key: key.trim().to_string(),
            origin: Origin::Operator,
            ..self.clone()
        }
    }

    pub fn parse(body: &str) -> Result<Self, BadMessage> {
        let m: Self = serde_json::from_str(body).map_err(|e| BadMessage(e.to_string()))?;
        if m.key.trim().is_empty() {
            return Err(BadMessage("empty key".into()));
        }
        if m.referral_id
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err(BadMessage("empty referral_id".into()));
        }
        Ok(m)
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("plain struct serializes")
    }

    /// The FIFO de-duplication id. A message that names its change's version is queued
    /// once for that version within five minutes (the poller reading one change twice);
    /// one that does not is never dropped as a duplicate: two changes within one second
    /// share a `modifiedon`, and dropping the second would lose it.
    pub fn dedup_id(&self) -> String {
        let Some(version) = &self.version else {
            return uuid::Uuid::new_v4().to_string();
        };
        let origin = serde_json::to_string(&self.origin).unwrap_or_default();
        let text = format!(
            "{}|{origin}|{}|{version}|{}",
            self.key,
            self.referral_id.as_deref().unwrap_or(""),
            self.deleted
        );
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = SyncMessage {
            key: "o1".into(),
            origin: Origin::Referral,
            referral_id: Some("r1".into()),
            changed_at: Some("2026-01-01T00:00:00Z".into()),
            deleted: false,
            version: None,
        };
        let body = m.to_body();
        assert!(body.contains("\"referral\""));
        assert!(!body.contains("deleted"));
        assert_eq!(SyncMessage::parse(&body).unwrap(), m);
        assert!(SyncMessage::parse("{}").is_err());
        assert!(SyncMessage::parse("not json").is_err());
        assert!(SyncMessage::parse(r#"{"key":" ","origin":"referral"}"#).is_err());
        assert!(SyncMessage::parse(r#"{"key":"o","origin":"bogus"}"#).is_err());
        assert!(SyncMessage::parse(r#"{"key":"o","origin":"referral","referral_id":""}"#).is_err());
    }

    #[test]
    fn a_forward_keeps_the_referral_and_reads_both_sides() {
        let m = SyncMessage::for_opportunity("o1", None).with_version(Some("7".into()));
        let f = m.forwarded_to("o2");
        assert_eq!(f.key, "o2");
        assert_eq!(f.origin, Origin::Operator);
        assert_ne!(m.dedup_id(), f.dedup_id());
    }

    #[test]
    fn only_a_named_version_is_de_duplicated() {
        let a = SyncMessage::for_opportunity("o1", Some("2026-01-01T00:00:00Z".into()));
        // Two changes in one second: same body, never the same id.
        assert_ne!(a.dedup_id(), a.clone().dedup_id());
        let v = a.with_version(Some("1001".into()));
        assert_eq!(v.dedup_id(), v.clone().dedup_id());
        let w = v.clone().with_version(Some("1002".into()));
        assert_ne!(v.dedup_id(), w.dedup_id());
    }
}
