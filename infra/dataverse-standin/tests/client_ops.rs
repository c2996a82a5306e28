//! Every opportunity, account, contact and currency operation of the client against the
//! stand-in, including optimistic concurrency and the won/lost/reopen cycle.

mod common;

use cosell::dataverse::model::{state, status_reason};
use cosell::dataverse::{bind, DataverseError};
use dataverse_standin::{EUR_ID, USD_ID};
use serde_json::json;

use common::{map, start};

#[tokio::test]
async fn create_get_update_with_etags_and_conflict() {
    let env = start().await;
    let c = &env.client;
    let created = c
        .create_opportunity(&map(json!({
            "name": "Contoso rollout",
            "estimatedvalue": 125000.0,
            "cosell_referralidentifier": "ref-1",
        })))
        .await
        .unwrap();
    let id = created.opportunityid.clone().unwrap();
    let etag1 = created.etag.clone().unwrap();
    assert!(etag1.starts_with("W/\""));
    assert_eq!(created.statecode, Some(state::OPEN));
    assert_eq!(created.statuscode, Some(status_reason::IN_PROGRESS));
    assert_eq!(
        created.column_str("cosell_referralidentifier"),
        Some("ref-1")
    );
    assert_eq!(created.transactioncurrencyid.as_deref(), Some(USD_ID));

    let got = c.get_opportunity(&id).await.unwrap();
    assert_eq!(got.etag.as_deref(), Some(etag1.as_str()));
    assert_eq!(got.estimatedvalue, Some(125000.0));

    let updated = c
        .update_opportunity(&id, Some(&etag1), &map(json!({"description": "phase 1"})))
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("phase 1"));
    assert_ne!(updated.etag, got.etag);

    // The old etag is stale now.
    let err = c
        .update_opportunity(
            &id,
            Some(&etag1),
            &map(json!({"description": "lost write"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::Conflict { .. }), "{err:?}");
    assert_eq!(
        c.get_opportunity(&id).await.unwrap().description.as_deref(),
        Some("phase 1")
    );

    // A user edit in the CRM also makes the connector's etag stale.
    let current = updated.etag.unwrap();
    env.standin
        .user_update(
            "opportunities",
            &id,
            map(json!({"name": "Renamed by seller"})),
        )
        .unwrap();
    let err = c
        .update_opportunity(&id, Some(&current), &map(json!({"name": "x"})))
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::Conflict { .. }));

    // `If-Match: *` updates whatever is there, but never creates.
    let forced = c
        .update_opportunity(&id, None, &map(json!({"name": "Forced"})))
        .await
        .unwrap();
    assert_eq!(forced.name.as_deref(), Some("Forced"));
    let missing = "00000000-0000-0000-0000-00000000dead";
    let err = c
        .update_opportunity(missing, None, &map(json!({"name": "x"})))
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::NotFound { .. }), "{err:?}");
    assert!(env.standin.row("opportunities", missing).is_none());
    let err = c.get_opportunity(missing).await.unwrap_err();
    assert!(matches!(err, DataverseError::NotFound { .. }));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn win_makes_read_only_until_reopened_and_lose_checks_status() {
    let env = start().await;
    let c = &env.client;
    let id = c
        .create_opportunity(&map(json!({"name": "Fabrikam"})))
        .await
        .unwrap()
        .opportunityid
        .unwrap();

    c.win_opportunity(&id, "Won in Partner Center", status_reason::WON)
        .await
        .unwrap();
    let won = c.get_opportunity(&id).await.unwrap();
    assert_eq!(won.statecode, Some(state::WON));
    assert_eq!(won.statuscode, Some(status_reason::WON));
    assert!(won.actualclosedate.is_some());
    let closes = env.standin.rows("opportunitycloses");
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0]["_opportunityid_value"], json!(id));
    assert_eq!(closes[0]["subject"], json!("Won in Partner Center"));

    let err = c
        .update_opportunity(&id, None, &map(json!({"description": "edit"})))
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::ReadOnly { .. }), "{err:?}");
    // Closing a closed opportunity again is refused too.
    assert!(c
        .lose_opportunity(&id, "again", status_reason::CANCELED)
        .await
        .is_err());

    let reopened = c.reopen_opportunity(&id).await.unwrap();
    assert_eq!(reopened.statecode, Some(state::OPEN));
    assert_eq!(reopened.statuscode, Some(status_reason::IN_PROGRESS));
    c.update_opportunity(&id, None, &map(json!({"description": "editable again"})))
        .await
        .unwrap();

    // A "won" status reason cannot close an opportunity as lost.
    let err = c
        .lose_opportunity(&id, "Lost", status_reason::WON)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DataverseError::Invalid { status: 400, .. }),
        "{err:?}"
    );
    c.lose_opportunity(&id, "Lost to competitor", status_reason::OUT_SOLD)
        .await
        .unwrap();
    let lost = c.get_opportunity(&id).await.unwrap();
    assert_eq!(lost.statecode, Some(state::LOST));
    assert_eq!(lost.statuscode, Some(status_reason::OUT_SOLD));
    assert!(lost.is_closed());
    env.standin.shutdown().await;
}

