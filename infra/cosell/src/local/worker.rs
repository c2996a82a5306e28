//! A queue worker: receives batches, runs a bounded number of reconciles at once, and
//! carries out each result's [`Disposition`]. The sync queue is FIFO with the pair key as
//! the group, so it hands out one message per pair at a time: two reconciles of one pair
//! never run together. On shutdown it stops receiving and waits for the reconciles in
//! flight, so a message is either finished or still on the queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cosell::engine::{BadMessage, Disposition, PairOutcome, SyncError, SyncMessage};
use cosell::queue::{Queue, Received};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Time a reconcile leaves to settle its message before the visibility runs out (a
/// quarter of it at most, so a short visibility still leaves the calls most of it).
const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// What handling one message body came to.
pub type Handled = Result<Result<PairOutcome, SyncError>, BadMessage>;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Queue name, for the logs.
    pub name: &'static str,
    /// Reconciles running at once.
    pub concurrency: usize,
    /// How long a received message stays hidden from other receives (its pair's lease).
    pub visibility: Duration,
    /// How long one receive waits for a first message (also the shutdown reaction time).
    pub receive_wait: Duration,
    /// When a transient failure gives no wait of its own, retry after this.
    pub fail_delay: Duration,
    /// Failed attempts before a message goes to the dead-letter queue.
    pub max_attempts: u32,
}

/// Runs until `shutdown` turns true, then drains the reconciles in flight.
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
            // In-call retries stop before the message's visibility (its pair's lease) ends.
            let margin = SETTLE_MARGIN.min(settings.visibility / 4);
            let deadline = tokio::time::Instant::now() + settings.visibility - margin;
            in_flight.spawn(cosell::retry::within_deadline(deadline, async move {
                process(queue.as_ref(), &settings, message, handle).await;
                drop(permit);
            }));
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
    let (result, disposition) = match handle(message.body.clone()).await {
        Err(bad) => (
            None,
            Disposition::DeadLetter {
                reason: format!("poison message: {bad}"),
            },
        ),
        Ok(result) => {
            let disposition = Disposition::of(
                &result,
                message.receive_count,
                settings.max_attempts,
                settings.fail_delay,
            );
            (Some(result), disposition)
        }
    };
    // Counted as the Lambda batch driver counts it.
    let sent = SyncMessage::parse(&message.body).ok();
    cosell::telemetry::sync::settled(sent.as_ref(), result.as_ref(), &disposition);
    match &disposition {
        Disposition::Done | Disposition::Forward { .. } => {}
        Disposition::Retry { delay, reason } => tracing::warn!(
            queue = settings.name, id = %message.id, attempt = message.receive_count,
            ?delay, %reason, "reconcile failed; will retry"
        ),
        Disposition::DeadLetter { reason } => {
            tracing::error!(queue = settings.name, id = %message.id, %reason, "dead-lettered")
        }
    }
    if let Err(e) = disposition.apply(queue, &message).await {
        // The message stays on the queue and comes back after its visibility timeout.
        tracing::warn!(queue = settings.name, id = %message.id, error = %e, "could not settle message");
    }
}

fn report_panic(queue: &str, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(queue, error = %e, "a reconcile task panicked; its message will be retried");
    }
}
