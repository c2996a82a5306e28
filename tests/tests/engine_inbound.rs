//! A referral reconciled into the CRM (a webhook's or the sweep's message, `Origin::Referral`)
//! against both stand-ins and the embedded store: each scenario asserts the Dataverse rows,
//! the crosswalk and the audit trail.

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::{AuditEntry, AuditQuery, Direction, Outcome};
use cosell::engine::pair::key;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
use cosell::mapping::Mapping;
use cosell::partner_center::{PatchOp, Referral};
use cosell::store::Store;
use cosell_tests::harness::Harness;
use dataverse_standin::{Fault, FaultKind, Limit, USD_ID};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// A Microsoft referral with a customer contact and a postal code (the stand-in's incoming
/// referral has neither), as Partner Center would hold it after Microsoft filled them in.
async fn incoming(h: &Harness, name: &str, customer: &str) -> String {
    let created = h.pc.create_incoming_referral(name, customer);
    let id = created["id"].as_str().expect("referral id").to_string();
    patch(
        h,
        &id,
        vec![
            PatchOp::replace(
                "/customerProfile/address",
                json!({"addressLine1": "1 Main St", "city": "Redmond", "postalCode": "98052", "country": "US"}),
            ),
            PatchOp::replace(
                "/customerProfile/team",
                json!([{"firstName": "Ada", "lastName": "Buyer", "email": "ada@contoso.example", "phoneNumber": "555-0100"}]),
            ),
        ],
    )
    .await;
    id
}

/// Changes the referral in Partner Center as Microsoft or a seller would.
async fn patch(h: &Harness, id: &str, ops: Vec<PatchOp>) -> Referral {
    let current = h.engine.pc.get_referral(id).await.expect("read referral");
    h.engine
        .pc
        .update_referral(id, current.e_tag.as_deref().expect("etag"), &ops)
        .await
        .expect("patch referral")
}

/// The message a webhook (or the sweep) sends for the referral.
async fn message(h: &Harness, id: &str, changed_at: Option<&str>) -> SyncMessage {
    SyncMessage::for_referral(
        h.engine.store.as_ref(),
        id,
        Origin::Referral,
        changed_at.map(str::to_string),
    )
    .await
    .expect("key the message")
}

async fn sync(h: &Harness, id: &str) -> Result<PairOutcome, SyncError> {
    let m = message(h, id, None).await;
    reconcile_pair(&h.engine, &m).await
}

/// The first reconcile of a referral: its opportunity gets the id derived from it.
async fn created(h: &Harness, id: &str) -> String {
    match sync(h, id).await.expect("first sync") {
        PairOutcome::OpportunityCreated {
            referral_id,
            opportunity_id,
        } => {
            assert_eq!(referral_id, id);
            assert_eq!(opportunity_id, key::opportunity_id_for(id));
            opportunity_id
        }
        other => panic!("expected OpportunityCreated, got {other:?}"),
    }
}

fn updated(rid: &str, oid: &str) -> PairOutcome {
    PairOutcome::Updated {
        referral_id: rid.to_string(),
        opportunity_id: oid.to_string(),
    }
}

fn unchanged(rid: &str, oid: &str) -> PairOutcome {
    PairOutcome::Unchanged {
        referral_id: Some(rid.to_string()),
        opportunity_id: oid.to_string(),
    }
}

/// The referral's audit entries, newest first.
async fn audit(h: &Harness, referral_id: &str) -> Vec<AuditEntry> {
    h.store
        .query_audit(&AuditQuery {
            referral_id: Some(referral_id.to_string()),
            ..AuditQuery::default()
        })
        .await
        .expect("query audit")
}

/// The entry written to the CRM side by the last reconcile that wrote there.
async fn last_crm_entry(h: &Harness, referral_id: &str) -> AuditEntry {
    audit(h, referral_id)
        .await
        .into_iter()
        .find(|e| e.direction == Direction::Inbound && e.outcome == Outcome::Success)
        .expect("an entry for a CRM write")
}

