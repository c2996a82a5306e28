//! Issue 24, deal type and visibility: the "Referral Visibility" column (shared with
//! Microsoft sellers, or private) beside the help column picks the deal type of a referral
//! made from the CRM; help asked on a private deal, or a co-sell without a solution, is not
//! sent and the opportunity says why; sharing cannot go back, so a shared pair's column set
//! to private is set back with the reason in the audit column.

use cosell::audit::{AuditEntry, AuditQuery};
use cosell::engine::{reconcile_pair, PairOutcome, SyncError, SyncMessage};
use cosell::mapping::VISIBILITY_IRREVERSIBLE;
use cosell::store::Store;
use cosell_tests::crm_rows;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

const PRIVATE: i64 = 100_000_000;
const SHARED: i64 = 100_000_001;

async fn sync(h: &Harness, id: &str) -> Result<PairOutcome, SyncError> {
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(id, None)).await
}

fn opportunity(h: &Harness, help: Option<i64>, visibility: Option<i64>) -> String {
    crm_rows::flagged_opportunity(h, help, visibility)
}

fn row(h: &Harness, id: &str) -> Value {
    h.dv.row("opportunities", id).expect("row")
}

fn pc_writes(h: &Harness) -> usize {
    h.pc.requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.contains("/referrals"))
        .count()
}

async fn trail(h: &Harness) -> Vec<AuditEntry> {
    h.store
        .query_audit(&AuditQuery::default())
        .await
        .expect("audit")
}

#[tokio::test]
async fn a_shared_deal_asking_no_help_is_partner_led() {
    let h = Harness::start().await;
    let opp = opportunity(&h, None, Some(SHARED));
    let out = sync(&h, &opp).await.expect("create");
    let PairOutcome::ReferralCreated { referral_id, .. } = out else {
        panic!("{out:?}");
    };
    let own = h.pc.referral(&referral_id).unwrap();
    assert_eq!(own["type"], "Shared");
    assert_eq!(
        own["consent"]["consentToShareReferralWithMicrosoftSellers"],
        true
    );
    let engagement = own["engagementId"].as_str().unwrap();
    let for_ms = h.pc.referrals_for_microsoft(engagement);
    assert_eq!(for_ms.len(), 1, "the connected referral for Microsoft");
    assert!(
        !for_ms[0]["inviteContext"]["notes"]
            .as_str()
            .unwrap_or_default()
            .contains("Help needed"),
        "no help asked: {:?}",
        for_ms[0]["inviteContext"]
    );
    assert_eq!(row(&h, &opp)[&h.engine.columns.visibility], json!(SHARED));
}

#[tokio::test]
async fn a_deal_with_an_empty_visibility_is_private_and_shown_so() {
    let h = Harness::start().await;
    let opp = opportunity(&h, None, None);
    let PairOutcome::ReferralCreated { referral_id, .. } = sync(&h, &opp).await.unwrap() else {
        panic!("not created");
    };
    assert_eq!(h.pc.referral(&referral_id).unwrap()["type"], "Independent");
    assert_eq!(h.pc.referrals().len(), 1, "nothing for Microsoft");
    // The decoration write that happens anyway shows it.
    assert_eq!(row(&h, &opp)[&h.engine.columns.visibility], json!(PRIVATE));
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Unchanged { .. }
    ));
}

#[tokio::test]
async fn help_asked_on_a_private_deal_is_not_sent() {
    let h = Harness::start().await;
    let opp = opportunity(&h, Some(100_000_003), Some(PRIVATE));
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(pc_writes(&h), 0);
    let r = row(&h, &opp);
    let audit = r[&h.engine.columns.audit].as_str().unwrap_or_default();
    assert!(audit.contains("visibility is private"), "{audit}");
    assert_eq!(r["name"], "Fabrikam field service ✘");
}

