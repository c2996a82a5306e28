//! What a queue worker does with a message once a reconcile is over. One decision, used by
//! the SQS Lambda function and the local runner alike, so both retry and dead-letter the
//! same way.
//!
//! Retries are bounded: every message carries its attempt (the queue's receive count), and
//! after the configured number of failed attempts, whatever the error, it goes to the
//! dead-letter queue with its last reason. A retry extends the message's own visibility
//! (FIFO queues have no per-message delay), which keeps the rest of its pair waiting
//! behind it.

use std::time::Duration;

use crate::engine::pair::PairOutcome;
use crate::engine::{SyncError, SyncMessage};
use crate::queue::{OutMessage, Queue, QueueError, Received};

/// Longest wait one retry asks for (SQS allows 12 hours of visibility; a pair waits no
/// longer than this behind a throttled message).
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// Failed attempts before a message is dead-lettered, unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (synced, or nothing to do): delete the message.
    Done,
    /// The message belongs to another pair: send `to` (under that pair's key) and delete
    /// this one.
    Forward { to: SyncMessage },
    /// Try again after `delay`: the message becomes visible again then (the attempt
    /// counts).
    Retry { delay: Duration, reason: String },
    /// Retrying cannot help, or the attempts are used up: move it to the dead-letter queue
    /// with the reason.
    DeadLetter { reason: String },
}

impl Disposition {
    /// The decision for attempt `attempt` (1 on the first delivery). `fallback` is the
    /// wait of a transient failure that named none.
    pub fn of(
        result: &Result<PairOutcome, SyncError>,
        attempt: u32,
        max_attempts: u32,
        fallback: Duration,
    ) -> Self {
        match result {
            Ok(PairOutcome::Forwarded { to }) => Disposition::Forward { to: to.clone() },
            Ok(_) => Disposition::Done,
            Err(SyncError::Permanent { reason }) => Disposition::DeadLetter {
                reason: reason.clone(),
            },
            Err(SyncError::Retry { reason, .. }) if attempt >= max_attempts => {
                Disposition::DeadLetter {
                    reason: format!("gave up after {attempt} attempts: {reason}"),
                }
            }
            Err(SyncError::Retry { after, reason, .. }) => Disposition::Retry {
                delay: after
                    .unwrap_or(fallback)
                    .clamp(Duration::from_secs(1), MAX_DELAY),
                reason: reason.clone(),
            },
        }
    }

    /// Carries the decision out on the queue the worker received from (local runner).
    pub async fn apply(&self, queue: &dyn Queue, message: &Received) -> Result<(), QueueError> {
        match self {
            Disposition::Done => queue.ack(&message.receipt).await,
            Disposition::Forward { to } => {
                queue.send(&queued(to)).await?;
                queue.ack(&message.receipt).await
            }
            Disposition::Retry { delay, .. } => queue.release(&message.receipt, *delay).await,
            Disposition::DeadLetter { reason } => queue.dead_letter(message, reason).await,
        }
    }
}

/// The queue message for `m`: grouped by its pair key, de-duplicated by its content.
pub fn queued(m: &SyncMessage) -> OutMessage {
    OutMessage::new(m.to_body())
        .group(m.key.trim())
        .dedup_id(m.dedup_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALLBACK: Duration = Duration::from_secs(5);

    #[test]
    fn each_outcome_has_one_disposition() {
        let done = Ok(PairOutcome::Skipped { reason: "x".into() });
        assert_eq!(Disposition::of(&done, 1, 8, FALLBACK), Disposition::Done);
        let to = SyncMessage::for_opportunity("o2", None);
        let forwarded = Ok(PairOutcome::Forwarded { to: to.clone() });
        assert_eq!(
            Disposition::of(&forwarded, 1, 8, FALLBACK),
            Disposition::Forward { to }
        );
        let throttled = Err(SyncError::retry(Some(Duration::from_secs(3600)), "429"));
        assert_eq!(
            Disposition::of(&throttled, 1, 8, FALLBACK),
            Disposition::Retry {
                delay: MAX_DELAY,
                reason: "429".into()
            }
        );
        let flaky = Err(SyncError::retry(None, "store"));
        assert!(
            matches!(Disposition::of(&flaky, 2, 8, FALLBACK), Disposition::Retry { delay, .. } if delay == FALLBACK)
        );
        let bad = Err(SyncError::permanent("name is required"));
        assert_eq!(
            Disposition::of(&bad, 1, 8, FALLBACK),
            Disposition::DeadLetter {
                reason: "name is required".into()
            }
        );
    }

    #[test]
    fn the_last_attempt_dead_letters_whatever_the_error() {
        let flaky = Err(SyncError::retry(None, "timed out"));
        match Disposition::of(&flaky, 8, 8, FALLBACK) {
            Disposition::DeadLetter { reason } => {
                assert!(reason.contains("8 attempts") && reason.contains("timed out"))
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
        assert!(matches!(
            Disposition::of(&flaky, 7, 8, FALLBACK),
            Disposition::Retry { .. }
        ));
    }
}
