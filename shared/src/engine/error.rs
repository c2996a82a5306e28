//! The two ways a sync can fail: worth another try (throttled, timed out, lost a race) or not
//! (the data itself is rejected). Workers turn the first into a delayed retry and the second
//! into a dead letter with its reason.

use std::time::Duration;

use crate::dataverse::DataverseError;
use crate::engine::messages::BadMessage;
use crate::partner_center::PartnerCenterError;
use crate::queue::QueueError;
use crate::store::StoreError;

/// How long to wait after a lost optimistic-concurrency race before reading again.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Try the same message again, after `after` when the service said how long.
    /// `conflict`: the pair lost an optimistic-concurrency race (a 412, a moved link).
    #[error("retry: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
        conflict: bool,
    },
    /// Retrying cannot help until someone fixes the data or the configuration.
    #[error("permanent: {reason}")]
    Permanent { reason: String },
}

impl SyncError {
    pub fn retry(after: Option<Duration>, reason: impl Into<String>) -> Self {
        SyncError::Retry {
            after,
            reason: reason.into(),
            conflict: false,
        }
    }

    /// A lost race: read both sides again after [`CONFLICT_RETRY`].
    pub fn conflict(reason: impl Into<String>) -> Self {
        SyncError::Retry {
            after: Some(CONFLICT_RETRY),
            reason: reason.into(),
            conflict: true,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SyncError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SyncError::Permanent { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SyncError::Retry { reason, .. } | SyncError::Permanent { reason } => reason,
        }
    }
}

impl From<PartnerCenterError> for SyncError {
    fn from(e: PartnerCenterError) -> Self {
        let reason = format!("Partner Center: {e}");
        match &e {
            PartnerCenterError::Call(call) => SyncError::retry(call.retry_after(), reason),
            PartnerCenterError::Conflict { .. } => SyncError::conflict(reason),
            _ if e.is_transient() => SyncError::retry(None, reason),
            _ => SyncError::permanent(reason),
        }
    }
}

impl From<DataverseError> for SyncError {
    fn from(e: DataverseError) -> Self {
        let reason = format!("Dataverse: {e}");
        match &e {
            DataverseError::Call(call) => SyncError::retry(call.retry_after(), reason),
            DataverseError::Conflict { .. } => SyncError::conflict(reason),
            _ if e.is_transient() => SyncError::retry(None, reason),
            _ => SyncError::permanent(reason),
        }
    }
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => {
                SyncError::retry(Some(CONFLICT_RETRY), format!("store: {e}"))
            }
            StoreError::Corrupt(_) => SyncError::permanent(format!("store: {e}")),
            _ => SyncError::retry(None, format!("store: {e}")),
        }
    }
}

impl From<QueueError> for SyncError {
    fn from(e: QueueError) -> Self {
        match e {
            // What the queue's kind cannot take never succeeds on a retry.
            QueueError::Invalid(_)
            | QueueError::Unsupported(_)
            | QueueError::KindMismatch { .. } => SyncError::permanent(format!("queue: {e}")),
            _ => SyncError::retry(None, format!("queue: {e}")),
        }
    }
}

impl From<BadMessage> for SyncError {
    fn from(e: BadMessage) -> Self {
        SyncError::permanent(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::CallError;

    #[test]
    fn throttling_keeps_the_services_wait_and_rejections_are_permanent() {
        let throttled = PartnerCenterError::Call(CallError::Throttled {
            call: "get referral".into(),
            retry_after: Duration::from_secs(7),
        });
        match SyncError::from(throttled) {
            SyncError::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
            other => panic!("expected retry, got {other:?}"),
        }
        let rejected = DataverseError::Invalid {
            call: "create opportunity".into(),
            status: 400,
            code: "0x80040203".into(),
            message: "name is required".into(),
        };
        let e = SyncError::from(rejected);
        assert!(e.is_permanent());
        assert!(e.reason().contains("name is required"));
        let raced = SyncError::from(StoreError::Conflict {
            what: "link".into(),
        });
        assert!(matches!(raced, SyncError::Retry { after: Some(d), .. } if d == CONFLICT_RETRY));
    }
}
