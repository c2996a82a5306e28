//! Audit trail entries: one per sync decision, so an operator can answer "what happened to
//! this referral, and why" without reading logs.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Which way data moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Partner Center → Dataverse.
    Inbound,
    /// Dataverse → Partner Center.
    Outbound,
    /// Housekeeping that moves no record (webhook registration, replays, ...).
    None,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Direction::Inbound, Direction::Outbound, Direction::None]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Skipped,
    Failed,
    /// Both sides changed since the last sync, or a concurrent writer won.
    Conflict,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Conflict => "conflict",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Outcome::Success,
            Outcome::Skipped,
            Outcome::Failed,
            Outcome::Conflict,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    /// When it happened (UTC; RFC 3339 on the wire).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub direction: Direction,
    pub referral_id: Option<String>,
    pub opportunity_id: Option<String>,
    /// What was attempted, e.g. "create_opportunity", "update_referral".
    pub action: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub error: Option<String>,
}

impl AuditEntry {
    /// A new entry stamped now with a fresh id.
    pub fn new(direction: Direction, action: impl Into<String>, outcome: Outcome) -> Self {
        AuditEntry {
            id: Uuid::new_v4().to_string(),
            at: OffsetDateTime::now_utc(),
            direction,
            referral_id: None,
            opportunity_id: None,
            action: action.into(),
            outcome,
            detail: None,
            error: None,
        }
    }

    pub fn referral(mut self, id: impl Into<String>) -> Self {
        self.referral_id = Some(id.into());
        self
    }

    pub fn opportunity(mut self, id: impl Into<String>) -> Self {
        self.opportunity_id = Some(id.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = at;
        self
    }
}

/// Filters for [`Store::query_audit`](crate::store::Store::query_audit); all set filters
/// must match. Results come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub referral_id: Option<String>,
    pub opportunity_id: Option<String>,
    /// Only entries at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only entries with [`Outcome::Failed`].
    pub failed_only: bool,
    /// At most this many entries; `None` means [`AuditQuery::DEFAULT_LIMIT`].
    pub limit: Option<usize>,
}

impl AuditQuery {
    pub const DEFAULT_LIMIT: usize = 1000;

    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }
}
