//! One contract for every `Store` adapter: each case is written once and run against
//! SQLite (temp dir) and DynamoDB (moto).

mod moto_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cosell::audit::{AuditEntry, AuditQuery, Direction, Outcome};
use cosell::crosswalk::{Base, Link};
use cosell::store::dynamodb::DynamoStore;
use cosell::store::sqlite::SqliteStore;
use cosell::store::{aws_local, LinkWrite, Store, StoreError, SyncRecord, DEFAULT_AUDIT_RETENTION};
use tempfile::TempDir;
use time::OffsetDateTime;

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Dynamo,
    /// SQLite seen only through the `Store` methods every adapter must write, so the trait's
    /// default methods run.
    SqliteBehindDefaults,
}

/// A store plus whatever must outlive it (the temp dir).
struct Opened {
    store: Arc<dyn Store>,
    _dir: Option<TempDir>,
}

async fn open(backend: Backend, retention: Option<Duration>) -> Option<Opened> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("state.db"))
                .unwrap()
                .with_audit_retention(retention);
            Some(Opened {
                store: Arc::new(store),
                _dir: Some(dir),
            })
        }
        Backend::SqliteBehindDefaults => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("state.db"))
                .unwrap()
                .with_audit_retention(retention);
            Some(Opened {
                store: Arc::new(Defaults(Arc::new(store))),
                _dir: Some(dir),
            })
        }
        Backend::Dynamo => {
            let store = dynamo(retention).await?;
            Some(Opened {
                store: Arc::new(store),
                _dir: None,
            })
        }
    }
}

async fn dynamo(retention: Option<Duration>) -> Option<DynamoStore> {
    let url = moto_server::url()?;
    let client = aws_local::dynamodb_client(&url, moto_server::REGION).await;
    let store = DynamoStore::new(client, moto_server::unique("cosell-state"))
        .with_audit_retention(retention);
    assert!(store.create_table_if_missing().await.unwrap());
    assert!(
        !store.create_table_if_missing().await.unwrap(),
        "second call finds the table"
    );
    Some(store)
}

/// Forwards the required methods only.
struct Defaults(Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for Defaults {
    async fn get_link_by_referral(&self, id: &str) -> Result<Option<Link>, StoreError> {
        self.0.get_link_by_referral(id).await
    }
    async fn get_link_by_opportunity(&self, id: &str) -> Result<Option<Link>, StoreError> {
        self.0.get_link_by_opportunity(id).await
    }
    async fn put_link(&self, link: &Link, expected: Option<u64>) -> Result<Link, StoreError> {
        self.0.put_link(link, expected).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.0.append_audit(entry).await
    }
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.0.query_audit(query).await
    }
    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        self.0.get_state(key).await
    }
    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.0.put_state(key, value, expected).await
    }
    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.0.remember_delivery(key, ttl).await
    }
    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        self.0.forget_delivery(key).await
    }
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

// ---- links ----------------------------------------------------------------------------

async fn link_create_update_and_get_both_ways(backend: Backend) {
    let Some(o) = open(backend, Some(DEFAULT_AUDIT_RETENTION)).await else {
        return;
    };
    let s = &o.store;
    let before = OffsetDateTime::now_utc() - Duration::from_secs(1);
    let mut link = Link::new("ref-1", "opp-1");
    link.pc_etag = Some("\"pc-1\"".into());
    link.pc_updated = Some("2026-05-01T10:00:00Z".into());
    let created = s.put_link(&link, None).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(created.updated_at >= before);
    assert_eq!(created.pc_etag.as_deref(), Some("\"pc-1\""));

    let by_ref = s.get_link_by_referral("ref-1").await.unwrap().unwrap();
    let by_opp = s.get_link_by_opportunity("opp-1").await.unwrap().unwrap();
    assert_eq!(by_ref, created);
    assert_eq!(by_opp, created);
    assert_eq!(s.get_link_by_referral("ref-x").await.unwrap(), None);
    assert_eq!(s.get_link_by_opportunity("opp-x").await.unwrap(), None);

    let mut next = by_ref.clone();
    next.dv_etag = Some("W/\"42\"".into());
    next.dv_modified = Some("2026-05-02T00:00:00Z".into());
    next.pc_updated = None;
    let updated = s.put_link(&next, Some(1)).await.unwrap();
    assert_eq!(updated.version, 2);
    let read = s.get_link_by_opportunity("opp-1").await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert_eq!(read.dv_etag.as_deref(), Some("W/\"42\""));
    assert_eq!(
        read.pc_updated, None,
        "a cleared field is cleared in the store"
    );
}