/// POST and PATCH requests Dataverse received (token requests aside).
fn dv_writes(h: &Harness) -> u64 {
    h.dv.request_counts()
        .iter()
        .filter(|(k, _)| (k.starts_with("POST ") || k.starts_with("PATCH ")) && *k != "POST token")
        .map(|(_, n)| *n)
        .sum()
}

fn opp(h: &Harness, id: &str) -> Value {
    h.dv.row("opportunities", id).expect("opportunity row")
}

fn state_of(row: &Value) -> (Value, Value) {
    (row["statecode"].clone(), row["statuscode"].clone())
}

#[tokio::test]
async fn a_new_referral_becomes_one_bound_opportunity_with_a_recorded_link() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Contoso ERP", "Contoso Ltd").await;
    let pc_before = h.pc.requests().len();
    let oid = created(&h, &rid).await;
    let pc_during = h.pc.requests()[pc_before..].to_vec();

    let cols = &h.engine.columns;
    let opps = h.dv.rows("opportunities");
    assert_eq!(opps.len(), 1);
    let row = opp(&h, &oid);
    assert_eq!(row["name"], json!("Contoso ERP ✔"));
    assert_eq!(row["estimatedvalue"].as_f64(), Some(25000.0));
    assert_eq!(row["isrevenuesystemcalculated"], json!(false));
    assert_eq!(
        row["description"],
        json!("Customer asked Microsoft for a partner")
    );
    assert_eq!(row[&cols.referral_id], json!(rid));
    assert_eq!(row[&cols.sync_flag], json!(true));
    assert!(row[&cols.referral_link].as_str().unwrap().ends_with(&rid));
    assert_eq!(row["_transactioncurrencyid_value"], json!(USD_ID));
    assert_eq!(row["statecode"], json!(0));

    // The account and contact were created with the ids derived from the referral.
    let accounts = h.dv.rows("accounts");
    assert_eq!(accounts.len(), 1);
    let account_id = key::account_id_for(&rid);
    assert_eq!(accounts[0]["accountid"], json!(account_id));
    assert_eq!(accounts[0]["name"], json!("Contoso Ltd"));
    assert_eq!(accounts[0]["address1_postalcode"], json!("98052"));
    assert_eq!(accounts[0]["address1_city"], json!("Redmond"));
    let contacts = h.dv.rows("contacts");
    assert_eq!(contacts.len(), 1);
    let contact_id = key::contact_id_for(&rid);
    assert_eq!(contacts[0]["contactid"], json!(contact_id));
    assert_eq!(contacts[0]["emailaddress1"], json!("ada@contoso.example"));
    assert_eq!(contacts[0]["_parentcustomerid_value"], json!(account_id));
    assert_eq!(row["_parentaccountid_value"], json!(account_id));
    assert_eq!(row["_customerid_value"], json!(account_id));
    assert_eq!(row["_parentcontactid_value"], json!(contact_id));

    let referral = h.engine.pc.get_referral(&rid).await.unwrap();
    let link = h
        .store
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .expect("link");
    assert_eq!(link.opportunity_id, oid);
    assert_eq!(link.pc_etag, referral.e_tag);
    assert_eq!(
        link.pc_updated.as_deref(),
        referral.updated_date_time.as_ref().map(|t| t.0.as_str())
    );
    assert_eq!(link.dv_etag.as_deref(), row["@odata.etag"].as_str());
    assert_eq!(link.dv_modified.as_deref(), row["modifiedon"].as_str());
    // The base holds the values both sides now agree on, in canonical form.
    let base = link.base.expect("a base after the first reconcile");
    assert_eq!(base.fields.get("name"), Some(&json!("Contoso ERP")));
    assert_eq!(
        base.fields.get("details.dealValue").and_then(Value::as_f64),
        Some(25000.0)
    );
    assert_eq!(
        base.fields.get("details.notes"),
        Some(&json!("Customer asked Microsoft for a partner"))
    );
    assert!(base.referral_status.is_some() && base.opportunity_status.is_some());

    // Our external reference is deferred (it goes with the seller's accept or decline):
    // Partner Center was only read.
    assert_eq!(
        h.pc.referral(&rid).unwrap()["externalReferenceId"],
        Value::Null
    );
    assert!(pc_during.iter().all(|r| r.method == "GET"), "{pc_during:?}");
    let trail = audit(&h, &rid).await;
    let e = trail
        .iter()
        .find(|e| e.action == "create_opportunity")
        .unwrap_or_else(|| panic!("the create's entry: {trail:?}"));
    assert!(
        trail.iter().all(|e| e.action == "create_opportunity"),
        "{trail:?}"
    );
    assert!(
        trail.iter().all(|e| e.outcome == Outcome::Success),
        "{trail:?}"
    );
    assert_eq!(e.direction, Direction::Inbound);
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.action, "create_opportunity");
    let detail = e.detail.as_deref().unwrap();
    assert!(
        detail.contains(&format!("created account {account_id}")),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("created contact {contact_id}")),
        "{detail}"
    );
    assert_eq!(e.opportunity_id.as_deref(), Some(oid.as_str()));
    assert_eq!(e.error, None);
}

