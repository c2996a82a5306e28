//! One function per thing counted, so the call sites cannot mistype a name or a dimension.

use std::time::Duration;

use super::names::{self, dim, Direction, Outcome, Service, Source};

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One message settled.
pub fn sync_settled(direction: Direction, outcome: Outcome) {
    metrics::counter!(
        names::SYNCS.name,
        dim::DIRECTION => direction.as_str(),
        dim::OUTCOME => outcome.as_str()
    )
    .increment(1);
    let failed = if outcome.is_failure() { 1.0 } else { 0.0 };
    metrics::histogram!(names::SYNC_FAILED.name).record(failed);
}

/// From a change's own time to our write of it on the other side.
pub fn sync_latency(direction: Direction, latency: Duration) {
    metrics::histogram!(names::SYNC_LATENCY.name, dim::DIRECTION => direction.as_str())
        .record(millis(latency));
}

/// The webhook intake answered `status`.
pub fn webhook_answered(status: u16) {
    metrics::counter!(names::WEBHOOK_DELIVERIES.name, dim::STATUS => status.to_string())
        .increment(1);
}

/// One logical HTTP call started.
pub fn call_started(service: Service) {
    metrics::counter!(names::CALLS.name, dim::SERVICE => service.as_str()).increment(1);
}

/// One attempt after the first.
pub fn call_retried(service: Service) {
    metrics::counter!(names::RETRIES.name, dim::SERVICE => service.as_str()).increment(1);
}

/// A 429 asking to wait `wait`.
pub fn throttled(service: Service, wait: Duration) {
    metrics::counter!(names::THROTTLES.name, dim::SERVICE => service.as_str()).increment(1);
    metrics::histogram!(names::RETRY_AFTER_WAIT.name, dim::SERVICE => service.as_str())
        .record(millis(wait));
}

/// An access token request for `service`'s audience ended (`ok`: a token came back).
pub fn token_renewal(service: Service, ok: bool) {
    let metric = if ok {
        names::TOKEN_RENEWALS
    } else {
        names::TOKEN_RENEWAL_FAILURES
    };
    metrics::counter!(metric.name, dim::SERVICE => service.as_str()).increment(1);
}

/// A poll or sweep queued `changes` changes, reading `pages` pages when it counts them.
pub fn poll_done(source: Source, changes: usize, pages: Option<usize>) {
    metrics::counter!(names::CHANGES_FOUND.name, dim::SOURCE => source.as_str())
        .increment(changes as u64);
    if let Some(pages) = pages {
        metrics::counter!(names::PAGES_READ.name, dim::SOURCE => source.as_str())
            .increment(pages as u64);
    }
}
