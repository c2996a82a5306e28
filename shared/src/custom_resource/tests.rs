use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::Router;
use serde_json::json;

use super::*;

fn request(kind: &str, physical: Option<&str>) -> CustomResourceRequest {
    let mut v = json!({
        "RequestType": kind,
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3Acloudformation?X-Amz-Signature=sig9f8e7d",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/cosell/5b1c0e30-8a1f-11ef-9c2e-0a1b2c3d4e5f",
        "RequestId": "0c5a3e1b-7c2d-4f6e-9a8b-1d2e3f4a5b6c",
        "ResourceType": "Custom::WebhookRegistration",
        "LogicalResourceId": "WebhookRegistration",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:cosell-WebhookRegistrationFunction",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:cosell-WebhookRegistrationFunction",
            "WebhookUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/partner-center/webhook",
            "Events": ["referral-created", "referral-updated"]
        }
    });
    if let Some(id) = physical {
        v["PhysicalResourceId"] = json!(id);
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn request_reads_the_documented_fields_and_hides_the_signature() {
    let r = request("Update", Some("webhook-1"));
    assert_eq!(r.request_type, RequestType::Update);
    assert_eq!(r.physical_resource_id.as_deref(), Some("webhook-1"));
    assert_eq!(
        r.property("WebhookUrl"),
        Some("https://abc123.execute-api.us-east-1.amazonaws.com/partner-center/webhook")
    );
    assert!(r.response_url.contains("X-Amz-Signature=sig9f8e7d"));
    let debug = format!("{r:?}");
    assert!(!debug.contains("sig9f8e7d"), "{debug}");
    assert!(debug.contains("s3.amazonaws.com"));
}

#[test]
fn response_serializes_with_cloudformation_names() {
    let r = request("Create", None);
    let mut data = Map::new();
    data.insert("Url".into(), json!("https://x"));
    let v = serde_json::to_value(CustomResourceResponse::success(
        &r,
        "id-1".into(),
        Some(data),
    ))
    .unwrap();
    assert_eq!(v["Status"], "SUCCESS");
    assert_eq!(v["PhysicalResourceId"], "id-1");
    assert_eq!(v["StackId"], r.stack_id.as_str());
    assert_eq!(v["RequestId"], r.request_id.as_str());
    assert_eq!(v["LogicalResourceId"], "WebhookRegistration");
    assert_eq!(v["Data"]["Url"], "https://x");
    assert!(v.get("Reason").is_none());
    assert!(v.get("NoEcho").is_none());
}

#[tokio::test]
async fn success_carries_the_actions_id_and_data() {
    let r = request("Create", None);
    let resp = run_custom_resource(&r, Duration::from_secs(5), async {
        let mut data = Map::new();
        data.insert("Events".into(), json!("referral-created"));
        Ok(("webhook-42".to_string(), Some(data)))
    })
    .await;
    assert_eq!(resp.status, ResponseStatus::Success);
    assert_eq!(resp.physical_resource_id, "webhook-42");
    assert_eq!(resp.data.unwrap()["Events"], "referral-created");
}

#[tokio::test]
async fn an_error_becomes_failed_with_its_reason() {
    let create = request("Create", None);
    let resp = run_custom_resource(&create, Duration::from_secs(5), async {
        Err("Partner Center said 401".to_string())
    })
    .await;
    assert_eq!(resp.status, ResponseStatus::Failed);
    assert_eq!(resp.reason.as_deref(), Some("Partner Center said 401"));
    assert_eq!(
        resp.physical_resource_id,
        format!("{FAILED_CREATE_PREFIX}{}", create.request_id)
    );

    // A failed update keeps the old id, or CloudFormation would read it as a replacement.
    let update = request("Update", Some("webhook-1"));
    let resp = run_custom_resource(&update, Duration::from_secs(5), async {
        Err("nope".to_string())
    })
    .await;
    assert_eq!(resp.status, ResponseStatus::Failed);
    assert_eq!(resp.physical_resource_id, "webhook-1");
}

#[tokio::test]
async fn the_rollback_delete_of_a_failed_create_is_recognised() {
    let failed = CustomResourceResponse::failed(&request("Create", None), "x");
    let delete = request("Delete", Some(&failed.physical_resource_id));
    assert!(delete.deletes_failed_create());
    assert!(!request("Delete", Some("webhook-1")).deletes_failed_create());
    assert!(!request("Update", Some(&failed.physical_resource_id)).deletes_failed_create());
}

#[tokio::test]
async fn delete_always_answers_with_the_requests_physical_id() {
    let r = request("Delete", Some("webhook-1"));
    let resp = run_custom_resource(&r, Duration::from_secs(5), async {
        Ok(("something-else".to_string(), None))
    })
    .await;
    assert_eq!(resp.status, ResponseStatus::Success);
    assert_eq!(resp.physical_resource_id, "webhook-1");
}

#[tokio::test(start_paused = true)]
async fn a_hung_action_becomes_failed_before_the_budget_runs_out() {
    let r = request("Create", None);
    let started = tokio::time::Instant::now();
    let budget = Duration::from_secs(60);
    let resp = run_custom_resource(&r, budget, std::future::pending::<ActionResult>()).await;
    let took = started.elapsed();
    assert_eq!(resp.status, ResponseStatus::Failed);
    assert!(resp.reason.unwrap().contains("no result within"));
    // Leaves the reserve (15 s of 60 s) to send the answer.
    assert_eq!(took, budget - RESPOND_RESERVE);
}

#[tokio::test]
async fn a_panicking_action_becomes_failed() {
    let r = request("Create", None);
    let resp = run_custom_resource(&r, Duration::from_secs(5), async {
        let v: Vec<u8> = Vec::new();
        if v.is_empty() {
            panic!("mapping table is empty");
        }
        Ok(("never".to_string(), None))
    })
    .await;
    assert_eq!(resp.status, ResponseStatus::Failed);
    let reason = resp.reason.unwrap();
    assert!(reason.contains("mapping table is empty"), "{reason}");
}

#[tokio::test]
async fn a_long_reason_is_cut_so_the_response_stays_small() {
    let r = request("Create", None);
    let long = "x".repeat(10_000);
    let resp = run_custom_resource(&r, Duration::from_secs(5), async move { Err(long) }).await;
    let body = serde_json::to_vec(&resp).unwrap();
    assert!(body.len() < 4096, "{} bytes", body.len());
}

/// What the stand-in for the pre-signed URL received.
#[derive(Default)]
struct Seen {
    calls: Vec<(Method, Option<String>, Bytes)>,
    /// Status codes to answer with, in order; then 200.
    script: Vec<StatusCode>,
}

async fn presigned(
    State(seen): State<Arc<Mutex<Seen>>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    seen.calls.push((method, content_type, body));
    if seen.script.is_empty() {
        StatusCode::OK
    } else {
        seen.script.remove(0)
    }
}

async fn serve(script: Vec<StatusCode>) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen {
        calls: Vec::new(),
        script,
    }));
    let app = Router::new()
        .route("/{*path}", any(presigned))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}/cfn-response/stack?X-Amz-Signature=abc"),
        seen,
    )
}

