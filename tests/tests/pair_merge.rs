//! The field-level merge of one pair (issue 18): a seller's edit made between our read and
//! our write survives; edits of different fields on both sides both survive; the same field
//! changed on both sides goes to the mapping's winner, with an audit entry; a seller's close
//! survives a Partner Center edit; our own write's echo costs one read; and a link from
//! before pair sync (no base) is merged against what both sides agree on.

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::{AuditEntry, AuditQuery, Direction, Outcome};
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
use cosell::mapping::Mapping;
use cosell::partner_center::PatchOp;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use dataverse_standin::{Fault, FaultKind};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// The reconcile a Partner Center webhook asks for.
async fn from_referral(h: &Harness, rid: &str) -> Result<PairOutcome, SyncError> {
    let m = SyncMessage::for_referral(h.engine.store.as_ref(), rid, Origin::Referral, None)
        .await
        .expect("key the message");
    reconcile_pair(&h.engine, &m).await
}

/// The reconcile the CRM poller asks for.
async fn from_opportunity(h: &Harness, oid: &str) -> Result<PairOutcome, SyncError> {
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(oid, None)).await
}

/// A Microsoft referral reconciled into the CRM and brought to rest from both sides:
/// (referral id, opportunity id).
async fn pair(h: &Harness, name: &str) -> (String, String) {
    let created = h.pc.create_incoming_referral(name, "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let oid = match from_referral(h, &rid).await.unwrap() {
        PairOutcome::OpportunityCreated { opportunity_id, .. } => opportunity_id,
        other => panic!("{other:?}"),
    };
    settle(h, &rid, &oid).await;
    (rid, oid)
}

/// Reconciles from both sides until neither has anything left to write.
async fn settle(h: &Harness, rid: &str, oid: &str) {
    for _ in 0..6 {
        let o = from_opportunity(h, oid).await.expect("from the CRM");
        let r = from_referral(h, rid).await.expect("from Partner Center");
        if matches!(o, PairOutcome::Unchanged { .. }) && matches!(r, PairOutcome::Unchanged { .. })
        {
            return;
        }
    }
    panic!("the pair did not come to rest");
}

/// Changes the referral as Microsoft would.
async fn pc_edit(h: &Harness, rid: &str, ops: Vec<PatchOp>) {
    let current = h.engine.pc.get_referral(rid).await.unwrap();
    h.engine
        .pc
        .update_referral(rid, current.e_tag.as_deref().unwrap(), &ops)
        .await
        .expect("Partner Center edit");
}

/// Changes the opportunity as the seller would.
fn crm_edit(h: &Harness, oid: &str, changes: Value) {
    h.dv.user_update("opportunities", oid, obj(changes))
        .expect("CRM edit");
}

fn opp(h: &Harness, oid: &str) -> Value {
    h.dv.row("opportunities", oid).expect("opportunity row")
}

fn referral(h: &Harness, rid: &str) -> Value {
    h.pc.referral(rid).expect("referral")
}

