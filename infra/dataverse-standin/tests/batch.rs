//! `$batch` with change sets, as documented: operations run in order, a change set is
//! atomic, `Content-ID` references name rows made earlier in it, the first failure stops the
//! batch with its own status (or not, with `odata.continue-on-error`), no GET in a change
//! set. And the client's rows-made-together call on top of it.

mod common;

use common::*;
use cosell::dataverse::{Account, Contact, DataverseError, NewRow};
use serde_json::{json, Value};

const ACCOUNT: &str = "5a1c0d2e-0000-4000-8000-000000000001";
const CONTACT: &str = "5a1c0d2e-0000-4000-8000-000000000002";
const OPPORTUNITY: &str = "5a1c0d2e-0000-4000-8000-000000000003";

fn rows(opportunity: Value) -> Vec<NewRow> {
    let account = Account {
        name: Some("Batch Co".into()),
        ..Default::default()
    };
    let contact = Contact {
        lastname: Some("Buyer".into()),
        emailaddress1: Some("buyer@batch.example".into()),
        parentcustomerid: Some(ACCOUNT.into()),
        ..Default::default()
    };
    vec![
        NewRow::account(ACCOUNT, &account).unwrap(),
        NewRow::contact(CONTACT, &contact).unwrap(),
        NewRow::opportunity(OPPORTUNITY, map(opportunity)),
    ]
}

fn deal() -> Value {
    json!({
        "name": "Batch deal",
        "customerid_account@odata.bind": format!("/accounts({ACCOUNT})"),
        "parentcontactid@odata.bind": format!("/contacts({CONTACT})"),
    })
}

