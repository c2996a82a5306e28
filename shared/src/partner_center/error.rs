//! What a Partner Center call can fail with, typed so callers can react (retry later,
//! re-read after a conflict, give up on a bad request) without parsing text.

use crate::entra::TokenError;
use crate::retry::CallError;

#[derive(Debug, thiserror::Error)]
pub enum PartnerCenterError {
    #[error("referral {id} not found")]
    NotFound { id: String },
    /// 412: the referral changed since its eTag was read; re-read and redo.
    #[error("referral {id} changed since it was read (412)")]
    Conflict { id: String },
    /// The service refused the request; `message` is its own error text.
    #[error("{call}: rejected with HTTP {status}: {message}")]
    Invalid {
        call: String,
        status: u16,
        message: String,
    },
    /// Still 401 after a fresh token: the grant lacks access.
    #[error("{call}: unauthorized even with a fresh token")]
    Unauthorized { call: String },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{call}: unexpected response: {reason}")]
    Malformed { call: String, reason: String },
}

impl PartnerCenterError {
    /// True when trying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PartnerCenterError::Call(_))
            || matches!(self, PartnerCenterError::Token(TokenError::Call(_)))
    }
}
