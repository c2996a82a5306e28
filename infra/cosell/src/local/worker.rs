//! A queue worker: receives batches, runs a bounded number of syncs at once, and carries out
//! each result's [`Disposition`]. On shutdown it stops receiving and waits for the syncs in
//! flight, so a message is either finished or still on the queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cosell::engine::{BadMessage, Disposition, SyncError};
use cosell::queue::{Queue, Received};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::keyed::KeyedLocks;

/// What handling one message body came to.
pub type Handled = Result<Result<(), SyncError>, BadMessage>;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Queue name, for the logs.
    pub name: &'static str,
    /// Syncs running at once.
    pub concurrency: usize,
    /// How long a received message stays hidden from other receives.
    pub visibility: Duration,
    /// How long one receive waits for a first message (also the shutdown reaction time).
    pub receive_wait: Duration,
    /// When a transient failure gives no wait of its own, retry after this.
    pub fail_delay: Duration,
    /// The record a message body is about; messages with the same key run one at a time.
    pub key: fn(&str) -> Option<String>,
}

/// Runs until `shutdown` turns true, then drains the syncs in flight.
pub async fn run<H, F>(
    queue: Arc<dyn Queue>,
    settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(String) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Handled> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let keys = KeyedLocks::default();
    let mut in_flight = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        while let Some(done) = in_flight.try_join_next() {
            report_panic(settings.name, done);
        }
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                done = in_flight.join_next() => {
                    if let Some(done) = done {
                        report_panic(settings.name, done);
                    }
                }
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // Not raced against shutdown: a receive cut short could hide messages until their
        // visibility runs out. The wait is short, so shutdown still comes quickly.
        let batch = match queue
            .receive(free, settings.visibility, settings.receive_wait)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = settings.name, error = %e, "receive failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        for message in batch {
            let permit = match permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            };
            let (queue, handle, settings) = (queue.clone(), handle.clone(), settings.clone());
            let keys = keys.clone();
            in_flight.spawn(async move {
                let _one_at_a_time = match (settings.key)(&message.body) {
                    Some(key) => Some(keys.lock(&key).await),
                    None => None,
                };
                process(queue.as_ref(), &settings, message, handle).await;
                drop(permit);
            });
        }
    }
    let left = in_flight.len();
    if left > 0 {
        tracing::info!(
            queue = settings.name,
            in_flight = left,
            "finishing in-flight messages"
        );
    }
    while let Some(done) = in_flight.join_next().await {
        report_panic(settings.name, done);
    }
    tracing::debug!(queue = settings.name, "worker stopped");
}

async fn process<H, F>(queue: &dyn Queue, settings: &WorkerSettings, message: Received, handle: H)
where
    H: Fn(String) -> F,
    F: Future<Output = Handled>,
{
    let applied = match handle(message.body.clone()).await {
        Err(bad) => {
            tracing::error!(queue = settings.name, id = %message.id, error = %bad, "dead-lettered an unreadable message");
            queue.dead_letter(&message, &bad.to_string()).await
        }
        Ok(result) => {
            let disposition = Disposition::of(&result);
            match &disposition {
                Disposition::Done => {}
                Disposition::Requeue { delay, reason } => {
                    tracing::info!(queue = settings.name, id = %message.id, ?delay, %reason, "requeued")
                }
                Disposition::Fail { reason } => tracing::warn!(
                    queue = settings.name, id = %message.id, receives = message.receive_count,
                    %reason, "sync failed; will retry"
                ),
                Disposition::DeadLetter { reason } => {
                    tracing::error!(queue = settings.name, id = %message.id, %reason, "dead-lettered")
                }
            }
            disposition
                .apply(queue, &message, settings.fail_delay)
                .await
        }
    };
    if let Err(e) = applied {
        // The message stays on the queue and comes back after its visibility timeout.
        tracing::warn!(queue = settings.name, id = %message.id, error = %e, "could not settle message");
    }
}

fn report_panic(queue: &str, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(queue, error = %e, "a sync task panicked; its message will be retried");
    }
}
