//! Issue 24, leads: a referral is classified as the docs do (Marketplace lead, qualified
//! lead, co-sell opportunity), and `[lead] handling` says what becomes of a lead. By default
//! a new lead lands as a Dynamics 365 lead: Partner Center's changes update it, the seller
//! accepts, declines or disqualifies it there, and qualifying it accepts the referral and
//! moves the pair to the opportunity the qualification made.

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::AuditQuery;
use cosell::dataverse::Qualify;
use cosell::engine::lead_poller::poll_leads;
use cosell::engine::{reconcile_pair, Engine, Origin, PairOutcome, SyncMessage};
use cosell::mapping::lead::LeadHandling;
use cosell::partner_center::PatchOp;
use cosell::queue::Queue;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

const ACCEPT: i64 = 100_000_000;
const DECLINE: i64 = 100_000_001;

async fn webhook(h: &Harness, engine: &Engine, rid: &str) -> PairOutcome {
    let m = SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .unwrap();
    reconcile_pair(engine, &m).await.unwrap()
}

/// What the poller queues for a changed lead (or opportunity): a message under its id.
async fn crm_change(h: &Harness, id: &str) -> PairOutcome {
    let m = SyncMessage::for_opportunity(id, None);
    reconcile_pair(&h.engine, &m).await.unwrap()
}

fn with_handling(h: &Harness, handling: LeadHandling) -> Engine {
    let mut engine = h.engine.clone();
    let mut mapping = (*engine.mapping).clone();
    mapping.lead.handling = handling;
    engine.mapping = Arc::new(mapping);
    engine
}

/// A new Marketplace lead from Partner Center, landed: (referral id, lead id).
async fn landed_lead(h: &Harness, name: &str) -> (String, String) {
    let lead = h.pc.create_incoming_lead(name, "Tailspin Toys", "Direct");
    let rid = lead["id"].as_str().unwrap().to_string();
    match webhook(h, &h.engine, &rid).await {
        PairOutcome::LeadCreated { lead_id, .. } => (rid, lead_id),
        other => panic!("expected a lead, got {other:?}"),
    }
}

/// The seller qualifies the lead (`QualifyLead`, always making an opportunity); the
/// opportunity made.
async fn seller_qualifies(h: &Harness, lead_id: &str, account: bool, contact: bool) -> String {
    let made = h
        .engine
        .dv
        .qualify_lead(
            lead_id,
            Qualify {
                create_account: account,
                create_contact: contact,
                create_opportunity: true,
            },
        )
        .await
        .expect("the seller qualifies the lead");
    made.into_iter()
        .find(|(e, _)| e == "opportunity")
        .map(|(_, id)| id)
        .expect("an opportunity made")
}

fn set(h: &Harness, set: &str, id: &str, changes: Value) {
    let Value::Object(m) = changes else { panic!() };
    h.dv.user_update(set, id, m).expect("row exists");
}

fn status(h: &Harness, rid: &str) -> (String, String) {
    let r = h.pc.referral(rid).unwrap();
    (
        r["status"].as_str().unwrap_or_default().to_string(),
        r["substatus"].as_str().unwrap_or_default().to_string(),
    )
}

async fn microsoft_edits(h: &Harness, rid: &str, ops: &[PatchOp]) {
    let current = h.engine.pc.get_referral(rid).await.unwrap();
    h.engine
        .pc
        .update_referral(rid, current.e_tag.as_deref().unwrap_or("*"), ops)
        .await
        .expect("Microsoft edits the referral");
}

#[tokio::test]
async fn a_new_lead_lands_once_as_a_dynamics_365_lead() {
    let h = Harness::start().await;
    assert_eq!(h.engine.mapping.lead.handling, LeadHandling::Lead);
    let (rid, lead_id) = landed_lead(&h, "Marketplace lead").await;
    let cols = &h.config.columns;
    let lead = h.dv.row("leads", &lead_id).expect("the lead");
    assert_eq!(lead["subject"], json!("Marketplace lead"));
    assert_eq!(lead["companyname"], json!("Tailspin Toys"));
    assert_eq!(lead[&cols.sync_flag], json!(true));
    assert_eq!(lead[&cols.referral_id], json!(rid));
    assert!(lead[&cols.referral_link].as_str().unwrap().contains(&rid));
    assert!(
        h.dv.rows("opportunities").is_empty(),
        "no opportunity for a new lead"
    );
    assert_eq!(status(&h, &rid).0, "New", "landing answers nothing");

    // The same event again, and the poll of our own create: nothing written.
    h.dv.reset_request_counts();
    let again = webhook(&h, &h.engine, &rid).await;
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    let echo = crm_change(&h, &lead_id).await;
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    let writes: u64 =
        h.dv.request_counts()
            .iter()
            .filter(|(k, _)| !k.starts_with("GET"))
            .map(|(_, n)| n)
            .sum();
    assert_eq!(writes, 0, "{:?}", h.dv.request_counts());
    assert_eq!(h.dv.rows("leads").len(), 1);
}

