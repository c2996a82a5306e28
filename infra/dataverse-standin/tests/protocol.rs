//! Wire-level behaviour of the stand-in that the client does not exercise on its own:
//! status codes, headers and documented error texts.

mod common;

use reqwest::{Method, Response};
use serde_json::{json, Value};

use common::{start, Env};

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response {
    let token = env.tokens.token().await.unwrap();
    let url = env.client.api_base().join(path).unwrap();
    let mut req = env
        .http
        .request(method, url)
        .bearer_auth(token.expose())
        .header("OData-Version", "4.0");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn error_message(resp: Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn create_update_upsert_and_delete_statuses() {
    let env = start().await;
    let resp = call(
        &env,
        Method::POST,
        "accounts",
        &[],
        Some(json!({"name": "A"})),
    )
    .await;
    assert_eq!(resp.status(), 204);
    let entity = resp.headers()["OData-EntityId"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(entity.starts_with(env.client.api_base().as_str()));
    let id = cosell::dataverse::query::id_from_entity_url(&entity).unwrap();
    let path = format!("accounts({id})");

    let (status, _, msg) = error_message(
        call(
            &env,
            Method::PATCH,
            &path,
            &[("If-None-Match", "*")],
            Some(json!({"name": "B"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, msg.as_str()),
        (412, "A record with matching key values already exists.")
    );

    let (status, code, msg) = error_message(
        call(
            &env,
            Method::PATCH,
            &path,
            &[("If-Match", "W/\"1\"")],
            Some(json!({"name": "B"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(code, "0x80060882");
    assert_eq!(
        msg,
        "The version of the existing record doesn't match the RowVersion property provided."
    );

    let resp = call(
        &env,
        Method::PATCH,
        &path,
        &[("If-Match", "*")],
        Some(json!({"name": "B"})),
    )
    .await;
    assert_eq!(resp.status(), 204);

    // Upsert: no If-Match creates the row with the id from the URL.
    let new_id = "5a1f3c7e-0000-4000-8000-000000000001";
    let resp = call(
        &env,
        Method::PATCH,
        &format!("accounts({new_id})"),
        &[("Prefer", "return=representation")],
        Some(json!({"name": "Upserted"})),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accountid"], new_id);
    assert!(body["@odata.etag"].as_str().unwrap().starts_with("W/\""));

    let resp = call(&env, Method::DELETE, &path, &[], None).await;
    assert_eq!(resp.status(), 204);
    let (status, code, msg) = error_message(call(&env, Method::GET, &path, &[], None).await).await;
    assert_eq!((status, code.as_str()), (404, "0x80040217"));
    assert!(msg.contains("Does Not Exist"));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn statecode_on_create_and_close_by_patch_are_refused() {
    let env = start().await;
    let resp = call(
        &env,
        Method::POST,
        "opportunities",
        &[],
        Some(json!({"name": "x", "statecode": 1})),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(env.standin.rows("opportunities").is_empty());
    let resp = call(
        &env,
        Method::POST,
        "opportunities",
        &[("Prefer", "return=representation")],
        Some(json!({"name": "x"})),
    )
    .await;
    let id = resp.json::<Value>().await.unwrap()["opportunityid"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = call(
        &env,
        Method::PATCH,
        &format!("opportunities({id})"),
        &[("If-Match", "*")],
        Some(json!({"statecode": 1, "statuscode": 3})),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        env.standin.row("opportunities", &id).unwrap()["statecode"],
        0
    );
    env.standin.shutdown().await;
}

#[tokio::test]
async fn query_options_paging_cap_and_top() {
    let env = start().await;
    for (name, value) in [("b", 10), ("a", 30), ("c", 20)] {
        call(
            &env,
            Method::POST,
            "opportunities",
            &[],
            Some(json!({"name": name, "estimatedvalue": value})),
        )
        .await;
    }
    let resp = call(
        &env,
        Method::GET,
        "opportunities?$select=name&$filter=estimatedvalue%20ge%2015&$orderby=estimatedvalue%20desc",
        &[("Prefer", "odata.maxpagesize=9000")],
        None,
    )
    .await;
    assert_eq!(
        resp.headers()["Preference-Applied"],
        "odata.maxpagesize=5000"
    );
    let body: Value = resp.json().await.unwrap();
    let names: Vec<_> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("c")]);
    assert!(body["value"][0].get("estimatedvalue").is_none());
    assert!(body["value"][0].get("opportunityid").is_some());

    // $top counts without maxpagesize, and is ignored with it.
    let top: Value = call(&env, Method::GET, "opportunities?$top=1", &[], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(top["value"].as_array().unwrap().len(), 1);
    let ignored: Value = call(
        &env,
        Method::GET,
        "opportunities?$top=1",
        &[("Prefer", "odata.maxpagesize=2")],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ignored["value"].as_array().unwrap().len(), 2);
    assert!(ignored["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("$skiptoken="));
    env.standin.shutdown().await;
}

#[tokio::test]
async fn track_changes_rejects_filter_and_survives_writes_between_pages() {
    let env = start().await;
    let (status, _, msg) = error_message(
        call(
            &env,
            Method::GET,
            "opportunities?$filter=name%20eq%20'x'",
            &[("Prefer", "odata.track-changes")],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        msg,
        "The \"$filter\" query parameter isn't supported when Change Tracking is enabled."
    );

    let mut ids = Vec::new();
    for i in 0..6 {
        let r: Value = call(
            &env,
            Method::POST,
            "opportunities",
            &[("Prefer", "return=representation")],
            Some(json!({"name": format!("o{i}")})),
        )
        .await
        .json()
        .await
        .unwrap();
        ids.push(r["opportunityid"].as_str().unwrap().to_string());
    }
    let prefer = [("Prefer", "odata.track-changes,odata.maxpagesize=2")];
    let page1: Value = call(
        &env,
        Method::GET,
        "opportunities?$select=name",
        &prefer,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(page1.get("@odata.deltaLink").is_none());
    let served: Vec<String> = page1["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["opportunityid"].as_str().unwrap().to_string())
        .collect();
    // Edit one row already served and one not yet served, mid-pass.
    let unserved = ids.iter().find(|i| !served.contains(i)).unwrap().clone();
    env.standin.user_update(
        "opportunities",
        &served[0],
        common::map(json!({"name": "edited-served"})),
    );
    env.standin.user_update(
        "opportunities",
        &unserved,
        common::map(json!({"name": "edited-unserved"})),
    );

    let mut seen = served.clone();
    let mut next = page1["@odata.nextLink"].as_str().map(str::to_string);
    let mut delta = None;
    let token = env.tokens.token().await.unwrap();
    while let Some(link) = next.take() {
        let page: Value = env
            .http
            .get(&link)
            .bearer_auth(token.expose())
            .header("Prefer", prefer[0].1)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["opportunityid"].as_str().unwrap().to_string()),
        );
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        delta = page["@odata.deltaLink"].as_str().map(str::to_string);
    }
    let delta = delta.expect("last page carries the delta link");
    let page: Value = env
        .http
        .get(&delta)
        .bearer_auth(token.expose())
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changed: Vec<(String, String)> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["opportunityid"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Both edits arrive in the next delta with their latest values; nothing was skipped.
    assert!(changed.contains(&(served[0].clone(), "edited-served".into())));
    assert!(changed.contains(&(unserved.clone(), "edited-unserved".into())));
    let mut all: Vec<_> = seen
        .iter()
        .chain(changed.iter().map(|c| &c.0))
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn admin_routes_drive_the_same_controls() {
    let env = start().await;
    let admin = |p: &str| env.standin.base_url().join(p).unwrap();
    let created: Value = env
        .http
        .post(admin("_standin/rows/opportunities"))
        .json(&json!({"name": "imported"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let before = env.standin.row("opportunities", &id).unwrap();
    let after: Value = env
        .http
        .patch(admin(&format!("_standin/rows/opportunities/{id}")))
        .json(&json!({"name": "edited in CRM"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["name"], "edited in CRM");
    assert_ne!(after["@odata.etag"], before["@odata.etag"]);

    let resp = env
        .http
        .post(admin("_standin/faults"))
        .json(&json!({"kind": "throttle", "retry_after_secs": 0, "limit": "execution_time", "count": 1, "method": "GET", "path_contains": "opportunities"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = call(&env, Method::GET, "opportunities", &[], None).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["Retry-After"], "0");
    let (_, code, _) = error_message(resp).await;
    assert_eq!(code, "0x80072321");

    let counts: Value = env
        .http
        .get(admin("_standin/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["GET opportunities"], 1);
    assert_eq!(counts["POST token"], 1);
    env.standin.shutdown().await;
}

/// Names of the accounts a `name eq` filter finds.
async fn accounts_named(env: &Env, name: &str) -> Vec<String> {
    let path = format!("accounts?$select=name&$filter=name eq '{name}'");
    let body: Value = call(env, Method::GET, &path, &[], None)
        .await
        .json()
        .await
        .unwrap();
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// `eq` lookups go through an index built on first use; it must follow every write.
#[tokio::test]
async fn equality_lookups_follow_creates_renames_and_deletes() {
    let env = start().await;
    let created = |name: &'static str| {
        let env = &env;
        async move {
            let resp = call(
                env,
                Method::POST,
                "accounts",
                &[],
                Some(json!({"name": name})),
            )
            .await;
            let entity = resp.headers()["OData-EntityId"].to_str().unwrap();
            let id = entity.rsplit_once('(').unwrap().1.trim_end_matches(')');
            id.to_string()
        }
    };
    let contoso = created("Contoso").await;
    assert_eq!(accounts_named(&env, "CONTOSO").await, ["Contoso"]);
    // Written after the index exists: it must be added to it.
    created("contoso").await;
    assert_eq!(accounts_named(&env, "Contoso").await.len(), 2);

    let renamed = call(
        &env,
        Method::PATCH,
        &format!("accounts({contoso})"),
        &[],
        Some(json!({"name": "Fabrikam"})),
    )
    .await;
    assert_eq!(renamed.status(), 204);
    assert_eq!(accounts_named(&env, "contoso").await, ["contoso"]);
    assert_eq!(accounts_named(&env, "fabrikam").await, ["Fabrikam"]);

    let deleted = call(
        &env,
        Method::DELETE,
        &format!("accounts({contoso})"),
        &[],
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    assert!(accounts_named(&env, "Fabrikam").await.is_empty());
    // `and` with another condition still narrows through the index and still filters.
    let path = "accounts?$select=name&$filter=name eq 'contoso' and name ne 'contoso'";
    let body: Value = call(&env, Method::GET, path, &[], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
}
