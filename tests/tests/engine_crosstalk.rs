//! The two directions interleaved: a change made on one side must survive the other
//! direction running first.

use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::outbound::{sync_opportunity, OutboundOutcome};
use cosell::engine::{InboundMessage, InboundTrigger, OutboundMessage};
use cosell::partner_center::PatchOp;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

fn inbound(id: &str) -> InboundMessage {
    InboundMessage {
        referral_id: id.to_string(),
        trigger: InboundTrigger::ReferralUpdated,
        changed_at: None,
    }
}

fn outbound(id: &str) -> OutboundMessage {
    OutboundMessage {
        opportunity_id: id.to_string(),
        modified_on: None,
        deleted: false,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

#[tokio::test]
async fn a_crm_close_date_survives_an_inbound_sync_that_runs_first() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    assert!(created["details"].get("closingDateTime").is_none());
    let opp = match sync_referral(&h.engine, &inbound(&rid)).await.unwrap() {
        InboundOutcome::Created { opportunity_id } => opportunity_id,
        other => panic!("{other:?}"),
    };

    // The seller sets a close date (the referral has none) while Microsoft renames the deal,
    // and the rename's webhook is handled before the poller sees the CRM edit.
    h.dv.user_update(
        "opportunities",
        &opp,
        obj(json!({"estimatedclosedate": "2026-12-31"})),
    )
    .unwrap();
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/name", "Contoso ERP phase 2")],
        )
        .await
        .unwrap();
    assert!(matches!(
        sync_referral(&h.engine, &inbound(&rid)).await.unwrap(),
        InboundOutcome::Updated { .. }
    ));
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert!(row["name"]
        .as_str()
        .unwrap()
        .starts_with("Contoso ERP phase 2"));
    assert_eq!(row["estimatedclosedate"], json!("2026-12-31"));

    // The outbound pass must still send the seller's close date.
    assert!(matches!(
        sync_opportunity(&h.engine, &outbound(&opp)).await.unwrap(),
        OutboundOutcome::Updated { .. }
    ));
    let referral = h.pc.referral(&rid).unwrap();
    let closing = referral["details"]["closingDateTime"]
        .as_str()
        .unwrap_or("");
    assert!(closing.starts_with("2026-12-31"), "{referral:#}");

    // Then both directions are at rest.
    assert!(matches!(
        sync_opportunity(&h.engine, &outbound(&opp)).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
    assert!(matches!(
        sync_referral(&h.engine, &inbound(&rid)).await.unwrap(),
        InboundOutcome::Unchanged { .. }
    ));
}

#[tokio::test]
async fn a_deal_the_seller_won_stays_won_when_an_inbound_pass_runs_first() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let opp = match sync_referral(&h.engine, &inbound(&rid)).await.unwrap() {
        InboundOutcome::Created { opportunity_id } => opportunity_id,
        other => panic!("{other:?}"),
    };

    // The seller wins the deal while Microsoft edits the referral's notes, and the notes'
    // webhook is handled before the poller sees the win.
    h.dv.user_update(
        "opportunities",
        &opp,
        obj(json!({"statecode": 1, "statuscode": 3})),
    )
    .unwrap();
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/details/notes", "Microsoft added a note")],
        )
        .await
        .unwrap();
    sync_referral(&h.engine, &inbound(&rid)).await.unwrap();
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(1), json!(3)),
        "the seller's win was undone"
    );

    sync_opportunity(&h.engine, &outbound(&opp)).await.unwrap();
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(
        (referral["status"].as_str(), referral["substatus"].as_str()),
        (Some("Closed"), Some("Won"))
    );
    // At rest afterwards, still won.
    sync_referral(&h.engine, &inbound(&rid)).await.unwrap();
    sync_opportunity(&h.engine, &outbound(&opp)).await.unwrap();
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert_eq!(row["statecode"], json!(1));
}