#[tokio::test]
async fn partner_center_changes_update_the_lead_and_keep_the_sellers_own_columns() {
    let h = Harness::start().await;
    let (rid, lead_id) = landed_lead(&h, "Lead to edit").await;
    set(&h, "leads", &lead_id, json!({"jobtitle": "CTO"}));
    microsoft_edits(
        &h,
        &rid,
        &[
            PatchOp::replace("/name", json!("Lead, renamed")),
            PatchOp::add("/details/notes", json!("Call after the trial")),
        ],
    )
    .await;
    let out = webhook(&h, &h.engine, &rid).await;
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    let lead = h.dv.row("leads", &lead_id).unwrap();
    assert_eq!(lead["subject"], json!("Lead, renamed"));
    assert_eq!(lead["description"], json!("Call after the trial"));
    assert_eq!(
        lead["jobtitle"],
        json!("CTO"),
        "an unmapped column is the seller's"
    );
}

#[tokio::test]
async fn the_seller_accepts_or_declines_from_the_leads_decision_column() {
    let h = Harness::start().await;
    let decision = h.config.columns.decision.clone();
    let (accepted, a_lead) = landed_lead(&h, "Lead to accept").await;
    let (declined, d_lead) = landed_lead(&h, "Lead to decline").await;
    set(&h, "leads", &a_lead, json!({ &decision: ACCEPT }));
    set(&h, "leads", &d_lead, json!({ &decision: DECLINE }));
    crm_change(&h, &a_lead).await;
    crm_change(&h, &d_lead).await;
    assert_eq!(status(&h, &accepted), ("Active".into(), "Accepted".into()));
    assert_eq!(status(&h, &declined), ("Closed".into(), "Declined".into()));
    // Answered once: the same change again moves nothing.
    h.pc.reset_request_counts();
    crm_change(&h, &a_lead).await;
    assert_eq!(
        h.pc.request_count("PATCH referrals/{id}"),
        0,
        "{:?}",
        h.pc.request_counts()
    );
    assert!(
        h.dv.rows("opportunities").is_empty(),
        "accepting keeps it a lead"
    );
}

#[tokio::test]
async fn disqualifying_declines_a_new_lead_and_loses_an_accepted_one() {
    let h = Harness::start().await;
    let decision = h.config.columns.decision.clone();
    let (new_one, n_lead) = landed_lead(&h, "Lead to disqualify").await;
    let (accepted, a_lead) = landed_lead(&h, "Accepted, then disqualified").await;
    set(&h, "leads", &a_lead, json!({ &decision: ACCEPT }));
    crm_change(&h, &a_lead).await;
    for id in [&n_lead, &a_lead] {
        set(&h, "leads", id, json!({"statecode": 2, "statuscode": 6}));
        crm_change(&h, id).await;
    }
    assert_eq!(status(&h, &new_one), ("Closed".into(), "Declined".into()));
    assert_eq!(status(&h, &accepted), ("Closed".into(), "Lost".into()));
}

