//! The whole of the queue-consuming function (pair-sync): build the engine and the sync
//! queue once at cold start, then hand each SQS batch to [`drive`] with the function's
//! parse and reconcile steps.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cosell::engine::{BadMessage, Engine, PairOutcome, SyncError, SyncMessage};
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::aws;
use crate::batch::{drive, RetryRules, DEFAULT_CONCURRENCY};
use crate::settings::Services;
use crate::startup::Started;

/// Runs the Lambda loop for a consumer of the sync queue; returns only when the runtime
/// stops.
pub async fn run<P, S, Fut>(parse: P, sync: S) -> Result<(), Error>
where
    P: Fn(&str) -> Result<SyncMessage, BadMessage> + Copy + Send + Sync + 'static,
    S: Fn(Arc<Engine>, SyncMessage) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<PairOutcome, SyncError>> + Send,
{
    // First: the root certificates are read while the rest is set up.
    crate::tls::preload();
    crate::logging::init();
    let metrics = crate::metrics::init()?;
    let started = Started::load(Services::BOTH).await?;
    // Tokens during init, not on the first message's clock (and not after the first `/next`:
    // with provisioned concurrency the environment is frozen then, and a fetch frozen in
    // flight would hold the first message up to its timeout).
    let engine = Arc::new(started.warmed_up_engine().await?);
    let queue = Arc::new(aws::sync_queue(&started.sdk)?);
    let rules = RetryRules {
        max_attempts: started.config.sync_max_attempts,
        ..RetryRules::default()
    };
    crate::metrics::run(
        metrics,
        service_fn(move |event: LambdaEvent<SqsEvent>| {
            let (engine, queue) = (engine.clone(), queue.clone());
            // In-call retries stop in time to settle the batch before the invocation ends.
            let deadline = settle_by(event.context.deadline());
            async move {
                let outcome = drive(
                    queue.as_ref(),
                    &event.payload,
                    DEFAULT_CONCURRENCY,
                    rules,
                    parse,
                    |message| {
                        cosell::retry::within_deadline(deadline, sync(engine.clone(), message))
                    },
                )
                .await;
                Ok::<SqsBatchResponse, Error>(outcome.response)
            }
        }),
    )
    .await
}

/// What a batch leaves itself to settle its messages (dead letters, visibility changes)
/// after the last reconcile's calls stop.
const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// The instant the reconciles of an invocation ending at `deadline` must stop by.
pub fn settle_by(deadline: SystemTime) -> tokio::time::Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(SETTLE_MARGIN);
    tokio::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconciles_stop_before_the_invocation_does() {
        let now = tokio::time::Instant::now();
        let by = settle_by(SystemTime::now() + Duration::from_secs(60));
        let left = by - now;
        assert!(left <= Duration::from_millis(55_100), "{left:?}");
        assert!(left > Duration::from_secs(50), "{left:?}");
        // An invocation already out of time leaves none.
        let late = settle_by(SystemTime::now() - Duration::from_secs(1));
        assert!(late - now < Duration::from_millis(100));
    }
}
