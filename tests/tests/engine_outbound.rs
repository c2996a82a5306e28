//! The pair reconcile driven from the CRM side (Dynamics 365 -> Partner Center) against both
//! stand-ins and the embedded store: create, echo, update, skip, accept, decline, won, lost,
//! conflict, 412, a permanent rejection and crash recovery. Each test checks both services
//! and the trail.

use cosell::audit::{AuditEntry, AuditQuery, Outcome};
use cosell::crosswalk::Link;
use cosell::engine::pair::{key, REFUSED_STATE_PREFIX};
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
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

/// The poller's message for the opportunity.
async fn sync(h: &Harness, id: &str) -> Result<PairOutcome, SyncError> {
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(id, None)).await
}

/// A Partner Center webhook's message for the referral.
async fn webhook(h: &Harness, rid: &str) -> Result<PairOutcome, SyncError> {
    let m = SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .expect("store");
    reconcile_pair(&h.engine, &m).await
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
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
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

/// Dataverse API requests so far, token requests left out.
fn dv_requests(h: &Harness) -> u64 {
    h.dv.total_requests() - h.dv.request_count("POST token")
}

fn pc_requests(h: &Harness) -> usize {
    h.pc.requests()
        .into_iter()
        .filter(|r| r.path.contains("/referrals"))
        .count()
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

/// A flagged opportunity reconciled once: (opportunity id, referral id).
async fn created(h: &Harness) -> (String, String) {
    let opp = opportunity(h, true);
    match sync(h, &opp).await.expect("create") {
        PairOutcome::ReferralCreated {
            referral_id,
            opportunity_id,
        } => {
            assert_eq!(opportunity_id, opp);
            (opp, referral_id)
        }
        other => panic!("expected ReferralCreated, got {other:?}"),
    }
}

fn amount(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not an amount: {other}"),
    }
}

fn unchanged(rid: &str, opp: &str) -> PairOutcome {
    PairOutcome::Unchanged {
        referral_id: Some(rid.to_string()),
        opportunity_id: opp.to_string(),
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
    // The documented create: currency, no undocumented target type or invite field.
    assert_eq!(r["details"]["currency"], "USD");
    assert_eq!(r["target"], json!([]));
    assert_eq!(
        r["consent"]["consentToShareReferralWithMicrosoftSellers"],
        true
    );
    assert!(r.get("inviteContext").is_none(), "{r}");
    assert_eq!(r["customerProfile"]["name"], "Fabrikam Inc");
    assert_eq!(r["customerProfile"]["address"]["country"], "US");
    assert_eq!(
        r["customerProfile"]["team"][0]["email"],
        "ada@fabrikam.example"
    );
    assert_eq!(h.pc.partner_referrals().len(), 1);
    // A co-sell (help asked): the second shared-referral step made the connected referral
    // for Microsoft in the same engagement, carrying the help asked.
    let engagement = r["engagementId"].as_str().unwrap();
    let for_ms = h.pc.referrals_for_microsoft(engagement);
    assert_eq!(for_ms.len(), 1, "{for_ms:#?}");
    assert_eq!(
        for_ms[0]["target"],
        json!([{"type": "BusinessProfileLocation", "id": "msft"}])
    );
    assert_eq!(for_ms[0]["type"], "Shared");
    assert_eq!(for_ms[0]["externalReferenceId"], opp.as_str());
    assert_eq!(
        for_ms[0]["inviteContext"]["notes"],
        "Help needed from Microsoft: Demo or proof of concept"
    );
    assert_eq!(h.pc.referrals().len(), 2);
    // Two logical creates, each with one request id derived from the pair key.
    let posts: Vec<_> =
        h.pc.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.contains("/referrals"))
            .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(
        posts[0].request_id.as_deref(),
        Some(key::create_request_id(&opp).as_str())
    );
    assert_eq!(
        posts[1].request_id.as_deref(),
        Some(key::connect_request_id(&opp).as_str())
    );

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
    let base = l.base.expect("the base is stored with the link");
    assert_eq!(
        base.fields,
        h.engine.mapping.referral_values(&current),
        "the base holds the referral's mapped values as created"
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
    let entries = trail(&h, &opp).await.len();

    // The write-back itself is a change the poller sees: it must read as our own echo,
    // for one Dataverse read and no Partner Center request.
    let (dv_before, pc_before) = (dv_requests(&h), pc_requests(&h));
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(
        dv_requests(&h) - dv_before,
        1,
        "{:?}",
        h.dv.request_counts()
    );
    assert_eq!(pc_requests(&h), pc_before, "no Partner Center request");
    assert_eq!(pc_writes(&h).len(), writes, "no Partner Center write");
    assert_eq!(opp_row(&h, &opp)["@odata.etag"], row_before["@odata.etag"]);
    assert_eq!(
        trail(&h, &opp).await.len(),
        entries,
        "an echo leaves no entry"
    );

    // An edit to an unmapped column is no change either.
    user_edit(&h, &opp, json!({"actualclosedate": "2026-01-01"}));
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(pc_writes(&h).len(), writes);
    assert_eq!(trail(&h, &opp).await.len(), entries);
}

#[tokio::test]
async fn the_webhook_of_a_created_referral_is_our_echo() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let etag = opp_row(&h, &opp)["@odata.etag"].clone();
    let entries = trail(&h, &opp).await.len();
    // One Partner Center read, no Dataverse request.
    let (dv_before, pc_before) = (dv_requests(&h), pc_requests(&h));
    assert_eq!(webhook(&h, &rid).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(dv_requests(&h), dv_before, "{:?}", h.dv.request_counts());
    assert_eq!(pc_requests(&h) - pc_before, 1);
    assert_eq!(opp_row(&h, &opp)["@odata.etag"], etag, "no CRM write");
    assert_eq!(
        trail(&h, &opp).await.len(),
        entries,
        "an echo leaves no entry"
    );

    // Our own update's webhook is quiet too.
    user_edit(&h, &opp, json!({"description": "Scope grew"}));
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Updated { .. }
    ));
    let etag = opp_row(&h, &opp)["@odata.etag"].clone();
    let entries_after_update = trail(&h, &opp).await.len();
    assert!(entries_after_update > entries);
    assert_eq!(webhook(&h, &rid).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(opp_row(&h, &opp)["@odata.etag"], etag, "no CRM write");
    assert_eq!(trail(&h, &opp).await.len(), entries_after_update);
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
        PairOutcome::Updated {
            referral_id: rid.clone(),
            opportunity_id: opp.clone(),
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
    // And the echo of that reconcile is quiet.
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
}

#[tokio::test]
async fn an_unflagged_opportunity_is_skipped_without_a_referral() {
    let h = Harness::start().await;
    let opp = opportunity(&h, false);
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, PairOutcome::Skipped { .. }), "{out:?}");
    assert!(h.pc.partner_referrals().is_empty());
    assert_eq!(pc_requests(&h), 0, "not even a lookup");
    assert!(link(&h, &opp).await.is_none());
    assert!(
        trail(&h, &opp).await.is_empty(),
        "no audit for never-synced rows"
    );
    assert_eq!(opp_row(&h, &opp)["name"], "Fabrikam field service");
}