#[tokio::test]
async fn the_same_message_again_writes_nothing_and_a_non_mapped_change_is_unchanged() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Fabrikam CRM", "Fabrikam").await;
    let oid = created(&h, &rid).await;
    let before = opp(&h, &oid);
    let created_trail = audit(&h, &rid).await.len();

    // A duplicate delivery: the referral equals the base, so one read and nothing more.
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let again = sync(&h, &rid).await.unwrap();
    assert_eq!(again, unchanged(&rid, &oid));
    assert_eq!(h.dv.total_requests(), 0, "{:?}", h.dv.request_counts());
    assert_eq!(
        h.pc.request_count("GET referrals/{id}"),
        1,
        "{:?}",
        h.pc.request_counts()
    );

    // A change to a field the mapping does not carry: nothing to write anywhere.
    patch(
        &h,
        &rid,
        vec![PatchOp::replace("/qualification", "MarketingQualified")],
    )
    .await;
    h.dv.reset_request_counts();
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(out, unchanged(&rid, &oid));
    assert_eq!(dv_writes(&h), 0, "{:?}", h.dv.request_counts());
    assert_eq!(opp(&h, &oid)["@odata.etag"], before["@odata.etag"]);

    // Neither left an audit entry: only the create is on the trail.
    let trail = audit(&h, &rid).await;
    assert_eq!(trail.len(), created_trail, "{trail:?}");
}

#[tokio::test]
async fn a_late_delivery_of_a_change_already_synced_writes_nothing() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Stale", "Stale Co").await;
    let oid = created(&h, &rid).await;
    patch(&h, &rid, vec![PatchOp::replace("/details/dealValue", 1)]).await;
    assert_eq!(sync(&h, &rid).await.unwrap(), updated(&rid, &oid));
    let trail = audit(&h, &rid).await.len();

    // The same change's webhook arrives late (an old change time): messages are pointers,
    // the reconcile reads the referral as it is now, which the pair already holds.
    h.dv.reset_request_counts();
    let late = message(&h, &rid, Some("2020-01-01T00:00:00Z")).await;
    let out = reconcile_pair(&h.engine, &late).await.unwrap();
    assert_eq!(out, unchanged(&rid, &oid));
    assert_eq!(h.dv.total_requests(), 0, "{:?}", h.dv.request_counts());
    assert_eq!(audit(&h, &rid).await.len(), trail);
    assert_eq!(opp(&h, &oid)["estimatedvalue"].as_f64(), Some(1.0));
}

