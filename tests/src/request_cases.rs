//! Requests per reconcile on each side, counted by both stand-ins (token requests left out),
//! for every case a deployment meets: one scenario, run by the `pair_requests` test (which
//! holds each case to its figure) and by `cosell-bench` (which prints them beside the
//! minimum the APIs allow and the syncs per 5 minutes Dataverse's limit leaves).

use std::collections::BTreeMap;

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use serde_json::{json, Map, Value};

use crate::harness::Harness;

/// The requests one case cost.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub pc: u64,
    pub dv: u64,
    /// The routes, for a failed assertion's message.
    pub routes: String,
    /// The fewest requests the APIs allow for it, `(partner center, dataverse)`.
    pub minimum: (u64, u64),
    /// How that minimum is derived.
    pub why: &'static str,
}

/// Dataverse's service protection: requests per user per 5-minute window.
pub const DATAVERSE_REQUESTS_PER_5_MIN: u64 = 6_000;

impl Case {
    /// Syncs of this case one Dataverse user can run per 5 minutes (unbounded: `None`).
    pub fn syncs_per_5_min(&self) -> Option<u64> {
        (self.dv > 0).then(|| DATAVERSE_REQUESTS_PER_5_MIN / self.dv)
    }
}

/// The decision column's "Accept" and "Decline" choices.
const ACCEPT: i64 = 100_000_000;
const DECLINE: i64 = 100_000_001;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// API requests since the last reset, per side, and the routes.
fn counted(h: &Harness) -> (u64, u64, String) {
    let api = |counts: BTreeMap<String, u64>| {
        let kept: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(route, _)| !route.contains("token"))
            .collect();
        let total = kept.iter().map(|(_, n)| n).sum::<u64>();
        let routes: Vec<String> = kept.iter().map(|(r, n)| format!("{r} x{n}")).collect();
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
        .expect("store");
    reconcile_pair(&h.engine, &m).await.expect("reconcile")
}

async fn from_opportunity(h: &Harness, id: &str) -> PairOutcome {
    let m = SyncMessage::for_opportunity(id, None);
    reconcile_pair(&h.engine, &m).await.expect("reconcile")
}

/// A Microsoft referral naming a customer contact.
async fn incoming_with_contact(h: &Harness, name: &str, customer: &str, email: &str) -> String {
    let r = h.pc.create_incoming_referral(name, customer);
    let id = r["id"].as_str().expect("id").to_string();
    let current = h.engine.pc.get_referral(&id).await.expect("referral");
    h.engine
        .pc
        .update_referral(
            &id,
            current.e_tag.as_deref().unwrap_or("*"),
            &[PatchOp::replace(
                "/customerProfile/team",
                json!([{"firstName": "Lee", "lastName": "Buyer", "email": email}]),
            )],
        )
        .await
        .expect("a customer contact on the referral");
    id
}

/// A flagged opportunity with its account and contact, as a seller makes one.
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
        "estimatedvalue": 50000.0,
        "estimatedclosedate": "2026-09-30",
        "description": "Rollout",
        "statecode": 0,
        "statuscode": 1,
        "_parentaccountid_value": account,
        "_customerid_value": account,
        "_parentcontactid_value": contact,
        "_transactioncurrencyid_value": dataverse_standin::USD_ID,
    }));
    row.insert(c.sync_flag.clone(), json!(true));
    row.insert(c.solutions.clone(), json!("Dynamics365forFieldService"));
    h.dv.user_insert("opportunities", row).expect("opportunity")
}

/// Lands a Microsoft referral (uncounted) and returns `(referral id, opportunity id)`.
async fn landed(h: &Harness, name: &str) -> (String, String) {
    let rid = incoming_with_contact(
        h,
        name,
        &format!("{name} Co"),
        &format!("lee@{name}.example"),
    )
    .await;
    match from_referral(h, &rid).await {
        PairOutcome::OpportunityCreated { opportunity_id, .. } => (rid, opportunity_id),
        other => panic!("expected an opportunity, got {other:?}"),
    }
}

