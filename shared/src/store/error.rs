use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost: wrong version, already exists, or a uniqueness rule.
    #[error("conflict: {what}")]
    Conflict { what: String },
    #[error("not found")]
    NotFound,
    /// The backend failed (I/O, network, throttling); usually worth a retry.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A stored item could not be decoded.
    #[error("corrupt stored item: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn conflict(what: impl Into<String>) -> Self {
        StoreError::Conflict { what: what.into() }
    }
}
