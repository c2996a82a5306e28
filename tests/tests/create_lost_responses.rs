//! Issue 18: a create whose answer is lost after the service committed it (the connection
//! dropped, or a proxy's 504) must not make a second record when it is tried again. The
//! stand-ins apply the write, then lose the answer (`lose_response`); the reconcile runs
//! again when it asks for a retry, as the queue would run it, and each record exists once,
//! linked, with both sides equal.

use std::time::Duration;

use cosell::engine::pair::key;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::store::Store;
use cosell_tests::harness::Harness;
use dataverse_standin::{Fault as DvFault, LostAs as DvLost};
use partner_center_standin::{Fault as PcFault, LostAs as PcLost};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// Runs the reconcile until it stops asking for a retry (at most a few times).
async fn settle(h: &Harness, m: &SyncMessage) -> PairOutcome {
    for _ in 0..5 {
        match reconcile_pair(&h.engine, m).await {
            Ok(out) => return out,
            Err(SyncError::Retry { reason, .. }) => {
                tracing::info!(%reason, "retrying as the queue would");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("permanent failure: {e}"),
        }
    }
    panic!("still retrying after 5 attempts");
}

async fn webhook_message(h: &Harness, rid: &str) -> SyncMessage {
    SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .expect("store")
}

/// The fault fired (it is not pending any more): the test did lose an answer.
fn dv_fault_fired(h: &Harness) {
    assert!(
        h.dv.pending_faults().is_empty(),
        "{:?}",
        h.dv.pending_faults()
    );
}

fn pc_fault_fired(h: &Harness) {
    assert!(
        h.pc.pending_faults().is_empty(),
        "{:?}",
        h.pc.pending_faults()
    );
}

/// Neither side's message has anything left to write, and the base is the referral's
/// values: both sides are equal.
async fn both_sides_equal(h: &Harness, rid: &str, opp: &str) {
    let link = h
        .store
        .get_link_by_opportunity(opp)
        .await
        .expect("store")
        .expect("link");
    assert_eq!(link.referral_id, rid);
    let referral = h.engine.pc.get_referral(rid).await.unwrap();
    assert_eq!(
        link.base.expect("base").fields,
        h.engine.mapping.referral_values(&referral)
    );
    let pc_before = h.pc.requests().len();
    let etag = h.dv.row("opportunities", opp).unwrap()["@odata.etag"].clone();
    let operator = SyncMessage {
        origin: Origin::Operator,
        ..SyncMessage::for_opportunity(opp, None)
    };
    let out = reconcile_pair(&h.engine, &operator).await.unwrap();
    assert!(matches!(out, PairOutcome::Unchanged { .. }), "{out:?}");
    let pc_writes = h.pc.requests()[pc_before..]
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(pc_writes, 0);
    assert_eq!(h.dv.row("opportunities", opp).unwrap()["@odata.etag"], etag);
}

/// Whom the CRM knows of the referral's customer before the referral arrives.
#[derive(Clone, Copy, PartialEq)]
enum Customer {
    /// Neither the account nor the contact: both are made with the opportunity, in one
    /// change set.
    New,
    /// Both (found by name and postal code, and by e-mail): the opportunity is made alone.
    Known,
}

/// A new Microsoft referral, reconciled with `fault` armed: one opportunity, one account,
/// one contact.
async fn new_referral_with(customer: Customer, fault: DvFault) {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    // The customer's contact.
    let current = h.engine.pc.get_referral(&rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            &rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace(
                "/customerProfile/team",
                json!([{"firstName": "Lee", "lastName": "Buyer", "email": "lee@contoso.example"}]),
            )],
        )
        .await
        .expect("a customer contact on the referral");
    let (account_id, contact_id) = match customer {
        Customer::New => (key::account_id_for(&rid), key::contact_id_for(&rid)),
        Customer::Known => {
            let postal = created["customerProfile"]["address"]["postalCode"].clone();
            let account =
                h.dv.user_insert(
                    "accounts",
                    obj(json!({"name": "Contoso Ltd", "address1_postalcode": postal})),
                )
                .expect("account");
            let contact = h
                .dv
                .user_insert(
                    "contacts",
                    obj(json!({"firstname": "Lee", "lastname": "Buyer", "emailaddress1": "lee@contoso.example"})),
                )
                .expect("contact");
            (account, contact)
        }
    };
    h.dv.add_fault(fault);

    let out = settle(&h, &webhook_message(&h, &rid).await).await;
    dv_fault_fired(&h);
    let opp = key::opportunity_id_for(&rid);
    assert!(
        matches!(&out, PairOutcome::OpportunityCreated { opportunity_id, .. } | PairOutcome::Updated { opportunity_id, .. } if *opportunity_id == opp),
        "{out:?}"
    );
    let opps = h.dv.rows("opportunities");
    assert_eq!(opps.len(), 1, "{opps:#?}");
    assert_eq!(opps[0]["opportunityid"], json!(opp));
    assert_eq!(
        opps[0][h.engine.columns.referral_id.as_str()],
        json!(rid),
        "linked on the CRM side"
    );
    let accounts = h.dv.rows("accounts");
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    assert_eq!(accounts[0]["accountid"], json!(account_id));
    let contacts = h.dv.rows("contacts");
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    assert_eq!(contacts[0]["contactid"], json!(contact_id));
    assert_eq!(opps[0]["_parentaccountid_value"], json!(account_id));
    assert_eq!(opps[0]["_parentcontactid_value"], json!(contact_id));
    if customer == Customer::New {
        assert_eq!(contacts[0]["_parentcustomerid_value"], json!(account_id));
    }
    assert_eq!(h.pc.partner_referrals().len(), 1);
    both_sides_equal(&h, &rid, &opp).await;
}

