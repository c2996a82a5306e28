//! Outbound sync (Dynamics 365 -> Partner Center) against both stand-ins and the embedded
//! store: create, echo, update, skip, accept, decline, won, lost, conflict, 412, a
//! permanent rejection and crash recovery. Each test checks both services and the trail.

use cosell::audit::{AuditEntry, AuditQuery, Outcome};
use cosell::crosswalk::Link;
use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::outbound::{sync_opportunity, OutboundOutcome};
use cosell::engine::referral_context::referral_hash;
use cosell::engine::{InboundMessage, InboundTrigger, OutboundMessage, SyncError};
use cosell::partner_center::{PatchOp, Referral};
use cosell::store::Store;
use cosell_tests::harness::Harness;
use partner_center_standin::{Fault, FaultKind};
use serde_json::{json, Map, Value};

const ACCEPT: i64 = 100000000;
const DECLINE: i64 = 100000001;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn message(id: &str) -> OutboundMessage {
    OutboundMessage {
        opportunity_id: id.to_string(),
        modified_on: None,
        deleted: false,
    }
}

async fn sync(h: &Harness, id: &str) -> Result<OutboundOutcome, SyncError> {
    sync_opportunity(&h.engine, &message(id)).await
}

/// A customer account and contact, as a seller would have them in the CRM.
fn customer(h: &Harness) -> (String, String) {
    let account =
        h.dv.user_insert(
            "accounts",
            obj(json!({
                "name": "Fabrikam Inc",
                "address1_city": "Redmond",
                "address1_postalcode": "98052",
                "address1_country": "USA",
            })),
        )
        .expect("account");
    let contact =
        h.dv.user_insert(
            "contacts",
            obj(json!({
                "firstname": "Ada",
                "lastname": "Buyer",
                "emailaddress1": "ada@fabrikam.example",
                "_parentcustomerid_value": account,
            })),
        )
        .expect("contact");
    (account, contact)
}

/// A flagged (or not) open opportunity for Fabrikam with every outbound field set.
fn opportunity(h: &Harness, flagged: bool) -> String {
    let (account, contact) = customer(h);
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam field service",
        "estimatedvalue": 50000.0,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout to 40 technicians",
        "statecode": 0,
        "statuscode": 1,
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(flagged));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}

fn opp_row(h: &Harness, id: &str) -> Value {
    h.dv.row("opportunities", id).expect("opportunity row")
}

fn referral(h: &Harness, id: &str) -> Value {
    h.pc.referral(id).expect("referral in Partner Center")
}

/// Requests that change something in Partner Center.
fn pc_writes(h: &Harness) -> Vec<(String, String)> {
    h.pc.requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.contains("/referrals"))
        .map(|r| (r.method, r.path))
        .collect()
}

async fn link(h: &Harness, opportunity_id: &str) -> Option<Link> {
    h.store
        .get_link_by_opportunity(opportunity_id)
        .await
        .expect("store")
}

async fn trail(h: &Harness, opportunity_id: &str) -> Vec<AuditEntry> {
    audit_where(h, None, Some(opportunity_id)).await
}

async fn audit_where(
    h: &Harness,
    referral_id: Option<&str>,
    opportunity_id: Option<&str>,
) -> Vec<AuditEntry> {
    let query = AuditQuery {
        referral_id: referral_id.map(str::to_string),
        opportunity_id: opportunity_id.map(str::to_string),
        ..AuditQuery::default()
    };
    h.store.query_audit(&query).await.expect("audit")
}

fn has(trail: &[AuditEntry], action: &str, outcome: Outcome) -> bool {
    trail
        .iter()
        .any(|e| e.action == action && e.outcome == outcome)
}

fn user_edit(h: &Harness, id: &str, changes: Value) {
    h.dv.user_update("opportunities", id, obj(changes))
        .expect("user edit");
}

/// A flagged opportunity synced once: its referral id.
async fn created(h: &Harness) -> (String, String) {
    let opp = opportunity(h, true);
    match sync(h, &opp).await.expect("create") {
        OutboundOutcome::Created { referral_id } => (opp, referral_id),
        other => panic!("expected Created, got {other:?}"),
    }
}

