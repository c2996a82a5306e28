//! One pair, one reconcile at a time: a message under the wrong key is forwarded to the key
//! that owns the pair and does nothing else; the FIFO sync queue hands out one message of a
//! pair at a time, whichever side sent it; and a reconcile whose link moved meanwhile
//! reads both sides again instead of writing over the other reconcile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cosell::audit::{AuditEntry, AuditQuery, Outcome};
use cosell::crosswalk::Link;
use cosell::engine::disposition::queued;
use cosell::engine::pair::key;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::queue::Queue;
use cosell::store::{Store, StoreError, SyncRecord};
use cosell_tests::crash_store::CrashStore;
use cosell_tests::crm_rows;
use cosell_tests::harness::Harness;
use cosell_tests::queue_worker::QueueWorker;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

async fn webhook_message(store: &dyn Store, rid: &str) -> SyncMessage {
    SyncMessage::for_referral(store, rid, Origin::Referral, None)
        .await
        .expect("key the message")
}

/// A Microsoft referral reconciled into the CRM: (referral id, opportunity id).
async fn linked_pair(h: &Harness) -> (String, String) {
    h.synced_incoming_referral("Contoso ERP", "Contoso Ltd")
        .await
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

async fn entries(store: &dyn Store) -> Vec<AuditEntry> {
    store.query_audit(&AuditQuery::default()).await.unwrap()
}

fn opportunity_name(h: &Harness, opp: &str) -> String {
    h.dv.row("opportunities", opp).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Requests other than reads and token requests.
fn writes(counts: &std::collections::BTreeMap<String, u64>) -> Vec<String> {
    counts
        .keys()
        .filter(|k| !k.starts_with("GET ") && k.as_str() != "POST token")
        .cloned()
        .collect()
}

/// Reconciles `message` with a store that fails the link write, as a worker crashing
/// between the writes to both sides and the crosswalk would.
async fn crash_before_the_link(h: &Harness, message: &SyncMessage) {
    let mut engine = h.engine.clone();
    let crash = Arc::new(CrashStore::new(h.engine.store.clone()));
    crash.arm();
    engine.store = crash.clone();
    let creating = reconcile_pair(&engine, message).await;
    assert!(crash.take_crashed(), "{creating:?}");
}

/// A seller's flagged opportunity with what a co-sell referral needs.
fn flagged_opportunity(h: &Harness) -> String {
    crm_rows::flagged_opportunity(h, Some(crm_rows::HELP_DEMO), None)
}

/// The referral's webhook arrives while the reconcile that created it from the seller's
/// opportunity has not recorded the link yet (here: it died right before). The intake keys
/// it by the id an opportunity made from it would get; that reconcile finds the referral's
/// external reference is one of our opportunities, forwards the message to that key and
/// writes nothing, so no second opportunity is made. Under the right key (the FIFO group
/// of the opportunity) it links the pair.
#[tokio::test]
async fn a_webhook_for_a_referral_still_being_created_is_forwarded_not_duplicated() {
    let h = Harness::start().await;
    let oid = flagged_opportunity(&h);
    crash_before_the_link(&h, &SyncMessage::for_opportunity(&oid, None)).await;
    let referrals = h.pc.partner_referrals();
    assert_eq!(referrals.len(), 1);
    let rid = referrals[0]["id"].as_str().unwrap().to_string();
    assert_eq!(referrals[0]["externalReferenceId"], json!(oid));
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());

    let m = webhook_message(h.engine.store.as_ref(), &rid).await;
    assert_eq!(m.key, key::opportunity_id_for(&rid));
    let trail_before = entries(h.store.as_ref()).await.len();
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let out = reconcile_pair(&h.engine, &m).await.unwrap();
    let PairOutcome::Forwarded { to } = out else {
        panic!("expected a forward, got {out:?}");
    };
    assert_eq!(to.key, oid);
    assert_eq!(to.referral_id.as_deref(), Some(rid.as_str()));
    assert_eq!(to.origin, Origin::Operator);
    assert_eq!(writes(&h.dv.request_counts()), Vec::<String>::new());
    assert_eq!(writes(&h.pc.request_counts()), Vec::<String>::new());
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    assert_eq!(entries(h.store.as_ref()).await.len(), trail_before);

    // Through the queue: the forward is queued in the opportunity's group and links there.
    h.queue.send(&queued(&m)).await.unwrap();
    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone());
    assert!(worker.drain(Duration::from_secs(20)).await, "queue drained");
    assert_eq!(worker.stats.forwarded, 1, "{:?}", worker.stats);
    assert_eq!(worker.stats.dead_lettered, 0, "{:?}", worker.dead_reasons);
    assert_eq!(h.dv.rows("opportunities").len(), 1, "no second opportunity");
    assert_eq!(h.pc.partner_referrals().len(), 1, "no second referral");
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.opportunity_id, oid);
    assert!(link.base.is_some());
}

