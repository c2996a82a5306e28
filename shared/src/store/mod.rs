//! The state port: crosswalk links (with each pair's merge base), the audit trail, small
//! versioned state values (delta links, watermarks, webhook registration) and delivery
//! de-duplication.
//!
//! Two adapters implement it with the same semantics, checked by one contract test suite
//! (`shared/tests/store_contract.rs`): [`dynamodb::DynamoStore`] for AWS and
//! [`sqlite::SqliteStore`] for local runs. Every write that can race is conditional, so two
//! Lambda invocations handling the same referral cannot both win.

pub mod aws_local;
pub mod dynamodb;
mod error;
pub mod sqlite;
pub(crate) mod sqlite_connection;
mod sync_record;
pub(crate) mod time_key;

use std::time::Duration;

use async_trait::async_trait;

use crate::audit::{AuditEntry, AuditQuery};
use crate::crosswalk::Link;

pub use error::StoreError;
pub use sync_record::{LinkWrite, SyncRecord};

/// How long audit entries are kept unless an adapter is told otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

#[async_trait]
pub trait Store: Send + Sync {
    async fn get_link_by_referral(&self, referral_id: &str) -> Result<Option<Link>, StoreError>;

    async fn get_link_by_opportunity(
        &self,
        opportunity_id: &str,
    ) -> Result<Option<Link>, StoreError>;

    /// Creates (`expected_version: None`: no link may exist for the referral yet) or updates
    /// (`Some(v)`: the stored link must still be at version `v`) a link, and returns it as
    /// stored: `version` incremented, `updated_at` set. Any other state, or an opportunity
    /// already linked to a different referral, is [`StoreError::Conflict`].
    async fn put_link(
        &self,
        link: &Link,
        expected_version: Option<u64>,
    ) -> Result<Link, StoreError>;

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Matching entries newest first; entries past their retention are never returned.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// The value stored under `key` and its version.
    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError>;

    /// Conditional like [`Store::put_link`]; returns the new version (1 on creation).
    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// `true` the first time `key` is seen within `ttl` (atomically: of two concurrent
    /// callers exactly one gets `true`); `false` for a duplicate. Expired keys are new again.
    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Drops a remembered delivery so the same key counts as new again (used when a delivery
    /// was claimed but could not be handed on). Forgetting an unknown key is not an error.
    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError>;

    /// Ends a reconcile: the link write and its audit entries. When the link write fails (a
    /// [`StoreError::Conflict`] for a lost race) nothing else is written.
    ///
    /// This default makes the writes one after the other (the link first, then the entries,
    /// best effort as [`Store::append_audit`] callers treat them); adapters that can write
    /// several items atomically do it in one round trip. Returns the stored link.
    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        let stored = match record.link {
            Some(w) => Some(self.put_link(w.link, w.expected_version()).await?),
            None => None,
        };
        for entry in record.audit {
            if let Err(e) = self.append_audit(entry).await {
                tracing::warn!(entry = %entry.id, error = %e, "audit entry not written");
            }
        }
        Ok(stored)
    }
}