fn amount(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not an amount: {other}"),
    }
}

#[tokio::test]
async fn a_flagged_opportunity_creates_one_co_sell_referral_and_links_it() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;

    let r = referral(&h, &rid);
    assert_eq!(r["name"], "Fabrikam field service");
    assert_eq!(r["type"], "Shared");
    assert_eq!(r["direction"], "Outgoing");
    assert_eq!(r["externalReferenceId"], opp.as_str());
    assert_eq!(amount(&r["details"]["dealValue"]), 50000.0);
    assert!(r["details"]["closingDateTime"]
        .as_str()
        .unwrap()
        .starts_with("2026-09-30"));
    assert_eq!(r["details"]["notes"], "Rollout to 40 technicians");
    assert_eq!(
        r["details"]["requirements"]["solutions"][0]["id"],
        "Dynamics365forFieldService"
    );
    assert_eq!(r["inviteContext"]["reason"], "Demo or proof of concept");
    assert_eq!(r["customerProfile"]["name"], "Fabrikam Inc");
    assert_eq!(r["customerProfile"]["address"]["country"], "US");
    assert_eq!(
        r["customerProfile"]["team"][0]["email"],
        "ada@fabrikam.example"
    );
    assert_eq!(h.pc.referrals().len(), 1);

    let row = opp_row(&h, &opp);
    let c = &h.engine.columns;
    assert_eq!(row[&c.referral_id], rid.as_str());
    assert!(row[&c.referral_link].as_str().unwrap().ends_with(&rid));
    assert_eq!(row["name"], "Fabrikam field service ✔");

    let l = link(&h, &opp).await.expect("link recorded");
    assert_eq!(l.referral_id, rid);
    assert_eq!(l.pc_etag.as_deref(), r["eTag"].as_str());
    assert_eq!(l.dv_etag.as_deref(), row["@odata.etag"].as_str());
    let current: Referral = h.engine.pc.get_referral(&rid).await.unwrap();
    assert_eq!(
        l.pc_hash,
        Some(referral_hash(&h.engine, &current).await.unwrap()),
        "pc_hash is the inbound fingerprint of the referral as created"
    );
    assert!(has(
        &trail(&h, &opp).await,
        "create_referral",
        Outcome::Success
    ));
}

#[tokio::test]
async fn the_same_message_again_is_unchanged_and_writes_nothing() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let writes = pc_writes(&h).len();
    let row_before = opp_row(&h, &opp);

    // The write-back itself is a change the poller sees: it must read as our own echo.
    let again = sync(&h, &opp).await.unwrap();
    assert_eq!(
        again,
        OutboundOutcome::Unchanged {
            referral_id: Some(rid.clone())
        }
    );
    assert_eq!(pc_writes(&h).len(), writes, "no Partner Center write");
    assert_eq!(opp_row(&h, &opp)["@odata.etag"], row_before["@odata.etag"]);

    // An edit to an unmapped column is no change either.
    user_edit(&h, &opp, json!({"actualclosedate": "2026-01-01"}));
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
    assert_eq!(pc_writes(&h).len(), writes);
}

