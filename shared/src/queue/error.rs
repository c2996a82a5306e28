use thiserror::Error;

use super::QueueKind;

#[derive(Debug, Error)]
pub enum QueueError {
    /// The receipt does not name a message currently received with it (already acked,
    /// expired visibility and received again, or never valid).
    #[error("invalid or expired receipt")]
    InvalidReceipt,
    /// Message or attributes the backend cannot take (too large, bad attribute name, ...).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// Asked of a queue whose kind cannot do it; the same request always fails the same way.
    #[error("not supported: {0}")]
    Unsupported(#[from] Unsupported),
    /// A SQLite queue opened as one kind that already exists as the other.
    #[error("queue {queue} exists as a {existing} queue")]
    KindMismatch { queue: String, existing: QueueKind },
    /// The backend failed (I/O, network, throttling); usually worth a retry.
    #[error("queue backend error: {0}")]
    Backend(String),
    /// A stored message could not be decoded.
    #[error("corrupt stored message: {0}")]
    Corrupt(String),
}

/// What a queue of one kind refuses (as SQS does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Unsupported {
    /// SQS refuses `DelaySeconds` per message on FIFO queues.
    #[error(
        "a per-message delay on a FIFO queue (release the received message with a delay instead)"
    )]
    DelayOnFifo,
    /// SQS refuses a FIFO message without `MessageGroupId`.
    #[error("a message without a group on a FIFO queue")]
    NoGroupOnFifo,
    /// `MessageDeduplicationId` applies to FIFO queues only.
    #[error("a de-duplication id on a standard queue")]
    DedupOnStandard,
}
