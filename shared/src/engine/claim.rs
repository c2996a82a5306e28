//! A short lease on syncing one record. Messages are delivered at least once and workers run
//! concurrently, so two messages for the same referral (a `referral-created` and a
//! `referral-updated`, a webhook and the sweep) can be handled at the same moment. Without
//! the lease both would find no link and both would create an opportunity, or a worker
//! holding an older read could write it after a newer sync recorded its fingerprints (and
//! the newer values would then count as synced). The lease is a key in the store
//! ([`Store::claim_lease`]): exactly one caller gets it, the other tries again shortly. A
//! worker that dies while holding it only delays the record until the lease expires; crash
//! recovery (adopting what it created) then takes over.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::audit::AuditEntry;
use crate::engine::SyncError;
use crate::store::{LeaseClaim, Store, StoreError, SyncRecord};

/// The default lease: longer than one sync takes (with its in-process retries), short
/// enough that a crashed holder does not stall a record for long.
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// How long the loser waits before looking again.
pub const LEASE_RETRY: Duration = Duration::from_secs(2);

pub struct Lease {
    key: String,
    fresh: bool,
    /// Set once a [`SyncRecord`] gave it back: releasing again could free a later holder's
    /// lease.
    released: AtomicBool,
}

/// Takes the lease on `what` (e.g. `inbound/<referral id>`), or asks the caller to retry
/// shortly when another worker holds it.
pub async fn take(store: &dyn Store, what: &str, ttl: Duration) -> Result<Lease, SyncError> {
    try_take(store, what, ttl).await?.ok_or_else(|| {
        SyncError::retry(
            Some(LEASE_RETRY),
            format!("another worker is syncing {what}; looking again shortly"),
        )
    })
}

/// Takes the lease on `what`, or `None` while another worker holds it.
pub async fn try_take(
    store: &dyn Store,
    what: &str,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    let key = format!("lease/sync/{what}");
    Ok(match store.claim_lease(&key, ttl).await? {
        LeaseClaim::Held => None,
        claim => Some(Lease {
            key,
            fresh: claim == LeaseClaim::Fresh,
            released: AtomicBool::new(false),
        }),
    })
}

/// The lease key outbound syncs of `opportunity_id` take.
pub fn outbound(opportunity_id: &str) -> String {
    format!("outbound/{opportunity_id}")
}

/// Takes the lease on `what` and makes `read` at the same time. The read comes back only
/// when the claim shows it is current ([`LeaseClaim::Fresh`]); `None` means read again now
/// that the lease is held.
pub async fn take_reading<T>(
    store: &dyn Store,
    what: &str,
    ttl: Duration,
    read: impl Future<Output = Result<T, StoreError>>,
) -> Result<(Lease, Option<Result<T, StoreError>>), SyncError> {
    let (lease, early) = tokio::join!(take(store, what, ttl), read);
    let lease = lease?;
    let early = lease.fresh.then_some(early);
    Ok((lease, early))
}

impl Lease {
    /// The delivery key that holds it, for a [`SyncRecord`](crate::store::SyncRecord) that
    /// releases it together with the sync's other writes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// No lease was held or given back on this key lately: nothing written under an
    /// earlier holder can have been missed.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Notes that a [`SyncRecord`] naming [`Lease::key`] was stored: the lease is back.
    pub fn mark_released(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// Gives the lease back when the sync is over, whatever its outcome.
    pub async fn release(self, store: &dyn Store) {
        if self.is_released() {
            return;
        }
        if let Err(e) = store.release_lease(&self.key).await {
            tracing::warn!(key = %self.key, error = %e, "could not release a sync lease; it expires on its own");
        }
    }

    /// Gives the lease back and appends the sync's audit entries, in one store write where
    /// the store allows. Best effort, like [`Lease::release`]: on failure each part is
    /// tried on its own.
    pub async fn release_with(self, store: &dyn Store, audit: &[AuditEntry]) {
        if audit.is_empty() && self.is_released() {
            return;
        }
        let key = [self.key.as_str()];
        let record = SyncRecord {
            link: None,
            audit,
            release: if self.is_released() { &[] } else { &key },
        };
        if let Err(e) = store.finish_sync(record).await {
            tracing::warn!(key = %self.key, error = %e, "could not end the sync in one write; writing its parts one by one");
            for entry in audit {
                if let Err(e) = store.append_audit(entry).await {
                    tracing::warn!(entry = %entry.id, error = %e, "audit entry not written");
                }
            }
            self.release(store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_lease_given_back_with_a_record_is_not_released_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let ttl = Duration::from_secs(60);
        let first = take(&store, "inbound/r1", ttl).await.unwrap();
        let record = SyncRecord {
            link: None,
            audit: &[],
            release: &[first.key()],
        };
        store.finish_sync(record).await.unwrap();
        first.mark_released();

        let _second = take(&store, "inbound/r1", ttl).await.expect("free again");
        // The first holder's late release must not free the second holder's lease.
        first.release_with(&store, &[]).await;
        assert!(take(&store, "inbound/r1", ttl).await.is_err());
    }
}