#[tokio::test]
async fn deal_value_and_close_date_edits_patch_the_referral() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let etag_before = referral(&h, &rid)["eTag"].clone();
    let writes = pc_writes(&h).len();

    user_edit(
        &h,
        &opp,
        json!({"estimatedvalue": 72500.5, "estimatedclosedate": "2026-12-15"}),
    );
    let out = sync(&h, &opp).await.unwrap();
    assert_eq!(
        out,
        OutboundOutcome::Updated {
            referral_id: rid.clone()
        }
    );
    let r = referral(&h, &rid);
    assert_eq!(amount(&r["details"]["dealValue"]), 72500.5);
    assert!(r["details"]["closingDateTime"]
        .as_str()
        .unwrap()
        .starts_with("2026-12-15"));
    assert_eq!(r["name"], "Fabrikam field service", "checkmark never sent");
    assert_ne!(r["eTag"], etag_before);
    let new_writes = &pc_writes(&h)[writes..];
    assert_eq!(new_writes.len(), 1, "{new_writes:?}");
    assert_eq!(new_writes[0].0, "PATCH");

    let l = link(&h, &opp).await.unwrap();
    assert_eq!(l.pc_etag.as_deref(), r["eTag"].as_str());
    let t = trail(&h, &opp).await;
    let update = t
        .iter()
        .find(|e| e.action == "update_referral" && e.outcome == Outcome::Success)
        .expect("update audited");
    let detail = update.detail.as_deref().unwrap();
    assert!(
        detail.contains("details.dealValue") && detail.contains("details.closingDateTime"),
        "{detail}"
    );
    // And the echo of that sync is quiet.
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
}

#[tokio::test]
async fn an_unflagged_opportunity_is_skipped_without_a_referral() {
    let h = Harness::start().await;
    let opp = opportunity(&h, false);
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Skipped { .. }), "{out:?}");
    assert!(h.pc.referrals().is_empty());
    assert!(pc_writes(&h).is_empty());
    assert!(link(&h, &opp).await.is_none());
    assert!(
        trail(&h, &opp).await.is_empty(),
        "no audit for never-synced rows"
    );
    assert_eq!(opp_row(&h, &opp)["name"], "Fabrikam field service");
}

#[tokio::test]
async fn a_deleted_or_vanished_linked_opportunity_leaves_the_referral_alone() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let before = referral(&h, &rid);
    let deleted = OutboundMessage {
        deleted: true,
        ..message(&opp)
    };
    let out = sync_opportunity(&h.engine, &deleted).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Skipped { .. }));
    assert!(h.dv.user_delete("opportunities", &opp));
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Skipped { .. }));
    assert_eq!(referral(&h, &rid), before);
    let skips = trail(&h, &opp)
        .await
        .into_iter()
        .filter(|e| e.action == "skip" && e.outcome == Outcome::Skipped)
        .count();
    assert_eq!(skips, 2);
}

/// An incoming Microsoft referral already synced into an opportunity (as the inbound
/// direction leaves it): the opportunity and a link with both fingerprints.
async fn linked_incoming(h: &Harness) -> (String, String) {
    let incoming = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = incoming["id"].as_str().unwrap().to_string();
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Contoso ERP ✔",
        "estimatedvalue": 25000.0,
        "description": "Customer asked Microsoft for a partner",
        "statecode": 0,
        "statuscode": 1,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.referral_id.clone(), json!(rid));
    let opp = h.dv.user_insert("opportunities", row).unwrap();
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    let synced_opp = h.engine.dv.get_opportunity(&opp).await.unwrap();
    let mut l = Link::new(&rid, &opp);
    l.pc_hash = Some(referral_hash(&h.engine, &current).await.unwrap());
    l.dv_hash = Some(
        h.engine
            .mapping
            .outbound_hash(&synced_opp, &h.engine.columns),
    );
    l.pc_etag = current.e_tag.clone();
    h.store.put_link(&l, None).await.unwrap();
    (opp, rid)
}

#[tokio::test]
async fn the_seller_accepts_a_microsoft_referral_once() {
    let h = Harness::start().await;
    let (opp, rid) = linked_incoming(&h).await;
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
    assert_eq!(referral(&h, &rid)["status"], "New");

    let decision = h.engine.columns.decision.clone();
    user_edit(&h, &opp, json!({ decision: ACCEPT }));
    let out = sync(&h, &opp).await.unwrap();
    assert_eq!(
        out,
        OutboundOutcome::Updated {
            referral_id: rid.clone()
        }
    );
    let r = referral(&h, &rid);
    assert_eq!(
        (r["status"].as_str(), r["substatus"].as_str()),
        (Some("Active"), Some("Accepted"))
    );
    assert!(has(&trail(&h, &opp).await, "accept", Outcome::Success));

    // A later edit does not accept again.
    let patches = pc_writes(&h).len();
    user_edit(&h, &opp, json!({"description": "Kick-off booked"}));
    sync(&h, &opp).await.unwrap();
    let new_writes = &pc_writes(&h)[patches..];
    assert_eq!(new_writes.len(), 1, "only the notes patch: {new_writes:?}");
    let r = referral(&h, &rid);
    assert_eq!(r["details"]["notes"], "Kick-off booked");
    let accepts = trail(&h, &opp)
        .await
        .into_iter()
        .filter(|e| e.action == "accept")
        .count();
    assert_eq!(accepts, 1);
}

