//! A deterministic, single-task queue worker for tests: receives a batch from the sync
//! queue, reconciles each message in turn and carries out its [`Disposition`], as the
//! Lambda function and the local runner do. A message whose reconcile hit an injected
//! crash gets no disposition at all: it is released as if its visibility timeout had run
//! out, so the next receive redelivers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell::engine::disposition::DEFAULT_MAX_ATTEMPTS;
use cosell::engine::{reconcile_pair, Disposition, Engine, PairOutcome, SyncError, SyncMessage};
use cosell::queue::{Queue, Received};

use crate::crash_store::CrashStore;

/// How long a failed message waits before it is visible again (tests: almost at once).
const FAIL_DELAY: Duration = Duration::from_millis(20);
const VISIBILITY: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub handled: u64,
    pub done: u64,
    pub forwarded: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub crashed: u64,
}

impl WorkerStats {
    /// Reconciles that will run again: retried after a failure, or after a crash.
    pub fn retries(&self) -> u64 {
        self.retried + self.crashed
    }

    pub fn crashes_seen(&self) -> u64 {
        self.crashed
    }
}

pub struct QueueWorker {
    pub engine: Engine,
    pub queue: Arc<dyn Queue>,
    pub crash: Arc<CrashStore>,
    pub stats: WorkerStats,
    /// Failed attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// Reasons of every dead-lettered message, in order.
    pub dead_reasons: Vec<String>,
    /// Retry waits are cut to this (tests do not wait out a real `Retry-After`).
    pub retry_wait: Duration,
}

impl QueueWorker {
    /// Wraps `engine.store` in a [`CrashStore`] the worker can arm.
    pub fn new(mut engine: Engine, queue: Arc<dyn Queue>) -> Self {
        let crash = Arc::new(CrashStore::new(engine.store.clone()));
        engine.store = crash.clone();
        QueueWorker {
            engine,
            queue,
            crash,
            stats: WorkerStats::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            dead_reasons: Vec::new(),
            retry_wait: FAIL_DELAY,
        }
    }

    /// One batch; returns how many messages were handled.
    pub async fn step(&mut self) -> usize {
        let queue = self.queue.clone();
        let batch = queue
            .receive(10, VISIBILITY, Duration::ZERO)
            .await
            .expect("receive from the test queue");
        for message in &batch {
            self.handle(&*queue, message).await;
        }
        batch.len()
    }

    async fn handle(&mut self, queue: &dyn Queue, message: &Received) {
        self.stats.handled += 1;
        let result = self.sync(&message.body).await;
        if self.crash.take_crashed() {
            // The worker "died": no ack, no release by the worker; the queue makes the
            // message visible again when its visibility timeout ends (here: at once).
            self.stats.crashed += 1;
            queue
                .release(&message.receipt, Duration::ZERO)
                .await
                .expect("release");
            return;
        }
        let mut disposition = Disposition::of(
            &result,
            message.receive_count,
            self.max_attempts,
            FAIL_DELAY,
        );
        match &mut disposition {
            Disposition::Done => self.stats.done += 1,
            Disposition::Forward { .. } => self.stats.forwarded += 1,
            Disposition::Retry { delay, .. } => {
                self.stats.retried += 1;
                *delay = (*delay).min(self.retry_wait);
            }
            Disposition::DeadLetter { reason } => {
                self.stats.dead_lettered += 1;
                self.dead_reasons.push(reason.clone());
            }
        }
        // The queue's one-second floor on a retry is the production rule; tests wait less.
        if let Disposition::Retry { delay, .. } = &disposition {
            queue
                .release(&message.receipt, *delay)
                .await
                .expect("release for a retry");
            return;
        }
        disposition
            .apply(queue, message)
            .await
            .expect("apply the disposition");
    }

    async fn sync(&self, body: &str) -> Result<PairOutcome, SyncError> {
        let m = SyncMessage::parse(body)?;
        reconcile_pair(&self.engine, &m).await
    }

    /// Messages on the queue that are not dead: visible, in flight or delayed.
    pub async fn pending(&self) -> u64 {
        let d = self.queue.depth().await.expect("queue depth");
        d.visible + d.in_flight + d.delayed
    }

    /// Works until the queue is empty (waiting out released messages), or `limit` passes.
    /// Returns false on timeout.
    pub async fn drain(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let handled = self.step().await;
            if handled == 0 {
                if self.pending().await == 0 {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
