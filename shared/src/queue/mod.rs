//! The queue port: at-least-once work queues with visibility timeouts, delays, a
//! dead-letter queue per queue, and replay. One [`Queue`] value is one queue (with its DLQ).
//!
//! Adapters: [`sqs::SqsQueue`] (SQS, dead-lettering after `maxReceiveCount` through the
//! queue's RedrivePolicy) and [`sqlite::SqliteQueue`] (embedded, durable, same semantics).
//! Both are checked by `shared/tests/queue_contract.rs`.

mod error;
pub mod sqlite;
pub mod sqs;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use error::QueueError;

/// The reason recorded for messages dead-lettered because they were received too often.
pub const MAX_RECEIVES_REASON: &str = "exceeded max receive count";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutMessage {
    pub body: String,
    /// Invisible to receivers until this has passed (SQS: at most 15 minutes).
    pub delay: Duration,
    pub attributes: BTreeMap<String, String>,
}

impl OutMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutMessage {
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    /// Handle for [`Queue::ack`] / [`Queue::release`]; valid for this receive only.
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id within the dead-letter queue; pass it to [`Queue::replay_dead_letters`].
    pub id: String,
    pub body: String,
    pub reason: String,
    /// Receives before it was dead-lettered (approximate for SQS redrives).
    pub receive_count: u32,
    /// When it was dead-lettered, where the backend knows (SQS redrives do not say).
    pub failed_at: Option<OffsetDateTime>,
    pub attributes: BTreeMap<String, String>,
}

/// Approximate message counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready to be received now.
    pub visible: u64,
    /// Received and neither acked nor visible again yet (includes released with a delay).
    pub in_flight: u64,
    /// Sent with a delay that has not passed yet.
    pub delayed: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues one message; returns its id.
    async fn send(&self, message: &OutMessage) -> Result<String, QueueError>;

    /// Enqueues several messages; returns their ids in order.
    async fn send_batch(&self, messages: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            ids.push(self.send(m).await?);
        }
        Ok(ids)
    }

    /// Up to `max` visible messages (SQS: at most 10), hidden from other receivers for
    /// `visibility`. Waits up to `wait` (SQS: at most 20 s) for the first one. Messages
    /// already received the queue's maximum number of times go to the DLQ instead.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError>;

    /// Done with the message: delete it. Acking an already-deleted message is not an error.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;

    /// Not done: make the message visible again after `delay` (zero: now). Counts as a
    /// receive when it is next received.
    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;

    /// Moves the message to the DLQ with `reason`, and deletes it from this queue.
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError>;

    /// Up to `limit` dead letters, oldest first where the backend can tell.
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves the given dead letters (all when `None`) back to this queue as new messages
    /// (receive count starts again); returns how many moved.
    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}