#[tokio::test]
async fn deal_value_and_close_date_changes_update_the_same_opportunity() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Northwind", "Northwind Traders").await;
    let oid = created(&h, &rid).await;
    patch(
        &h,
        &rid,
        vec![
            PatchOp::replace("/details/dealValue", 42000.5),
            PatchOp::add("/details/closingDateTime", "2026-09-30T17:00:00Z"),
        ],
    )
    .await;
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(out, updated(&rid, &oid));
    let row = opp(&h, &oid);
    assert_eq!(row["estimatedvalue"].as_f64(), Some(42000.5));
    assert_eq!(row["estimatedclosedate"], json!("2026-09-30"));
    assert_eq!(row["name"], json!("Northwind ✔"));
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert_eq!(
        h.dv.rows("accounts").len(),
        1,
        "the account is found again, not re-created"
    );
    assert_eq!(h.dv.rows("contacts").len(), 1);
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.dv_etag.as_deref(), row["@odata.etag"].as_str());
    let base = link.base.unwrap();
    assert_eq!(
        base.fields.get("details.dealValue").and_then(Value::as_f64),
        Some(42000.5)
    );
    let e = last_crm_entry(&h, &rid).await;
    assert_eq!(e.action, "update_opportunity");
    let detail = e.detail.unwrap_or_default();
    assert!(
        detail.contains("details.dealValue") && detail.contains("details.closingDateTime"),
        "{detail}"
    );
}

#[tokio::test]
async fn accepted_won_and_lost_referrals_move_the_opportunity_through_the_actions() {
    let h = Harness::start().await;
    let won = incoming(&h, "Will win", "Winner Inc").await;
    let won_opp = created(&h, &won).await;
    let r = h.engine.pc.get_referral(&won).await.unwrap();
    h.engine
        .pc
        .accept_referral(&won, r.e_tag.as_deref().unwrap())
        .await
        .unwrap();
    sync(&h, &won).await.unwrap();
    assert_eq!(opp(&h, &won_opp)["statecode"], json!(0));

    let r = h.engine.pc.get_referral(&won).await.unwrap();
    h.engine
        .pc
        .close_referral(&won, r.e_tag.as_deref().unwrap(), true, "signed")
        .await
        .unwrap();
    assert_eq!(sync(&h, &won).await.unwrap(), updated(&won, &won_opp));
    let row = opp(&h, &won_opp);
    assert_eq!(state_of(&row), (json!(1), json!(3)));
    assert!(
        last_crm_entry(&h, &won).await.action.ends_with("win"),
        "{:?}",
        audit(&h, &won).await
    );
    let link = h.store.get_link_by_referral(&won).await.unwrap().unwrap();
    assert_eq!(
        link.dv_etag.as_deref(),
        row["@odata.etag"].as_str(),
        "etag after the close"
    );

    // Lost before the first sync: created open, then closed as Out-Sold.
    let lost = incoming(&h, "Will lose", "Loser Inc").await;
    let r = h.engine.pc.get_referral(&lost).await.unwrap();
    h.engine
        .pc
        .close_referral(&lost, r.e_tag.as_deref().unwrap(), false, "price")
        .await
        .unwrap();
    let lost_opp = created(&h, &lost).await;
    let row = opp(&h, &lost_opp);
    assert_eq!(state_of(&row), (json!(2), json!(5)));
    assert_eq!(
        last_crm_entry(&h, &lost).await.action,
        "create_opportunity+lose"
    );

    // Declined: lost as Canceled.
    let declined = incoming(&h, "Not for us", "Decline Co").await;
    let declined_opp = created(&h, &declined).await;
    let r = h.engine.pc.get_referral(&declined).await.unwrap();
    h.engine
        .pc
        .decline_referral(&declined, r.e_tag.as_deref().unwrap(), "no capacity")
        .await
        .unwrap();
    sync(&h, &declined).await.unwrap();
    let row = opp(&h, &declined_opp);
    assert_eq!(state_of(&row), (json!(2), json!(4)));
}