/// Issue 21: the connected referral for Microsoft (the co-sell's second POST) carries the
/// opportunity's external reference too. Its webhook, arriving while the pair has no link
/// yet (here: a crash after both POSTs), is skipped under either key and never pairs the
/// opportunity with it; the opportunity's own reconcile then links its own referral.
#[tokio::test]
async fn the_referral_for_microsoft_is_never_paired_with_the_opportunity() {
    let h = Harness::start().await;
    let oid = flagged_opportunity(&h);
    crash_before_the_link(&h, &SyncMessage::for_opportunity(&oid, None)).await;
    let own = h.pc.partner_referrals();
    assert_eq!(own.len(), 1);
    let own_id = own[0]["id"].as_str().unwrap().to_string();
    let engagement = own[0]["engagementId"].as_str().unwrap();
    let for_ms = h.pc.referrals_for_microsoft(engagement);
    assert_eq!(for_ms.len(), 1, "both steps ran before the crash");
    let ms_id = for_ms[0]["id"].as_str().unwrap().to_string();
    assert_eq!(for_ms[0]["externalReferenceId"], json!(oid));

    let m = webhook_message(h.engine.store.as_ref(), &ms_id).await;
    let forwarded = m.forwarded_to(&oid);
    for message in [m, forwarded] {
        let out = reconcile_pair(&h.engine, &message).await.unwrap();
        assert!(matches!(out, PairOutcome::Skipped { .. }), "{out:?}");
        assert!(h
            .store
            .get_link_by_opportunity(&oid)
            .await
            .unwrap()
            .is_none());
        assert!(h
            .store
            .get_link_by_referral(&ms_id)
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(
        h.dv.rows("opportunities").len(),
        1,
        "no opportunity from it"
    );

    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&oid, None))
        .await
        .unwrap();
    let link = h
        .store
        .get_link_by_opportunity(&oid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.referral_id, own_id);
    assert_eq!(h.pc.referrals().len(), 2, "no third referral");
}

/// The old design took both directions' leases; now the FIFO queue holds a pair's messages
/// in one group and hands out one at a time, whichever side sent them.
#[tokio::test]
async fn messages_from_both_sides_of_one_pair_are_handed_out_one_at_a_time() {
    let h = Harness::start().await;
    let (rid, opp) = linked_pair(&h).await;
    let from_pc = webhook_message(h.engine.store.as_ref(), &rid).await;
    assert_eq!(
        from_pc.key, opp,
        "a linked referral is keyed by its opportunity"
    );
    let from_crm = SyncMessage::for_opportunity(&opp, None);
    h.queue.send(&queued(&from_pc)).await.unwrap();
    h.queue.send(&queued(&from_crm)).await.unwrap();
    let visibility = Duration::from_secs(60);
    let first = h
        .queue
        .receive(10, visibility, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "one message of the pair at a time");
    assert_eq!(SyncMessage::parse(&first[0].body).unwrap(), from_pc);
    let meanwhile = h
        .queue
        .receive(10, visibility, Duration::ZERO)
        .await
        .unwrap();
    assert!(meanwhile.is_empty(), "the pair is busy: {meanwhile:?}");
    h.queue.ack(&first[0].receipt).await.unwrap();
    let second = h
        .queue
        .receive(10, visibility, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(SyncMessage::parse(&second[0].body).unwrap(), from_crm);
}

/// A store whose first link write finds the link moved on a version, as when another
/// reconcile of the pair (a visibility that ran out, a duplicate) finished just then.
struct LinkMovesOnce {
    inner: Arc<dyn Store>,
    referral: String,
    moved: AtomicBool,
}

#[async_trait]
impl Store for LinkMovesOnce {
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
    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        if !self.moved.swap(true, Ordering::SeqCst) {
            let link = self
                .inner
                .get_link_by_referral(&self.referral)
                .await?
                .unwrap();
            self.inner.put_link(&link, Some(link.version)).await?;
        }
        self.inner.finish_sync(record).await
    }
}