#[tokio::test]
async fn qualifying_the_lead_accepts_the_referral_and_moves_the_pair_to_its_opportunity() {
    let h = Harness::start().await;
    let cols = h.config.columns.clone();
    let (rid, lead_id) = landed_lead(&h, "Lead to qualify").await;
    microsoft_edits(
        &h,
        &rid,
        &[PatchOp::add("/details/dealValue", json!(42000))],
    )
    .await;
    let opp_id = seller_qualifies(&h, &lead_id, true, true).await;

    let out = crm_change(&h, &lead_id).await;
    let PairOutcome::Forwarded { to } = out else {
        panic!("expected the message to go on to the opportunity, got {out:?}")
    };
    assert_eq!(to.key, opp_id);
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(status(&h, &rid), ("Active".into(), "Accepted".into()));
    assert_eq!(referral["externalReferenceId"], json!(opp_id));
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.opportunity_id, opp_id);
    assert!(h
        .store
        .get_link_by_opportunity(&lead_id)
        .await
        .unwrap()
        .is_none());
    // The write that flags the opportunity fills it with the referral's values (the deal
    // value the lead had no column for): a seller's close right after cannot keep it empty.
    let opp = h.dv.row("opportunities", &opp_id).unwrap();
    assert_eq!(opp[&cols.sync_flag], json!(true));
    assert_eq!(opp[&cols.referral_id], json!(rid));
    assert_eq!(opp["estimatedvalue"], json!(42000.0));

    // The forwarded message reconciles the opportunity: nothing is left to write there.
    h.dv.reset_request_counts();
    let after = reconcile_pair(&h.engine, &to).await.unwrap();
    assert!(
        matches!(
            after,
            PairOutcome::Unchanged { .. } | PairOutcome::Updated { .. }
        ),
        "{after:?}"
    );
    assert!(
        !h.dv
            .request_counts()
            .keys()
            .any(|k| k.starts_with("PATCH opportunities")),
        "{:?}",
        h.dv.request_counts()
    );
    let opp = h.dv.row("opportunities", &opp_id).unwrap();
    assert_eq!(opp["estimatedvalue"], json!(42000.0));

    // From now on the opportunity is synced, the lead is not.
    let lead_before = h.dv.row("leads", &lead_id).unwrap();
    microsoft_edits(
        &h,
        &rid,
        &[PatchOp::replace(
            "/details/notes",
            json!("After qualifying"),
        )],
    )
    .await;
    let out = webhook(&h, &h.engine, &rid).await;
    assert!(
        matches!(out, PairOutcome::Updated { ref opportunity_id, .. } if *opportunity_id == opp_id),
        "{out:?}"
    );
    assert_eq!(
        h.dv.row("opportunities", &opp_id).unwrap()["description"],
        json!("After qualifying")
    );
    assert_eq!(h.dv.row("leads", &lead_id).unwrap(), lead_before);
    let late = crm_change(&h, &lead_id).await;
    assert!(matches!(late, PairOutcome::Skipped { .. }), "{late:?}");
    let trail = h.store.query_audit(&AuditQuery::default()).await.unwrap();
    assert!(
        trail.iter().any(|e| e.action.contains("move_pair")
            && e.detail.as_deref().is_some_and(|d| d.contains(&opp_id))),
        "{trail:?}"
    );
}

#[tokio::test]
async fn a_move_cut_short_is_finished_by_the_retry() {
    let h = Harness::start().await;
    let (rid, lead_id) = landed_lead(&h, "Lead whose move fails").await;
    let opp_id = seller_qualifies(&h, &lead_id, true, false).await;
    // The referral is accepted, then flagging the opportunity fails (a plug-in's 400).
    h.dv.reject_writes(dataverse_standin::WriteRejection {
        set: "opportunities".into(),
        column: h.config.columns.referral_id.clone(),
        contains: rid.clone(),
        message: "A plug-in refused the write".into(),
    });
    h.pc.reset_request_counts();
    let m = SyncMessage::for_opportunity(&lead_id, None);
    assert!(reconcile_pair(&h.engine, &m).await.is_err());
    assert_eq!(status(&h, &rid), ("Active".into(), "Accepted".into()));
    assert_eq!(
        h.store
            .get_link_by_referral(&rid)
            .await
            .unwrap()
            .unwrap()
            .opportunity_id,
        lead_id,
        "the link stays on the lead until the opportunity is ready"
    );
    h.dv.clear_write_rejections();
    let out = reconcile_pair(&h.engine, &m).await.unwrap();
    assert!(
        matches!(out, PairOutcome::Forwarded { ref to } if to.key == opp_id),
        "{out:?}"
    );
    assert_eq!(
        h.store
            .get_link_by_referral(&rid)
            .await
            .unwrap()
            .unwrap()
            .opportunity_id,
        opp_id
    );
    assert_eq!(
        h.pc.request_count("PATCH referrals/{id}"),
        1,
        "accepted and pointed at the opportunity once: {:?}",
        h.pc.request_counts()
    );
}

#[tokio::test]
async fn the_lead_poll_queues_flagged_leads_changed_since_its_watermark() {
    let h = Harness::start().await;
    let (_, lead_id) = landed_lead(&h, "Polled lead").await;
    // A lead that is not the connector's is not queued.
    let mut other = Map::new();
    other.insert("subject".into(), json!("Someone else's lead"));
    h.dv.user_insert("leads", other);
    let queued = poll_leads(&h.engine, h.queue.as_ref()).await.unwrap();
    assert_eq!(queued, 1);
    let got = h
        .queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains(&lead_id), "{}", got[0].body);
    for m in &got {
        h.queue.ack(&m.receipt).await.unwrap();
    }
    assert_eq!(poll_leads(&h.engine, h.queue.as_ref()).await.unwrap(), 0);
    set(&h, "leads", &lead_id, json!({"jobtitle": "CFO"}));
    assert_eq!(poll_leads(&h.engine, h.queue.as_ref()).await.unwrap(), 1);
    // Off unless leads land as leads.
    let engine = with_handling(&h, LeadHandling::Opportunity);
    set(&h, "leads", &lead_id, json!({"jobtitle": "CEO"}));
    assert_eq!(poll_leads(&engine, h.queue.as_ref()).await.unwrap(), 0);
}