/// Issue 21 item 3: no help asked is a private deal: one `Independent` referral, not
/// shared with Microsoft sellers, no target, and the opportunity's own currency.
#[tokio::test]
async fn an_opportunity_asking_no_help_creates_one_private_referral() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let c = &h.engine.columns;
    let mut change = Map::new();
    change.insert(c.help_needed.clone(), Value::Null);
    change.insert(
        "_transactioncurrencyid_value".into(),
        json!(dataverse_standin::EUR_ID),
    );
    h.dv.user_update("opportunities", &opp, change).unwrap();
    let out = sync(&h, &opp).await.expect("create");
    let PairOutcome::ReferralCreated { referral_id, .. } = out else {
        panic!("expected ReferralCreated, got {out:?}");
    };
    let r = referral(&h, &referral_id);
    assert_eq!(r["type"], "Independent");
    assert_eq!(
        r["consent"]["consentToShareReferralWithMicrosoftSellers"],
        false
    );
    assert_eq!(r["target"], json!([]));
    assert_eq!(r["details"]["currency"], "EUR");
    assert_eq!(h.pc.referrals().len(), 1, "no referral for Microsoft");
    assert_eq!(pc_writes(&h).len(), 1, "one POST");
}

#[tokio::test]
async fn a_deleted_or_vanished_linked_opportunity_leaves_the_referral_alone() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;
    let before = referral(&h, &rid);
    let deleted = SyncMessage {
        deleted: true,
        ..SyncMessage::for_opportunity(&opp, None)
    };
    let out = reconcile_pair(&h.engine, &deleted).await.unwrap();
    assert!(matches!(out, PairOutcome::Skipped { .. }), "{out:?}");
    assert!(h.dv.user_delete("opportunities", &opp));
    let out = sync(&h, &opp).await.unwrap();
    assert!(matches!(out, PairOutcome::Skipped { .. }), "{out:?}");
    assert_eq!(referral(&h, &rid), before);
    assert!(pc_writes(&h).len() == 2, "only the create's two steps");
    let skips = trail(&h, &opp)
        .await
        .into_iter()
        .filter(|e| e.action == "skip" && e.outcome == Outcome::Skipped)
        .count();
    assert_eq!(skips, 2);
}

