//! The queue port: at-least-once work queues with visibility timeouts, delays, a
//! dead-letter queue per queue, and replay. One [`Queue`] value is one queue (with its DLQ).
//!
//! A queue is [standard or FIFO](QueueKind), fixed when the adapter is opened. On a FIFO
//! queue every message carries a group id; a group's messages are handed out in send order,
//! and a group is blocked while any of its messages is in flight (received and neither
//! acked, dead-lettered nor visible again). A de-duplication id sent again within
//! [`DEDUP_WINDOW`] is accepted and dropped. FIFO has no per-message delay: a message that
//! must wait is [released](Queue::release) with a delay and keeps its group blocked.
//!
//! Adapters: [`sqs::SqsQueue`] (SQS, dead-lettering after `maxReceiveCount` through the
//! queue's RedrivePolicy) and [`sqlite::SqliteQueue`] (embedded, durable, same semantics).
//! Both are checked by `shared/tests/queue_contract.rs`.

mod error;
mod message_rules;
pub mod sqlite;
pub mod sqs;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use error::{QueueError, Unsupported};

/// The reason recorded for messages dead-lettered because they were received too often.
pub const MAX_RECEIVES_REASON: &str = "exceeded max receive count";

/// How long a FIFO queue remembers a de-duplication id (SQS: 5 minutes, not configurable).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// Longest group or de-duplication id (SQS: 128 characters, printable ASCII).
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueKind {
    /// No order, no groups; per-message delays.
    #[default]
    Standard,
    /// Ordered and exclusive per group, de-duplicated; no per-message delays.
    Fifo,
}

impl std::fmt::Display for QueueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueueKind::Standard => "standard",
            QueueKind::Fifo => "FIFO",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutMessage {
    pub body: String,
    /// Invisible to receivers until this has passed (SQS: at most 15 minutes). Standard
    /// queues only: a FIFO queue refuses a non-zero delay with [`Unsupported::DelayOnFifo`].
    pub delay: Duration,
    pub attributes: BTreeMap<String, String>,
    /// The message group (the pair key). Required on a FIFO queue; on a standard queue it
    /// is carried to the receiver but orders nothing (SQS: a fair-queue tenant).
    pub group: Option<String>,
    /// FIFO only: a second send with this id within [`DEDUP_WINDOW`] is accepted and
    /// dropped. Without one, a FIFO message is never treated as a duplicate.
    pub dedup_id: Option<String>,
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

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    /// Handle for [`Queue::ack`] / [`Queue::release`]; valid for this receive only.
    pub receipt: String,
    pub body: String,
    /// The attempt: 1 on the first delivery, one more on every receive after a release or
    /// an expired visibility.
    pub receive_count: u32,
    pub attributes: BTreeMap<String, String>,
    /// The group it was sent with, if any (always set on a FIFO queue).
    pub group: Option<String>,
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
    /// The group it was sent with; a replay sends it back into the same group.
    pub group: Option<String>,
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
    /// Standard or FIFO. Wrappers must forward it; the default is for test doubles that
    /// predate FIFO queues.
    fn kind(&self) -> QueueKind {
        QueueKind::Standard
    }

    /// Enqueues one message; returns its id (for a FIFO duplicate dropped within the
    /// de-duplication window, SQLite returns the first message's id, SQS whatever it says).
    /// Refuses what the queue's kind cannot take with [`QueueError::Unsupported`].
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
    ///
    /// FIFO: nothing of a group that has a message in flight; a group's messages in send
    /// order. SQS may put several messages of one group in one batch (in order; process
    /// them in order and, when one fails, release the rest); SQLite puts at most one.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError>;

    /// Done with the message: delete it. Acking an already-deleted message is not an error.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;

    /// Not done: make the message visible again after `delay` (zero: now). Counts as a
    /// receive when it is next received. On a FIFO queue the message stays in flight until
    /// then, so its group stays blocked and it comes back before the rest of its group.
    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;

    /// Moves the message to the DLQ with `reason`, and deletes it from this queue. The DLQ
    /// of a FIFO queue is FIFO too: the letter keeps its group.
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError>;

    /// Up to `limit` dead letters, oldest first where the backend can tell.
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves the given dead letters (all when `None`) back to this queue as new messages
    /// (receive count starts again, group kept, behind the group's newer messages); returns
    /// how many moved.
    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}
