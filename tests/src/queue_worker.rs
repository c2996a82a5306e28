//! A deterministic, single-task queue worker for tests: receives a batch from the inbound
//! or outbound queue, runs the engine on each message in turn and carries out its
//! [`Disposition`], as the Lambda workers and the local runner do. A message whose sync hit
//! an injected crash gets no disposition at all: it is released as if its visibility
//! timeout had run out, so the next receive redelivers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell::engine::{inbound, outbound};
use cosell::engine::{Disposition, Engine, InboundMessage, OutboundMessage, SyncError};
use cosell::queue::{Queue, Received};

use crate::crash_store::CrashStore;

/// How long a failed message waits before it is visible again (tests: almost at once).
const FAIL_DELAY: Duration = Duration::from_millis(20);
const VISIBILITY: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub handled: u64,
    pub done: u64,
    pub requeued: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub crashed: u64,
}

impl WorkerStats {
    /// Syncs that will run again: requeued, released after a failure, or after a crash.
    pub fn retries(&self) -> u64 {
        self.requeued + self.failed + self.crashed
    }

    pub fn crashes_seen(&self) -> u64 {
        self.crashed
    }
}

pub struct QueueWorker {
    pub engine: Engine,
    pub inbound: Arc<dyn Queue>,
    pub outbound: Arc<dyn Queue>,
    pub crash: Arc<CrashStore>,
    pub stats: WorkerStats,
    /// Reasons of every dead-lettered message, in order.
    pub dead_reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Side {
    Inbound,
    Outbound,
}

impl QueueWorker {
    /// Wraps `engine.store` in a [`CrashStore`] the worker can arm.
    pub fn new(mut engine: Engine, inbound: Arc<dyn Queue>, outbound: Arc<dyn Queue>) -> Self {
        let crash = Arc::new(CrashStore::new(engine.store.clone()));
        engine.store = crash.clone();
        QueueWorker {
            engine,
            inbound,
            outbound,
            crash,
            stats: WorkerStats::default(),
            dead_reasons: Vec::new(),
        }
    }

    /// One batch from each queue; returns how many messages were handled.
    pub async fn step(&mut self) -> usize {
        self.step_side(Side::Inbound).await + self.step_side(Side::Outbound).await
    }

    async fn step_side(&mut self, side: Side) -> usize {
        let queue = match side {
            Side::Inbound => self.inbound.clone(),
            Side::Outbound => self.outbound.clone(),
        };
        let batch = queue
            .receive(10, VISIBILITY, Duration::ZERO)
            .await
            .expect("receive from the test queue");
        for message in &batch {
            self.handle(side, &*queue, message).await;
        }
        batch.len()
    }

    async fn handle(&mut self, side: Side, queue: &dyn Queue, message: &Received) {
        self.stats.handled += 1;
        let result = self.sync(side, &message.body).await;
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
        let disposition = Disposition::of(&result);
        match &disposition {
            Disposition::Done => self.stats.done += 1,
            Disposition::Requeue { .. } => self.stats.requeued += 1,
            Disposition::Fail { .. } => self.stats.failed += 1,
            Disposition::DeadLetter { reason } => {
                self.stats.dead_lettered += 1;
                self.dead_reasons.push(reason.clone());
            }
        }
        disposition
            .apply(queue, message, FAIL_DELAY)
            .await
            .expect("apply the disposition");
    }

    async fn sync(&self, side: Side, body: &str) -> Result<(), SyncError> {
        match side {
            Side::Inbound => {
                let m = InboundMessage::parse(body)?;
                inbound::sync_referral(&self.engine, &m).await.map(|_| ())
            }
            Side::Outbound => {
                let m = OutboundMessage::parse(body)?;
                outbound::sync_opportunity(&self.engine, &m)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Messages on either queue that are not dead: visible, in flight or delayed.
    pub async fn pending(&self) -> u64 {
        let mut n = 0;
        for q in [&self.inbound, &self.outbound] {
            let d = q.depth().await.expect("queue depth");
            n += d.visible + d.in_flight + d.delayed;
        }
        n
    }

    /// Works until both queues are empty (waiting out delayed messages), or `limit` passes.
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
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
