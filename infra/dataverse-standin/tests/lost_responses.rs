//! "Apply the write, then lose the answer" on every write route: the row changes, and the
//! client sees a dropped connection or a proxy's 504 instead of the service's answer.

mod common;

use std::time::Duration;

use dataverse_standin::{Fault, LostAs};
use reqwest::Method;
use serde_json::{json, Value};

use common::{map, start, Env};

const BOTH: [LostAs; 2] = [LostAs::Drop, LostAs::GatewayTimeout];

/// What the client got back from one raw request.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The connection closed with no response (not a client timeout).
    Dropped,
    /// 504 with the proxy's HTML page.
    GatewayTimeout,
    Answered(u16),
}

async fn send(
    env: &Env,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Seen {
    let token = env.tokens.token().await.unwrap();
    let url = env.client.api_base().join(path).unwrap();
    let mut req = env
        .http
        .request(method, url)
        .bearer_auth(token.expose())
        .header("OData-Version", "4.0")
        .timeout(Duration::from_secs(10));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Err(e) => {
            assert!(!e.is_timeout(), "a lost answer closes the socket: {e}");
            Seen::Dropped
        }
        Ok(resp) if resp.status() == 504 => {
            assert_eq!(resp.headers()["content-type"], "text/html");
            assert!(resp.text().await.unwrap().contains("504 Gateway Time-out"));
            Seen::GatewayTimeout
        }
        Ok(resp) => Seen::Answered(resp.status().as_u16()),
    }
}

fn expected(lost_as: LostAs) -> Seen {
    match lost_as {
        LostAs::Drop => Seen::Dropped,
        LostAs::GatewayTimeout => Seen::GatewayTimeout,
    }
}

fn id_of(n: u32) -> String {
    format!("6b1e0c9a-0000-4000-8000-{n:012}")
}

/// A row inserted the way a user would, for the writes below to act on.
fn seed(env: &Env, set: &str, body: Value) -> String {
    env.standin.user_insert(set, map(body)).unwrap()
}