async fn link_create_race_has_exactly_one_winner(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = o.store.clone();
        tasks.push(tokio::spawn(async move {
            let link = Link::new("ref-race", format!("opp-race-{i}"));
            (i, store.put_link(&link, None).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(link) => winners.push((i, link)),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("writer {i}: unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    let (won, link) = &winners[0];
    let stored = o
        .store
        .get_link_by_referral("ref-race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, link);
    for i in 0..6 {
        let by_opp = o
            .store
            .get_link_by_opportunity(&format!("opp-race-{i}"))
            .await
            .unwrap();
        assert_eq!(
            by_opp.is_some(),
            i == *won,
            "losers leave no opportunity behind"
        );
    }
}

async fn opportunity_cannot_be_linked_twice(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    s.put_link(&Link::new("ref-a", "opp-shared"), None)
        .await
        .unwrap();
    let second = s.put_link(&Link::new("ref-b", "opp-shared"), None).await;
    assert!(is_conflict(&second), "{second:?}");
    assert_eq!(s.get_link_by_referral("ref-b").await.unwrap(), None);
    let owner = s
        .get_link_by_opportunity("opp-shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.referral_id, "ref-a");

    // Moving another link onto the taken opportunity is refused too, and changes nothing.
    let c = s
        .put_link(&Link::new("ref-c", "opp-c"), None)
        .await
        .unwrap();
    let mut moved = c.clone();
    moved.opportunity_id = "opp-shared".into();
    assert!(is_conflict(&s.put_link(&moved, Some(1)).await));
    assert_eq!(s.get_link_by_referral("ref-c").await.unwrap().unwrap(), c);
    assert_eq!(
        s.get_link_by_opportunity("opp-c").await.unwrap().unwrap(),
        c
    );
}

async fn stale_or_missing_version_conflicts(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    let v1 = s
        .put_link(&Link::new("ref-v", "opp-v"), None)
        .await
        .unwrap();
    let again = s.put_link(&Link::new("ref-v", "opp-v"), None).await;
    assert!(
        is_conflict(&again),
        "create over an existing link: {again:?}"
    );
    let v2 = s.put_link(&v1, Some(1)).await.unwrap();
    assert_eq!(v2.version, 2);
    let mut stale = v1.clone();
    stale.pc_etag = Some("lost update".into());
    assert!(is_conflict(&s.put_link(&stale, Some(1)).await));
    assert!(is_conflict(&s.put_link(&stale, Some(3)).await));
    assert!(is_conflict(
        &s.put_link(&Link::new("ref-none", "opp-none"), Some(1))
            .await
    ));
    let read = s.get_link_by_referral("ref-v").await.unwrap().unwrap();
    assert_eq!(read, v2, "failed writes changed nothing");
    assert_eq!(s.get_link_by_opportunity("opp-none").await.unwrap(), None);
}

async fn relinking_moves_the_opportunity(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    let v1 = s
        .put_link(&Link::new("ref-m", "opp-old"), None)
        .await
        .unwrap();
    let mut moved = v1.clone();
    moved.opportunity_id = "opp-new".into();
    let v2 = s.put_link(&moved, Some(1)).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(s.get_link_by_opportunity("opp-old").await.unwrap(), None);
    assert_eq!(
        s.get_link_by_opportunity("opp-new").await.unwrap().unwrap(),
        v2
    );
    // The old opportunity is free again.
    s.put_link(&Link::new("ref-other", "opp-old"), None)
        .await
        .unwrap();
}

/// A merge base as the reconcile writes it: a few mapped fields of different JSON types
/// (keyed by referral path) and both statuses.
fn base_with(notes: &str, referral_status: &str) -> Base {
    let fields = BTreeMap::from([
        ("details/dealValue".to_owned(), serde_json::json!(125000.5)),
        ("details/currency".to_owned(), serde_json::json!("EUR")),
        ("details/notes".to_owned(), serde_json::json!(notes)),
        (
            "details/closingDateTime".to_owned(),
            serde_json::json!("2026-09-30"),
        ),
        (
            "customerProfile/name".to_owned(),
            serde_json::json!("Contoso “Café” Ltd"),
        ),
        (
            "details/requirements".to_owned(),
            serde_json::json!({"solutions": ["a", "b"], "urgent": true}),
        ),
    ]);
    Base {
        fields,
        referral_status: Some(referral_status.to_owned()),
        opportunity_status: Some("0/1/".to_owned()),
        referral_shared: Some(true),
        // A lead pair's marker travels with the base through both stores.
        crm_table: cosell::crosswalk::CrmTable::Lead,
    }
}

async fn link_base_round_trips_through_every_write(backend: Backend) {
    let Some(o) = open(backend, Some(DEFAULT_AUDIT_RETENTION)).await else {
        return;
    };
    let s = o.store.as_ref();
    let read_both = |referral: &'static str, opportunity: &'static str| async move {
        let by_ref = s.get_link_by_referral(referral).await.unwrap().unwrap();
        let by_opp = s
            .get_link_by_opportunity(opportunity)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_ref, by_opp, "both lookups read the same link");
        by_ref
    };

    // Written without a base (as a version before pair sync did): no base, not an empty one.
    let legacy = s
        .put_link(&Link::new("ref-b", "opp-b"), None)
        .await
        .unwrap();
    assert_eq!(legacy.base, None);
    assert_eq!(read_both("ref-b", "opp-b").await.base, None);

    // put_link: the base written is the base read, both ways.
    let first = base_with("first", "New/Pending");
    let mut next = legacy.clone();
    next.base = Some(first.clone());
    let v2 = s.put_link(&next, Some(1)).await.unwrap();
    assert_eq!(v2.base.as_ref(), Some(&first));
    let read = read_both("ref-b", "opp-b").await;
    assert_eq!(read, v2);
    assert_eq!(read.base, Some(first.clone()));

    // finish_sync (the reconcile's own write): the new base replaces the old one whole.
    let mut second = base_with("second", "Active/Accepted");
    second.fields.remove("details/requirements");
    second.opportunity_status = None;
    let mut merged = read.clone();
    merged.base = Some(second.clone());
    let audit = [sync_audit("ref-b", Outcome::Success)];
    let v3 = s
        .finish_sync(SyncRecord {
            link: Some(LinkWrite {
                link: &merged,
                previous: Some(&read),
            }),
            audit: &audit,
        })
        .await
        .unwrap()
        .expect("a stored link");
    assert_eq!(v3.version, 3);
    assert_eq!(v3.base.as_ref(), Some(&second));
    let read = read_both("ref-b", "opp-b").await;
    assert_eq!(read, v3);
    let base = read.base.as_ref().unwrap();
    assert!(
        !base.fields.contains_key("details/requirements"),
        "a field dropped from the base is gone: {base:?}"
    );
    assert_eq!(base.opportunity_status, None);
    assert_eq!(base.fields["details/notes"], serde_json::json!("second"));

    // An empty base (a pair reconciled with no mapped values) is kept apart from none.
    let mut emptied = read.clone();
    emptied.base = Some(Base::default());
    s.put_link(&emptied, Some(3)).await.unwrap();
    assert_eq!(
        read_both("ref-b", "opp-b").await.base,
        Some(Base::default())
    );

    // A link created by finish_sync with its base, and one created without.
    let created = Link {
        base: Some(first.clone()),
        ..Link::new("ref-b2", "opp-b2")
    };
    let bare = Link::new("ref-b3", "opp-b3");
    for (link, want) in [(&created, Some(&first)), (&bare, None)] {
        let stored = s
            .finish_sync(SyncRecord {
                link: Some(LinkWrite {
                    link,
                    previous: None,
                }),
                audit: &[],
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.base.as_ref(), want);
        let by_ref = s
            .get_link_by_referral(&link.referral_id)
            .await
            .unwrap()
            .unwrap();
        let by_opp = s
            .get_link_by_opportunity(&link.opportunity_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_ref, stored);
        assert_eq!(by_opp, stored);
    }

    // Clearing the base clears it in the store (nothing of the old one is kept).
    let with_base = s.get_link_by_referral("ref-b2").await.unwrap().unwrap();
    let mut cleared = with_base.clone();
    cleared.base = None;
    s.finish_sync(SyncRecord {
        link: Some(LinkWrite {
            link: &cleared,
            previous: Some(&with_base),
        }),
        audit: &[],
    })
    .await
    .unwrap();
    assert_eq!(
        s.get_link_by_opportunity("opp-b2")
            .await
            .unwrap()
            .unwrap()
            .base,
        None
    );
}

// ---- audit ----------------------------------------------------------------------------

fn entry_at(
    secs_ago: u64,
    referral: Option<&str>,
    opportunity: Option<&str>,
    outcome: Outcome,
) -> AuditEntry {
    let mut e = AuditEntry::new(Direction::Inbound, "sync", outcome)
        .at(OffsetDateTime::now_utc() - Duration::from_secs(secs_ago));
    e.referral_id = referral.map(str::to_owned);
    e.opportunity_id = opportunity.map(str::to_owned);
    e
}

fn ids(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

async fn audit_query_filters_newest_first(backend: Backend) {
    let Some(o) = open(backend, Some(DEFAULT_AUDIT_RETENTION)).await else {
        return;
    };
    let s = &o.store;
    let e50 = entry_at(50, Some("r1"), Some("o1"), Outcome::Success).detail("created opportunity");
    let e40 = entry_at(40, Some("r1"), None, Outcome::Failed).error("dataverse 500");
    let e30 = entry_at(30, Some("r2"), Some("o1"), Outcome::Conflict);
    let e20 = entry_at(20, None, Some("o1"), Outcome::Failed);
    let mut e10 = entry_at(10, Some("r1"), Some("o1"), Outcome::Skipped);
    e10.direction = Direction::Outbound;
    // Appended out of order: the order must come from `at`.
    for e in [&e30, &e10, &e50, &e20, &e40] {
        s.append_audit(e).await.unwrap();
    }
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };

    let all = s.query_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        ids(&all),
        ids(&[
            e10.clone(),
            e20.clone(),
            e30.clone(),
            e40.clone(),
            e50.clone()
        ])
    );
    assert_eq!(all[0], e10, "entries round-trip unchanged");
    assert_eq!(all[3].error.as_deref(), Some("dataverse 500"));

    let by_ref = s
        .query_audit(&q(|q| q.referral_id = Some("r1".into())))
        .await
        .unwrap();
    assert_eq!(ids(&by_ref), vec![&e10.id, &e40.id, &e50.id]);

    let by_opp = s
        .query_audit(&q(|q| q.opportunity_id = Some("o1".into())))
        .await
        .unwrap();
    assert_eq!(ids(&by_opp), vec![&e10.id, &e20.id, &e30.id, &e50.id]);

    let both = s
        .query_audit(&q(|q| {
            q.referral_id = Some("r1".into());
            q.opportunity_id = Some("o1".into());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&both), vec![&e10.id, &e50.id]);

    let failed = s.query_audit(&q(|q| q.failed_only = true)).await.unwrap();
    assert_eq!(ids(&failed), vec![&e20.id, &e40.id]);

    let failed_r1 = s
        .query_audit(&q(|q| {
            q.failed_only = true;
            q.referral_id = Some("r1".into());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&failed_r1), vec![&e40.id]);

    let since = e30.at;
    let recent = s
        .query_audit(&AuditQuery {
            since: Some(since),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&recent),
        vec![&e10.id, &e20.id, &e30.id],
        "since is inclusive"
    );

    let limited = s
        .query_audit(&q(|q| {
            q.opportunity_id = Some("o1".into());
            q.limit = Some(2);
        }))
        .await
        .unwrap();
    assert_eq!(ids(&limited), vec![&e10.id, &e20.id]);

    let failed_limited = s
        .query_audit(&q(|q| {
            q.failed_only = true;
            q.limit = Some(1);
        }))
        .await
        .unwrap();
    assert_eq!(
        ids(&failed_limited),
        vec![&e20.id],
        "limit applies after filters"
    );

    let none = s
        .query_audit(&q(|q| q.referral_id = Some("r-unknown".into())))
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn audit_entries_expire_after_retention(backend: Backend) {
    let hour = Duration::from_secs(3600);
    let Some(o) = open(backend, Some(hour)).await else {
        return;
    };
    let old = entry_at(2 * 3600, Some("r-ttl"), None, Outcome::Success);
    let fresh = entry_at(60, Some("r-ttl"), None, Outcome::Success);
    o.store.append_audit(&old).await.unwrap();
    o.store.append_audit(&fresh).await.unwrap();
    let q = AuditQuery {
        referral_id: Some("r-ttl".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&o.store.query_audit(&q).await.unwrap()),
        vec![&fresh.id]
    );
    assert_eq!(
        ids(&o.store.query_audit(&AuditQuery::default()).await.unwrap()),
        vec![&fresh.id]
    );

    // Without retention nothing expires.
    let Some(keep) = open(backend, None).await else {
        return;
    };
    keep.store.append_audit(&old).await.unwrap();
    assert_eq!(
        ids(&keep.store.query_audit(&q).await.unwrap()),
        vec![&old.id]
    );
}

async fn duplicate_audit_id_is_a_conflict(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let e = entry_at(1, Some("r-dup"), None, Outcome::Success);
    o.store.append_audit(&e).await.unwrap();
    assert!(is_conflict(&o.store.append_audit(&e).await));
    assert_eq!(
        o.store
            .query_audit(&AuditQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---- state and deliveries --------------------------------------------------------------

async fn state_put_get_is_conditional(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    assert_eq!(s.get_state("dv.delta_link").await.unwrap(), None);
    assert_eq!(
        s.put_state("dv.delta_link", "link-1", None).await.unwrap(),
        1
    );
    assert!(is_conflict(
        &s.put_state("dv.delta_link", "link-x", None).await
    ));
    assert_eq!(
        s.put_state("dv.delta_link", "link-2", Some(1))
            .await
            .unwrap(),
        2
    );
    assert!(is_conflict(
        &s.put_state("dv.delta_link", "link-y", Some(1)).await
    ));
    assert!(is_conflict(&s.put_state("never.set", "v", Some(1)).await));
    assert_eq!(
        s.get_state("dv.delta_link").await.unwrap(),
        Some(("link-2".to_owned(), 2))
    );
    assert_eq!(s.get_state("never.set").await.unwrap(), None);
}

async fn delivery_is_remembered_until_it_expires(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    let ttl = Duration::from_millis(600);
    assert!(
        s.remember_delivery("evt-1", ttl).await.unwrap(),
        "first time"
    );
    assert!(
        !s.remember_delivery("evt-1", ttl).await.unwrap(),
        "duplicate"
    );
    assert!(
        s.remember_delivery("evt-2", ttl).await.unwrap(),
        "other key"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        s.remember_delivery("evt-1", ttl).await.unwrap(),
        "expired: new again"
    );
    assert!(!s.remember_delivery("evt-1", ttl).await.unwrap());
}

async fn concurrent_deliveries_have_one_first(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = o.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .remember_delivery("evt-race", Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1);
}

async fn forgotten_delivery_is_new_again(backend: Backend) {
    let Some(o) = open(backend, None).await else {
        return;
    };
    let s = &o.store;
    let ttl = Duration::from_secs(60);
    assert!(s.remember_delivery("evt-f", ttl).await.unwrap());
    assert!(s.remember_delivery("evt-keep", ttl).await.unwrap());
    s.forget_delivery("evt-f").await.unwrap();
    assert!(
        s.remember_delivery("evt-f", ttl).await.unwrap(),
        "a forgotten key is accepted again"
    );
    assert!(
        !s.remember_delivery("evt-keep", ttl).await.unwrap(),
        "other keys are untouched"
    );
    assert!(!s.remember_delivery("evt-f", ttl).await.unwrap());
    s.forget_delivery("never-seen")
        .await
        .expect("forgetting an unknown key is not an error");
}

// ---- end of a sync ---------------------------------------------------------------------

fn sync_audit(referral: &str, outcome: Outcome) -> AuditEntry {
    AuditEntry::new(Direction::Inbound, "create_opportunity", outcome).referral(referral)
}

async fn audit_ids_for(s: &dyn Store, referral: &str) -> Vec<String> {
    let q = AuditQuery {
        referral_id: Some(referral.into()),
        ..AuditQuery::default()
    };
    let found = s.query_audit(&q).await.unwrap();
    found.into_iter().map(|e| e.id).collect()
}

async fn finish_sync_writes_link_and_audit_together(backend: Backend) {
    let Some(o) = open(backend, Some(DEFAULT_AUDIT_RETENTION)).await else {
        return;
    };
    let s = o.store.as_ref();
    let link = Link::new("ref-f", "opp-f");
    let (a1, a2) = (
        sync_audit("ref-f", Outcome::Success),
        sync_audit("ref-f", Outcome::Conflict),
    );
    let audit = [a1.clone(), a2.clone()];
    let record = SyncRecord {
        link: Some(LinkWrite {
            link: &link,
            previous: None,
        }),
        audit: &audit,
    };
    let v1 = s.finish_sync(record).await.unwrap().expect("a stored link");
    assert_eq!(v1.version, 1);
    assert_eq!(
        s.get_link_by_referral("ref-f").await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        s.get_link_by_opportunity("opp-f").await.unwrap(),
        Some(v1.clone())
    );
    let mut ids = audit_ids_for(s, "ref-f").await;
    ids.sort();
    let mut want = vec![a1.id.clone(), a2.id.clone()];
    want.sort();
    assert_eq!(ids, want);

    // An update that moves the link to another opportunity frees the old one.
    let mut moved = v1.clone();
    moved.opportunity_id = "opp-f2".into();
    moved.pc_etag = Some("\"pc-2\"".into());
    let record = SyncRecord {
        link: Some(LinkWrite {
            link: &moved,
            previous: Some(&v1),
        }),
        audit: &[],
    };
    let v2 = s.finish_sync(record).await.unwrap().unwrap();
    assert_eq!((v2.version, v2.pc_etag.as_deref()), (2, Some("\"pc-2\"")));
    assert_eq!(s.get_link_by_opportunity("opp-f").await.unwrap(), None);
    assert_eq!(
        s.get_link_by_opportunity("opp-f2").await.unwrap(),
        Some(v2.clone())
    );

    // Without a link it only audits.
    let a3 = sync_audit("ref-f", Outcome::Skipped);
    let stored = s
        .finish_sync(SyncRecord {
            link: None,
            audit: std::slice::from_ref(&a3),
        })
        .await
        .unwrap();
    assert_eq!(stored, None);
    assert!(audit_ids_for(s, "ref-f").await.contains(&a3.id));
    assert_eq!(
        s.get_link_by_referral("ref-f").await.unwrap(),
        Some(v2),
        "an audit-only record leaves the link alone"
    );

    // Nothing to write: nothing written, no error.
    let before = audit_ids_for(s, "ref-f").await.len();
    let empty = s
        .finish_sync(SyncRecord {
            link: None,
            audit: &[],
        })
        .await
        .unwrap();
    assert_eq!(empty, None);
    assert_eq!(audit_ids_for(s, "ref-f").await.len(), before);
}

async fn finish_sync_that_loses_its_race_writes_nothing(backend: Backend) {
    let Some(o) = open(backend, Some(DEFAULT_AUDIT_RETENTION)).await else {
        return;
    };
    let s = o.store.as_ref();
    let v1 = s
        .put_link(&Link::new("ref-r", "opp-r"), None)
        .await
        .unwrap();
    let v2 = s.put_link(&v1, Some(1)).await.unwrap();
    s.put_link(&Link::new("ref-other", "opp-taken"), None)
        .await
        .unwrap();

    let mut stale = v1.clone();
    stale.base = Some(base_with("from an old read", "Active/Accepted"));
    let mut onto_taken = v2.clone();
    onto_taken.opportunity_id = "opp-taken".into();
    let fresh = Link::new("ref-r", "opp-r-again");
    let losers = [
        (&stale, Some(&v1)),      // version 1 was overwritten
        (&onto_taken, Some(&v2)), // the new opportunity belongs to another referral
        (&fresh, None),           // the referral is already linked
    ];
    for (link, previous) in losers {
        let entry = sync_audit("ref-r", Outcome::Success);
        let result = s
            .finish_sync(SyncRecord {
                link: Some(LinkWrite { link, previous }),
                audit: std::slice::from_ref(&entry),
            })
            .await;
        assert!(is_conflict(&result), "{result:?}");
        assert!(
            !audit_ids_for(s, "ref-r").await.contains(&entry.id),
            "no audit entry for a write that did not happen"
        );
    }
    assert_eq!(
        s.get_link_by_referral("ref-r").await.unwrap(),
        Some(v2.clone()),
        "the stale base was not written"
    );
    assert_eq!(
        s.get_link_by_opportunity("opp-taken")
            .await
            .unwrap()
            .unwrap()
            .referral_id,
        "ref-other"
    );
    assert_eq!(
        s.get_link_by_opportunity("opp-r-again").await.unwrap(),
        None
    );
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Sqlite).await
            })*
        }
        mod dynamodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::Dynamo).await
            })*
        }
        /// The `Store` trait's own sequential `finish_sync`, which wrappers (and any adapter
        /// without atomic multi-item writes) get.
        mod trait_default {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Backend::SqliteBehindDefaults).await
            })*
        }
    };
}