/// An incoming Microsoft referral reconciled into its opportunity: (opportunity, referral).
async fn linked_incoming(h: &Harness) -> (String, String) {
    let incoming = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = incoming["id"].as_str().unwrap().to_string();
    match webhook(h, &rid).await.unwrap() {
        PairOutcome::OpportunityCreated {
            referral_id,
            opportunity_id,
        } => {
            assert_eq!(referral_id, rid);
            assert_eq!(opportunity_id, key::opportunity_id_for(&rid));
            (opportunity_id, rid)
        }
        other => panic!("expected OpportunityCreated, got {other:?}"),
    }
}

/// The poller sees the opportunity the connector just created from a referral: that is our
/// own write, one Dataverse read and nothing written on either side.
#[tokio::test]
async fn the_poll_of_an_opportunity_created_from_a_referral_is_our_echo() {
    let h = Harness::start().await;
    let (opp, rid) = linked_incoming(&h).await;
    let entries = trail(&h, &opp).await.len();
    let (dv_before, writes) = (dv_requests(&h), pc_writes(&h).len());
    let out = sync(&h, &opp).await.unwrap();
    let t = trail(&h, &opp).await;
    assert_eq!(out, unchanged(&rid, &opp), "{t:#?}");
    assert_eq!(pc_writes(&h).len(), writes, "no Partner Center write");
    assert_eq!(
        dv_requests(&h) - dv_before,
        1,
        "{:?}",
        h.dv.request_counts()
    );
    assert_eq!(t.len(), entries, "an echo leaves no entry");
}

