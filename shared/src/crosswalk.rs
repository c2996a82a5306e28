//! The crosswalk: which Partner Center referral is synced with which Dataverse opportunity,
//! and what the pair looked like the last time it was reconciled (the [`Base`]). A link is
//! 1:1 in both directions; the [`Store`](crate::store::Store) enforces that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// The pair as of its last successful reconcile: what a three-way merge compares each side
/// against to tell which side changed which field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Base {
    /// Every mapped opportunity field's value, keyed by its referral path, in the CRM's
    /// canonical form (the mapping's transforms applied, checkmark stripped). A field
    /// without a value on either side is absent.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The referral's `Status/Substatus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_status: Option<String>,
    /// The opportunity's `statecode/statuscode/decision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_status: Option<String>,
    /// Whether the referral is shared with Microsoft's sellers, as last read: a change of
    /// the opportunity's visibility column is then no echo (sharing cannot go back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_shared: Option<bool>,
    /// The CRM row the pair holds: an opportunity, or a Dynamics 365 lead until the seller
    /// qualifies it (then the pair moves to the opportunity the qualification made).
    #[serde(default, skip_serializing_if = "CrmTable::is_opportunity")]
    pub crm_table: CrmTable,
}

/// Which table the CRM side of a pair is in. The pair key is that row's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmTable {
    #[default]
    Opportunity,
    Lead,
}

impl CrmTable {
    pub fn is_opportunity(&self) -> bool {
        *self == CrmTable::Opportunity
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub referral_id: String,
    pub opportunity_id: String,
    /// Referral eTag seen at the last reconcile.
    pub pc_etag: Option<String>,
    /// Opportunity `@odata.etag` seen at the last reconcile.
    pub dv_etag: Option<String>,
    /// Referral `updatedDateTime` last reconciled.
    pub pc_updated: Option<String>,
    /// Opportunity `modifiedon` last reconciled.
    pub dv_modified: Option<String>,
    /// `None` for a link written by a version before pair sync: its first reconcile takes
    /// both sides' values as the base where they agree, and the conflict rules elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    /// Optimistic-concurrency counter owned by the store: 0 before the first write, 1 after
    /// creation, +1 on every successful `put_link`. Callers pass back what they read.
    pub version: u64,
    /// Set by the store on every write.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Link {
    /// A link not yet stored (version 0); sync state is filled in by the caller.
    pub fn new(referral_id: impl Into<String>, opportunity_id: impl Into<String>) -> Self {
        Link {
            referral_id: referral_id.into(),
            opportunity_id: opportunity_id.into(),
            pc_etag: None,
            dv_etag: None,
            pc_updated: None,
            dv_modified: None,
            base: None,
            version: 0,
            updated_at: OffsetDateTime::now_utc(),
        }
    }
}
