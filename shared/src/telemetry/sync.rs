//! What a settled message counts as: one decision for the Lambda batch driver and the local
//! worker alike.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::names::{Direction, Outcome};
use super::record;
use crate::engine::{Disposition, Origin, PairOutcome, SyncError, SyncMessage};

/// The direction of the change a message carries.
pub fn direction(message: Option<&SyncMessage>) -> Direction {
    match message.map(|m| m.origin) {
        Some(Origin::Referral | Origin::Related) => Direction::Inbound,
        Some(Origin::Opportunity) => Direction::Outbound,
        Some(Origin::Operator) => Direction::Operator,
        None => Direction::Unknown,
    }
}

/// The outcome of a reconcile (`None`: the body could not be read) and what the worker
/// decided.
pub fn outcome(
    result: Option<&Result<PairOutcome, SyncError>>,
    disposition: &Disposition,
) -> Outcome {
    if matches!(disposition, Disposition::DeadLetter { .. }) {
        return Outcome::DeadLettered;
    }
    match result {
        None => Outcome::Failed,
        Some(Ok(
            PairOutcome::OpportunityCreated { .. }
            | PairOutcome::LeadCreated { .. }
            | PairOutcome::ReferralCreated { .. },
        )) => Outcome::Created,
        Some(Ok(PairOutcome::Updated { .. })) => Outcome::Updated,
        Some(Ok(PairOutcome::Unchanged { .. })) => Outcome::SkippedEcho,
        Some(Ok(PairOutcome::Skipped { .. })) => Outcome::Skipped,
        Some(Ok(PairOutcome::Forwarded { .. })) => Outcome::Forwarded,
        // Every lost race (a 412, a moved link, a pair that kept changing).
        Some(Err(SyncError::Retry { conflict: true, .. })) => Outcome::Conflict,
        Some(Err(_)) => Outcome::Failed,
    }
}

/// How long ago the message's change happened, when it says (`changed_at`, RFC 3339).
pub fn latency(message: &SyncMessage, now: OffsetDateTime) -> Option<Duration> {
    let changed = OffsetDateTime::parse(message.changed_at.as_deref()?.trim(), &Rfc3339).ok()?;
    Duration::try_from(now - changed).ok()
}

/// Counts one settled message: its outcome by direction, and for a write its latency.
pub fn settled(
    message: Option<&SyncMessage>,
    result: Option<&Result<PairOutcome, SyncError>>,
    disposition: &Disposition,
) -> Outcome {
    let direction = direction(message);
    let outcome = outcome(result, disposition);
    record::sync_settled(direction, outcome);
    if matches!(outcome, Outcome::Created | Outcome::Updated) {
        if let Some(latency) = message.and_then(|m| latency(m, OffsetDateTime::now_utc())) {
            record::sync_latency(direction, latency);
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::CONFLICT_RETRY;

    #[test]
    fn each_result_has_one_outcome() {
        let done = Disposition::Done;
        let created = Ok(PairOutcome::OpportunityCreated {
            referral_id: "r".into(),
            opportunity_id: "o".into(),
        });
        assert_eq!(outcome(Some(&created), &done), Outcome::Created);
        let echo = Ok(PairOutcome::Unchanged {
            referral_id: None,
            opportunity_id: "o".into(),
        });
        assert_eq!(outcome(Some(&echo), &done), Outcome::SkippedEcho);
        let retry = Disposition::Retry {
            delay: CONFLICT_RETRY,
            reason: "x".into(),
        };
        let raced = Err(SyncError::conflict("kept changing"));
        assert_eq!(outcome(Some(&raced), &retry), Outcome::Conflict);
        let throttled = Err(SyncError::retry(Some(Duration::from_secs(30)), "429"));
        assert_eq!(outcome(Some(&throttled), &retry), Outcome::Failed);
        // A throttle whose wait happens to equal the conflict wait is no conflict.
        let one_second = Err(SyncError::retry(
            Some(CONFLICT_RETRY),
            "429, Retry-After: 1",
        ));
        assert_eq!(outcome(Some(&one_second), &retry), Outcome::Failed);
        let dead = Disposition::DeadLetter { reason: "x".into() };
        let bad = Err(SyncError::permanent("name is required"));
        assert_eq!(outcome(Some(&bad), &dead), Outcome::DeadLettered);
        assert_eq!(outcome(None, &dead), Outcome::DeadLettered);
    }

    #[test]
    fn latency_runs_from_the_change_to_now() {
        let mut m = SyncMessage::for_opportunity("o", Some("2026-01-01T00:00:00Z".into()));
        let now = OffsetDateTime::parse("2026-01-01T00:00:02.5Z", &Rfc3339).unwrap();
        assert_eq!(latency(&m, now), Some(Duration::from_millis(2500)));
        m.changed_at = Some("yesterday".into());
        assert_eq!(latency(&m, now), None);
        m.changed_at = None;
        assert_eq!(latency(&m, now), None);
        assert_eq!(direction(Some(&m)), Direction::Outbound);
        assert_eq!(direction(None), Direction::Unknown);
    }
}