#[tokio::test]
async fn the_seller_declines_a_microsoft_referral() {
    let h = Harness::start().await;
    let (opp, rid) = linked_incoming(&h).await;
    let decision = h.engine.columns.decision.clone();
    user_edit(&h, &opp, json!({ decision: DECLINE }));
    // The decline's inbound pass runs inside this outbound sync, under the pair's lease: it
    // must not wait for that lease itself.
    sync(&h, &opp).await.unwrap();
    let r = referral(&h, &rid);
    assert_eq!(r["status"], "Closed");
    assert_eq!(r["substatus"], "Declined");
    assert!(r["statusReason"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(has(&trail(&h, &opp).await, "decline", Outcome::Success));
    // Closed/Declined is a lost, canceled opportunity under the default mapping.
    let row = opp_row(&h, &opp);
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(2), json!(4))
    );
    // And the next look finds nothing left to do on either side.
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
}

#[tokio::test]
async fn closing_the_opportunity_won_or_lost_closes_the_referral() {
    let h = Harness::start().await;
    let (won_opp, won_rid) = created(&h).await;
    user_edit(&h, &won_opp, json!({"statecode": 1, "statuscode": 3}));
    sync(&h, &won_opp).await.unwrap();
    let r = referral(&h, &won_rid);
    assert_eq!(
        (r["status"].as_str(), r["substatus"].as_str()),
        (Some("Closed"), Some("Won"))
    );
    assert!(has(
        &trail(&h, &won_opp).await,
        "close_won",
        Outcome::Success
    ));

    let (lost_opp, lost_rid) = created(&h).await;
    user_edit(&h, &lost_opp, json!({"statecode": 2, "statuscode": 5}));
    sync(&h, &lost_opp).await.unwrap();
    let r = referral(&h, &lost_rid);
    assert_eq!(
        (r["status"].as_str(), r["substatus"].as_str()),
        (Some("Closed"), Some("Lost"))
    );
    assert_eq!(r["statusReason"], "Out-sold");
    assert!(has(
        &trail(&h, &lost_opp).await,
        "close_lost",
        Outcome::Success
    ));

    // Once closed, a repeat is a no-op, even when the link is lost track of.
    let writes = pc_writes(&h).len();
    let mut l = link(&h, &lost_opp).await.unwrap();
    let v = l.version;
    l.dv_hash = None;
    h.store.put_link(&l, Some(v)).await.unwrap();
    sync(&h, &lost_opp).await.unwrap();
    assert_eq!(pc_writes(&h).len(), writes, "no second close");
}

