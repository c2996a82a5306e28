//! How an operator command fails: a usage mistake (exit 2) or a failure (exit 1).

use cosell::config::ConfigError;
use cosell::engine::SyncError;
use cosell::partner_center::PartnerCenterError;
use cosell::queue::QueueError;
use cosell::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The command line asks for something impossible; nothing was done.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl OpsError {
    pub fn failed(message: impl Into<String>) -> Self {
        OpsError::Failed(message.into())
    }

    pub fn usage(message: impl Into<String>) -> Self {
        OpsError::Usage(message.into())
    }
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        OpsError::Failed(format!("store: {e}"))
    }
}

impl From<QueueError> for OpsError {
    fn from(e: QueueError) -> Self {
        OpsError::Failed(format!("queue: {e}"))
    }
}

impl From<PartnerCenterError> for OpsError {
    fn from(e: PartnerCenterError) -> Self {
        OpsError::Failed(format!("Partner Center: {e}"))
    }
}

impl From<SyncError> for OpsError {
    fn from(e: SyncError) -> Self {
        OpsError::Failed(e.to_string())
    }
}

impl From<ConfigError> for OpsError {
    fn from(e: ConfigError) -> Self {
        OpsError::Failed(format!("configuration: {e}"))
    }
}

impl From<std::io::Error> for OpsError {
    fn from(e: std::io::Error) -> Self {
        OpsError::Failed(format!("cannot write output: {e}"))
    }
}