#[tokio::test]
async fn find_by_referral_id_quotes_the_value() {
    let env = start().await;
    let c = &env.client;
    assert!(c
        .find_opportunity_by_referral_id("ref-9")
        .await
        .unwrap()
        .is_none());
    c.create_opportunity(&map(
        json!({"name": "a", "cosell_referralidentifier": "ref-9"}),
    ))
    .await
    .unwrap();
    c.create_opportunity(&map(
        json!({"name": "b", "cosell_referralidentifier": "it's-ref"}),
    ))
    .await
    .unwrap();
    let found = c
        .find_opportunity_by_referral_id("ref-9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name.as_deref(), Some("a"));
    let quoted = c
        .find_opportunity_by_referral_id("it's-ref")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quoted.name.as_deref(), Some("b"));
    // A quote in the value cannot widen the filter.
    assert!(c
        .find_opportunity_by_referral_id("x' or name ne 'y")
        .await
        .unwrap()
        .is_none());
    env.standin.shutdown().await;
}

#[tokio::test]
async fn accounts_contacts_currencies_and_bindings() {
    let env = start().await;
    let c = &env.client;
    assert!(c
        .find_account("Contoso Ltd", Some("98052"))
        .await
        .unwrap()
        .is_none());
    let account = c
        .create_account(&cosell::dataverse::Account {
            name: Some("Contoso Ltd".into()),
            address1_postalcode: Some("98052".into()),
            address1_country: Some("US".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let account_id = account.accountid.clone().unwrap();
    // Same name elsewhere is another customer.
    c.create_account(&cosell::dataverse::Account {
        name: Some("Contoso Ltd".into()),
        address1_postalcode: Some("10115".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let found = c
        .find_account("contoso ltd", Some("98052"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.accountid.as_deref(), Some(account_id.as_str()));
    assert!(c
        .find_account("Contoso Ltd", Some("00000"))
        .await
        .unwrap()
        .is_none());

    let contact = c
        .create_contact(&cosell::dataverse::Contact {
            firstname: Some("Ana".into()),
            lastname: Some("Silva".into()),
            emailaddress1: Some("ana@contoso.example".into()),
            parentcustomerid: Some(account_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(contact.fullname.as_deref(), Some("Ana Silva"));
    assert_eq!(
        contact.parentcustomerid.as_deref(),
        Some(account_id.as_str())
    );
    let contact_id = contact.contactid.clone().unwrap();
    let by_mail = c
        .find_contact_by_email("ANA@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_mail.contactid.as_deref(), Some(contact_id.as_str()));
    assert!(c
        .find_contact_by_email("nobody@x.example")
        .await
        .unwrap()
        .is_none());

    assert_eq!(
        c.find_currency("EUR").await.unwrap().as_deref(),
        Some(EUR_ID)
    );
    assert_eq!(
        c.find_currency("USD").await.unwrap().as_deref(),
        Some(USD_ID)
    );
    assert!(c.find_currency("XYZ").await.unwrap().is_none());

    let mut body = map(json!({"name": "Bound"}));
    body.extend([
        bind::customer_contact(&contact_id),
        bind::parent_account(&account_id),
        bind::parent_contact(&contact_id),
        bind::currency(EUR_ID),
    ]);
    let opp = c.create_opportunity(&body).await.unwrap();
    assert_eq!(opp.customerid.as_deref(), Some(contact_id.as_str()));
    assert_eq!(opp.parentaccountid.as_deref(), Some(account_id.as_str()));
    assert_eq!(opp.parentcontactid.as_deref(), Some(contact_id.as_str()));
    assert_eq!(opp.transactioncurrencyid.as_deref(), Some(EUR_ID));
    // Binding the account customer replaces the contact customer.
    let id = opp.opportunityid.unwrap();
    let rebound = c
        .update_opportunity(
            &id,
            None,
            &map(json!({}).tap(bind::customer_account(&account_id))),
        )
        .await
        .unwrap();
    assert_eq!(rebound.customerid.as_deref(), Some(account_id.as_str()));

    // A binding to a row that does not exist is refused.
    let mut bad = map(json!({"name": "dangling"}));
    bad.extend([bind::parent_account("00000000-0000-0000-0000-0000000000ff")]);
    let err = c.create_opportunity(&bad).await.unwrap_err();
    assert!(
        matches!(err, DataverseError::Invalid { status: 404, ref code, .. } if code == "0x80040217"),
        "{err:?}"
    );
    env.standin.shutdown().await;
}

trait Tap {
    fn tap(self, entry: (String, serde_json::Value)) -> serde_json::Value;
}

impl Tap for serde_json::Value {
    fn tap(mut self, entry: (String, serde_json::Value)) -> serde_json::Value {
        self.as_object_mut().unwrap().insert(entry.0, entry.1);
        self
    }
}

#[tokio::test]
async fn who_am_i_reports_the_application_user() {
    let env = start().await;
    assert_eq!(
        env.client.who_am_i().await.unwrap(),
        env.standin.config().user_id
    );
    env.standin.shutdown().await;
}