#[tokio::test]
async fn a_reconcile_whose_link_moved_meanwhile_reads_again_and_finishes() {
    let mut h = Harness::start().await;
    let (rid, opp) = linked_pair(&h).await;
    rename(&h, &rid, "Contoso ERP phase 2").await;
    let real = h.engine.store.clone();
    let version = real
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .unwrap()
        .version;
    h.engine.store = Arc::new(LinkMovesOnce {
        inner: real.clone(),
        referral: rid.clone(),
        moved: AtomicBool::new(false),
    });
    let trail_before = entries(real.as_ref()).await.len();
    h.dv.reset_request_counts();

    let m = webhook_message(real.as_ref(), &rid).await;
    let out = reconcile_pair(&h.engine, &m).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert!(opportunity_name(&h, &opp).contains("phase 2"));
    // The second try found the rename already on both sides: nothing written twice.
    assert_eq!(
        h.dv.request_count("PATCH opportunities({id})"),
        1,
        "{:?}",
        h.dv.request_counts()
    );
    let link = real.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.version, version + 2, "moved once, then written once");
    assert_eq!(
        link.base.unwrap().fields.get("name"),
        Some(&json!("Contoso ERP phase 2"))
    );
    let trail = entries(real.as_ref()).await;
    let new = &trail[..trail.len() - trail_before];
    assert!(!new.is_empty());
    assert!(new.iter().all(|e| e.outcome == Outcome::Success), "{new:?}");
    // Nothing is left for the pair: the next reconcile from the CRM is our echo.
    h.engine.store = real;
    let again = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&opp, None)).await;
    assert!(
        matches!(again, Ok(PairOutcome::Unchanged { .. })),
        "{again:?}"
    );
}

/// The deal value on both sides of a pair: (CRM, Partner Center).
fn deal_values(h: &Harness, opp: &str, rid: &str) -> (f64, f64) {
    let crm = h.dv.row("opportunities", opp).unwrap()["estimatedvalue"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let referral = h.pc.referral(rid).unwrap();
    let pc = referral["details"]["dealValue"]
        .as_f64()
        .or_else(|| referral["details"]["dealValue"].as_str()?.parse().ok())
        .unwrap_or(f64::NAN);
    (crm, pc)
}

/// Issue 18's lost edit: a referral made from the seller's opportunity, whose reconcile
/// died before recording the link; the seller then changes the deal value, and the
/// referral's webhook (forwarded to the opportunity's key) links the pair. The referral
/// was made from the opportunity, so it is the opportunity's own reconcile: the seller's
/// new value is the change and reaches Partner Center, not the referral's older value
/// written back over it.
#[tokio::test]
async fn a_seller_edit_made_before_a_crashed_create_is_linked_survives() {
    let h = Harness::start().await;
    let oid = flagged_opportunity(&h);
    crash_before_the_link(&h, &SyncMessage::for_opportunity(&oid, None)).await;
    let rid = h.pc.partner_referrals()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(deal_values(&h, &oid, &rid), (50000.0, 50000.0));

    h.dv.user_update(
        "opportunities",
        &oid,
        obj(json!({"estimatedvalue": 76487.0})),
    )
    .expect("seller edit");

    let m = webhook_message(h.engine.store.as_ref(), &rid).await;
    h.queue.send(&queued(&m)).await.unwrap();
    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone());
    assert!(worker.drain(Duration::from_secs(20)).await, "queue drained");
    assert_eq!(worker.stats.dead_lettered, 0, "{:?}", worker.dead_reasons);
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_some());
    assert_eq!(deal_values(&h, &oid, &rid), (76487.0, 76487.0));
    // At rest: the poller's message finds nothing more to do.
    let again = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&oid, None))
        .await
        .unwrap();
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    assert_eq!(deal_values(&h, &oid, &rid), (76487.0, 76487.0));
}

