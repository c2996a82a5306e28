//! What a queue worker does with a message once a sync attempt is over. One decision,
//! used by the SQS Lambda functions and the local runner alike, so both retry and
//! dead-letter the same way.

use std::time::Duration;

use crate::engine::SyncError;
use crate::queue::{Queue, QueueError, Received};

/// Longest delay SQS accepts on a message.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (synced, or nothing to do): delete the message.
    Done,
    /// Throttled or raced: send a fresh copy that becomes visible after the delay and delete
    /// this one, so waiting does not use up the message's receive count.
    Requeue { delay: Duration, reason: String },
    /// Transient failure without a known wait: leave the message to reappear after its
    /// visibility timeout (counts toward the max receive count, then the DLQ).
    Fail { reason: String },
    /// Retrying cannot help: move it to the dead-letter queue with the reason.
    DeadLetter { reason: String },
}

impl Disposition {
    pub fn of(result: &Result<(), SyncError>) -> Self {
        match result {
            Ok(()) => Disposition::Done,
            Err(SyncError::Retry {
                after: Some(after),
                reason,
            }) => Disposition::Requeue {
                delay: (*after).clamp(Duration::from_secs(1), MAX_DELAY),
                reason: reason.clone(),
            },
            Err(SyncError::Retry {
                after: None,
                reason,
            }) => Disposition::Fail {
                reason: reason.clone(),
            },
            Err(SyncError::Permanent { reason }) => Disposition::DeadLetter {
                reason: reason.clone(),
            },
        }
    }

    /// Carries the decision out on a queue the worker itself received from (local runner).
    /// A `Fail` releases the message after `fail_delay` instead of waiting out its
    /// visibility timeout.
    pub async fn apply(
        &self,
        queue: &dyn Queue,
        message: &Received,
        fail_delay: Duration,
    ) -> Result<(), QueueError> {
        match self {
            Disposition::Done => queue.ack(&message.receipt).await,
            Disposition::Requeue { delay, reason } => {
                let mut copy = crate::queue::OutMessage::new(message.body.clone()).delay(*delay);
                copy.attributes = message.attributes.clone();
                copy.attributes
                    .insert("requeued_because".into(), truncate(reason, 256));
                queue.send(&copy).await?;
                queue.ack(&message.receipt).await
            }
            Disposition::Fail { .. } => queue.release(&message.receipt, fail_delay).await,
            Disposition::DeadLetter { reason } => queue.dead_letter(message, reason).await,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_one_disposition() {
        assert_eq!(Disposition::of(&Ok(())), Disposition::Done);
        let throttled = Err(SyncError::retry(Some(Duration::from_secs(3600)), "429"));
        assert_eq!(
            Disposition::of(&throttled),
            Disposition::Requeue {
                delay: MAX_DELAY,
                reason: "429".into()
            }
        );
        let soon = Err(SyncError::retry(Some(Duration::ZERO), "412"));
        assert!(
            matches!(Disposition::of(&soon), Disposition::Requeue { delay, .. } if delay == Duration::from_secs(1))
        );
        let flaky = Err(SyncError::retry(None, "store"));
        assert!(matches!(Disposition::of(&flaky), Disposition::Fail { .. }));
        let bad = Err(SyncError::permanent("name is required"));
        assert_eq!(
            Disposition::of(&bad),
            Disposition::DeadLetter {
                reason: "name is required".into()
            }
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