/// Runs every case on `h`, in order, and returns what each cost.
pub async fn run_all(h: &Harness) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut record = |name, minimum, why, h: &Harness| {
        let (pc, dv, routes) = counted(h);
        cases.push(Case {
            name,
            pc,
            dv,
            routes,
            minimum,
            why,
        });
    };
    // A first referral warms the process up (tokens, the cached currency rows).
    landed(h, "warmup").await;

    let rid =
        incoming_with_contact(h, "Contoso rollout", "Contoso Fresh", "lee@contoso.example").await;
    reset(h);
    let PairOutcome::OpportunityCreated { opportunity_id, .. } = from_referral(h, &rid).await
    else {
        panic!("the new referral made no opportunity");
    };
    record(
        "new referral, new customer and contact",
        (1, 2),
        "read the referral; look the account and contact up (one batch of two reads); create the three rows in one change set",
        h,
    );

    let again = incoming_with_contact(
        h,
        "Contoso phase two",
        "Contoso Fresh",
        "lee@contoso.example",
    )
    .await;
    reset(h);
    from_referral(h, &again).await;
    record(
        "new referral, existing customer",
        (1, 2),
        "as above; the rows are found and the opportunity made alone",
        h,
    );

    reset(h);
    let echo = from_opportunity(h, &opportunity_id).await;
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    record(
        "our own echo (CRM side)",
        (0, 1),
        "read the sender and compare it with the base",
        h,
    );
    reset(h);
    let echo = from_referral(h, &rid).await;
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    record(
        "our own echo (Partner Center side)",
        (1, 0),
        "read the sender and compare it with the base",
        h,
    );

    let mut changed = h.engine.pc.get_referral(&rid).await.expect("referral");
    changed.details.get_or_insert_with(Default::default).notes = Some("Microsoft's notes".into());
    let etag = changed.e_tag.clone().unwrap_or_default();
    h.engine
        .pc
        .put_referral(&rid, &etag, &changed)
        .await
        .expect("Microsoft edits the referral");
    reset(h);
    from_referral(h, &rid).await;
    record(
        "Microsoft update",
        (1, 2),
        "read the sender; read the other side (for the merge and its ETag); write it",
        h,
    );

    h.dv.user_update(
        "opportunities",
        &opportunity_id,
        obj(json!({"estimatedvalue": 77000.0})),
    )
    .expect("seller edit");
    reset(h);
    from_opportunity(h, &opportunity_id).await;
    record("CRM edit", (2, 1), "a Microsoft update, mirrored", h);

    let oid = flagged_opportunity(h, "fabrikam");
    reset(h);
    let made = from_opportunity(h, &oid).await;
    assert!(
        matches!(made, PairOutcome::ReferralCreated { .. }),
        "{made:?}"
    );
    record(
        "referral created from the CRM (private)",
        (1, 3),
        "read the opportunity, its account and contact for the body; POST; write the id back (the lookup before the POST is what makes a lost answer safe: +1 PC)",
        h,
    );

    let decide =
        |column_value: i64| obj(json!({ h.engine.columns.decision.clone(): column_value }));
    h.dv.user_update("opportunities", &opportunity_id, decide(ACCEPT))
        .expect("seller accepts");
    reset(h);
    from_opportunity(h, &opportunity_id).await;
    record(
        "accept",
        (2, 1),
        "read the opportunity; read the referral (its ETag) and move it",
        h,
    );

    let (_, declined) = landed(h, "declined").await;
    h.dv.user_update("opportunities", &declined, decide(DECLINE))
        .expect("seller declines");
    reset(h);
    from_opportunity(h, &declined).await;
    record(
        "decline",
        (2, 2),
        "as accept, and the opportunity closed as lost (`LoseOpportunity`) as the declined referral asks; our third request reads the row's new ETag after the action",
        h,
    );

    h.dv.user_update(
        "opportunities",
        &opportunity_id,
        obj(json!({"statecode": 1, "statuscode": 3})),
    )
    .expect("seller wins the deal");
    reset(h);
    from_opportunity(h, &opportunity_id).await;
    record("close as won", (2, 1), "as accept", h);

    let (lost_rid, lost) = landed(h, "lost").await;
    h.dv.user_update("opportunities", &lost, decide(ACCEPT))
        .expect("seller accepts");
    from_opportunity(h, &lost).await;
    assert_eq!(
        h.pc.referral(&lost_rid).expect("referral")["substatus"],
        "Accepted"
    );
    h.dv.user_update(
        "opportunities",
        &lost,
        obj(json!({"statecode": 2, "statuscode": 4})),
    )
    .expect("seller loses the deal");
    reset(h);
    from_opportunity(h, &lost).await;
    record("close as lost", (2, 1), "as accept", h);
    cases
}