#[tokio::test]
async fn a_co_sell_without_a_solution_is_not_sent() {
    let h = Harness::start().await;
    let opp = opportunity(&h, Some(100_000_003), Some(SHARED));
    let c = &h.engine.columns;
    let mut clear = Map::new();
    clear.insert(c.solutions.clone(), Value::Null);
    h.dv.user_update("opportunities", &opp, clear).unwrap();
    let err = sync(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(pc_writes(&h), 0);
    let r = row(&h, &opp);
    let audit = r[&c.audit].as_str().unwrap_or_default();
    assert!(audit.contains("solution"), "{audit}");
    assert_eq!(r["name"], "Fabrikam field service ✘");
}

/// Sharing cannot go back: the seller sets a shared pair's visibility to private; the
/// poller's reconcile sets it back, says why in the audit column and the trail, and sends
/// nothing to Partner Center. The write's own echo is then no change.
#[tokio::test]
async fn a_shared_deal_cannot_be_made_private_again() {
    let h = Harness::start().await;
    let opp = opportunity(&h, Some(100_000_003), Some(SHARED));
    let PairOutcome::ReferralCreated { referral_id, .. } = sync(&h, &opp).await.unwrap() else {
        panic!("not created");
    };
    let c = &h.engine.columns;
    let mut private = Map::new();
    private.insert(c.visibility.clone(), json!(PRIVATE));
    h.dv.user_update("opportunities", &opp, private).unwrap();
    let writes = pc_writes(&h);

    // No mapped field changed, yet it is no echo: the reconcile runs and sets it back.
    sync(&h, &opp).await.unwrap();
    let r = row(&h, &opp);
    assert_eq!(r[&c.visibility], json!(SHARED));
    assert_eq!(r[&c.audit], json!(VISIBILITY_IRREVERSIBLE));
    assert_eq!(pc_writes(&h), writes, "nothing sent to Partner Center");
    let referral = h.pc.referral(&referral_id).unwrap();
    assert_eq!(
        referral["consent"]["consentToShareReferralWithMicrosoftSellers"],
        true
    );
    assert!(
        trail(&h)
            .await
            .iter()
            .any(|e| format!("{e:?}").contains("cannot be made private again")),
        "the trail says so"
    );
    assert!(matches!(
        sync(&h, &opp).await.unwrap(),
        PairOutcome::Unchanged { .. }
    ));
    assert_eq!(row(&h, &opp)[&c.audit], json!(VISIBILITY_IRREVERSIBLE));
}

/// A referral Microsoft sends is shared with it by nature: its opportunity shows it from
/// the create, and a seller's change to private is set back like any other.
#[tokio::test]
async fn an_opportunity_made_from_a_microsoft_referral_shows_it_shared() {
    let h = Harness::start().await;
    let (_, opportunity_id) = h
        .synced_incoming_referral("Contoso ERP", "Contoso Ltd")
        .await;
    let c = &h.engine.columns;
    assert_eq!(row(&h, &opportunity_id)[&c.visibility], json!(SHARED));
    let mut private = Map::new();
    private.insert(c.visibility.clone(), json!(PRIVATE));
    h.dv.user_update("opportunities", &opportunity_id, private)
        .unwrap();
    sync(&h, &opportunity_id).await.unwrap();
    assert_eq!(row(&h, &opportunity_id)[&c.visibility], json!(SHARED));
}

/// A won or lost row is read-only: an empty visibility column on it is left so, and the
/// polls of it stay echoes (no write tried again and again).
#[tokio::test]
async fn a_closed_row_is_not_decorated_with_its_visibility() {
    let h = Harness::start().await;
    let opp = opportunity(&h, Some(100_000_003), Some(SHARED));
    sync(&h, &opp).await.unwrap();
    let c = &h.engine.columns;
    let mut won = Map::new();
    won.insert("statecode".into(), json!(1));
    won.insert("statuscode".into(), json!(3));
    won.insert(c.visibility.clone(), Value::Null);
    h.dv.user_update("opportunities", &opp, won).unwrap();
    sync(&h, &opp).await.unwrap();
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let again = sync(&h, &opp).await.unwrap();
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    let patches: u64 =
        h.dv.request_counts()
            .iter()
            .filter(|(k, _)| k.starts_with("PATCH"))
            .map(|(_, n)| n)
            .sum();
    assert_eq!(patches, 0, "{:?}", h.dv.request_counts());
    assert!(
        h.pc.request_counts().keys().all(|k| k == "POST token"),
        "an echo reads nothing in Partner Center: {:?}",
        h.pc.request_counts()
    );
    assert_eq!(row(&h, &opp)[&c.visibility], Value::Null);
}