#[tokio::test]
async fn rows_made_together_cost_one_request_and_bind_each_other() {
    let env = start().await;
    env.standin.clear_journal();
    let answers = env.client.create_together(&rows(deal())).await.unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[2].as_ref().unwrap()["opportunityid"], OPPORTUNITY);
    let journal = env.standin.journal();
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0].path, "/api/data/v9.2/$batch");

    let contact = env.standin.row("contacts", CONTACT).unwrap();
    assert_eq!(contact["_parentcustomerid_value"], ACCOUNT);
    let opp = env.standin.row("opportunities", OPPORTUNITY).unwrap();
    assert_eq!(opp["_customerid_value"], ACCOUNT);
    assert_eq!(opp["_parentcontactid_value"], CONTACT);

    // Sent again (its answer lost): refused on the first row, nothing written.
    let version = env.standin.row("accounts", ACCOUNT).unwrap()["versionnumber"].clone();
    match env.client.create_together(&rows(deal())).await {
        Err(DataverseError::Conflict { entity, id, .. }) => {
            assert_eq!((entity.as_str(), id.as_str()), ("account", ACCOUNT));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(env.standin.rows("accounts").len(), 1);
    assert_eq!(env.standin.rows("contacts").len(), 1);
    assert_eq!(env.standin.rows("opportunities").len(), 1);
    assert_eq!(
        env.standin.row("accounts", ACCOUNT).unwrap()["versionnumber"],
        version
    );
}

#[tokio::test]
async fn a_change_set_that_fails_part_way_writes_nothing() {
    let env = start().await;
    let mut bad = deal();
    bad["_bogus_value"] = json!("x");
    let err = env.client.create_together(&rows(bad)).await.unwrap_err();
    match &err {
        DataverseError::Invalid {
            status, message, ..
        } => {
            assert_eq!(*status, 400, "{err}");
            assert!(message.contains("_bogus_value"), "{err}");
        }
        other => panic!("expected the part's own error, got {other:?}"),
    }
    assert!(env.standin.rows("accounts").is_empty());
    assert!(env.standin.rows("contacts").is_empty());
    assert!(env.standin.rows("opportunities").is_empty());
    // Nothing half-made is left in the way of a good try.
    env.client.create_together(&rows(deal())).await.unwrap();
    assert_eq!(env.standin.rows("opportunities").len(), 1);
}

fn api_url(env: &Env, path: &str) -> String {
    format!(
        "{}/api/data/v9.2/{path}",
        env.standin.base_url().as_str().trim_end_matches('/')
    )
}

/// A raw batch request; returns the status and the answer's text.
async fn send_batch(env: &Env, prefer: Option<&str>, body: String) -> (u16, String) {
    let token = env.tokens.token().await.unwrap();
    let mut req = env
        .http
        .post(api_url(env, "$batch"))
        .bearer_auth(token.expose())
        .header("Content-Type", "multipart/mixed; boundary=batch_t")
        .body(body);
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn op(method: &str, url: &str, content_id: Option<&str>, body: Option<Value>) -> String {
    let mut out =
        String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!("\r\n{method} {url} HTTP/1.1\r\n"));
    match body {
        Some(b) => out.push_str(&format!(
            "Content-Type: application/json; type=entry\r\n\r\n{b}\r\n"
        )),
        None => out.push_str("\r\n"),
    }
    out
}

fn change_set(ops: &[String]) -> String {
    let mut out =
        String::from("--batch_t\r\nContent-Type: multipart/mixed; boundary=changeset_t\r\n\r\n");
    for o in ops {
        out.push_str("--changeset_t\r\n");
        out.push_str(o);
    }
    out.push_str("--changeset_t--\r\n");
    out
}

#[tokio::test]
async fn content_ids_name_rows_made_earlier_in_the_change_set() {
    let env = start().await;
    let body = change_set(&[
        op(
            "POST",
            "/api/data/v9.2/accounts",
            Some("1"),
            Some(json!({"name": "Referenced Co"})),
        ),
        op(
            "POST",
            "/api/data/v9.2/opportunities",
            Some("2"),
            Some(json!({"name": "Referencing deal", "customerid_account@odata.bind": "$1"})),
        ),
        op(
            "PATCH",
            "$2",
            Some("3"),
            Some(json!({"description": "patched through $2"})),
        ),
    ]) + "--batch_t--\r\n";
    let (status, text) = send_batch(&env, None, body).await;
    assert_eq!(status, 200, "{text}");
    let account = &env.standin.rows("accounts")[0];
    let opp = &env.standin.rows("opportunities")[0];
    assert_eq!(opp["_customerid_value"], account["accountid"]);
    assert_eq!(opp["description"], "patched through $2");
    assert!(text.contains("Content-ID: 3"), "{text}");

    // A reference to nothing declared: 400, and the change set leaves nothing.
    let body = change_set(&[
        op(
            "POST",
            "/api/data/v9.2/accounts",
            Some("1"),
            Some(json!({"name": "Orphan Co"})),
        ),
        op("PATCH", "$9", Some("2"), Some(json!({"description": "x"}))),
    ]) + "--batch_t--\r\n";
    let (status, text) = send_batch(&env, None, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("Content-ID Reference: '$9' does not exist in the batch context."),
        "{text}"
    );
    assert_eq!(env.standin.rows("accounts").len(), 1);
}

#[tokio::test]
async fn the_first_failure_stops_the_batch_unless_asked_to_go_on() {
    let env = start().await;
    let url = api_url(&env, "accounts");
    let failing = format!(
        "--batch_t\r\n{}",
        op(
            "PATCH",
            &format!("{url}({ACCOUNT})"),
            None,
            Some(json!({"name": "Missing"}))
        )
        .replace("HTTP/1.1\r\n", "HTTP/1.1\r\nIf-Match: *\r\n")
    );
    let fine = format!(
        "--batch_t\r\n{}",
        op(
            "POST",
            &url,
            None,
            Some(json!({"name": "After the failure"}))
        )
    );
    let body = format!("{failing}{fine}--batch_t--\r\n");
    let (status, text) = send_batch(&env, None, body.clone()).await;
    assert_eq!(status, 404, "the failing operation's own status: {text}");
    assert!(env.standin.rows("accounts").is_empty());

    let (status, text) = send_batch(&env, Some("odata.continue-on-error"), body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("HTTP/1.1 404"), "{text}");
    assert_eq!(env.standin.rows("accounts").len(), 1);

    // No GET in a change set.
    let body = change_set(&[op("GET", &url, Some("1"), None)]) + "--batch_t--\r\n";
    let (status, text) = send_batch(&env, None, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("GET requests are not allowed in a change set"),
        "{text}"
    );

    // A body that never closes is refused whole.
    let (status, _) = send_batch(&env, None, change_set(&[])).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn reads_outside_a_change_set_answer_as_single_requests_do() {
    let env = start().await;
    env.client.create_together(&rows(deal())).await.unwrap();
    env.standin.clear_journal();
    let (account, contact) = env
        .client
        .find_customer(Some(("Batch Co", None)), Some("buyer@batch.example"))
        .await
        .unwrap();
    assert_eq!(account.and_then(|a| a.accountid).as_deref(), Some(ACCOUNT));
    assert_eq!(contact.and_then(|c| c.contactid).as_deref(), Some(CONTACT));
    let journal = env.standin.journal();
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0].path, "/api/data/v9.2/$batch");

    // Nothing found is no error; one key alone is one plain read.
    let (account, contact) = env
        .client
        .find_customer(
            Some(("Nobody Co", Some("00000"))),
            Some("nobody@example.org"),
        )
        .await
        .unwrap();
    assert!(account.is_none() && contact.is_none());
    env.standin.clear_journal();
    let (account, _) = env
        .client
        .find_customer(Some(("Batch Co", None)), None)
        .await
        .unwrap();
    assert!(account.is_some());
    assert_eq!(env.standin.journal()[0].path, "/api/data/v9.2/accounts");
}