#[tokio::test]
async fn an_opportunity_closed_in_the_crm_stays_closed_while_its_referral_is_open() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Keep me closed", "Closed Co").await;
    let oid = created(&h, &rid).await;
    h.dv.user_update(
        "opportunities",
        &oid,
        obj(json!({"statecode": 2, "statuscode": 4})),
    )
    .expect("close as a user");
    // Microsoft edits the still-open referral before the poller has seen the close: the
    // seller's close wins over the open referral, so the reconcile must not reopen the
    // opportunity; it closes the referral instead.
    patch(
        &h,
        &rid,
        vec![PatchOp::replace("/name", "Renamed by Microsoft")],
    )
    .await;
    sync(&h, &rid).await.unwrap();
    let row = opp(&h, &oid);
    let trail = audit(&h, &rid).await;
    assert_eq!(state_of(&row), (json!(2), json!(4)), "{trail:?}");
    assert!(
        trail.iter().all(|e| !e.action.contains("reopen")),
        "{trail:?}"
    );
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(
        (referral["status"].clone(), referral["substatus"].clone()),
        (json!("Closed"), json!("Lost"))
    );
    assert!(trail.iter().any(|e| e.action == "close_lost"), "{trail:?}");
}

#[tokio::test]
async fn an_existing_account_is_reused() {
    let h = Harness::start().await;
    let account_id =
        h.dv.user_insert(
            "accounts",
            obj(json!({"name": "Adventure Works", "address1_postalcode": "98052"})),
        )
        .expect("insert account");
    // Same name elsewhere: a different customer, not to be picked.
    h.dv.user_insert(
        "accounts",
        obj(json!({"name": "Adventure Works", "address1_postalcode": "10001"})),
    )
    .unwrap();
    let rid = incoming(&h, "AW deal", "Adventure Works").await;
    let oid = created(&h, &rid).await;
    assert_eq!(h.dv.rows("accounts").len(), 2);
    assert_eq!(opp(&h, &oid)["_parentaccountid_value"], json!(account_id));
    let e = last_crm_entry(&h, &rid).await;
    assert_eq!(e.action, "create_opportunity");
    assert!(
        !e.detail
            .as_deref()
            .unwrap_or_default()
            .contains("created account"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_opportunity_written_before_a_crash_is_adopted_not_duplicated() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Half done", "Crash Co").await;
    let cols = h.engine.columns.clone();
    // A try that created the row (with the derived id) and died before the crosswalk write.
    let derived = key::opportunity_id_for(&rid);
    let orphan =
        h.dv.user_insert(
            "opportunities",
            obj(json!({
                "opportunityid": derived,
                "name": "Half done",
                "statecode": 0,
                "statuscode": 1,
                cols.referral_id.clone(): rid,
                cols.sync_flag.clone(): true,
            })),
        )
        .expect("insert");
    assert_eq!(orphan, derived);
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(out, updated(&rid, &orphan));
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert_eq!(opp(&h, &orphan)["estimatedvalue"].as_f64(), Some(25000.0));
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.opportunity_id, orphan);
    assert_eq!(
        last_crm_entry(&h, &rid).await.action,
        "adopt_opportunity+update_opportunity"
    );
}

#[tokio::test]
async fn cosell_only_skips_a_referral_not_shared_with_microsoft() {
    let h = Harness::start_with(&[("COSELL_SYNC_COSELL_ONLY", "true")]).await;
    assert!(h.engine.options.cosell_only);
    let private: Referral = serde_json::from_value(json!({
        "name": "Private deal",
        "type": "Independent",
        "customerProfile": {"name": "Solo Ltd", "address": {"country": "US"}},
        "consent": {"consentToContact": true},
        "details": {"dealValue": 100, "currency": "USD"}
    }))
    .unwrap();
    let made = h.engine.pc.create_referral(&private).await.expect("create");
    let rid = made.id.unwrap();
    let out = sync(&h, &rid).await.unwrap();
    assert!(
        matches!(out, PairOutcome::Skipped { ref reason } if reason.contains("co-sell")),
        "{out:?}"
    );
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let e = &audit(&h, &rid).await[0];
    assert_eq!(e.outcome, Outcome::Skipped);
    assert_eq!(e.action, "skip");

    // Microsoft's shared referral still syncs with the option on.
    let shared = incoming(&h, "Shared deal", "Shared Co").await;
    created(&h, &shared).await;
    assert_eq!(h.dv.rows("opportunities").len(), 1);
}

#[tokio::test]
async fn a_missing_referral_is_skipped_not_retried() {
    let h = Harness::start().await;
    let out = sync(&h, "00000000-0000-0000-0000-00000000dead")
        .await
        .unwrap();
    assert!(
        matches!(out, PairOutcome::Skipped { ref reason } if reason.contains("does not exist")),
        "{out:?}"
    );
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h
        .store
        .get_link_by_referral("00000000-0000-0000-0000-00000000dead")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn long_throttling_is_a_retry_with_the_services_delay_and_short_is_absorbed() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Throttled", "Busy Co").await;
    h.dv.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 120,
                limit: Limit::Requests,
            },
            1,
        )
        .on("GET", "transactioncurrencies"),
    );
    match sync(&h, &rid).await {
        Err(SyncError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(120))),
        other => panic!("expected a retry, got {other:?}"),
    }
    // Every caller now holds back for the 120 s; stand in for their end.
    h.engine.dv.throttle_gate().open();
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let e = &audit(&h, &rid).await[0];
    assert_eq!(e.outcome, Outcome::Failed);
    assert_eq!(e.action, "reconcile");
    assert!(e.detail.as_deref().unwrap().contains("will retry"), "{e:?}");

    // The customer lookup (one batch of two reads, before the change set that makes the
    // rows) is throttled briefly: absorbed in the call.
    h.dv.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 1,
                limit: Limit::Concurrency,
            },
            1,
        )
        .on("POST", "$batch"),
    );
    h.dv.reset_request_counts();
    created(&h, &rid).await;
    assert_eq!(
        h.dv.request_count("POST $batch"),
        3,
        "the lookup throttled and sent again, then the change set: {:?}",
        h.dv.request_counts()
    );
    assert_eq!(h.dv.rows("opportunities").len(), 1);
}

