//! A linked pair is synced one direction at a time: the inbound sync of a linked referral
//! also holds the opportunity's outbound lease, so the two directions never race for the
//! link (a race left a failed audit entry and a retry behind).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::crosswalk::Link;
use cosell::engine::claim;
use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::{InboundMessage, InboundTrigger, SyncError};
use cosell::partner_center::PatchOp;
use cosell::store::{LeaseClaim, Store, StoreError, SyncRecord};
use cosell_tests::harness::Harness;

const TTL: Duration = Duration::from_secs(60);

fn inbound(id: &str) -> InboundMessage {
    InboundMessage {
        referral_id: id.to_string(),
        trigger: InboundTrigger::ReferralUpdated,
        changed_at: None,
    }
}

/// A Microsoft referral synced into the CRM: (referral id, opportunity id).
async fn linked_pair(h: &Harness) -> (String, String) {
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    match sync_referral(&h.engine, &inbound(&rid)).await.unwrap() {
        InboundOutcome::Created { opportunity_id } => (rid, opportunity_id),
        other => panic!("{other:?}"),
    }
}

/// Microsoft renames the deal in Partner Center.
async fn rename(h: &Harness, rid: &str, name: &str) {
    let current = h.engine.pc.get_referral(rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", name)],
        )
        .await
        .unwrap();
}

async fn entries(store: &dyn Store, rid: &str) -> Vec<AuditEntry> {
    store
        .query_audit(&AuditQuery {
            referral_id: Some(rid.to_string()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

fn opportunity_name(h: &Harness, opp: &str) -> String {
    h.dv.row("opportunities", opp).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_inbound_sync_waits_while_the_pairs_outbound_sync_runs() {
    let h = Harness::start().await;
    let (rid, opp) = linked_pair(&h).await;
    rename(&h, &rid, "Contoso ERP phase 2").await;
    let trail_before = entries(h.store.as_ref(), &rid).await.len();

    let outbound_sync = claim::take(h.store.as_ref(), &claim::outbound(&opp), TTL)
        .await
        .unwrap();
    let err = sync_referral(&h.engine, &inbound(&rid)).await.unwrap_err();
    assert!(matches!(err, SyncError::Retry { .. }), "{err:?}");
    assert!(opportunity_name(&h, &opp).starts_with("Contoso ERP"));
    assert!(
        !opportunity_name(&h, &opp).contains("phase 2"),
        "no CRM write"
    );
    assert_eq!(
        entries(h.store.as_ref(), &rid).await.len(),
        trail_before,
        "a wait leaves no failed entry"
    );
    // The referral's own lease is free again for the retry.
    claim::take(h.store.as_ref(), &format!("inbound/{rid}"), TTL)
        .await
        .expect("inbound lease released")
        .release(h.store.as_ref())
        .await;

    outbound_sync.release(h.store.as_ref()).await;
    assert!(matches!(
        sync_referral(&h.engine, &inbound(&rid)).await.unwrap(),
        InboundOutcome::Updated { .. }
    ));
    assert!(opportunity_name(&h, &opp).contains("phase 2"));
    // Both leases are back.
    for what in [claim::outbound(&opp), format!("inbound/{rid}")] {
        claim::take(h.store.as_ref(), &what, TTL)
            .await
            .unwrap_or_else(|e| panic!("{what} still held: {e}"))
            .release(h.store.as_ref())
            .await;
    }
}

/// A store that, when the outbound lease of `opportunity` is claimed, first moves the link
/// on a version, as an outbound sync finishing just then would have.
struct LinkMovesOnClaim {
    inner: Arc<dyn Store>,
    referral: String,
    opportunity: String,
}

#[async_trait]
impl Store for LinkMovesOnClaim {
    async fn get_link_by_referral(&self, id: &str) -> Result<Option<Link>, StoreError> {
        self.inner.get_link_by_referral(id).await
    }
    async fn get_link_by_opportunity(&self, id: &str) -> Result<Option<Link>, StoreError> {
        self.inner.get_link_by_opportunity(id).await
    }
    async fn put_link(&self, link: &Link, expected: Option<u64>) -> Result<Link, StoreError> {
        self.inner.put_link(link, expected).await
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
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.put_state(key, value, expected).await
    }
    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.remember_delivery(key, ttl).await
    }
    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        self.inner.forget_delivery(key).await
    }
    async fn claim_lease(&self, key: &str, ttl: Duration) -> Result<LeaseClaim, StoreError> {
        if key.ends_with(&claim::outbound(&self.opportunity)) {
            let link = self
                .inner
                .get_link_by_referral(&self.referral)
                .await?
                .unwrap();
            self.inner.put_link(&link, Some(link.version)).await?;
        }
        self.inner.claim_lease(key, ttl).await
    }
    async fn release_lease(&self, key: &str) -> Result<(), StoreError> {
        self.inner.release_lease(key).await
    }
    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        self.inner.finish_sync(record).await
    }
}

#[tokio::test]
async fn an_inbound_sync_whose_link_moved_before_it_held_the_pair_is_put_off() {
    let mut h = Harness::start().await;
    let (rid, opp) = linked_pair(&h).await;
    rename(&h, &rid, "Contoso ERP phase 2").await;
    let real = h.engine.store.clone();
    h.engine.store = Arc::new(LinkMovesOnClaim {
        inner: real.clone(),
        referral: rid.clone(),
        opportunity: opp.clone(),
    });
    let trail_before = entries(real.as_ref(), &rid).await.len();

    let err = sync_referral(&h.engine, &inbound(&rid)).await.unwrap_err();
    assert!(matches!(err, SyncError::Retry { .. }), "{err:?}");
    assert!(
        !opportunity_name(&h, &opp).contains("phase 2"),
        "no CRM write"
    );
    assert_eq!(entries(real.as_ref(), &rid).await.len(), trail_before);
    claim::take(real.as_ref(), &claim::outbound(&opp), TTL)
        .await
        .expect("the pair's lease was given back")
        .release(real.as_ref())
        .await;

    // With the link left alone, the retry goes through.
    h.engine.store = real;
    assert!(matches!(
        sync_referral(&h.engine, &inbound(&rid)).await.unwrap(),
        InboundOutcome::Updated { .. }
    ));
    assert!(opportunity_name(&h, &opp).contains("phase 2"));
}
