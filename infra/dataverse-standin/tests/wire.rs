//! The Dataverse client on the wire as the docs ask: a `$select` on every read, date-time
//! literals of at most 7 fractional digits, DateOnly columns as `YYYY-MM-DD`, the header that
//! keeps our writes from triggering Power Automate flows, creates that are not sent twice,
//! and one throttle gate for every client of the environment and credential.

mod common;

use std::time::Duration;

use common::*;
use cosell::dataverse::{Account, Contact, DataverseError};
use cosell::retry::{CallError, RetryPolicy};
use dataverse_standin::ratelimit::RateLimit;
use dataverse_standin::{Fault, FaultKind};
use serde_json::json;
use time::macros::datetime;

#[tokio::test]
async fn every_read_selects_its_columns() {
    let env = start().await;
    let c = &env.client;
    let opp = c
        .create_opportunity(&map(
            json!({"name": "Selected", "cosell_referralidentifier": "ref-s"}),
        ))
        .await
        .unwrap();
    let oid = opp.opportunityid.clone().unwrap();
    let account = c
        .create_account(&Account {
            name: Some("Select Co".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let aid = account.accountid.clone().unwrap();
    let contact = c
        .create_contact(&Contact {
            lastname: Some("Select".into()),
            emailaddress1: Some("s@select.example".into()),
            parentcustomerid: Some(aid.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let cid = contact.contactid.clone().unwrap();
    env.standin.clear_journal();

    let got = c.get_opportunity(&oid).await.unwrap();
    assert_eq!(got.column_str("cosell_referralidentifier"), Some("ref-s"));
    c.find_opportunity_by_referral_id("ref-s").await.unwrap();
    c.find_account("Select Co", None).await.unwrap();
    let a = c.get_account(&aid).await.unwrap();
    assert_eq!(a.name.as_deref(), Some("Select Co"));
    let k = c.get_contact(&cid).await.unwrap();
    assert_eq!(k.parentcustomerid.as_deref(), Some(aid.as_str()));
    c.find_contact_by_email("s@select.example").await.unwrap();
    c.modified_since(datetime!(2020-01-01 0:00 UTC))
        .await
        .unwrap();
    c.find_currency("USD").await.unwrap();

    let reads: Vec<_> = env
        .standin
        .journal()
        .into_iter()
        .filter(|e| e.method == "GET")
        .collect();
    assert_eq!(reads.len(), 8, "{reads:?}");
    for r in &reads {
        let select = r.option("$select").unwrap_or_default();
        assert!(
            !select.is_empty(),
            "no $select on {} {}?{}",
            r.method,
            r.path,
            r.query
        );
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn date_time_literals_have_at_most_seven_fractional_digits() {
    let env = start().await;
    env.client
        .create_opportunity(&map(json!({"name": "Recent"})))
        .await
        .unwrap();
    let watermark = datetime!(2020-01-01 0:00:00.123456789 UTC);
    let rows = env.client.modified_since(watermark).await.unwrap();
    assert_eq!(rows.len(), 1);

    // The stand-in refuses what Dataverse refuses.
    let token = env.tokens.token().await.unwrap();
    let mut url = env.client.api_base().join("opportunities").unwrap();
    url.query_pairs_mut()
        .append_pair("$filter", "modifiedon ge 2020-01-01T00:00:00.123456789Z");
    let resp = env
        .http
        .get(url)
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn estimatedclosedate_takes_a_date_not_a_date_time() {
    let env = start().await;
    let err = env
        .client
        .create_opportunity(&map(
            json!({"name": "Timed", "estimatedclosedate": "2026-09-30T00:00:00Z"}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DataverseError::Invalid { status: 400, message, .. } if message.contains("Edm.Date")),
        "{err:?}"
    );
    let ok = env
        .client
        .create_opportunity(&map(
            json!({"name": "Dated", "estimatedclosedate": "2026-09-30"}),
        ))
        .await
        .unwrap();
    assert_eq!(ok.estimatedclosedate.as_deref(), Some("2026-09-30"));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn writes_and_only_writes_suppress_power_automate_flows() {
    let env = start().await;
    let c = &env.client;
    let opp = c
        .create_opportunity(&map(json!({"name": "Flows"})))
        .await
        .unwrap();
    let id = opp.opportunityid.unwrap();
    c.update_opportunity(&id, opp.etag.as_deref(), &map(json!({"description": "x"})))
        .await
        .unwrap();
    c.win_opportunity(&id, "won", 3).await.unwrap();
    c.get_opportunity(&id).await.unwrap();
    let journal = env.standin.journal();
    let writes: Vec<_> = journal.iter().filter(|e| e.method != "GET").collect();
    assert_eq!(writes.len(), 3, "{journal:?}");
    assert!(writes.iter().all(|e| e.suppress_flows), "{writes:?}");
    assert!(journal
        .iter()
        .filter(|e| e.method == "GET")
        .all(|e| !e.suppress_flows));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn a_create_without_its_key_is_not_sent_twice_and_one_with_it_is_retried() {
    let env = start().await;
    env.client.find_currency("USD").await.unwrap(); // token in hand
    env.standin
        .add_fault(Fault::new(FaultKind::Drop, 1).on("POST", "opportunities"));
    let err = env
        .client
        .create_opportunity(&map(json!({"name": "Once"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DataverseError::Call(e) if e.outcome_unknown()),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(env.standin.request_count("POST opportunities"), 1);

    // With the primary key in the body a replay cannot make a second row: retried.
    env.standin
        .add_fault(Fault::new(FaultKind::Unavailable, 1).on("POST", "opportunities"));
    let id = "3f1c0b8e-8d6a-4c47-9a51-0e2f7b1d2c3a";
    let created = env
        .client
        .create_opportunity(&map(json!({"name": "Keyed", "opportunityid": id})))
        .await
        .unwrap();
    assert_eq!(created.opportunityid.as_deref(), Some(id));
    assert_eq!(env.standin.request_count("POST opportunities"), 3);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn after_a_429_every_client_of_the_environment_waits_out_the_window() {
    let env = start().await;
    env.client.find_currency("USD").await.unwrap(); // token in hand
    env.standin.set_rate_limit(Some(RateLimit {
        per_second: 0.5,
        burst: 1,
    }));
    let impatient = cosell::dataverse::DataverseClient::new(
        env.http.clone(),
        env.tokens.clone(),
        env.standin.base_url(),
        columns(),
        RetryPolicy {
            max_inline_wait: Duration::from_millis(100),
            ..RetryPolicy::fast()
        },
    );
    impatient.find_currency("USD").await.unwrap();
    let err = impatient.find_currency("USD").await.unwrap_err();
    assert!(
        matches!(err, DataverseError::Call(CallError::Throttled { .. })),
        "{err:?}"
    );
    // The test's own client: same environment, same credential, same gate.
    env.client.find_currency("EUR").await.unwrap();
    assert_eq!(env.standin.ignored_retry_after(), 0);
    assert_eq!(env.standin.rate_limited(), 1);
    env.standin.shutdown().await;
}
