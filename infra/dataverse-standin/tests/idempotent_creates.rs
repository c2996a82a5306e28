//! What an idempotent create needs, as Dataverse does it: a caller-chosen primary key on
//! POST, the duplicate-key error when that key is taken, `If-None-Match: *` as create-only,
//! and PATCH without a condition as an upsert.

mod common;

use reqwest::{Method, Response};
use serde_json::{json, Value};

use common::{start, Env};

const SETS: [(&str, &str); 3] = [
    ("opportunities", "opportunityid"),
    ("accounts", "accountid"),
    ("contacts", "contactid"),
];
const DUPLICATE: &str = "A record with matching key values already exists.";

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Response {
    let token = env.tokens.token().await.unwrap();
    let url = env.client.api_base().join(path).unwrap();
    let mut req = env
        .http
        .request(method, url)
        .bearer_auth(token.expose())
        .header("OData-Version", "4.0")
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Status, error code and message of an error answer.
async fn error(resp: Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn duplicate() -> (u16, String, String) {
    (412, "0x80040237".into(), DUPLICATE.into())
}

#[tokio::test]
async fn post_with_a_chosen_key_creates_that_row_and_a_second_post_is_a_duplicate() {
    let env = start().await;
    for (n, (set, key)) in SETS.into_iter().enumerate() {
        let id = format!("3f2a9d4e-1b7c-4e8a-9c1d-{n:012}");
        // Upper case in the body; the row and its URL use the canonical lower-case form.
        let body = json!({key: id.to_uppercase(), "description": "first"});
        let resp = call(&env, Method::POST, set, &[], body).await;
        assert_eq!(resp.status(), 204, "POST {set}");
        let entity = resp.headers()["OData-EntityId"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(entity.ends_with(&format!("{set}({id})")), "{entity}");
        let row = env
            .standin
            .row(set, &id)
            .expect("stored under the chosen key");
        assert_eq!(row[key], id.as_str());

        let again = json!({key: id, "description": "second"});
        let resp = call(&env, Method::POST, set, &[], again).await;
        assert_eq!(error(resp).await, duplicate(), "second POST {set}");
        assert_eq!(env.standin.row(set, &id).unwrap()["description"], "first");
        assert_eq!(env.standin.rows(set).len(), 1);

        let resp = call(&env, Method::POST, set, &[], json!({key: "not-a-guid"})).await;
        assert_eq!(resp.status(), 400);
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn patch_with_if_none_match_star_creates_once_then_refuses() {
    let env = start().await;
    for (n, (set, key)) in SETS.into_iter().enumerate() {
        let id = format!("8c4d2e1f-5a6b-4c7d-8e9f-{n:012}");
        let path = format!("{set}({id})");
        let create_only = [("If-None-Match", "*"), ("Prefer", "return=representation")];
        let resp = call(
            &env,
            Method::PATCH,
            &path,
            &create_only,
            json!({"description": "first"}),
        )
        .await;
        assert_eq!(resp.status(), 201, "PATCH {set} If-None-Match: *");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body[key], id.as_str());

        let resp = call(
            &env,
            Method::PATCH,
            &path,
            &create_only,
            json!({"description": "second"}),
        )
        .await;
        assert_eq!(
            error(resp).await,
            duplicate(),
            "PATCH {set} on an existing row"
        );
        assert_eq!(env.standin.row(set, &id).unwrap()["description"], "first");
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn patch_without_a_condition_is_an_upsert_and_if_match_star_never_creates() {
    let env = start().await;
    let id = "0d9e8f7a-6b5c-4d3e-8f1a-000000000001";
    let path = format!("accounts({id})");
    let resp = call(
        &env,
        Method::PATCH,
        &path,
        &[("If-Match", "*")],
        json!({"name": "x"}),
    )
    .await;
    let (status, code, _) = error(resp).await;
    assert_eq!((status, code.as_str()), (404, "0x80040217"));
    assert!(env.standin.row("accounts", id).is_none());

    let resp = call(&env, Method::PATCH, &path, &[], json!({"name": "created"})).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(env.standin.row("accounts", id).unwrap()["name"], "created");
    let resp = call(&env, Method::PATCH, &path, &[], json!({"name": "updated"})).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(env.standin.row("accounts", id).unwrap()["name"], "updated");
    assert_eq!(env.standin.rows("accounts").len(), 1);
    env.standin.shutdown().await;
}
