//! A [`Store`] that can "crash" the worker between its Dataverse (or Partner Center) write
//! and the crosswalk record: the next armed `put_link` calls fail as if the process had died
//! right there. Everything else passes through to the real store.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::crosswalk::Link;
use cosell::store::{Store, StoreError};

pub struct CrashStore {
    inner: Arc<dyn Store>,
    armed: AtomicU32,
    crashed: AtomicBool,
    crashes: AtomicU64,
}

impl CrashStore {
    pub fn new(inner: Arc<dyn Store>) -> CrashStore {
        CrashStore {
            inner,
            armed: AtomicU32::new(0),
            crashed: AtomicBool::new(false),
            crashes: AtomicU64::new(0),
        }
    }

    /// The next `put_link` fails as a crash would.
    pub fn arm(&self) {
        self.armed.fetch_add(1, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(0, Ordering::SeqCst);
    }

    /// Whether a crash happened since the last call (and resets the flag).
    pub fn take_crashed(&self) -> bool {
        self.crashed.swap(false, Ordering::SeqCst)
    }

    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CrashStore {
    async fn get_link_by_referral(&self, referral_id: &str) -> Result<Option<Link>, StoreError> {
        self.inner.get_link_by_referral(referral_id).await
    }

    async fn get_link_by_opportunity(
        &self,
        opportunity_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        self.inner.get_link_by_opportunity(opportunity_id).await
    }

    async fn put_link(
        &self,
        link: &Link,
        expected_version: Option<u64>,
    ) -> Result<Link, StoreError> {
        let armed = self
            .armed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if armed {
            self.crashed.store(true, Ordering::SeqCst);
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Backend(
                "injected crash before the crosswalk was recorded".into(),
            ));
        }
        self.inner.put_link(link, expected_version).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.append_audit(entry).await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.query_audit(query).await
    }

    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        self.inner.get_state(key).await
    }

    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.put_state(key, value, expected_version).await
    }

    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.remember_delivery(key, ttl).await
    }

    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        self.inner.forget_delivery(key).await
    }
}
