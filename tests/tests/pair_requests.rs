//! Requests per reconcile on each side, counted by both stand-ins (token requests left out),
//! for the cases docs/performance.md reports. The echo and the one-sided updates are held to
//! the design's targets: an echo costs one read, an update one read of the sender and one
//! read and one write on the side that changes. Run with `--nocapture` for the table.

use std::collections::BTreeMap;

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// API requests since the last reset, per side: `(partner center, dataverse)`, and the
/// routes for the message of a failed assertion.
fn counted(h: &Harness) -> (u64, u64, String) {
    let api = |counts: BTreeMap<String, u64>| {
        let routes: Vec<String> = counts
            .iter()
            .filter(|(route, _)| !route.contains("token"))
            .map(|(r, n)| format!("{r} x{n}"))
            .collect();
        let total = counts
            .iter()
            .filter(|(route, _)| !route.contains("token"))
            .map(|(_, n)| n)
            .sum::<u64>();
        (total, routes.join(", "))
    };
    let (pc, pc_routes) = api(h.pc.request_counts());
    let (dv, dv_routes) = api(h.dv.request_counts());
    (pc, dv, format!("PC [{pc_routes}] DV [{dv_routes}]"))
}

fn reset(h: &Harness) {
    h.pc.reset_request_counts();
    h.dv.reset_request_counts();
}

async fn from_referral(h: &Harness, id: &str) -> PairOutcome {
    let m = SyncMessage::for_referral(h.store.as_ref(), id, Origin::Referral, None)
        .await
        .unwrap();
    reconcile_pair(&h.engine, &m).await.expect("reconcile")
}

async fn from_opportunity(h: &Harness, id: &str) -> PairOutcome {
    let m = SyncMessage::for_opportunity(id, None);
    reconcile_pair(&h.engine, &m).await.expect("reconcile")
}

fn report(case: &str, (pc, dv, routes): &(u64, u64, String)) {
    println!("requests: {case:<40} partner_center={pc} dataverse={dv}  {routes}");
}

/// A Microsoft referral naming a customer contact.
async fn incoming_with_contact(h: &Harness, name: &str, customer: &str, email: &str) -> Value {
    let r = h.pc.create_incoming_referral(name, customer);
    let id = r["id"].as_str().unwrap();
    let current = h.engine.pc.get_referral(id).await.unwrap();
    h.engine
        .pc
        .update_referral(
            id,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::replace(
                "/customerProfile/team",
                json!([{"firstName": "Lee", "lastName": "Buyer", "email": email}]),
            )],
        )
        .await
        .expect("a customer contact on the referral");
    r
}