#[tokio::test]
async fn respond_puts_the_json_with_an_empty_content_type() {
    let (url, seen) = serve(vec![]).await;
    let r = request("Create", None);
    let resp = CustomResourceResponse::failed(&r, "bad tenant");
    respond(&reqwest::Client::new(), &url, &resp).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.calls.len(), 1);
    let (method, content_type, body) = &seen.calls[0];
    assert_eq!(method, Method::PUT);
    assert_eq!(content_type.as_deref(), Some(""));
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["Status"], "FAILED");
    assert_eq!(v["Reason"], "bad tenant");
    assert_eq!(v["RequestId"], r.request_id.as_str());
    assert_eq!(v["StackId"], r.stack_id.as_str());
    assert_eq!(v["LogicalResourceId"], "WebhookRegistration");
    assert_eq!(
        v["PhysicalResourceId"],
        format!("{FAILED_CREATE_PREFIX}{}", r.request_id)
    );
}

#[tokio::test]
async fn respond_retries_after_a_server_error() {
    let (url, seen) = serve(vec![StatusCode::INTERNAL_SERVER_ERROR]).await;
    let r = request("Delete", Some("webhook-1"));
    let resp = CustomResourceResponse::success(&r, "webhook-1".into(), None);
    respond_with(&reqwest::Client::new(), &RetryPolicy::fast(), &url, &resp)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.calls.len(), 2);
    assert_eq!(seen.calls[0].2, seen.calls[1].2, "the same body both times");
}

#[tokio::test]
async fn respond_reports_a_refusal() {
    let (url, seen) = serve(vec![StatusCode::FORBIDDEN]).await;
    let r = request("Create", None);
    let resp = CustomResourceResponse::success(&r, "webhook-1".into(), None);
    let err = respond_with(&reqwest::Client::new(), &RetryPolicy::fast(), &url, &resp)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Unavailable { status: 403, .. }),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().calls.len(), 1, "403 is not retried");
}