contract!(
    link_create_update_and_get_both_ways,
    link_create_race_has_exactly_one_winner,
    opportunity_cannot_be_linked_twice,
    stale_or_missing_version_conflicts,
    relinking_moves_the_opportunity,
    audit_query_filters_newest_first,
    audit_entries_expire_after_retention,
    duplicate_audit_id_is_a_conflict,
    state_put_get_is_conditional,
    delivery_is_remembered_until_it_expires,
    concurrent_deliveries_have_one_first,
    forgotten_delivery_is_new_again,
    link_base_round_trips_through_every_write,
    finish_sync_writes_link_and_audit_together,
    finish_sync_that_loses_its_race_writes_nothing,
);

// ---- adapter specifics -------------------------------------------------------------------

/// A reconcile that changed nothing ends with an empty record. DynamoDB rejects a
/// transaction of no items, so the adapter must not send one: against an endpoint where
/// nothing listens, an empty record still succeeds and a non-empty one fails.
#[tokio::test]
async fn dynamodb_an_empty_sync_record_makes_no_call() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let config =
        aws_sdk_dynamodb::config::Builder::from(&aws_local::sdk_config(&closed, "us-east-1").await)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
    let s = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "nowhere");
    let empty = SyncRecord {
        link: None,
        audit: &[],
    };
    assert!(matches!(s.finish_sync(empty).await, Ok(None)));
    let audit = [sync_audit("ref-x", Outcome::Skipped)];
    let audit_only = SyncRecord {
        audit: &audit,
        ..empty
    };
    assert!(matches!(
        s.finish_sync(audit_only).await,
        Err(StoreError::Backend(_))
    ));
}

