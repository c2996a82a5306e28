//! Issue 24, related referrals: Microsoft's own referral in a co-sell's engagement announces
//! itself with `related-referral-created` / `-updated`. The intake queues it; the reconcile
//! finds the engagement's synced pair and forwards the message there, never making an
//! opportunity of Microsoft's referral; once Microsoft's seller accepts, its CRM identifier
//! and the seller's name and e-mail land in the opportunity's `[related]` columns.

use std::time::Duration;

use cosell::engine::{reconcile_pair, PairOutcome, SyncMessage};
use cosell::partner_center::ListQuery;
use cosell::store::Store;
use cosell_tests::intake_fixture::IntakeFixture;
use cosell_tests::queue_worker::QueueWorker;
use partner_center_standin::MicrosoftSide;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

const ACCEPT: i64 = 100_000_000;
const CRM_ID: &str = "7-ABCDEF123";

fn microsoft_side() -> MicrosoftSide {
    MicrosoftSide {
        crm_id: CRM_ID.into(),
        seller_first_name: "Mia".into(),
        seller_last_name: "Seller".into(),
        seller_email: "mia.seller@microsoft.example".into(),
    }
}

/// Microsoft's referral, synced to the CRM and accepted there: (referral, opportunity,
/// engagement).
async fn accepted_pair(f: &IntakeFixture) -> (String, String, String) {
    let h = &f.h;
    let (rid, opportunity_id) = h
        .synced_incoming_referral("Contoso ERP", "Contoso Ltd")
        .await;
    let mut accept = Map::new();
    accept.insert(h.engine.columns.decision.clone(), json!(ACCEPT));
    h.dv.user_update("opportunities", &opportunity_id, accept)
        .unwrap();
    reconcile_pair(
        &h.engine,
        &SyncMessage::for_opportunity(&opportunity_id, None),
    )
    .await
    .unwrap();
    assert_eq!(h.pc.referral(&rid).unwrap()["status"], "Active");
    let engagement = h.pc.referral(&rid).unwrap()["engagementId"]
        .as_str()
        .unwrap()
        .to_string();
    (rid, opportunity_id, engagement)
}

/// A signed delivery of `event` for `referral_id` through the intake, then the queue drained.
async fn deliver(f: &IntakeFixture, event: &str, referral_id: &str) -> QueueWorker {
    let body = f
        .signer
        .event_body(event, referral_id, OffsetDateTime::now_utc())
        .into_bytes();
    let answer = f.post(&f.signer.headers(&body), &body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let mut worker = QueueWorker::new(f.h.engine.clone(), f.h.queue.clone());
    assert!(worker.drain(Duration::from_secs(20)).await, "queue drained");
    assert_eq!(worker.stats.dead_lettered, 0, "{:?}", worker.dead_reasons);
    worker
}

fn column(f: &IntakeFixture, opp: &str, name: &str) -> Value {
    f.h.dv.row("opportunities", opp).unwrap()[name].clone()
}

#[tokio::test]
async fn microsofts_side_lands_on_the_opportunity_once_its_seller_accepts() {
    let f = IntakeFixture::start().await;
    let (rid, opp, engagement) = accepted_pair(&f).await;
    let related = &f.h.engine.mapping.related;
    let crm_col = related.crm_id_column.clone().unwrap();
    let name_col = related.seller_name_column.clone().unwrap();
    let email_col = related.seller_email_column.clone().unwrap();

    let ms =
        f.h.pc
            .add_microsoft_referral(&engagement, &microsoft_side())
            .unwrap();
    let ms_id = ms["id"].as_str().unwrap().to_string();
    let worker = deliver(&f, "related-referral-created", &ms_id).await;
    assert_eq!(worker.stats.forwarded, 1, "{:?}", worker.stats);
    // Not accepted yet on Microsoft's side: nothing shown.
    assert_eq!(column(&f, &opp, &crm_col), Value::Null);
    assert_eq!(
        f.h.dv.rows("opportunities").len(),
        1,
        "no row for Microsoft's referral"
    );

    f.h.pc
        .set_microsoft_referral_status(&ms_id, "Active", "Accepted")
        .unwrap();
    let worker = deliver(&f, "related-referral-updated", &ms_id).await;
    assert_eq!(worker.stats.forwarded, 1, "{:?}", worker.stats);
    assert_eq!(column(&f, &opp, &crm_col), json!(CRM_ID));
    assert_eq!(column(&f, &opp, &name_col), json!("Mia Seller"));
    assert_eq!(
        column(&f, &opp, &email_col),
        json!("mia.seller@microsoft.example")
    );
    assert_eq!(f.h.dv.rows("opportunities").len(), 1);
    assert!(f
        .h
        .store
        .get_link_by_referral(&ms_id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        f.h.store
            .get_link_by_opportunity(&opp)
            .await
            .unwrap()
            .unwrap()
            .referral_id,
        rid
    );

    // The same event again changes nothing on the row.
    let before = f.h.dv.row("opportunities", &opp).unwrap()["@odata.etag"].clone();
    deliver(&f, "related-referral-updated", &ms_id).await;
    assert_eq!(
        f.h.dv.row("opportunities", &opp).unwrap()["@odata.etag"],
        before
    );
}

/// Microsoft's referral is another organization's: not in the partner's own list (so the
/// sweep never makes an opportunity of it), in its engagement's list, and not writable.
#[tokio::test]
async fn microsofts_referral_is_only_in_its_engagement_and_read_only() {
    let f = IntakeFixture::start().await;
    let (rid, _opp, engagement) = accepted_pair(&f).await;
    let ms =
        f.h.pc
            .add_microsoft_referral(&engagement, &microsoft_side())
            .unwrap();
    let ms_id = ms["id"].as_str().unwrap();
    let pc = &f.h.engine.pc;
    let ids = |list: Vec<cosell::partner_center::Referral>| -> Vec<String> {
        list.into_iter().filter_map(|r| r.id).collect()
    };
    let own = ids(pc.list_referrals(&ListQuery::default()).await.unwrap());
    assert!(
        own.contains(&rid) && !own.iter().any(|i| i == ms_id),
        "{own:?}"
    );
    let query = ListQuery {
        filter: Some(format!("engagementId eq '{engagement}'")),
        ..ListQuery::default()
    };
    let in_engagement = ids(pc.list_referrals(&query).await.unwrap());
    assert!(
        in_engagement.iter().any(|i| i == ms_id),
        "{in_engagement:?}"
    );
    let current = pc.get_referral(ms_id).await.unwrap();
    let write = pc
        .update_referral(
            ms_id,
            current.e_tag.as_deref().unwrap(),
            &[cosell::partner_center::PatchOp::replace("/name", "x")],
        )
        .await;
    assert!(write.is_err(), "{write:?}");
}

/// A related referral whose engagement has no synced pair yet is skipped, writing nothing.
#[tokio::test]
async fn a_related_referral_of_an_unsynced_engagement_is_skipped() {
    let f = IntakeFixture::start().await;
    let created = f.h.pc.create_incoming_referral("Not synced", "Nobody Ltd");
    let engagement = created["engagementId"].as_str().unwrap();
    let ms =
        f.h.pc
            .add_microsoft_referral(engagement, &microsoft_side())
            .unwrap();
    let m = SyncMessage::for_related(ms["id"].as_str().unwrap(), None);
    let out = reconcile_pair(&f.h.engine, &m).await.unwrap();
    assert!(matches!(out, PairOutcome::Skipped { .. }), "{out:?}");
    assert!(f.h.dv.rows("opportunities").is_empty());
}
