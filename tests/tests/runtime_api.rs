//! The local Lambda runtime API, exercised by an HTTP client playing the function's runtime.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cosell_tests::runtime_api::{RuntimeApi, FUNCTION_ARN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One `/next` call: the request id, deadline (epoch ms), trace id and event.
async fn next(http: &reqwest::Client, api: &RuntimeApi) -> (String, u128, String, Value) {
    let resp = http
        .get(format!(
            "http://{}/2018-06-01/runtime/invocation/next",
            api.address()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let id = header("Lambda-Runtime-Aws-Request-Id");
    let deadline: u128 = header("Lambda-Runtime-Deadline-Ms").parse().unwrap();
    assert_eq!(header("Lambda-Runtime-Invoked-Function-Arn"), FUNCTION_ARN);
    let trace = header("Lambda-Runtime-Trace-Id");
    (id, deadline, trace, resp.json().await.unwrap())
}

async fn post(http: &reqwest::Client, api: &RuntimeApi, path: &str, body: Value) -> StatusCode {
    http.post(format!(
        "http://{}/2018-06-01/runtime/{path}",
        api.address()
    ))
    .json(&body)
    .send()
    .await
    .unwrap()
    .status()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn a_posted_response_is_what_invoke_returns() {
    let api = RuntimeApi::start().await;
    assert!(api.address().ip().is_loopback());
    let http = reqwest::Client::new();

    let invoke = api.invoke_with_timeout(json!({"task": "poll"}), Duration::from_secs(10));
    let function = async {
        let before = now_ms();
        let (id, deadline, trace, event) = next(&http, &api).await;
        assert_eq!(event, json!({"task": "poll"}));
        // The deadline is the invocation's timeout from now.
        assert!(
            deadline >= before + 9_000 && deadline <= now_ms() + 10_000,
            "{deadline}"
        );
        assert!(trace.starts_with("Root=1-"), "{trace}");
        let status = post(
            &http,
            &api,
            &format!("invocation/{id}/response"),
            json!({"batchItemFailures": []}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        id
    };
    let (result, id) = tokio::join!(invoke, function);
    assert_eq!(result, Ok(json!({"batchItemFailures": []})));

    // A second answer for the same invocation is refused.
    let again = post(&http, &api, &format!("invocation/{id}/response"), json!({})).await;
    assert_eq!(again, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_posted_error_comes_back_as_err() {
    let api = RuntimeApi::start().await;
    let http = reqwest::Client::new();
    let invoke = api.invoke(json!({"RequestType": "Create"}));
    let function = async {
        let (id, ..) = next(&http, &api).await;
        let error =
            json!({"errorType": "ConfigError", "errorMessage": "missing setting COSELL_TENANT_ID"});
        assert_eq!(
            post(&http, &api, &format!("invocation/{id}/error"), error).await,
            StatusCode::ACCEPTED
        );
    };
    let (result, ()) = tokio::join!(invoke, function);
    let error = result.unwrap_err();
    assert_eq!(error["errorType"], "ConfigError");
    assert_eq!(error["errorMessage"], "missing setting COSELL_TENANT_ID");
}

#[tokio::test]
async fn queued_invocations_are_handed_out_in_order() {
    let api = RuntimeApi::start().await;
    let http = reqwest::Client::new();
    let first = api.invoke(json!({"n": 1}));
    let second = api.invoke(json!({"n": 2}));
    let function = async {
        // Give both invocations time to queue before the function polls.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut ids = Vec::new();
        for expected in [1, 2] {
            let (id, _, _, event) = next(&http, &api).await;
            assert_eq!(event["n"], expected);
            let answer = json!({"echo": event["n"]});
            assert_eq!(
                post(&http, &api, &format!("invocation/{id}/response"), answer).await,
                StatusCode::ACCEPTED
            );
            ids.push(id);
        }
        ids
    };
    let (a, b, ids) = tokio::join!(first, second, function);
    assert_eq!(a, Ok(json!({"echo": 1})));
    assert_eq!(b, Ok(json!({"echo": 2})));
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn an_unanswered_invocation_times_out() {
    let api = RuntimeApi::start().await;
    let started = std::time::Instant::now();
    let result = api
        .invoke_with_timeout(json!({}), Duration::from_millis(200))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(result.unwrap_err()["errorType"], "Sandbox.Timedout");
}

#[tokio::test]
async fn an_init_error_fails_the_waiting_invocation() {
    let api = RuntimeApi::start().await;
    let http = reqwest::Client::new();
    let invoke = api.invoke(json!({}));
    let function = async {
        let error = json!({"errorType": "Runtime.ExitError", "errorMessage": "no secret"});
        assert_eq!(
            post(&http, &api, "init/error", error).await,
            StatusCode::ACCEPTED
        );
    };
    let (result, ()) = tokio::join!(invoke, function);
    assert_eq!(result.unwrap_err()["errorMessage"], "no secret");
    assert_eq!(api.init_error().unwrap()["errorType"], "Runtime.ExitError");
}

/// A spawned process gets the Lambda variables and the caller's, its first `/next` is its
/// cold start, and dropping the handle kills it. The "function binary" is an executable
/// Python script (the test command already needs Python) speaking the runtime API.
#[tokio::test]
async fn a_spawned_function_serves_invocations_and_is_killed_on_drop() {
    const RUNTIME: &str = r#"#!/usr/bin/env python3
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
keys = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_LOG_GROUP_NAME", "COSELL_TABLE_NAME"]
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.load(r)
    body = json.dumps({"event": event, "env": {k: os.environ.get(k) for k in keys}}).encode()
    urllib.request.urlopen(urllib.request.Request(api + rid + "/response", data=body, method="POST")).read()
"#;
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bootstrap");
    std::fs::write(&binary, RUNTIME).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();

    let api = RuntimeApi::start().await;
    let mut function = api
        .spawn_function(
            &binary,
            "referral-sync",
            &[("COSELL_TABLE_NAME", "cosell-test")],
        )
        .unwrap();
    let cold = function
        .cold_start(Duration::from_secs(20))
        .await
        .expect("the function polled /next");
    assert!(cold > Duration::ZERO && cold < Duration::from_secs(20));

    let out = api.invoke(json!({"task": "reconcile"})).await.unwrap();
    assert_eq!(out["event"], json!({"task": "reconcile"}));
    let env = &out["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "referral-sync");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(
        env["AWS_LAMBDA_LOG_GROUP_NAME"],
        "/aws/lambda/referral-sync"
    );
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"].is_string());
    assert_eq!(env["COSELL_TABLE_NAME"], "cosell-test");

    // A second event goes to the same warm process.
    let out = api.invoke(json!({"task": "poll"})).await.unwrap();
    assert_eq!(out["event"], json!({"task": "poll"}));

    let pid = function.id();
    assert!(function.try_wait().unwrap().is_none(), "still running");
    drop(function);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived its handle"
    );
}
