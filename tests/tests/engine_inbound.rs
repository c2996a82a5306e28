//! Inbound sync (Partner Center -> Dataverse) against both stand-ins and the embedded store:
//! each scenario asserts the Dataverse rows, the crosswalk and the audit trail.

use std::sync::Arc;
use std::time::Duration;

use cosell::audit::{AuditEntry, AuditQuery, Direction, Outcome};
use cosell::engine::inbound::{sync_referral, InboundOutcome};
use cosell::engine::{InboundMessage, InboundTrigger, SyncError};
use cosell::mapping::Mapping;
use cosell::partner_center::{PatchOp, Referral};
use cosell::store::Store;
use cosell_tests::harness::Harness;
use dataverse_standin::{Fault, FaultKind, Limit, USD_ID};
use serde_json::{json, Map, Value};

fn message(referral_id: &str) -> InboundMessage {
    InboundMessage {
        referral_id: referral_id.to_string(),
        trigger: InboundTrigger::ReferralUpdated,
        changed_at: None,
    }
}

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

async fn sync(h: &Harness, id: &str) -> Result<InboundOutcome, SyncError> {
    sync_referral(&h.engine, &message(id)).await
}

async fn created(h: &Harness, id: &str) -> String {
    match sync(h, id).await.expect("first sync") {
        InboundOutcome::Created { opportunity_id } => opportunity_id,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn audit(h: &Harness, referral_id: &str) -> Vec<AuditEntry> {
    h.store
        .query_audit(&AuditQuery {
            referral_id: Some(referral_id.to_string()),
            ..AuditQuery::default()
        })
        .await
        .expect("query audit")
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

#[tokio::test]
async fn a_new_referral_becomes_one_bound_opportunity_with_a_recorded_link() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Contoso ERP", "Contoso Ltd").await;
    let oid = created(&h, &rid).await;

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

    let accounts = h.dv.rows("accounts");
    assert_eq!(accounts.len(), 1);
    let account_id = accounts[0]["accountid"].as_str().unwrap();
    assert_eq!(accounts[0]["name"], json!("Contoso Ltd"));
    assert_eq!(accounts[0]["address1_postalcode"], json!("98052"));
    assert_eq!(accounts[0]["address1_city"], json!("Redmond"));
    let contacts = h.dv.rows("contacts");
    assert_eq!(contacts.len(), 1);
    let contact_id = contacts[0]["contactid"].as_str().unwrap();
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
    // The fingerprints are the ones the outbound direction computes from the same data.
    let read = h.engine.dv.get_opportunity(&oid).await.unwrap();
    assert_eq!(
        link.dv_hash,
        Some(h.engine.mapping.outbound_hash(&read, &h.engine.columns))
    );
    let pc_hash = cosell::engine::referral_context::referral_hash(&h.engine, &referral)
        .await
        .unwrap();
    assert_eq!(link.pc_hash, Some(pc_hash));

    let trail = audit(&h, &rid).await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    let e = &trail[0];
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

    h.dv.reset_request_counts();
    let again = sync(&h, &rid).await.unwrap();
    assert_eq!(
        again,
        InboundOutcome::Unchanged {
            opportunity_id: Some(oid.clone())
        }
    );
    assert_eq!(h.dv.total_requests(), 0, "{:?}", h.dv.request_counts());

    // A change to a field the mapping does not carry: nothing to write, but the new
    // version is remembered so the next delivery of it is a plain duplicate.
    let changed = patch(
        &h,
        &rid,
        vec![PatchOp::replace("/qualification", "MarketingQualified")],
    )
    .await;
    let link_before = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(
        out,
        InboundOutcome::Unchanged {
            opportunity_id: Some(oid.clone())
        }
    );
    assert_eq!(dv_writes(&h), 0, "{:?}", h.dv.request_counts());
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.pc_etag, changed.e_tag);
    assert_eq!(link.version, link_before.version + 1);
    assert_eq!(link.dv_hash, link_before.dv_hash);
    assert_eq!(opp(&h, &oid)["@odata.etag"], before["@odata.etag"]);

    let trail = audit(&h, &rid).await;
    assert_eq!(trail.len(), 3);
    assert!(trail[..2]
        .iter()
        .all(|e| e.outcome == Outcome::Skipped && e.action == "skip"));
    assert!(trail[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("no mapped field changed"));
    assert!(trail[1].detail.as_deref().unwrap().contains("duplicate"));
}

#[tokio::test]
async fn a_stale_version_is_dropped() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Stale", "Stale Co").await;
    created(&h, &rid).await;
    // The crosswalk already holds a later version than the one Partner Center serves now
    // (e.g. a reconcile sweep raced ahead): nothing is written.
    let mut link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    link.pc_etag = Some("\"newer\"".into());
    link.pc_updated = Some("2999-01-01T00:00:00Z".into());
    h.store.put_link(&link, Some(link.version)).await.unwrap();
    patch(&h, &rid, vec![PatchOp::replace("/details/dealValue", 1)]).await;
    h.dv.reset_request_counts();
    let out = sync(&h, &rid).await.unwrap();
    assert!(matches!(out, InboundOutcome::Unchanged { .. }), "{out:?}");
    assert_eq!(h.dv.total_requests(), 0);
    assert!(audit(&h, &rid).await[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("stale"));
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
    assert_eq!(
        out,
        InboundOutcome::Updated {
            opportunity_id: oid.clone()
        }
    );
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
    let e = &audit(&h, &rid).await[0];
    assert_eq!(e.action, "update_opportunity");
    assert_eq!(e.outcome, Outcome::Success);
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
    assert_eq!(
        sync(&h, &won).await.unwrap(),
        InboundOutcome::Updated {
            opportunity_id: won_opp.clone()
        }
    );
    let row = opp(&h, &won_opp);
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(audit(&h, &won).await[0].action, "update_opportunity+win");
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
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(2), json!(5))
    );
    assert_eq!(audit(&h, &lost).await[0].action, "create_opportunity+lose");

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
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(2), json!(4))
    );
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
    // Microsoft edits the still-open referral before the connector has seen the close: the
    // seller's close wins (the outbound direction closes the referral), so the inbound pass
    // must not reopen the opportunity.
    patch(
        &h,
        &rid,
        vec![PatchOp::replace("/name", "Renamed by Microsoft")],
    )
    .await;
    sync(&h, &rid).await.unwrap();
    let row = opp(&h, &oid);
    assert_eq!(
        (row["statecode"].clone(), row["statuscode"].clone()),
        (json!(2), json!(4))
    );
    assert!(!audit(&h, &rid).await[0].action.contains("reopen"));
    // The pending close is still visible to the outbound direction.
    let link = h
        .engine
        .store
        .get_link_by_referral(&rid)
        .await
        .unwrap()
        .unwrap();
    let current: cosell::dataverse::Opportunity = serde_json::from_value(row).unwrap();
    assert_ne!(
        link.dv_hash.as_deref(),
        Some(
            h.engine
                .mapping
                .outbound_hash(&current, &h.engine.columns)
                .as_str()
        )
    );
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
    let e = &audit(&h, &rid).await[0];
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
    let orphan = h
        .dv
        .user_insert(
            "opportunities",
            obj(json!({"name": "Half done", "statecode": 0, "statuscode": 1, cols.referral_id.clone(): rid})),
        )
        .expect("insert");
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let out = sync(&h, &rid).await.unwrap();
    assert_eq!(
        out,
        InboundOutcome::Updated {
            opportunity_id: orphan.clone()
        }
    );
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    assert_eq!(opp(&h, &orphan)["estimatedvalue"].as_f64(), Some(25000.0));
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.opportunity_id, orphan);
    assert_eq!(
        audit(&h, &rid).await[0].action,
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
        matches!(out, InboundOutcome::Skipped { ref reason } if reason.contains("co-sell")),
        "{out:?}"
    );
    assert!(h.dv.rows("opportunities").is_empty());
    assert!(h.store.get_link_by_referral(&rid).await.unwrap().is_none());
    let e = &audit(&h, &rid).await[0];
    assert_eq!(e.outcome, Outcome::Skipped);

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
    assert!(matches!(out, InboundOutcome::Skipped { .. }), "{out:?}");
    let e = &audit(&h, "00000000-0000-0000-0000-00000000dead").await[0];
    assert_eq!(e.outcome, Outcome::Skipped);
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
    assert!(e.error.as_deref().unwrap().contains("retry"), "{e:?}");

    h.dv.add_fault(
        Fault::new(
            FaultKind::Throttle {
                retry_after_secs: 1,
                limit: Limit::Concurrency,
            },
            1,
        )
        .on("POST", "opportunities"),
    );
    created(&h, &rid).await;
    assert_eq!(
        h.dv.request_count("POST opportunities"),
        2,
        "one throttled, one through"
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
}

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

    // Our PATCH is held at the door while a user saves the row: its etag goes stale.
    h.dv.add_fault(Fault::new(FaultKind::Delay { millis: 700 }, 1).on("PATCH", "opportunities("));
    h.dv.reset_request_counts();
    let engine = h.engine.clone();
    let msg = message(&rid);
    let task = tokio::spawn(async move { sync_referral(&engine, &msg).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.dv.request_count("PATCH opportunities({id})") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync never wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.dv.user_update("opportunities", &oid, obj(json!({"budgetamount": 5000})))
        .expect("user edit");
    let out = task.await.unwrap().expect("converges");
    assert_eq!(
        out,
        InboundOutcome::Updated {
            opportunity_id: oid.clone()
        }
    );
    assert_eq!(
        h.dv.request_count("PATCH opportunities({id})"),
        2,
        "412 then success"
    );
    let row = opp(&h, &oid);
    assert_eq!(row["estimatedvalue"].as_f64(), Some(31337.0));
    assert_eq!(row["budgetamount"], json!(5000), "the user's edit survives");
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.dv_etag.as_deref(), row["@odata.etag"].as_str());
}

