//! The engine built from settings reaches both stand-ins with tokens it fetched itself.

use cosell::partner_center::ListQuery;
use cosell_tests::harness::Harness;

#[tokio::test]
async fn an_engine_built_from_settings_talks_to_both_services() {
    let h = Harness::start().await;
    let me = h.engine.dv.who_am_i().await.expect("WhoAmI");
    assert_eq!(me, h.dv.config().user_id);
    h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let page = h
        .engine
        .pc
        .list_first_page(&ListQuery::default())
        .await
        .expect("list referrals");
    assert_eq!(page.referrals.len(), 1, "{page:?}");
    assert_eq!(page.referrals[0].name.as_deref(), Some("Contoso ERP"));
    assert_eq!(h.pc.token_requests(), 1);
    assert_eq!(h.dv.token_requests(), 1);
}
