//! Change detection against the stand-in: paging, change tracking with tombstones, expired
//! tokens falling back to a full resync, and `modifiedon` polling.

mod common;

use std::collections::BTreeSet;

use cosell::dataverse::DataverseError;
use serde_json::json;
use time::OffsetDateTime;

use common::{map, start_with};
use cosell::retry::RetryPolicy;

async fn seed(env: &common::Env, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let o = env
            .client
            .create_opportunity(&map(json!({"name": format!("opp {i:02}")})))
            .await
            .unwrap();
        ids.push(o.opportunityid.unwrap());
    }
    ids
}

#[tokio::test]
async fn full_sync_pages_then_deltas_carry_updates_and_tombstones() {
    let env = start_with(RetryPolicy::fast(), 4).await;
    let ids = seed(&env, 10).await;
    env.standin.reset_request_counts();

    let first = env
        .client
        .changes(None, &["name", "modifiedon"])
        .await
        .unwrap();
    assert!(first.full);
    assert_eq!(first.upserts.len(), 10);
    assert!(first.deleted.is_empty());
    // 10 rows at 4 per page is 3 pages.
    assert_eq!(env.standin.request_count("GET opportunities"), 3);
    let seen: BTreeSet<_> = first
        .upserts
        .iter()
        .map(|o| o.opportunityid.clone().unwrap())
        .collect();
    assert_eq!(seen, ids.iter().cloned().collect());
    // `$select` held: no description column, but the key is there.
    assert!(first.upserts.iter().all(|o| o.estimatedvalue.is_none()));

    // Nothing happened: an empty delta with a fresh link.
    let idle = env
        .client
        .changes(Some(&first.delta_link), &[])
        .await
        .unwrap();
    assert!(!idle.full && idle.upserts.is_empty() && idle.deleted.is_empty());

    let created = seed(&env, 1).await.remove(0);
    env.client
        .update_opportunity(&ids[0], None, &map(json!({"name": "renamed"})))
        .await
        .unwrap();
    env.standin
        .user_update(
            "opportunities",
            &ids[1],
            map(json!({"description": "user edit"})),
        )
        .unwrap();
    assert!(env.standin.user_delete("opportunities", &ids[2]));
    // Created and deleted between two polls: shows up only as deleted.
    let ephemeral = seed(&env, 1).await.remove(0);
    assert!(env.standin.user_delete("opportunities", &ephemeral));

    let delta = env
        .client
        .changes(Some(&idle.delta_link), &["name"])
        .await
        .unwrap();
    let upserted: BTreeSet<_> = delta
        .upserts
        .iter()
        .map(|o| o.opportunityid.clone().unwrap())
        .collect();
    assert_eq!(
        upserted,
        [created, ids[0].clone(), ids[1].clone()]
            .into_iter()
            .collect()
    );
    assert_eq!(
        delta.deleted.iter().cloned().collect::<BTreeSet<_>>(),
        [ids[2].clone(), ephemeral].into_iter().collect()
    );
    let renamed = delta
        .upserts
        .iter()
        .find(|o| o.opportunityid.as_deref() == Some(&ids[0]))
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("renamed"));

    let after = env
        .client
        .changes(Some(&delta.delta_link), &[])
        .await
        .unwrap();
    assert!(after.upserts.is_empty() && after.deleted.is_empty());
    env.standin.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_typed_and_resync_reads_everything() {
    let env = start_with(RetryPolicy::fast(), 5).await;
    let ids = seed(&env, 6).await;
    let first = env.client.changes(None, &[]).await.unwrap();
    env.standin.expire_delta_tokens();

    let err = env
        .client
        .changes(Some(&first.delta_link), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::DeltaExpired), "{err:?}");

    env.standin.user_delete("opportunities", &ids[0]);
    let resync = env
        .client
        .changes_or_resync(Some(&first.delta_link), &[])
        .await
        .unwrap();
    assert!(resync.full);
    assert_eq!(resync.upserts.len(), 5);
    // The new link works.
    let next = env
        .client
        .changes_or_resync(Some(&resync.delta_link), &[])
        .await
        .unwrap();
    assert!(!next.full && next.upserts.is_empty());
    env.standin.shutdown().await;
}

#[tokio::test]
async fn change_tracking_off_is_its_own_error() {
    let env = start_with(RetryPolicy::fast(), 5).await;
    assert!(env.standin.set_change_tracking("opportunities", false));
    let err = env.client.changes(None, &[]).await.unwrap_err();
    assert!(matches!(err, DataverseError::TrackingOff { .. }), "{err:?}");
    env.standin.shutdown().await;
}

#[tokio::test]
async fn modified_since_pages_in_modifiedon_order() {
    let env = start_with(RetryPolicy::fast(), 3).await;
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(2);
    let ids = seed(&env, 8).await;
    env.standin.reset_request_counts();
    let all = env.client.modified_since(before).await.unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(env.standin.request_count("GET opportunities"), 3);
    let got: BTreeSet<_> = all
        .iter()
        .map(|o| o.opportunityid.clone().unwrap())
        .collect();
    assert_eq!(got, ids.iter().cloned().collect());
    // Ordered by modifiedon, then id.
    let keys: Vec<_> = all
        .iter()
        .map(|o| {
            (
                o.modifiedon.clone().unwrap(),
                o.opportunityid.clone().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    let future = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(env.client.modified_since(future).await.unwrap().is_empty());
    env.standin.shutdown().await;
}