fn etag(env: &Env, set: &str, id: &str) -> String {
    env.standin.row(set, id).unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn creates_by_post_are_stored_though_the_answer_is_lost() {
    let env = start().await;
    for (n, lost_as) in BOTH.into_iter().enumerate() {
        for set in ["opportunities", "accounts", "contacts"] {
            let name = format!("{set} {n}");
            let body = match set {
                "contacts" => json!({"lastname": name}),
                _ => json!({"name": name}),
            };
            env.standin
                .add_fault(Fault::lose_response(lost_as, 1).on("POST", set));
            let seen = send(&env, Method::POST, set, &[], Some(body)).await;
            assert_eq!(seen, expected(lost_as), "POST {set}");
            let column = if set == "contacts" {
                "lastname"
            } else {
                "name"
            };
            let stored = env
                .standin
                .rows(set)
                .into_iter()
                .filter(|r| r[column] == name.as_str())
                .count();
            assert_eq!(stored, 1, "POST {set} committed before the answer was lost");
        }
    }
    assert!(env.standin.pending_faults().is_empty());
    env.standin.shutdown().await;
}

#[tokio::test]
async fn a_create_with_a_chosen_id_is_stored_and_its_retry_is_a_duplicate() {
    let env = start().await;
    for (n, lost_as) in BOTH.into_iter().enumerate() {
        let id = id_of(n as u32);
        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("POST", "opportunities"));
        let body = json!({"opportunityid": id, "name": "chosen"});
        let seen = send(&env, Method::POST, "opportunities", &[], Some(body.clone())).await;
        assert_eq!(seen, expected(lost_as));
        assert_eq!(
            env.standin.row("opportunities", &id).unwrap()["name"],
            "chosen"
        );
        // The caller's retry learns the row is there and makes no second one.
        let retry = send(&env, Method::POST, "opportunities", &[], Some(body)).await;
        assert_eq!(retry, Seen::Answered(412));
        assert_eq!(env.standin.rows("opportunities").len(), n + 1);
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn updates_upserts_and_conditional_creates_by_patch_are_stored() {
    let env = start().await;
    for (n, lost_as) in BOTH.into_iter().enumerate() {
        // Update guarded by the row's ETag.
        let id = seed(
            &env,
            "opportunities",
            json!({"name": "before", "statecode": 0}),
        );
        let tag = etag(&env, "opportunities", &id);
        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("PATCH", "opportunities("));
        let seen = send(
            &env,
            Method::PATCH,
            &format!("opportunities({id})"),
            &[("If-Match", &tag)],
            Some(json!({"name": "after"})),
        )
        .await;
        assert_eq!(seen, expected(lost_as));
        assert_eq!(
            env.standin.row("opportunities", &id).unwrap()["name"],
            "after"
        );
        assert_ne!(etag(&env, "opportunities", &id), tag);

        // Upsert of a new id (no condition), and a create-only PATCH (If-None-Match: *).
        for (set, headers) in [
            ("accounts", vec![]),
            ("contacts", vec![("If-None-Match", "*")]),
        ] {
            let new_id = id_of(100 + n as u32);
            env.standin
                .add_fault(Fault::lose_response(lost_as, 1).on("PATCH", set));
            let seen = send(
                &env,
                Method::PATCH,
                &format!("{set}({new_id})"),
                &headers,
                Some(json!({"description": "made by PATCH"})),
            )
            .await;
            assert_eq!(seen, expected(lost_as), "PATCH {set} {headers:?}");
            let row = env.standin.row(set, &new_id).expect("created by the PATCH");
            assert_eq!(row["description"], "made by PATCH");
        }
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn deletes_happen_though_the_answer_is_lost() {
    let env = start().await;
    for lost_as in BOTH {
        let id = seed(&env, "accounts", json!({"name": "to delete"}));
        env.standin
            .add_fault(Fault::lose_response(lost_as, 1).on("DELETE", "accounts("));
        let seen = send(&env, Method::DELETE, &format!("accounts({id})"), &[], None).await;
        assert_eq!(seen, expected(lost_as));
        assert!(env.standin.row("accounts", &id).is_none());
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn win_lose_and_reopen_happen_though_the_answer_is_lost() {
    let env = start().await;
    for lost_as in BOTH {
        for (action, status, state) in [("WinOpportunity", 3, 1), ("LoseOpportunity", 4, 2)] {
            let id = seed(
                &env,
                "opportunities",
                json!({"name": action, "statecode": 0, "statuscode": 1}),
            );
            let closes = env.standin.rows("opportunitycloses").len();
            env.standin
                .add_fault(Fault::lose_response(lost_as, 1).on("POST", action));
            let body = json!({
                "Status": status,
                "OpportunityClose": {
                    "subject": action,
                    "opportunityid@odata.bind": format!("/opportunities({id})"),
                },
            });
            let seen = send(&env, Method::POST, action, &[], Some(body)).await;
            assert_eq!(seen, expected(lost_as), "{action}");
            let row = env.standin.row("opportunities", &id).unwrap();
            assert_eq!(row["statecode"], state, "{action}");
            assert_eq!(env.standin.rows("opportunitycloses").len(), closes + 1);

            // Reopening is a PATCH of statecode and statuscode.
            env.standin
                .add_fault(Fault::lose_response(lost_as, 1).on("PATCH", "opportunities("));
            let seen = send(
                &env,
                Method::PATCH,
                &format!("opportunities({id})"),
                &[("If-Match", "*")],
                Some(json!({"statecode": 0, "statuscode": 1})),
            )
            .await;
            assert_eq!(seen, expected(lost_as), "reopen after {action}");
            assert_eq!(
                env.standin.row("opportunities", &id).unwrap()["statecode"],
                0
            );
        }
    }
    env.standin.shutdown().await;
}

#[tokio::test]
async fn reads_and_token_requests_pass_an_armed_fault_by() {
    let env = start().await;
    // No method or path: the fault waits for the first write, whatever comes before it.
    env.standin
        .add_fault(Fault::lose_response(LostAs::GatewayTimeout, 1));
    // The first call fetches a token (a POST), then reads.
    assert_eq!(
        send(&env, Method::GET, "opportunities", &[], None).await,
        Seen::Answered(200)
    );
    assert_eq!(
        send(&env, Method::GET, "WhoAmI", &[], None).await,
        Seen::Answered(200)
    );
    assert_eq!(env.standin.token_requests(), 1);
    assert_eq!(env.standin.pending_faults().len(), 1);
    let seen = send(
        &env,
        Method::POST,
        "accounts",
        &[],
        Some(json!({"name": "the first write"})),
    )
    .await;
    assert_eq!(seen, Seen::GatewayTimeout);
    assert!(env.standin.pending_faults().is_empty());
    assert_eq!(env.standin.rows("accounts").len(), 1);
    env.standin.shutdown().await;
}

#[tokio::test]
async fn admin_route_arms_lists_and_counts() {
    let env = start().await;
    let admin = env.standin.base_url().join("_standin/faults").unwrap();
    let resp = env
        .http
        .post(admin.clone())
        .json(&json!({"kind": "lose_response", "lost_as": "gateway_timeout", "count": 2, "method": "POST", "path_contains": "accounts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let pending: Value = env
        .http
        .get(admin.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending[0]["kind"], "lose_response");
    assert_eq!(pending[0]["count"], 2);

    env.standin.reset_request_counts();
    for n in 0..2 {
        let body = json!({"name": format!("a{n}")});
        let seen = send(&env, Method::POST, "accounts", &[], Some(body)).await;
        assert_eq!(seen, Seen::GatewayTimeout);
    }
    assert_eq!(env.standin.rows("accounts").len(), 2);
    assert_eq!(env.standin.request_count("POST accounts"), 2);
    let pending: Value = env
        .http
        .get(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending, json!([]));

    // Without a setting, the answer is dropped.
    let fault: Fault =
        serde_json::from_value(json!({"kind": "lose_response", "method": "POST"})).unwrap();
    assert_eq!(fault.kind, Fault::lose_response(LostAs::Drop, 1).kind);
    assert_eq!(fault.count, 1);
    env.standin.shutdown().await;
}