#[tokio::test]
async fn a_rejected_write_is_permanent_and_audited_as_failed() {
    let mut h = Harness::start().await;
    // An override that writes a property Dataverse refuses: the request is wrong, not busy.
    let mapping = Mapping::from_toml_str(
        r#"
extends = "default"
[[field]]
referral = "name"
table = "opportunity"
column = "name"
direction = "both"
required = true
checkmark = true
set_also = { _bogus_value = "x" }
"#,
    )
    .expect("mapping parses");
    h.engine.mapping = Arc::new(mapping);
    let rid = incoming(&h, "Rejected", "Reject Co").await;
    let err = sync(&h, &rid).await.expect_err("rejected");
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.reason().contains("_bogus_value"), "{err:?}");
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let failed = h
        .store
        .query_audit(&AuditQuery {
            failed_only: true,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].referral_id.as_deref(), Some(rid.as_str()));
    assert!(failed[0].error.as_deref().unwrap().contains("_bogus_value"));
    assert!(failed[0].detail.as_deref().unwrap().contains("not retried"));
}

/// Our PATCH is held at the stand-in's door (its `Delay` fault pauses a request before the
/// handler runs; the request is counted first) while a user saves the row: the PATCH then
/// arrives with a stale `If-Match` and gets 412, and the reconcile reads both sides again.
#[tokio::test]
async fn a_write_that_loses_a_race_is_read_again_and_converges() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Raced", "Race Co").await;
    let oid = created(&h, &rid).await;
    patch(
        &h,
        &rid,
        vec![PatchOp::replace("/details/dealValue", 31337)],
    )
    .await;

    h.dv.add_fault(Fault::new(FaultKind::Delay { millis: 1500 }, 1).on("PATCH", "opportunities("));
    h.dv.reset_request_counts();
    let engine = h.engine.clone();
    let msg = message(&h, &rid, None).await;
    let task = tokio::spawn(async move { reconcile_pair(&engine, &msg).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.dv.request_count("PATCH opportunities({id})") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync never wrote"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.dv.user_update("opportunities", &oid, obj(json!({"budgetamount": 5000})))
        .expect("user edit");
    let out = task.await.unwrap().expect("converges");
    assert_eq!(out, updated(&rid, &oid));
    assert_eq!(
        h.dv.request_count("PATCH opportunities({id})"),
        2,
        "412 then success: {:?}",
        h.dv.request_counts()
    );
    let row = opp(&h, &oid);
    assert_eq!(row["estimatedvalue"].as_f64(), Some(31337.0));
    assert_eq!(row["budgetamount"], json!(5000), "the user's edit survives");
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.dv_etag.as_deref(), row["@odata.etag"].as_str());
    let trail = audit(&h, &rid).await;
    assert!(
        trail.iter().all(|e| e.outcome != Outcome::Failed),
        "a lost race that converged is no failure: {trail:?}"
    );
}