/// The change set of account, contact and opportunity committed and its answer was lost:
/// sent again it fails on the account (412) and changes nothing; the rows are then made
/// one by one, each already there.
#[tokio::test]
async fn a_lost_answer_to_the_new_customer_change_set_makes_one_of_each() {
    new_referral_with(
        Customer::New,
        DvFault::lose_response(DvLost::Drop, 1).on("POST", "$batch"),
    )
    .await;
}

#[tokio::test]
async fn a_504_after_the_new_customer_change_set_makes_one_of_each() {
    new_referral_with(
        Customer::New,
        DvFault::lose_response(DvLost::GatewayTimeout, 1).on("POST", "$batch"),
    )
    .await;
}

#[tokio::test]
async fn a_lost_answer_to_the_opportunity_create_makes_one_opportunity() {
    new_referral_with(
        Customer::Known,
        DvFault::lose_response(DvLost::Drop, 1).on("PATCH", "opportunities"),
    )
    .await;
}

#[tokio::test]
async fn a_504_after_the_opportunity_create_makes_one_opportunity() {
    new_referral_with(
        Customer::Known,
        DvFault::lose_response(DvLost::GatewayTimeout, 1).on("PATCH", "opportunities"),
    )
    .await;
}

/// An earlier try made the account and crashed before the rest, and the account was renamed
/// since (so the lookup by name does not find it): the change set fails on it (412), and the
/// rows are made one by one, taking the account as made.
#[tokio::test]
async fn a_change_set_refused_on_an_account_made_earlier_makes_the_rest_row_by_row() {
    let h = Harness::start().await;
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let account = key::account_id_for(&rid);
    h.dv.user_insert(
        "accounts",
        obj(json!({"accountid": account, "name": "Contoso (renamed by a seller)"})),
    )
    .expect("the account an earlier try made");

    let out = settle(&h, &webhook_message(&h, &rid).await).await;
    let opp = key::opportunity_id_for(&rid);
    assert!(
        matches!(&out, PairOutcome::OpportunityCreated { opportunity_id, .. } if *opportunity_id == opp),
        "{out:?}"
    );
    assert_eq!(h.dv.rows("accounts").len(), 1);
    let opps = h.dv.rows("opportunities");
    assert_eq!(opps.len(), 1);
    assert_eq!(opps[0]["_parentaccountid_value"], json!(account));
    assert!(
        h.dv.request_count("PATCH opportunities({id})") >= 1,
        "made alone after the change set was refused: {:?}",
        h.dv.request_counts()
    );
}