/// A link stored by a version before pair sync: hashes instead of a base. It must read back
/// with `base: None` (its first reconcile then takes the base from both sides) and its other
/// fields intact, and take a base on its next write.
async fn check_legacy_link(s: &dyn Store) {
    for read in [
        s.get_link_by_referral("ref-old").await.unwrap().unwrap(),
        s.get_link_by_opportunity("opp-old").await.unwrap().unwrap(),
    ] {
        assert_eq!(read.base, None);
        assert_eq!(read.pc_etag.as_deref(), Some("\"pc-7\""));
        assert_eq!(read.dv_etag.as_deref(), Some("W/\"77\""));
        assert_eq!(read.version, 1);
    }
    let old = s.get_link_by_referral("ref-old").await.unwrap().unwrap();
    let mut next = old.clone();
    next.base = Some(base_with("now with a base", "Active/Accepted"));
    s.finish_sync(SyncRecord {
        link: Some(LinkWrite {
            link: &next,
            previous: Some(&old),
        }),
        audit: &[],
    })
    .await
    .unwrap();
    let read = s.get_link_by_opportunity("opp-old").await.unwrap().unwrap();
    assert_eq!((read.version, read.base), (2, next.base));
}

fn legacy_link() -> Link {
    Link {
        pc_etag: Some("\"pc-7\"".into()),
        dv_etag: Some("W/\"77\"".into()),
        ..Link::new("ref-old", "opp-old")
    }
}