#[tokio::test]
async fn when_both_sides_changed_each_field_goes_to_its_mapped_winner() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let old_pc_hash = link(&h, &opp).await.unwrap().pc_hash;

    // Microsoft renames the referral and changes its value in Partner Center...
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[
                PatchOp::replace("/name", "Fabrikam FS (Microsoft)"),
                PatchOp::replace("/details/dealValue", 11111.0),
            ],
        )
        .await
        .unwrap();
    // ...while the seller renames the opportunity and changes its value in the CRM.
    user_edit(
        &h,
        &opp,
        json!({"name": "Fabrikam FS (seller) ✔", "estimatedvalue": 99999.0}),
    );

    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Updated { .. }), "{out:?}");
    let r = referral(&h, &rid);
    assert_eq!(
        r["name"], "Fabrikam FS (Microsoft)",
        "Partner Center wins the name"
    );
    assert_eq!(
        amount(&r["details"]["dealValue"]),
        99999.0,
        "the CRM wins the deal value"
    );

    let t = trail(&h, &opp).await;
    let conflict = t
        .iter()
        .find(|e| e.outcome == Outcome::Conflict)
        .expect("conflict audited");
    let detail = conflict.detail.as_deref().unwrap();
    assert!(detail.contains("Partner Center wins: name"), "{detail}");
    assert!(detail.contains("details.dealValue"), "{detail}");
    // Partner Center's rename has not reached the CRM yet: the inbound direction must still
    // see the referral as changed, and then brings it over.
    let l = link(&h, &opp).await.unwrap();
    assert_eq!(l.pc_hash, old_pc_hash);
    assert_ne!(l.pc_etag.as_deref(), r["eTag"].as_str());
    let inbound = sync_referral(&h.engine, &inbound_message(&rid))
        .await
        .unwrap();
    assert!(
        matches!(inbound, InboundOutcome::Updated { .. }),
        "{inbound:?}"
    );
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam FS (Microsoft) ✔");
    assert_eq!(row["estimatedvalue"].as_f64(), Some(99999.0));
    // Both directions now agree: neither has anything left to send.
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Unchanged { .. }
    ));
    assert!(matches!(
        sync_referral(&h.engine, &inbound_message(&rid))
            .await
            .unwrap(),
        InboundOutcome::Unchanged { .. }
    ));
}

fn inbound_message(referral_id: &str) -> InboundMessage {
    InboundMessage {
        referral_id: referral_id.to_string(),
        trigger: InboundTrigger::Manual,
        changed_at: None,
    }
}

/// The inbound sync of `rid` finds nothing new and leaves the opportunity untouched.
async fn inbound_echo_writes_nothing(h: &Harness, rid: &str, opp: &str) {
    let etag = opp_row(h, opp)["@odata.etag"].clone();
    let out = sync_referral(&h.engine, &inbound_message(rid))
        .await
        .unwrap();
    assert!(matches!(out, InboundOutcome::Unchanged { .. }), "{out:?}");
    assert_eq!(opp_row(h, opp)["@odata.etag"], etag, "no CRM write");
}

#[tokio::test]
async fn the_inbound_direction_sees_a_created_referral_as_its_echo() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    inbound_echo_writes_nothing(&h, &rid, &opp).await;

    user_edit(&h, &opp, json!({"description": "Scope grew"}));
    sync(&h, &opp).await.unwrap();
    let out = sync_referral(&h.engine, &inbound_message(&rid))
        .await
        .unwrap();
    assert!(matches!(out, InboundOutcome::Unchanged { .. }), "{out:?}");
}

#[tokio::test]
async fn a_412_from_partner_center_is_reread_and_converges() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    user_edit(&h, &opp, json!({"estimatedvalue": 61000.0}));
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 412 }, 1)
            .on("PATCH", "/v1.0/engagements/referrals/"),
    );
    let writes = pc_writes(&h).len();
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Updated { .. }), "{out:?}");
    assert_eq!(amount(&referral(&h, &rid)["details"]["dealValue"]), 61000.0);
    let patches = pc_writes(&h)[writes..]
        .iter()
        .filter(|(m, _)| m == "PATCH")
        .count();
    assert_eq!(patches, 2, "the refused PATCH and the one after re-reading");
    // Nobody else changed the referral, so the link holds it as synced now.
    let l = link(&h, &opp).await.unwrap();
    assert_eq!(l.pc_etag.as_deref(), referral(&h, &rid)["eTag"].as_str());
}

#[tokio::test]
async fn a_referral_that_keeps_changing_is_retried_later() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    user_edit(&h, &opp, json!({"estimatedvalue": 61000.0}));
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 412 }, 10)
            .on("PATCH", "/v1.0/engagements/referrals/"),
    );
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(matches!(err, SyncError::Retry { .. }), "{err:?}");
    assert_eq!(amount(&referral(&h, &rid)["details"]["dealValue"]), 50000.0);
    h.pc.clear_faults();
    sync(&h, &opp).await.unwrap();
    assert_eq!(amount(&referral(&h, &rid)["details"]["dealValue"]), 61000.0);
}

