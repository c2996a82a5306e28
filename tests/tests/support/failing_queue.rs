//! A queue that works for the first `sends_ok` messages and then refuses every send, to show
//! what the engine does when the queue goes down mid-way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cosell::queue::{DeadLetter, OutMessage, Queue, QueueDepth, QueueError, Received};

pub struct FailingQueue {
    inner: Arc<dyn Queue>,
    sends_left: AtomicUsize,
}

impl FailingQueue {
    /// Passes the first `sends_ok` sends to `inner`, then fails.
    pub fn after(inner: Arc<dyn Queue>, sends_ok: usize) -> Self {
        FailingQueue {
            inner,
            sends_left: AtomicUsize::new(sends_ok),
        }
    }
}

#[async_trait]
impl Queue for FailingQueue {
    async fn send(&self, message: &OutMessage) -> Result<String, QueueError> {
        let claimed = self
            .sends_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match claimed {
            Ok(_) => self.inner.send(message).await,
            Err(_) => Err(QueueError::Backend("injected: queue unavailable".into())),
        }
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(max, visibility, wait).await
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.inner.ack(receipt).await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.inner.release(receipt, delay).await
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(message, reason).await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.list_dead_letters(limit).await
    }

    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        self.inner.replay_dead_letters(ids).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}