#[tokio::test]
async fn sqlite_a_link_from_before_pair_sync_has_no_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    store.put_link(&legacy_link(), None).await.unwrap();
    // The row body as the earlier version wrote it.
    let old_body = serde_json::json!({
        "referral_id": "ref-old",
        "opportunity_id": "opp-old",
        "pc_etag": "\"pc-7\"",
        "dv_etag": "W/\"77\"",
        "pc_updated": "2026-05-01T10:00:00Z",
        "dv_modified": null,
        "pc_hash": "5f2a",
        "dv_hash": "not-synced",
        "version": 1,
        "updated_at": "2026-05-01T10:00:01Z"
    });
    let raw = rusqlite::Connection::open(&path).unwrap();
    let changed = raw
        .execute(
            "UPDATE links SET body = ?1 WHERE referral_id = 'ref-old'",
            [old_body.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(raw);
    check_legacy_link(&store).await;
}

#[tokio::test]
async fn dynamodb_a_link_from_before_pair_sync_has_no_base() {
    let Some(url) = moto_server::url() else {
        return;
    };
    let client = aws_local::dynamodb_client(&url, moto_server::REGION).await;
    let table = moto_server::unique("cosell-legacy");
    let store = DynamoStore::new(client.clone(), &table);
    store.create_table_if_missing().await.unwrap();
    store.put_link(&legacy_link(), None).await.unwrap();
    // The attributes the earlier version wrote beside the ones still read.
    client
        .update_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("REF#ref-old".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("LINK".into()),
        )
        .update_expression("SET pc_hash = :p, dv_hash = :d")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("5f2a".into()),
        )
        .expression_attribute_values(
            ":d",
            aws_sdk_dynamodb::types::AttributeValue::S("not-synced".into()),
        )
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .unwrap();
    check_legacy_link(&store).await;
}

