//! The whole of the queue-consuming function (pair-sync): build the engine and the sync
//! queue once at cold start, then hand each SQS batch to [`drive`] with the function's
//! parse and reconcile steps.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cosell::engine::{BadMessage, Engine, PairOutcome, SyncError};
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::aws;
use crate::batch::{drive, RetryRules, DEFAULT_CONCURRENCY};
use crate::settings::Services;
use crate::startup::Started;

/// Runs the Lambda loop for a consumer of the sync queue; returns only when the runtime
/// stops.
pub async fn run<M, P, S, Fut>(parse: P, sync: S) -> Result<(), Error>
where
    M: Send + 'static,
    P: Fn(&str) -> Result<M, BadMessage> + Copy + Send + Sync + 'static,
    S: Fn(Arc<Engine>, M) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<PairOutcome, SyncError>> + Send,
{
    crate::logging::init();
    let started = Started::load(Services::BOTH).await?;
    let engine = Arc::new(started.engine()?);
    let queue = Arc::new(aws::sync_queue(&started.sdk)?);
    let rules = RetryRules {
        max_attempts: started.config.sync_max_attempts,
        ..RetryRules::default()
    };
    // Tokens during init, not on the first message's clock.
    engine.warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            let outcome = drive(
                queue.as_ref(),
                &event.payload,
                DEFAULT_CONCURRENCY,
                rules,
                parse,
                |message| sync(engine.clone(), message),
            )
            .await;
            Ok::<SqsBatchResponse, Error>(outcome.response)
        }
    }))
    .await
}
