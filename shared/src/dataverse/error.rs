//! What a Dataverse call can fail with, typed so the sync engine can react (re-read after a
//! conflict, reopen a closed row, resync after an expired delta token) without parsing text.

use crate::entra::TokenError;
use crate::retry::CallError;

/// The message Dataverse sends when a change-tracking token is past its lifetime.
pub(crate) const DELTA_EXPIRED_TEXT: &str = "Version stamp associated with the client has expired";
/// What Dataverse says (lower-cased) when a table's change tracking is off.
pub(crate) const TRACKING_OFF_TEXT: &str = "change tracking is not enabled";

#[derive(Debug, thiserror::Error)]
pub enum DataverseError {
    #[error("{entity} {id} not found")]
    NotFound { entity: String, id: String },
    /// 412: the row changed since its etag was read (or a create found an existing row).
    #[error("{entity} {id} changed since it was read (412): {message}")]
    Conflict {
        entity: String,
        id: String,
        message: String,
    },
    /// A won or lost opportunity is read-only until it is reopened.
    #[error("{entity} {id} is closed and read-only: {message}")]
    ReadOnly {
        entity: String,
        id: String,
        message: String,
    },
    /// Dataverse refused the request; `code` and `message` come from its error body.
    #[error("{call}: rejected with HTTP {status} ({code}): {message}")]
    Invalid {
        call: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Still 401 after a fresh token: the application user lacks access.
    #[error("{call}: unauthorized even with a fresh token")]
    Unauthorized { call: String },
    /// The change-tracking token is too old; drop it and sync everything again.
    #[error("change-tracking token expired; a full sync is needed")]
    DeltaExpired,
    /// The table's "Track changes" is off: poll on `modifiedon` instead.
    #[error("{call}: change tracking is off for the table: {message}")]
    TrackingOff { call: String, message: String },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{call}: unexpected response: {reason}")]
    Malformed { call: String, reason: String },
}

impl DataverseError {
    /// True when trying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DataverseError::Call(_) | DataverseError::Token(TokenError::Call(_))
        )
    }
}