#[tokio::test]
async fn leads_are_skipped_when_the_mapping_says_so() {
    let h = Harness::start().await;
    let engine = with_handling(&h, LeadHandling::Skip);
    for (qualification, kind) in [
        ("Direct", "a Marketplace lead"),
        ("SalesQualified", "a qualified lead"),
    ] {
        let lead = h.pc.create_incoming_lead("Lead", "Tailspin", qualification);
        let rid = lead["id"].as_str().unwrap();
        let out = webhook(&h, &engine, rid).await;
        let PairOutcome::Skipped { reason } = out else {
            panic!("{out:?}");
        };
        assert!(reason.contains(kind), "{reason}");
        let trail = h.store.query_audit(&AuditQuery::default()).await.unwrap();
        assert!(
            trail
                .iter()
                .any(|e| e.detail.as_deref().is_some_and(|d| d.contains(kind))),
            "{trail:?}"
        );
    }
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.dv.rows("leads").is_empty());

    // A co-sell opportunity is synced as ever.
    let co_sell = h.pc.create_incoming_referral("Co-sell", "Contoso Ltd");
    let out = webhook(&h, &engine, co_sell["id"].as_str().unwrap()).await;
    assert!(
        matches!(out, PairOutcome::OpportunityCreated { .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn leads_land_as_opportunities_when_the_mapping_says_so_or_once_accepted() {
    let h = Harness::start().await;
    let engine = with_handling(&h, LeadHandling::Opportunity);
    let lead = h.pc.create_incoming_lead("Lead", "Tailspin", "Direct");
    let out = webhook(&h, &engine, lead["id"].as_str().unwrap()).await;
    assert!(
        matches!(out, PairOutcome::OpportunityCreated { .. }),
        "{out:?}"
    );
    // By default too, for a lead already accepted in Partner Center.
    let accepted =
        h.pc.create_incoming_lead("Accepted lead", "Tailspin", "Direct");
    let rid = accepted["id"].as_str().unwrap();
    microsoft_edits(
        &h,
        rid,
        &[
            PatchOp::replace("/status", json!("Active")),
            PatchOp::replace("/substatus", json!("Accepted")),
        ],
    )
    .await;
    let out = webhook(&h, &h.engine, rid).await;
    assert!(
        matches!(out, PairOutcome::OpportunityCreated { .. }),
        "{out:?}"
    );
    assert!(h.dv.rows("leads").is_empty());
}

/// The seller qualifies the lead and wins the new opportunity before the connector sees the
/// qualification (a closed row is read-only): the move reopens it for the flag and the
/// referral's values, closes it again as the seller did, and the referral follows the win.
/// Found by the convergence run (a qualified opportunity closed before its fill kept no
/// deal value).
#[tokio::test]
async fn a_lead_qualified_and_won_at_once_is_moved_filled_and_stays_won() {
    let h = Harness::start().await;
    let cols = h.config.columns.clone();
    let (rid, lead_id) = landed_lead(&h, "Lead won at once").await;
    microsoft_edits(
        &h,
        &rid,
        &[PatchOp::add("/details/dealValue", json!(42000))],
    )
    .await;
    let opp_id = seller_qualifies(&h, &lead_id, false, false).await;
    set(
        &h,
        "opportunities",
        &opp_id,
        json!({"statecode": 1, "statuscode": 3}),
    );

    let out = crm_change(&h, &lead_id).await;
    let PairOutcome::Forwarded { to } = out else {
        panic!("expected the message to go on to the opportunity, got {out:?}")
    };
    // Before the forwarded reconcile: flagged, filled, and won as the seller left it.
    let opp = h.dv.row("opportunities", &opp_id).unwrap();
    assert_eq!(opp[&cols.sync_flag], json!(true));
    assert_eq!(opp[&cols.referral_id], json!(rid));
    assert_eq!(opp["estimatedvalue"], json!(42000.0));
    assert_eq!(
        (opp["statecode"].clone(), opp["statuscode"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(
        h.store
            .get_link_by_referral(&rid)
            .await
            .unwrap()
            .unwrap()
            .opportunity_id,
        opp_id
    );

    reconcile_pair(&h.engine, &to).await.unwrap();
    assert_eq!(status(&h, &rid), ("Closed".into(), "Won".into()));
    let opp = h.dv.row("opportunities", &opp_id).unwrap();
    assert_eq!(opp["statecode"], json!(1));
    assert_eq!(opp["estimatedvalue"], json!(42000.0));
}