/// A flagged opportunity for Fabrikam with every outbound field set.
fn flagged_opportunity(h: &Harness) -> String {
    let account =
        h.dv.user_insert(
            "accounts",
            obj(json!({"name": "Fabrikam Inc", "address1_postalcode": "98052", "address1_country": "USA"})),
        )
        .expect("account");
    let contact =
        h.dv.user_insert(
            "contacts",
            obj(json!({"firstname": "Ada", "lastname": "Buyer", "emailaddress1": "ada@fabrikam.example", "_parentcustomerid_value": account})),
        )
        .expect("contact");
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": "Fabrikam field service",
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout",
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    row.insert(c.help_needed.clone(), json!(100000003));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}

async fn flagged_opportunity_with(fault: PcFault) {
    let h = Harness::start().await;
    let opp = flagged_opportunity(&h);
    h.pc.add_fault(fault);

    let out = settle(&h, &SyncMessage::for_opportunity(&opp, None)).await;
    pc_fault_fired(&h);
    assert!(
        matches!(&out, PairOutcome::ReferralCreated { opportunity_id, .. } | PairOutcome::Updated { opportunity_id, .. } if *opportunity_id == opp),
        "{out:?}"
    );
    let referrals = h.pc.partner_referrals();
    assert_eq!(referrals.len(), 1, "{referrals:#?}");
    assert_eq!(referrals[0]["externalReferenceId"], json!(opp));
    assert_eq!(referrals[0]["type"], json!("Shared"));
    let rid = referrals[0]["id"].as_str().unwrap().to_string();
    // The second shared-referral step ran once: one connected referral for Microsoft.
    let engagement = referrals[0]["engagementId"].as_str().unwrap();
    let for_ms = h.pc.referrals_for_microsoft(engagement);
    assert_eq!(for_ms.len(), 1, "{for_ms:#?}");
    assert_eq!(h.pc.referrals().len(), 2, "{:#?}", h.pc.referrals());
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert_eq!(row[h.engine.columns.referral_id.as_str()], json!(rid));
    assert_eq!(row["name"], "Fabrikam field service ✔");
    // Every try of each logical create carried that create's request id: the first step's
    // or the second's.
    let posts: Vec<_> =
        h.pc.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.contains("/referrals"))
            .collect();
    let first = key::create_request_id(&opp);
    let second = key::connect_request_id(&opp);
    assert!(
        posts.iter().all(|r| [first.as_str(), second.as_str()]
            .contains(&r.request_id.as_deref().unwrap_or_default())),
        "{posts:?}"
    );
    // No POST was resent once its outcome was unknown: at most one per step and try, and
    // the step whose answer was lost was not posted again (it was found).
    let of = |id: &str| {
        posts
            .iter()
            .filter(|r| r.request_id.as_deref() == Some(id))
            .count()
    };
    assert_eq!((of(&first), of(&second)), (1, 1), "{posts:?}");
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    both_sides_equal(&h, &rid, &opp).await;
}

#[tokio::test]
async fn a_504_after_the_referral_create_makes_one_referral() {
    flagged_opportunity_with(
        PcFault::lose_response(PcLost::GatewayTimeout, 1).on("POST", "/v1.0/engagements/referrals"),
    )
    .await;
}

#[tokio::test]
async fn a_lost_answer_to_the_referral_create_makes_one_referral() {
    flagged_opportunity_with(
        PcFault::lose_response(PcLost::Drop, 1).on("POST", "/v1.0/engagements/referrals"),
    )
    .await;
}

/// Issue 21: the second shared-referral step (the connected referral for Microsoft) loses
/// its answer; the next try finds it in the engagement and does not post it again.
#[tokio::test]
async fn a_lost_answer_to_the_referral_for_microsoft_makes_one_connected_referral() {
    flagged_opportunity_with(
        PcFault::lose_response(PcLost::Drop, 1)
            .on("POST", "/v1.0/engagements/referrals")
            .after(1),
    )
    .await;
}

#[tokio::test]
async fn a_504_after_the_referral_for_microsoft_makes_one_connected_referral() {
    flagged_opportunity_with(
        PcFault::lose_response(PcLost::GatewayTimeout, 1)
            .on("POST", "/v1.0/engagements/referrals")
            .after(1),
    )
    .await;
}