#[tokio::test]
async fn both_sides_changed_keeps_the_crm_deal_value_and_takes_partner_centers_name() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Both", "Both Co").await;
    let oid = created(&h, &rid).await;
    // The seller edits the deal value in the CRM; Microsoft edits value and name.
    h.dv.user_update(
        "opportunities",
        &oid,
        obj(json!({"estimatedvalue": 99999.0})),
    )
    .unwrap();
    patch(
        &h,
        &rid,
        vec![
            PatchOp::replace("/details/dealValue", 50000),
            PatchOp::replace("/name", "Both renamed"),
        ],
    )
    .await;
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(out, updated(&rid, &oid));
    let row = opp(&h, &oid);
    assert_eq!(
        row["estimatedvalue"].as_f64(),
        Some(99999.0),
        "the CRM wins the deal value"
    );
    assert_eq!(
        row["name"],
        json!("Both renamed ✔"),
        "Partner Center's rename goes through"
    );
    // The CRM's value reaches Partner Center in the same reconcile.
    let referral = h.pc.referral(&rid).unwrap();
    assert_eq!(referral["details"]["dealValue"].as_f64(), Some(99999.0));
    let trail = audit(&h, &rid).await;
    let merge = trail
        .iter()
        .find(|e| e.action == "merge")
        .unwrap_or_else(|| panic!("a merge entry: {trail:?}"));
    assert_eq!(merge.outcome, Outcome::Conflict);
    let detail = merge.detail.as_deref().unwrap();
    assert!(detail.contains("CRM wins: details.dealValue"), "{detail}");
    assert!(
        !detail.contains("name"),
        "the name changed on one side only: {detail}"
    );

    // Only Partner Center changed: its new value goes through with no conflict.
    let h2 = Harness::start().await;
    let rid2 = incoming(&h2, "One side", "One Co").await;
    let oid2 = created(&h2, &rid2).await;
    patch(
        &h2,
        &rid2,
        vec![PatchOp::replace("/details/dealValue", 50000)],
    )
    .await;
    sync(&h2, &rid2).await.unwrap();
    assert_eq!(opp(&h2, &oid2)["estimatedvalue"].as_f64(), Some(50000.0));
    assert!(audit(&h2, &rid2)
        .await
        .iter()
        .all(|e| e.outcome == Outcome::Success));
}
