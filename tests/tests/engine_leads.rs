//! Issue 24, leads (first part): a referral is classified as the docs do (Marketplace lead,
//! qualified lead, co-sell opportunity), and `[lead] handling` says what becomes of a lead:
//! synced as an opportunity (the default) or skipped with the reason in the audit trail.

use std::sync::Arc;

use cosell::audit::AuditQuery;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::mapping::lead::LeadHandling;
use cosell::store::Store;
use cosell_tests::harness::Harness;

async fn webhook(h: &Harness, engine: &cosell::engine::Engine, rid: &str) -> PairOutcome {
    let m = SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .unwrap();
    reconcile_pair(engine, &m).await.unwrap()
}

#[tokio::test]
async fn leads_are_skipped_when_the_mapping_says_so() {
    let h = Harness::start().await;
    let mut engine = h.engine.clone();
    let mut mapping = (*engine.mapping).clone();
    mapping.lead.handling = LeadHandling::Skip;
    engine.mapping = Arc::new(mapping);

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

    // A co-sell opportunity is synced as ever.
    let co_sell = h.pc.create_incoming_referral("Co-sell", "Contoso Ltd");
    let out = webhook(&h, &engine, co_sell["id"].as_str().unwrap()).await;
    assert!(
        matches!(out, PairOutcome::OpportunityCreated { .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn by_default_a_lead_lands_as_an_opportunity() {
    let h = Harness::start().await;
    assert_eq!(h.engine.mapping.lead.handling, LeadHandling::Opportunity);
    let lead = h.pc.create_incoming_lead("Lead", "Tailspin", "Direct");
    let out = webhook(&h, &h.engine, lead["id"].as_str().unwrap()).await;
    assert!(
        matches!(out, PairOutcome::OpportunityCreated { .. }),
        "{out:?}"
    );
}