#[tokio::test]
async fn the_seller_accepts_a_microsoft_referral_once() {
    let h = Harness::start().await;
    let (opp, rid) = linked_incoming(&h).await;
    sync(&h, &opp).await.unwrap();
    assert_eq!(referral(&h, &rid)["status"], "New");
    // Our external reference is deferred: it waits for the seller's answer.
    assert_eq!(referral(&h, &rid)["externalReferenceId"], Value::Null);

    let decision = h.engine.columns.decision.clone();
    user_edit(&h, &opp, json!({ decision: ACCEPT }));
    let out = sync(&h, &opp).await.unwrap();
    assert_eq!(referral(&h, &rid)["externalReferenceId"], json!(opp));
    assert_eq!(
        out,
        PairOutcome::Updated {
            referral_id: rid.clone(),
            opportunity_id: opp.clone(),
        }
    );
    let r = referral(&h, &rid);
    assert_eq!(
        (r["status"].as_str(), r["substatus"].as_str()),
        (Some("Active"), Some("Accepted"))
    );
    assert!(has(&trail(&h, &opp).await, "accept", Outcome::Success));
    // The accept's webhook is our echo.
    assert_eq!(webhook(&h, &rid).await.unwrap(), unchanged(&rid, &opp));

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
    sync(&h, &opp).await.unwrap();
    let r = referral(&h, &rid);
    assert_eq!(r["status"], "Closed");
    assert_eq!(r["substatus"], "Declined");
    assert!(r["statusReason"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(has(&trail(&h, &opp).await, "decline", Outcome::Success));
    // Closed/Declined is a lost, canceled opportunity under the default mapping, and the
    // same reconcile brings the opportunity there.
    let row = opp_row(&h, &opp);
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(2), json!(4))
    );
    // And the next look finds nothing left to do on either side.
    let writes = pc_writes(&h).len();
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(webhook(&h, &rid).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(pc_writes(&h).len(), writes);
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
    let row = opp_row(&h, &won_opp);
    assert_eq!(row["statecode"], json!(1), "still won: {row:#}");

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

    // Once closed, a repeat is a no-op, even for a link with no base (one from before pair
    // sync): the close is not made twice.
    let writes = pc_writes(&h).len();
    let mut l = link(&h, &lost_opp).await.unwrap();
    let v = l.version;
    l.base = None;
    h.store.put_link(&l, Some(v)).await.unwrap();
    sync(&h, &lost_opp).await.unwrap();
    assert_eq!(pc_writes(&h).len(), writes, "no second close");
    assert!(link(&h, &lost_opp).await.unwrap().base.is_some());
}

#[tokio::test]
async fn when_both_sides_changed_each_field_goes_to_its_mapped_winner() {
    let h = Harness::start().await;
    let (opp, rid) = created(&h).await;

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
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
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
    // One reconcile writes both sides.
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam FS (Microsoft) ✔");
    assert_eq!(row["estimatedvalue"].as_f64(), Some(99999.0));

    let t = trail(&h, &opp).await;
    let conflict = t
        .iter()
        .find(|e| e.action == "merge" && e.outcome == Outcome::Conflict)
        .expect("conflict audited");
    let detail = conflict.detail.as_deref().unwrap();
    assert!(detail.contains("Partner Center wins: name"), "{detail}");
    assert!(detail.contains("CRM wins: details.dealValue"), "{detail}");
    let l = link(&h, &opp).await.unwrap();
    assert_eq!(l.pc_etag.as_deref(), r["eTag"].as_str());
    assert_eq!(l.dv_etag.as_deref(), row["@odata.etag"].as_str());

    // Both sides now agree: neither message finds anything left to send.
    let writes = pc_writes(&h).len();
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(webhook(&h, &rid).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(pc_writes(&h).len(), writes);
    assert_eq!(opp_row(&h, &opp)["@odata.etag"], row["@odata.etag"]);
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
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(amount(&referral(&h, &rid)["details"]["dealValue"]), 61000.0);
    let patches = pc_writes(&h)[writes..]
        .iter()
        .filter(|(m, _)| m == "PATCH")
        .count();
    assert_eq!(patches, 2, "the refused PATCH and the one after re-reading");
    // Nobody else changed the referral, so the link holds it as synced now.
    let l = link(&h, &opp).await.unwrap();
    assert_eq!(l.pc_etag.as_deref(), referral(&h, &rid)["eTag"].as_str());
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
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
    assert!(has(&trail(&h, &opp).await, "reconcile", Outcome::Failed));
    h.pc.clear_faults();
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Updated { .. }
    ));
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
    assert!(h.pc.partner_referrals().is_empty());
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam field service ✘");
    let audit = row[&h.engine.columns.audit]
        .as_str()
        .expect("audit column set");
    assert!(audit.contains("injected failure"), "{audit}");
    let t = trail(&h, &opp).await;
    let failed = t
        .iter()
        .find(|e| e.action == "create_referral" && e.outcome == Outcome::Failed)
        .expect("failure audited");
    assert!(failed.error.as_deref().unwrap().contains("400"));
    assert!(link(&h, &opp).await.is_none());

    // Once the seller changes a mapped field, Partner Center takes it and the row shows
    // success again.
    user_edit(&h, &opp, json!({"estimatedvalue": 51000.0}));
    let out = sync(&h, &opp).await.unwrap();
    assert!(
        matches!(out, PairOutcome::ReferralCreated { .. }),
        "{out:?}"
    );
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam field service ✔");
    assert!(row.get(&h.engine.columns.audit).is_none_or(Value::is_null));
    assert_eq!(h.pc.partner_referrals().len(), 1);
}

