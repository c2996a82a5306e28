//! The store and queue ports, counted: each call of the crosswalk/audit store and of the sync
//! queue, so the cost on paper rests on what a sync did, not on a reading of the code. The
//! DynamoDB and SQS adapters make one request per port call (a `finish_sync` is one
//! `TransactWriteItems` of its items).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::crosswalk::Link;
use cosell::queue::{DeadLetter, OutMessage, Queue, QueueDepth, QueueError, QueueKind, Received};
use cosell::store::{Store, StoreError, SyncRecord};

/// Calls per port method, and the items transactional writes carried.
#[derive(Debug, Default)]
pub struct Counts(Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    fn add(&self, what: &'static str, n: u64) {
        *self.0.lock().expect("counts").entry(what).or_default() += n;
    }

    pub fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.0.lock().expect("counts"))
    }
}

/// DynamoDB capacity per the on-demand rules for items under 1 KB (reads strongly
/// consistent, under 4 KB): a read 1 RRU, a write 1 WRU, a transactional write 2 WRU per item.
pub fn dynamodb_units(counts: &BTreeMap<&'static str, u64>) -> (u64, u64) {
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let reads = n("get_link_by_referral")
        + n("get_link_by_opportunity")
        + n("get_state")
        + n("query_audit");
    let writes = n("put_link")
        + n("append_audit")
        + n("put_state")
        + n("remember_delivery")
        + n("forget_delivery")
        + 2 * n("finish_sync items");
    (reads, writes)
}

/// SQS requests: a send (or a batch of up to 10), a receive, a delete (ack), a visibility
/// change (release), a dead letter (send to the DLQ and delete).
pub fn sqs_requests(counts: &BTreeMap<&'static str, u64>) -> u64 {
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    n("send") + n("send_batch") + n("receive") + n("ack") + n("release") + 2 * n("dead_letter")
}

pub struct CountingStore {
    pub inner: Arc<dyn Store>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl Store for CountingStore {
    async fn get_link_by_referral(&self, referral_id: &str) -> Result<Option<Link>, StoreError> {
        self.counts.add("get_link_by_referral", 1);
        self.inner.get_link_by_referral(referral_id).await
    }

    async fn get_link_by_opportunity(
        &self,
        opportunity_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        self.counts.add("get_link_by_opportunity", 1);
        self.inner.get_link_by_opportunity(opportunity_id).await
    }

    async fn put_link(
        &self,
        link: &Link,
        expected_version: Option<u64>,
    ) -> Result<Link, StoreError> {
        self.counts.add("put_link", 1);
        self.inner.put_link(link, expected_version).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.counts.add("append_audit", 1);
        self.inner.append_audit(entry).await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.counts.add("query_audit", 1);
        self.inner.query_audit(query).await
    }

    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        self.counts.add("get_state", 1);
        self.inner.get_state(key).await
    }

    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.counts.add("put_state", 1);
        self.inner.put_state(key, value, expected_version).await
    }

    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.counts.add("remember_delivery", 1);
        self.inner.remember_delivery(key, ttl).await
    }

    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        self.counts.add("forget_delivery", 1);
        self.inner.forget_delivery(key).await
    }

    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        let items = u64::from(record.link.is_some()) + record.audit.len() as u64;
        self.counts.add("finish_sync", 1);
        self.counts.add("finish_sync items", items);
        self.inner.finish_sync(record).await
    }
}

pub struct CountingQueue {
    pub inner: Arc<dyn Queue>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl Queue for CountingQueue {
    fn kind(&self) -> QueueKind {
        self.inner.kind()
    }

    async fn send(&self, message: &OutMessage) -> Result<String, QueueError> {
        self.counts.add("send", 1);
        self.inner.send(message).await
    }

    async fn send_batch(&self, messages: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        self.counts
            .add("send_batch", messages.len().div_ceil(10) as u64);
        self.inner.send_batch(messages).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let got = self.inner.receive(max, visibility, wait).await?;
        // An empty receive costs a request too, but the local worker's polling is not a
        // Lambda event source's: only receives that brought messages are counted.
        if !got.is_empty() {
            self.counts.add("receive", 1);
        }
        Ok(got)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.counts.add("ack", 1);
        self.inner.ack(receipt).await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.counts.add("release", 1);
        self.inner.release(receipt, delay).await
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        self.counts.add("dead_letter", 1);
        self.inner.dead_letter(message, reason).await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.list_dead_letters(limit).await
    }

    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        self.inner.replay_dead_letters(ids).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}
