//! Both sides changed before either change was reconciled: whichever side's message is
//! handled first, the one reconcile of the pair must keep both changes.

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

async fn webhook(h: &Harness, rid: &str) -> PairOutcome {
    let m = SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .expect("store");
    reconcile_pair(&h.engine, &m).await.expect("reconcile")
}

async fn poll(h: &Harness, opp: &str) -> PairOutcome {
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(opp, None))
        .await
        .expect("reconcile")
}

/// A Microsoft referral reconciled into its opportunity: (referral, opportunity).
async fn linked(h: &Harness) -> (String, String) {
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    assert!(created["details"].get("closingDateTime").is_none());
    match webhook(h, &rid).await {
        PairOutcome::OpportunityCreated { opportunity_id, .. } => (rid, opportunity_id),
        other => panic!("{other:?}"),
    }
}

async fn pc_edit(h: &Harness, rid: &str, op: PatchOp) {
    let current = h.engine.pc.get_referral(rid).await.unwrap();
    h.engine
        .pc
        .update_referral(rid, current.e_tag.as_deref().unwrap(), &[op])
        .await
        .unwrap();
}

fn pc_writes(h: &Harness) -> usize {
    h.pc.requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.contains("/referrals"))
        .count()
}

/// Neither side's message finds anything to write.
async fn at_rest(h: &Harness, rid: &str, opp: &str) {
    let writes = pc_writes(h);
    let etag = h.dv.row("opportunities", opp).unwrap()["@odata.etag"].clone();
    assert!(
        matches!(poll(h, opp).await, PairOutcome::Unchanged { .. }),
        "the poller's message"
    );
    assert!(
        matches!(webhook(h, rid).await, PairOutcome::Unchanged { .. }),
        "the webhook's message"
    );
    assert_eq!(pc_writes(h), writes, "no Partner Center write");
    assert_eq!(
        h.dv.row("opportunities", opp).unwrap()["@odata.etag"],
        etag,
        "no CRM write"
    );
}

#[tokio::test]
async fn a_crm_close_date_survives_a_referral_message_handled_first() {
    let h = Harness::start().await;
    let (rid, opp) = linked(&h).await;

    // The seller sets a close date (the referral has none) while Microsoft renames the deal,
    // and the rename's webhook is handled before the poller sees the CRM edit.
    h.dv.user_update(
        "opportunities",
        &opp,
        obj(json!({"estimatedclosedate": "2026-12-31"})),
    )
    .unwrap();
    pc_edit(&h, &rid, PatchOp::replace("/name", "Contoso ERP phase 2")).await;
    assert!(matches!(
        webhook(&h, &rid).await,
        PairOutcome::Updated { .. }
    ));
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert!(row["name"]
        .as_str()
        .unwrap()
        .starts_with("Contoso ERP phase 2"));
    assert_eq!(row["estimatedclosedate"], json!("2026-12-31"));
    // The same reconcile sent the seller's close date.
    let referral = h.pc.referral(&rid).unwrap();
    let closing = referral["details"]["closingDateTime"]
        .as_str()
        .unwrap_or("");
    assert!(closing.starts_with("2026-12-31"), "{referral:#}");

    // The poller's message for the seller's edit, handled late, is then nothing new.
    at_rest(&h, &rid, &opp).await;
}

#[tokio::test]
async fn a_deal_the_seller_won_stays_won_when_the_referral_message_runs_first() {
    let h = Harness::start().await;
    let (rid, opp) = linked(&h).await;

    // The seller wins the deal while Microsoft edits the referral's notes, and the notes'
    // webhook is handled before the poller sees the win.
    h.dv.user_update(
        "opportunities",
        &opp,
        obj(json!({"statecode": 1, "statuscode": 3})),
    )
    .unwrap();
    pc_edit(
        &h,
        &rid,
        PatchOp::replace("/details/notes", "Microsoft added a note"),
    )
    .await;
    webhook(&h, &rid).await;
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(1), json!(3)),
        "the seller's win was undone"
    );
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(
        (referral["status"].as_str(), referral["substatus"].as_str()),
        (Some("Closed"), Some("Won")),
        "the close goes to Partner Center in the same reconcile"
    );

    // At rest afterwards, still won.
    poll(&h, &opp).await;
    webhook(&h, &rid).await;
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert_eq!(row["statecode"], json!(1));
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(referral["substatus"], "Won");
    at_rest(&h, &rid, &opp).await;
}