#[tokio::test]
async fn both_sides_changed_keeps_the_crm_deal_value_and_takes_partner_centers_name() {
    let h = Harness::start().await;
    let rid = incoming(&h, "Both", "Both Co").await;
    let oid = created(&h, &rid).await;
    let synced = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
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
    assert_eq!(
        out,
        InboundOutcome::Updated {
            opportunity_id: oid.clone()
        }
    );
    let row = opp(&h, &oid);
    assert_eq!(
        row["estimatedvalue"].as_f64(),
        Some(99999.0),
        "the CRM wins the deal value"
    );
    assert_eq!(
        row["name"],
        json!("Both renamed ✔"),
        "Partner Center wins the rest"
    );
    let e = &audit(&h, &rid).await[0];
    assert_eq!(e.outcome, Outcome::Conflict);
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .contains("conflict on details.dealValue"),
        "{e:?}"
    );
    // The old fingerprint stays, so the outbound direction sends the CRM's value on.
    let link = h.store.get_link_by_referral(&rid).await.unwrap().unwrap();
    assert_eq!(link.dv_hash, synced.dv_hash);
    assert_eq!(link.dv_etag.as_deref(), row["@odata.etag"].as_str());

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
    assert_eq!(audit(&h2, &rid2).await[0].outcome, Outcome::Success);
}