/// The same the other way: an opportunity made from Microsoft's referral, whose reconcile
/// died before recording the link, and a seller's edit of its deal value before the
/// webhook comes again. The retry finds the row made and adopts it; the row's values are no
/// longer the ones it was made with, so they cannot stand for the base: the values the
/// create was planned with (recorded before it) do, and the seller's is the change.
#[tokio::test]
async fn a_seller_edit_of_a_row_made_by_a_crashed_create_survives_its_adoption() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let m = webhook_message(h.engine.store.as_ref(), &rid).await;
    crash_before_the_link(&h, &m).await;
    let oid = key::opportunity_id_for(&rid);
    let (crm, pc) = deal_values(&h, &oid, &rid);
    assert_eq!(crm, pc, "the row was made from the referral");
    let edited = crm + 1234.0;
    h.dv.user_update(
        "opportunities",
        &oid,
        obj(json!({"estimatedvalue": edited})),
    )
    .expect("seller edit");

    let out = reconcile_pair(&h.engine, &m).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert_eq!(deal_values(&h, &oid, &rid), (edited, edited));
    let trail = entries(h.store.as_ref()).await;
    assert!(
        trail.iter().any(
            |e| e.action == "update_referral" && format!("{e:?}").contains("details.dealValue")
        ),
        "the audit entry names the field sent: {trail:?}"
    );
}

/// A co-sell whose second step (the connected referral for Microsoft) failed, and the
/// first step's webhook, forwarded to the opportunity's key, arriving before the
/// opportunity's own retry: being the opportunity's own reconcile, it finishes the steps
/// (the referral is not linked as it is, never shared with Microsoft's sellers).
#[tokio::test]
async fn a_forwarded_webhook_of_a_half_made_co_sell_finishes_its_second_step() {
    let h = Harness::start().await;
    let oid = flagged_opportunity(&h);
    h.pc.add_fault(
        partner_center_standin::Fault::new(
            partner_center_standin::FaultKind::Status { status: 503 },
            1,
        )
        .on("POST", "/v1.0/engagements/referrals")
        .after(1),
    );
    let first = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&oid, None)).await;
    assert!(first.is_err(), "{first:?}");
    assert!(h.pc.pending_faults().is_empty(), "the second POST failed");
    let own = h.pc.partner_referrals();
    assert_eq!(own.len(), 1, "{own:#?}");
    let rid = own[0]["id"].as_str().unwrap().to_string();
    let engagement = own[0]["engagementId"].as_str().unwrap().to_string();
    assert!(h.pc.referrals_for_microsoft(&engagement).is_empty());

    let m = webhook_message(h.engine.store.as_ref(), &rid).await;
    h.queue.send(&queued(&m)).await.unwrap();
    let mut worker = QueueWorker::new(h.engine.clone(), h.queue.clone());
    assert!(worker.drain(Duration::from_secs(20)).await, "queue drained");
    assert_eq!(worker.stats.dead_lettered, 0, "{:?}", worker.dead_reasons);
    assert_eq!(h.pc.referrals_for_microsoft(&engagement).len(), 1);
    assert_eq!(h.pc.partner_referrals().len(), 1);
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.opportunity_id, oid);
}

/// The other side of the first: Microsoft renames the referral made from the seller's
/// opportunity before the pair is linked (the reconcile that made it died first). The
/// referral's values are no longer the ones it was made with, so they do not stand for the
/// base (that would take the CRM's older name for the seller's change): the values the
/// create was planned with do, and Microsoft's rename reaches the CRM.
#[tokio::test]
async fn a_partner_center_edit_made_before_a_crashed_create_is_linked_survives() {
    let h = Harness::start().await;
    let oid = flagged_opportunity(&h);
    crash_before_the_link(&h, &SyncMessage::for_opportunity(&oid, None)).await;
    let rid = h.pc.partner_referrals()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    rename(&h, &rid, "Fabrikam field service, phase 2").await;

    let out = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&oid, None))
        .await
        .unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(
        h.pc.referral(&rid).unwrap()["name"],
        json!("Fabrikam field service, phase 2")
    );
    assert_eq!(
        cosell::mapping::strip_checkmark(&opportunity_name(&h, &oid)),
        "Fabrikam field service, phase 2"
    );
}

/// And Microsoft's edit in that window: the deal value changes in Partner Center after the
/// row was made (the reconcile died before the link). The values the create was planned
/// with, recorded before it, are the base: Partner Center's is the change and reaches the
/// CRM (the fields the sides agree on alone would make it a conflict the CRM wins).
#[tokio::test]
async fn a_partner_center_edit_after_a_crashed_create_reaches_the_row() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let m = webhook_message(h.engine.store.as_ref(), &rid).await;
    crash_before_the_link(&h, &m).await;
    let oid = key::opportunity_id_for(&rid);
    let (crm, _) = deal_values(&h, &oid, &rid);
    let edited = crm + 4321.0;
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/details/dealValue", edited)],
        )
        .await
        .unwrap();

    let out = reconcile_pair(&h.engine, &m).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(deal_values(&h, &oid, &rid), (edited, edited));
}
