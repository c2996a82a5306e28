//! The webhook registration is created, left alone, moved and removed against the Partner
//! Center stand-in, and what was done is recorded in the store.

use cosell::engine::registration::{
    ensure_webhook, recorded_registration, remove_webhook, RegistrationChange,
};
use cosell::partner_center::Cleared;
use cosell_tests::harness::Harness;
use url::Url;

fn events() -> Vec<String> {
    vec!["referral-created".into(), "referral-updated".into()]
}

#[tokio::test]
async fn register_keep_move_and_remove() {
    let h = Harness::start().await;
    let pc = &h.engine.pc;
    let store = h.store.as_ref();
    let first = Url::parse("https://intake.example.com/webhooks/partner-center").unwrap();
    assert!(h.pc.registration().is_none());
    assert!(recorded_registration(store).await.unwrap().is_none());

    let change = ensure_webhook(pc, store, &first, &events()).await.unwrap();
    assert_eq!(change, RegistrationChange::Registered);
    let reg = h.pc.registration().expect("registered at the stand-in");
    assert_eq!(reg["WebhookUrl"], first.as_str());
    assert_eq!(
        reg["WebhookEvents"],
        serde_json::json!(["referral-created", "referral-updated"])
    );
    let recorded = recorded_registration(store).await.unwrap().unwrap();
    assert_eq!(recorded.webhook_url.as_deref(), Some(first.as_str()));
    assert_eq!(recorded.webhook_events, events());

    // Same URL, events in another order and case: nothing to do, no write at the service.
    let writes_before = registration_writes(&h);
    let shuffled = vec![
        "Referral-Updated".to_string(),
        "referral-created".to_string(),
    ];
    let change = ensure_webhook(pc, store, &first, &shuffled).await.unwrap();
    assert_eq!(change, RegistrationChange::AlreadyCurrent);
    assert_eq!(registration_writes(&h), writes_before);

    let moved = Url::parse("https://intake2.example.com/hook").unwrap();
    let change = ensure_webhook(pc, store, &moved, &events()).await.unwrap();
    assert_eq!(change, RegistrationChange::Updated);
    assert_eq!(h.pc.registration().unwrap()["WebhookUrl"], moved.as_str());
    assert_eq!(
        recorded_registration(store)
            .await
            .unwrap()
            .unwrap()
            .webhook_url
            .as_deref(),
        Some(moved.as_str())
    );

    // A changed event set is an update too.
    let only_created = vec!["referral-created".to_string()];
    let change = ensure_webhook(pc, store, &moved, &only_created)
        .await
        .unwrap();
    assert_eq!(change, RegistrationChange::Updated);
    assert_eq!(
        h.pc.registration().unwrap()["WebhookEvents"],
        serde_json::json!(["referral-created"])
    );

    // No DELETE in the API: removing updates the registration to no events.
    assert_eq!(remove_webhook(pc, store).await.unwrap(), Cleared::Cleared);
    assert_eq!(
        h.pc.registration().unwrap()["WebhookEvents"],
        serde_json::json!([])
    );
    assert!(recorded_registration(store).await.unwrap().is_none());
    assert_eq!(
        remove_webhook(pc, store).await.unwrap(),
        Cleared::NoneRegistered,
        "nothing left to remove"
    );
}

#[tokio::test]
async fn an_empty_event_list_is_refused_before_any_call() {
    let h = Harness::start().await;
    let url = Url::parse("https://intake.example.com/hook").unwrap();
    let err = ensure_webhook(&h.engine.pc, h.store.as_ref(), &url, &[])
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(h.pc.registration().is_none());
    assert_eq!(registration_writes(&h), 0);
}

/// POST/PUT/DELETE requests the stand-in saw on the registration resource.
fn registration_writes(h: &Harness) -> usize {
    h.pc.requests()
        .iter()
        .filter(|r| r.path.contains("registration") && r.method != "GET")
        .count()
}
