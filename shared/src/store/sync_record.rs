//! What one reconcile leaves in the store when it ends: the crosswalk write (if it made one)
//! and its audit entries. Written together so a reconcile ends in one round trip, and so a
//! link that loses its race leaves no audit entry claiming success.

use crate::audit::AuditEntry;
use crate::crosswalk::Link;

/// A crosswalk write: `link` replaces `previous` (which must still be stored at its version),
/// or is created when `previous` is `None`.
#[derive(Clone, Copy)]
pub struct LinkWrite<'a> {
    pub link: &'a Link,
    pub previous: Option<&'a Link>,
}

impl LinkWrite<'_> {
    /// The version the stored link must still have (`None`: it must not exist yet).
    pub fn expected_version(&self) -> Option<u64> {
        self.previous.map(|p| p.version)
    }
}

#[derive(Clone, Copy)]
pub struct SyncRecord<'a> {
    pub link: Option<LinkWrite<'a>>,
    pub audit: &'a [AuditEntry],
}

impl SyncRecord<'_> {
    /// Nothing to write: adapters return at once (DynamoDB refuses a transaction of no
    /// items).
    pub fn is_empty(&self) -> bool {
        self.link.is_none() && self.audit.is_empty()
    }
}