/// Issue 18: the ✘ and the error written on a refused create are a change the poller sees;
/// its message must not send the refused create again, until the seller changes something.
#[tokio::test]
async fn a_refused_create_is_not_retried_on_its_own_echo() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 400 }, 1).on("POST", "/v1.0/engagements/referrals"),
    );
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    let row = opp_row(&h, &opp);
    assert_eq!(row["name"], "Fabrikam field service ✘");
    assert!(row[&h.engine.columns.audit].as_str().is_some());
    let state = h
        .store
        .get_state(&format!("{REFUSED_STATE_PREFIX}{opp}"))
        .await
        .unwrap();
    assert!(state.is_some(), "the refused values are remembered");

    // The poller's message for that very write: skipped, no Partner Center request at all.
    let modified = row["modifiedon"].as_str().map(str::to_string);
    let writes = pc_writes(&h).len();
    let echo = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&opp, modified))
        .await
        .unwrap();
    assert!(matches!(echo, PairOutcome::Skipped { .. }), "{echo:?}");
    assert_eq!(pc_writes(&h).len(), writes, "no Partner Center write");
    assert!(h.pc.partner_referrals().is_empty());
    assert_eq!(opp_row(&h, &opp)["name"], "Fabrikam field service ✘");

    // An unmapped edit is still the same refused values.
    user_edit(&h, &opp, json!({"actualclosedate": "2026-01-01"}));
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Skipped { .. }
    ));
    assert_eq!(pc_writes(&h).len(), writes);

    // The seller changes a mapped field: tried again, and taken.
    user_edit(
        &h,
        &opp,
        json!({"description": "Rollout to 45 technicians"}),
    );
    let out = sync(&h, &opp).await.unwrap();
    assert!(
        matches!(out, PairOutcome::ReferralCreated { .. }),
        "{out:?}"
    );
    assert_eq!(h.pc.partner_referrals().len(), 1);
    assert_eq!(opp_row(&h, &opp)["name"], "Fabrikam field service ✔");
}

#[tokio::test]
async fn an_opportunity_without_a_customer_contact_cannot_be_co_sold() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    user_edit(&h, &opp, json!({"_parentcontactid_value": null}));
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(pc_writes(&h).is_empty());
    let row = opp_row(&h, &opp);
    let audit = row[&h.engine.columns.audit].clone();
    assert!(audit.as_str().unwrap().contains("contact"), "{audit}");
    assert_eq!(row["name"], "Fabrikam field service ✘");
    // Its echo is not tried again.
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Skipped { .. }
    ));
    assert!(pc_writes(&h).is_empty());
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
        .outbound_create(
            &row,
            Some(&account),
            Some(&contact),
            &h.engine.columns,
            Some("USD"),
        )
        .unwrap()
        .own;
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
    assert!(
        !matches!(out, PairOutcome::ReferralCreated { .. }),
        "{out:?}"
    );
    assert_eq!(
        h.pc.partner_referrals().len(),
        1,
        "still exactly one referral"
    );
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
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
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
    assert!(
        !matches!(out, PairOutcome::ReferralCreated { .. }),
        "{out:?}"
    );
    assert_eq!(h.pc.partner_referrals().len(), 2, "no third referral");
    assert_eq!(
        opp_row(&h, &opp)[&h.engine.columns.referral_id],
        rid.as_str()
    );
    assert_eq!(link(&h, &opp).await.unwrap().referral_id, rid);
}

