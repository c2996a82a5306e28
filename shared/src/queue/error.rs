use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueueError {
    /// The receipt does not name a message currently received with it (already acked,
    /// expired visibility and received again, or never valid).
    #[error("invalid or expired receipt")]
    InvalidReceipt,
    /// Message or attributes the backend cannot take (too large, bad attribute name, ...).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The backend failed (I/O, network, throttling); usually worth a retry.
    #[error("queue backend error: {0}")]
    Backend(String),
    /// A stored message could not be decoded.
    #[error("corrupt stored message: {0}")]
    Corrupt(String),
}