fn flagged_opportunity(h: &Harness, name: &str) -> String {
    let account =
        h.dv.user_insert(
            "accounts",
            obj(json!({"name": format!("{name} Inc"), "address1_postalcode": "98052"})),
        )
        .expect("account");
    let contact =
        h.dv.user_insert(
            "contacts",
            obj(json!({
                "firstname": "Ada", "lastname": "Buyer",
                "emailaddress1": format!("ada@{name}.example"),
                "_parentcustomerid_value": account,
            })),
        )
        .expect("contact");
    let c = &h.engine.columns;
    let mut row = obj(json!({
        "name": format!("{name} rollout"),
        "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout",
        "statecode": 0,
        "statuscode": 1,
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}

#[tokio::test]
async fn requests_per_reconcile_by_case() {
    let h = Harness::start().await;
    // A first referral warms the process up (tokens, the cached currency rows).
    let warm =
        h.pc.create_incoming_referral("Warm-up deal", "Warm-up customer");
    from_referral(&h, warm["id"].as_str().unwrap()).await;

    let r = incoming_with_contact(
        &h,
        "Contoso rollout",
        "Contoso Fresh",
        "lee@contoso.example",
    )
    .await;
    let rid = r["id"].as_str().unwrap().to_string();
    reset(&h);
    let created = from_referral(&h, &rid).await;
    let new_referral = counted(&h);
    report("new referral, new customer and contact", &new_referral);
    let PairOutcome::OpportunityCreated { opportunity_id, .. } = created else {
        panic!("expected an opportunity, got {created:?}");
    };
    // The referral read (our external reference waits for the seller's answer); the
    // account and contact looked up, then made with the opportunity in one change set.
    assert_eq!(new_referral.0, 1, "{}", new_referral.2);
    assert_eq!(new_referral.1, 3, "{}", new_referral.2);
    assert_eq!(h.dv.request_count("POST $batch"), 1, "{}", new_referral.2);
    assert_eq!(h.dv.rows("contacts").len(), 1);

    // The same customer and contact again: found, and the opportunity made alone.
    let again = incoming_with_contact(
        &h,
        "Contoso phase two",
        "Contoso Fresh",
        "lee@contoso.example",
    )
    .await;
    reset(&h);
    from_referral(&h, again["id"].as_str().unwrap()).await;
    let known = counted(&h);
    report("new referral, existing customer", &known);
    assert_eq!((known.0, known.1), (1, 3), "{}", known.2);
    assert_eq!(h.dv.request_count("POST $batch"), 0, "{}", known.2);

    // Our own write comes back through the poller: one read, nothing else.
    reset(&h);
    let echo = from_opportunity(&h, &opportunity_id).await;
    let echo_counts = counted(&h);
    report("our own echo", &echo_counts);
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    assert_eq!((echo_counts.0, echo_counts.1), (0, 1), "{}", echo_counts.2);

    // A CRM edit: the opportunity read, then the referral read and patched.
    h.dv.user_update(
        "opportunities",
        &opportunity_id,
        obj(json!({"estimatedvalue": 77000.0})),
    )
    .expect("seller edit");
    reset(&h);
    from_opportunity(&h, &opportunity_id).await;
    let crm_edit = counted(&h);
    report("CRM edit", &crm_edit);
    assert_eq!((crm_edit.0, crm_edit.1), (2, 1), "{}", crm_edit.2);

    // Its echo from Partner Center's side: the referral read only.
    reset(&h);
    let echo = from_referral(&h, &rid).await;
    let pc_echo = counted(&h);
    report("our own echo (Partner Center side)", &pc_echo);
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    assert_eq!((pc_echo.0, pc_echo.1), (1, 0), "{}", pc_echo.2);

    // A Microsoft update: the referral read, the opportunity read and patched.
    let mut changed = h.engine.pc.get_referral(&rid).await.expect("referral");
    changed.details.get_or_insert_with(Default::default).notes = Some("Microsoft's notes".into());
    let etag = changed.e_tag.clone().unwrap_or_default();
    h.engine
        .pc
        .put_referral(&rid, &etag, &changed)
        .await
        .expect("Microsoft edits the referral");
    reset(&h);
    from_referral(&h, &rid).await;
    let update = counted(&h);
    report("referral update", &update);
    assert_eq!((update.0, update.1), (1, 2), "{}", update.2);

    // A referral created from the CRM.
    let oid = flagged_opportunity(&h, "fabrikam");
    reset(&h);
    let made = from_opportunity(&h, &oid).await;
    let from_crm = counted(&h);
    report("referral created from the CRM", &from_crm);
    assert!(
        matches!(made, PairOutcome::ReferralCreated { .. }),
        "{made:?}"
    );

    // The seller accepts: the opportunity read, the referral read and moved (our
    // external reference goes with it).
    h.dv.user_update(
        "opportunities",
        &opportunity_id,
        obj(json!({ h.engine.columns.decision.clone(): 100_000_000 })),
    )
    .expect("seller accepts");
    reset(&h);
    from_opportunity(&h, &opportunity_id).await;
    let accept = counted(&h);
    report("accept", &accept);
    assert_eq!(
        h.pc.referral(&rid).unwrap()["externalReferenceId"],
        json!(opportunity_id)
    );

    // Closed as won in the CRM.
    h.dv.user_update(
        "opportunities",
        &opportunity_id,
        obj(json!({"statecode": 1, "statuscode": 3})),
    )
    .expect("seller wins the deal");
    reset(&h);
    from_opportunity(&h, &opportunity_id).await;
    let won = counted(&h);
    report("close as won", &won);
    assert_eq!(won.1, 1, "{}", won.2);
}