#[tokio::test]
async fn a_rejected_referral_shows_the_error_on_the_opportunity() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 400 }, 1).on("POST", "/v1.0/engagements/referrals"),
    );
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(h.pc.referrals().is_empty());
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam field service ✘");
    let audit = row[&h.engine.columns.audit]
        .as_str()
        .expect("audit column set");
    assert!(audit.contains("injected failure"), "{audit}");
    let t = trail(&h, &opp).await;
    let failed = t
        .iter()
        .find(|e| e.outcome == Outcome::Failed)
        .expect("failure audited");
    assert!(failed.error.as_deref().unwrap().contains("400"));
    assert!(link(&h, &opp).await.is_none());

    // Once Partner Center takes it, the row shows success again.
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, OutboundOutcome::Created { .. }), "{out:?}");
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam field service ✔");
    assert!(row.get(&h.engine.columns.audit).is_none_or(Value::is_null));
}

#[tokio::test]
async fn an_opportunity_without_a_customer_contact_cannot_be_co_sold() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    user_edit(&h, &opp, json!({"_parentcontactid_value": null}));
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(pc_writes(&h).is_empty());
    let audit = opp_row(&h, &opp)[&h.engine.columns.audit].clone();
    assert!(audit.as_str().unwrap().contains("contact"), "{audit}");
}

/// A referral created for the opportunity by a run that stopped before writing back.
async fn orphan(h: &Harness, opp: &str) -> Referral {
    let row = h.engine.dv.get_opportunity(opp).await.unwrap();
    let account = h
        .engine
        .dv
        .get_account(row.parentaccountid.as_deref().unwrap())
        .await
        .unwrap();
    let contact = h
        .engine
        .dv
        .get_contact(row.parentcontactid.as_deref().unwrap())
        .await
        .unwrap();
    let mut new = h
        .engine
        .mapping
        .outbound_create(&row, Some(&account), Some(&contact), &h.engine.columns)
        .unwrap();
    new.external_reference_id = Some(opp.to_string());
    h.engine.pc.create_referral(&new).await.unwrap()
}

#[tokio::test]
async fn an_opportunity_naming_its_referral_is_adopted_not_duplicated() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let existing = orphan(&h, &opp).await;
    let rid = existing.id.clone().unwrap();
    let col = h.engine.columns.referral_id.clone();
    user_edit(&h, &opp, json!({ col: rid }));

    let out = sync(&h, &opp).await.unwrap();
    assert!(!matches!(out, OutboundOutcome::Created { .. }), "{out:?}");
    assert_eq!(h.pc.referrals().len(), 1, "still exactly one referral");
    assert_eq!(link(&h, &opp).await.unwrap().referral_id, rid);
    let row = opp_row(&h, &opp);
    assert!(row[&h.engine.columns.referral_link]
        .as_str()
        .unwrap()
        .ends_with(&rid));
    assert_eq!(row["name"], "Fabrikam field service ✔");
    assert!(has(
        &trail(&h, &opp).await,
        "adopt_referral",
        Outcome::Success
    ));
}

#[tokio::test]
async fn a_referral_created_before_a_crash_is_found_by_its_external_reference() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    // Another opportunity's referral must not be taken.
    let other = opportunity(&h, true);
    orphan(&h, &other).await;
    let existing = orphan(&h, &opp).await;
    let rid = existing.id.clone().unwrap();

    let out = sync(&h, &opp).await.unwrap();
    assert!(!matches!(out, OutboundOutcome::Created { .. }), "{out:?}");
    assert_eq!(h.pc.referrals().len(), 2, "no third referral");
    assert_eq!(
        opp_row(&h, &opp)[&h.engine.columns.referral_id],
        rid.as_str()
    );
    assert_eq!(link(&h, &opp).await.unwrap().referral_id, rid);
}