/// AWS deletes expired items lazily, so check the TTL attribute and setting themselves.
#[tokio::test]
async fn dynamodb_audit_items_carry_the_ttl_attribute() {
    let Some(url) = moto_server::url() else {
        return;
    };
    let client = aws_local::dynamodb_client(&url, moto_server::REGION).await;
    let table = moto_server::unique("cosell-ttl");
    let store = DynamoStore::new(client.clone(), &table)
        .with_audit_retention(Some(Duration::from_secs(3600)));
    store.create_table_if_missing().await.unwrap();
    let e = entry_at(0, Some("r-raw"), None, Outcome::Success);
    store.append_audit(&e).await.unwrap();

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description().unwrap();
    assert_eq!(spec.attribute_name(), Some("expires_at"));

    let items = client
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    let audit: Vec<_> = items
        .iter()
        .filter(|i| i.get("id").and_then(|v| v.as_s().ok()) == Some(&e.id))
        .collect();
    assert_eq!(audit.len(), 1);
    let expires: i64 = audit[0]["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires, e.at.unix_timestamp() + 3600);
}

#[tokio::test]
async fn sqlite_sweep_deletes_expired_rows_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path)
        .unwrap()
        .with_audit_retention(Some(Duration::from_secs(3600)));
    store
        .append_audit(&entry_at(2 * 3600, None, None, Outcome::Failed))
        .await
        .unwrap();
    store
        .remember_delivery("gone", Duration::from_millis(1))
        .await
        .unwrap();
    store
        .put_link(&Link::new("ref-keep", "opp-keep"), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.sweep_expired().await.unwrap(), 2);
    assert_eq!(store.sweep_expired().await.unwrap(), 0);
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    let link = reopened.get_link_by_opportunity("opp-keep").await.unwrap();
    assert_eq!(link.map(|l| l.version), Some(1));
    assert!(
        reopened
            .remember_delivery("gone", Duration::from_secs(1))
            .await
            .unwrap(),
        "a swept delivery key is new again"
    );
}