async fn audit(h: &Harness, rid: &str) -> Vec<AuditEntry> {
    h.store
        .query_audit(&AuditQuery {
            referral_id: Some(rid.to_string()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

fn merges(trail: &[AuditEntry]) -> Vec<&AuditEntry> {
    trail.iter().filter(|e| e.action == "merge").collect()
}

fn name_of(row: &Value) -> String {
    cosell::mapping::strip_checkmark(row["name"].as_str().unwrap_or_default()).to_string()
}

/// Issue 18: the seller edits `estimatedvalue` between our read of the opportunity and our
/// write of Partner Center's new deal value to it.
///
/// How the race is produced: the Dataverse stand-in's `Delay` fault holds our PATCH at its
/// door (the request is counted first, then paused before the handler runs). The test waits
/// until that PATCH is counted, then saves the seller's edit straight into the stand-in's
/// rows, which gives the row a new etag. When the PATCH reaches the handler its `If-Match`
/// is stale: 412. The reconcile must then read both sides again and merge anew (both sides
/// changed the deal value: the mapping gives it to the CRM), never resend its old body.
#[tokio::test]
async fn a_seller_edit_between_our_read_and_our_write_survives_on_both_sides() {
    let h = Harness::start().await;
    let (rid, oid) = pair(&h, "Raced deal").await;
    pc_edit(
        &h,
        &rid,
        vec![PatchOp::replace("/details/dealValue", 60000)],
    )
    .await;

    h.dv.add_fault(Fault::new(FaultKind::Delay { millis: 1500 }, 1).on("PATCH", "opportunities("));
    h.dv.reset_request_counts();
    let engine = h.engine.clone();
    let m = SyncMessage::for_referral(h.engine.store.as_ref(), &rid, Origin::Referral, None)
        .await
        .unwrap();
    let task = tokio::spawn(async move { reconcile_pair(&engine, &m).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.dv.request_count("PATCH opportunities({id})") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reconcile never wrote"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        h.dv.pending_faults().is_empty(),
        "the PATCH is the one held"
    );
    crm_edit(&h, &oid, json!({"estimatedvalue": 77777.0}));
    let out = task.await.unwrap().expect("reconciled after the 412");
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");

    assert_eq!(opp(&h, &oid)["estimatedvalue"].as_f64(), Some(77777.0));
    assert_eq!(
        referral(&h, &rid)["details"]["dealValue"].as_f64(),
        Some(77777.0),
        "the seller's value reached Partner Center"
    );
    // The held PATCH was the only write to the row: the old body was never resent.
    assert_eq!(
        h.dv.request_count("PATCH opportunities({id})"),
        1,
        "{:?}",
        h.dv.request_counts()
    );
    let trail = audit(&h, &rid).await;
    let merge = merges(&trail);
    assert_eq!(merge.len(), 1, "{trail:?}");
    assert_eq!(merge[0].outcome, Outcome::Conflict);
    assert!(
        merge[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("CRM wins: details.dealValue"),
        "{merge:?}"
    );
    assert!(
        trail.iter().all(|e| e.outcome != Outcome::Failed),
        "{trail:?}"
    );
    let base = h
        .store
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .unwrap()
        .base
        .unwrap();
    assert_eq!(
        base.fields.get("details.dealValue").and_then(Value::as_f64),
        Some(77777.0)
    );
    // And at rest: nothing further from either side.
    assert!(matches!(
        from_opportunity(&h, &oid).await.unwrap(),
        PairOutcome::Unchanged { .. }
    ));
    assert_eq!(opp(&h, &oid)["estimatedvalue"].as_f64(), Some(77777.0));
}

#[tokio::test]
async fn both_sides_changing_different_fields_keeps_both_changes() {
    let h = Harness::start().await;
    for origin in [Origin::Referral, Origin::Opportunity] {
        let (rid, oid) = pair(&h, &format!("Two edits {origin:?}")).await;
        crm_edit(&h, &oid, json!({"description": "Seller's notes"}));
        pc_edit(
            &h,
            &rid,
            vec![PatchOp::replace("/details/dealValue", 64000)],
        )
        .await;
        let out = match origin {
            Origin::Referral => from_referral(&h, &rid).await,
            _ => from_opportunity(&h, &oid).await,
        }
        .unwrap();
        assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");

        let (row, r) = (opp(&h, &oid), referral(&h, &rid));
        assert_eq!(row["description"], json!("Seller's notes"), "{origin:?}");
        assert_eq!(r["details"]["notes"], json!("Seller's notes"), "{origin:?}");
        assert_eq!(row["estimatedvalue"].as_f64(), Some(64000.0), "{origin:?}");
        assert_eq!(
            r["details"]["dealValue"].as_f64(),
            Some(64000.0),
            "{origin:?}"
        );
        let trail = audit(&h, &rid).await;
        assert!(merges(&trail).is_empty(), "no conflict: {trail:?}");
        let crm = trail
            .iter()
            .find(|e| e.action == "update_opportunity")
            .expect("the CRM write's entry");
        assert!(crm.detail.as_deref().unwrap().contains("details.dealValue"));
        let pc = trail
            .iter()
            .find(|e| e.action == "update_referral")
            .expect("the referral write's entry");
        assert_eq!(pc.direction, Direction::Outbound);
        assert!(pc.detail.as_deref().unwrap().contains("details.notes"));
    }
}

/// The default rules: Partner Center wins the name, the CRM the deal value. A mapping that
/// gives the name to the CRM turns that winner round.
#[tokio::test]
async fn both_sides_changing_the_same_field_goes_to_the_rules_winner_with_an_audit_entry() {
    let custom = Mapping::from_toml_str(
        r#"
extends = "default"
[conflict.fields]
"name" = "crm"
"#,
    )
    .expect("mapping parses");
    for crm_wins_name in [false, true] {
        let mut h = Harness::start().await;
        if crm_wins_name {
            h.engine.mapping = Arc::new(custom.clone());
        }
        let (rid, oid) = pair(&h, "Contested").await;
        crm_edit(
            &h,
            &oid,
            json!({"name": "Seller's name", "estimatedvalue": 11111.0}),
        );
        pc_edit(
            &h,
            &rid,
            vec![
                PatchOp::replace("/name", "Microsoft's name"),
                PatchOp::replace("/details/dealValue", 22222),
            ],
        )
        .await;
        let out = from_opportunity(&h, &oid).await.unwrap();
        assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");

        let name = if crm_wins_name {
            "Seller's name"
        } else {
            "Microsoft's name"
        };
        let (row, r) = (opp(&h, &oid), referral(&h, &rid));
        assert_eq!(name_of(&row), name);
        assert_eq!(r["name"], json!(name));
        assert_eq!(row["estimatedvalue"].as_f64(), Some(11111.0));
        assert_eq!(r["details"]["dealValue"].as_f64(), Some(11111.0));

        let trail = audit(&h, &rid).await;
        let merge = merges(&trail);
        assert_eq!(merge.len(), 1, "{trail:?}");
        assert_eq!(merge[0].outcome, Outcome::Conflict);
        let detail = merge[0].detail.as_deref().unwrap();
        // "...; Partner Center wins: <fields>; CRM wins: <fields>", fields in mapping order.
        let winners = |side: &str| -> Vec<String> {
            let rest = detail.split(side).nth(1).unwrap_or_default();
            let list = rest.split(';').next().unwrap_or_default();
            let mut fields: Vec<String> = list.split(", ").map(|f| f.trim().to_string()).collect();
            fields.sort();
            fields
        };
        let (pc, crm) = if crm_wins_name {
            (vec!["(none)"], vec!["details.dealValue", "name"])
        } else {
            (vec!["name"], vec!["details.dealValue"])
        };
        assert_eq!(winners("Partner Center wins: "), pc, "{detail}");
        assert_eq!(winners("CRM wins: "), crm, "{detail}");
        // Settled: the next reconcile of either side is our echo, with no new entry.
        let entries = trail.len();
        assert!(matches!(
            from_referral(&h, &rid).await.unwrap(),
            PairOutcome::Unchanged { .. }
        ));
        assert!(matches!(
            from_opportunity(&h, &oid).await.unwrap(),
            PairOutcome::Unchanged { .. }
        ));
        assert_eq!(audit(&h, &rid).await.len(), entries);
    }
}

/// The seller wins the deal in the CRM while Microsoft edits the notes of the still-open
/// referral; whichever side's message comes first, the close survives.
#[tokio::test]
async fn a_sellers_close_survives_a_partner_center_edit_of_the_notes() {
    let h = Harness::start().await;
    for origin in [Origin::Referral, Origin::Opportunity] {
        let (rid, oid) = pair(&h, &format!("Closing {origin:?}")).await;
        crm_edit(&h, &oid, json!({"statecode": 1, "statuscode": 3}));
        pc_edit(
            &h,
            &rid,
            vec![PatchOp::replace("/details/notes", "Microsoft's notes")],
        )
        .await;
        match origin {
            Origin::Referral => from_referral(&h, &rid).await,
            _ => from_opportunity(&h, &oid).await,
        }
        .unwrap();
        settle(&h, &rid, &oid).await;

        let (row, r) = (opp(&h, &oid), referral(&h, &rid));
        assert_eq!(
            (row["statecode"].clone(), row["statuscode"].clone()),
            (json!(1), json!(3)),
            "{origin:?}: the opportunity is still won"
        );
        assert_eq!(
            (r["status"].clone(), r["substatus"].clone()),
            (json!("Closed"), json!("Won")),
            "{origin:?}: the referral is closed as won"
        );
        let trail = audit(&h, &rid).await;
        assert!(
            trail.iter().all(|e| !e.action.contains("reopen")),
            "{trail:?}"
        );
        assert!(trail.iter().any(|e| e.action == "close_won"), "{trail:?}");
    }
}

/// Requests other than token requests.
fn api_requests(counts: std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    counts
        .into_iter()
        .filter(|(k, _)| k != "POST token")
        .collect()
}

#[tokio::test]
async fn our_own_writes_echo_costs_one_read_no_write_and_no_audit_entry() {
    let h = Harness::start().await;
    let (rid, oid) = pair(&h, "Echoes").await;

    // Partner Center changed: the reconcile writes the opportunity; its change shows up in
    // the poller, whose message is our own echo.
    pc_edit(
        &h,
        &rid,
        vec![PatchOp::replace("/details/dealValue", 33000)],
    )
    .await;
    assert!(matches!(
        from_referral(&h, &rid).await.unwrap(),
        PairOutcome::Updated { .. }
    ));
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    let entries = audit(&h, &rid).await.len();
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let out = from_opportunity(&h, &oid).await.unwrap();
    assert_eq!(
        out,
        PairOutcome::Unchanged {
            referral_id: Some(rid.clone()),
            opportunity_id: oid.clone()
        }
    );
    assert_eq!(
        api_requests(h.dv.request_counts()),
        vec![("GET opportunities({id})".to_string(), 1)]
    );
    assert_eq!(api_requests(h.pc.request_counts()), vec![]);
    assert_eq!(audit(&h, &rid).await.len(), entries, "no audit entry");
    assert_eq!(
        h.store.get_link_by_referral(&rid).await.unwrap().unwrap(),
        link,
        "nothing stored"
    );

    // The seller changed: the reconcile writes the referral; its webhook is our echo.
    crm_edit(&h, &oid, json!({"description": "Seller's update"}));
    assert!(matches!(
        from_opportunity(&h, &oid).await.unwrap(),
        PairOutcome::Updated { .. }
    ));
    assert_eq!(
        referral(&h, &rid)["details"]["notes"],
        json!("Seller's update")
    );
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    let entries = audit(&h, &rid).await.len();
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let out = from_referral(&h, &rid).await.unwrap();
    assert!(matches!(out, PairOutcome::Unchanged { .. }), "{out:?}");
    assert_eq!(
        api_requests(h.pc.request_counts()),
        vec![("GET referrals/{id}".to_string(), 1)]
    );
    assert_eq!(api_requests(h.dv.request_counts()), vec![]);
    assert_eq!(audit(&h, &rid).await.len(), entries, "no audit entry");
    assert_eq!(
        h.store.get_link_by_referral(&rid).await.unwrap().unwrap(),
        link,
        "nothing stored"
    );
}

/// A link written before pair sync has no base. Its first reconcile takes what both sides
/// agree on as the base, and settles what they differ on by the conflict rules (here the
/// CRM's deal value, Partner Center's name); from then on it is an ordinary three-way merge.
#[tokio::test]
async fn a_link_from_an_earlier_version_takes_agreeing_values_as_its_base() {
    let h = Harness::start().await;
    let (rid, oid) = pair(&h, "Legacy").await;
    let mut link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    link.base = None;
    h.store.put_link(&link, Some(link.version)).await.unwrap();
    assert!(h
        .store
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .unwrap()
        .base
        .is_none());
    crm_edit(
        &h,
        &oid,
        json!({"estimatedvalue": 4321.0, "name": "Seller renamed"}),
    );

    let out = from_opportunity(&h, &oid).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    let (row, r) = (opp(&h, &oid), referral(&h, &rid));
    assert_eq!(
        r["details"]["dealValue"].as_f64(),
        Some(4321.0),
        "the CRM's rule"
    );
    assert_eq!(row["estimatedvalue"].as_f64(), Some(4321.0));
    assert_eq!(name_of(&row), "Legacy", "Partner Center's rule");
    assert_eq!(r["name"], json!("Legacy"));
    assert_eq!(
        row["description"], r["details"]["notes"],
        "agreed: untouched"
    );
    let base = h
        .store
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .unwrap()
        .base
        .expect("the first reconcile stores a base");
    assert_eq!(base.fields.get("name"), Some(&json!("Legacy")));
    assert_eq!(
        base.fields.get("details.dealValue").and_then(Value::as_f64),
        Some(4321.0)
    );
    assert_eq!(
        base.fields.get("details.notes"),
        Some(&r["details"]["notes"])
    );

    // With a base, a Partner Center edit of the notes is one side's change and goes to the
    // CRM (without one, the CRM's rule for notes would have undone it).
    pc_edit(
        &h,
        &rid,
        vec![PatchOp::replace("/details/notes", "Microsoft's notes")],
    )
    .await;
    from_opportunity(&h, &oid).await.unwrap();
    from_referral(&h, &rid).await.unwrap();
    assert_eq!(opp(&h, &oid)["description"], json!("Microsoft's notes"));
    assert_eq!(
        referral(&h, &rid)["details"]["notes"],
        json!("Microsoft's notes")
    );
}