async fn referral_trail(h: &Harness, referral_id: &str) -> Vec<AuditEntry> {
    audit_where(h, Some(referral_id), None).await
}

/// The echo of our own create: Partner Center's `referral-created` webhook can arrive while
/// the outbound sync that made the referral has not written the id back nor recorded the
/// link. The inbound sync must wait for it, not create a second opportunity.
#[tokio::test]
async fn the_webhook_of_a_referral_still_being_created_waits_for_its_link() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let opportunities = h.dv.rows("opportunities").len();
    // The outbound sync is at work: its lease is held and the referral exists.
    let in_flight = cosell::engine::claim::take(
        h.store.as_ref(),
        &cosell::engine::claim::outbound(&opp),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let rid = orphan(&h, &opp).await.id.unwrap();

    let err = sync_referral(&h.engine, &inbound_message(&rid))
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Retry { .. }), "{err:?}");
    assert_eq!(
        h.dv.rows("opportunities").len(),
        opportunities,
        "no second row"
    );
    assert!(link(&h, &opp).await.is_none());
    assert!(
        referral_trail(&h, &rid).await.is_empty(),
        "a wait is no failure"
    );

    // The outbound sync ends (here: its retry adopts the referral by its external
    // reference); the webhook's retry then sees the link and leaves the row alone.
    in_flight.release(h.store.as_ref()).await;
    let out = sync(&h, &opp).await.unwrap();
    assert!(!matches!(out, OutboundOutcome::Created { .. }), "{out:?}");
    inbound_echo_writes_nothing(&h, &rid, &opp).await;
    assert_eq!(h.dv.rows("opportunities").len(), opportunities);
    assert_eq!(h.pc.referrals().len(), 1);
}

/// An outbound sync that stopped after creating the referral (no write-back, no link): the
/// referral's webhook adopts the opportunity it was made from, and the outbound direction
/// then finds the pair linked.
#[tokio::test]
async fn a_referral_made_from_an_unlinked_opportunity_is_adopted_by_the_inbound_direction() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let opportunities = h.dv.rows("opportunities").len();
    let rid = orphan(&h, &opp).await.id.unwrap();

    let out = sync_referral(&h.engine, &inbound_message(&rid))
        .await
        .unwrap();
    assert_eq!(
        out,
        InboundOutcome::Updated {
            opportunity_id: opp.clone()
        }
    );
    assert_eq!(
        h.dv.rows("opportunities").len(),
        opportunities,
        "no second row"
    );
    assert_eq!(link(&h, &opp).await.unwrap().referral_id, rid);
    assert_eq!(
        opp_row(&h, &opp)[&h.engine.columns.referral_id],
        rid.as_str()
    );
    let entries = referral_trail(&h, &rid).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action.starts_with("adopt_opportunity") && e.outcome == Outcome::Success),
        "{entries:?}"
    );
    // The outbound lease taken on the way is free again.
    let free = cosell::engine::claim::take(
        h.store.as_ref(),
        &cosell::engine::claim::outbound(&opp),
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("the outbound lease is free");
    free.release(h.store.as_ref()).await;

    assert!(!matches!(
        sync(&h, &opp).await.unwrap(),
        OutboundOutcome::Created { .. }
    ));
    assert_eq!(h.pc.referrals().len(), 1, "still one referral");
}

/// Another system's reference in `externalReferenceId` (not a CRM row id) changes nothing.
#[tokio::test]
async fn a_foreign_external_reference_gets_an_opportunity_of_its_own() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let mut r = orphan(&h, &opp).await;
    let rid = r.id.clone().unwrap();
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    r = h
        .engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace("/externalReferenceId", "SF-0061234")],
        )
        .await
        .unwrap();
    assert_eq!(r.external_reference_id.as_deref(), Some("SF-0061234"));
    match sync_referral(&h.engine, &inbound_message(&rid))
        .await
        .unwrap()
    {
        InboundOutcome::Created { opportunity_id } => assert_ne!(opportunity_id, opp),
        other => panic!("{other:?}"),
    }
}