async fn referral_trail(h: &Harness, referral_id: &str) -> Vec<AuditEntry> {
    audit_where(h, Some(referral_id), None).await
}

/// The webhook of a referral made from one of our opportunities, before that pair has a
/// link (its create is still running, or stopped before writing back): under the key the
/// referral alone gives, it is forwarded to its opportunity's key and does nothing else;
/// there it is the opportunity's own reconcile, which adopts the referral made from it
/// (no second opportunity, and the opportunity's values, not the referral's, are the
/// seller's).
#[tokio::test]
async fn the_webhook_of_a_referral_made_from_an_unlinked_opportunity_goes_to_its_pair() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    let (opportunities, accounts, contacts) = (
        h.dv.rows("opportunities").len(),
        h.dv.rows("accounts").len(),
        h.dv.rows("contacts").len(),
    );
    let rid = orphan(&h, &opp).await.id.unwrap();

    let message = SyncMessage::for_referral(h.store.as_ref(), &rid, Origin::Referral, None)
        .await
        .unwrap();
    assert_eq!(message.key, key::opportunity_id_for(&rid));
    let to = match reconcile_pair(&h.engine, &message).await.unwrap() {
        PairOutcome::Forwarded { to } => to,
        other => panic!("expected Forwarded, got {other:?}"),
    };
    assert_eq!(to.key, opp);
    assert_eq!(to.referral_id.as_deref(), Some(rid.as_str()));
    assert_eq!(h.dv.rows("opportunities").len(), opportunities, "no row");
    assert!(link(&h, &opp).await.is_none());
    assert!(
        referral_trail(&h, &rid).await.is_empty(),
        "a forward is no failure"
    );

    // Under the right key the opportunity adopts the referral made from it.
    let out = reconcile_pair(&h.engine, &to).await.unwrap();
    assert!(
        matches!(&out, PairOutcome::Updated { referral_id, opportunity_id }
            if *referral_id == rid && *opportunity_id == opp),
        "{out:?}"
    );
    assert_eq!(
        h.dv.rows("opportunities").len(),
        opportunities,
        "no second row"
    );
    assert_eq!(h.dv.rows("accounts").len(), accounts, "no second account");
    assert_eq!(h.dv.rows("contacts").len(), contacts, "no second contact");
    assert_eq!(link(&h, &opp).await.unwrap().referral_id, rid);
    assert_eq!(
        opp_row(&h, &opp)[&h.engine.columns.referral_id],
        rid.as_str()
    );
    let entries = referral_trail(&h, &rid).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action.starts_with("adopt_referral") && e.outcome == Outcome::Success),
        "{entries:?}"
    );

    // The poller's message then finds the pair linked: no referral is created.
    assert_eq!(sync(&h, &opp).await.unwrap(), unchanged(&rid, &opp));
    assert_eq!(h.pc.partner_referrals().len(), 1, "still one referral");
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
    match webhook(&h, &rid).await.unwrap() {
        PairOutcome::OpportunityCreated { opportunity_id, .. } => {
            assert_ne!(opportunity_id, opp);
            assert_eq!(opportunity_id, key::opportunity_id_for(&rid));
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 18 (the brief for the refused create): the poller's message for our own ✘ write
/// makes no Partner Center request at all.
#[tokio::test]
async fn a_refused_create_echo_makes_no_partner_center_request() {
    let h = Harness::start().await;
    let opp = opportunity(&h, true);
    h.pc.add_fault(
        Fault::new(FaultKind::Status { status: 400 }, 1).on("POST", "/v1.0/engagements/referrals"),
    );
    assert!(sync(&h, &opp).await.unwrap_err().is_permanent());
    let modified = opp_row(&h, &opp)["modifiedon"].as_str().map(str::to_string);
    let requests = pc_requests(&h);
    let echo = reconcile_pair(&h.engine, &SyncMessage::for_opportunity(&opp, modified))
        .await
        .unwrap();
    assert!(matches!(echo, PairOutcome::Skipped { .. }), "{echo:?}");
    assert_eq!(pc_requests(&h), requests, "{:?}", h.pc.requests());
}
