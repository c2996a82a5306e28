use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::put;
use axum::Router;
use cosell::custom_resource::ResponseStatus;

use super::*;

fn fixture(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn no_vars(_: &str) -> Option<String> {
    None
}

#[test]
fn custom_resource_and_direct_invocations_are_told_apart() {
    for (name, kind) in [
        ("cfn-create.json", RequestType::Create),
        ("cfn-update.json", RequestType::Update),
        ("cfn-delete.json", RequestType::Delete),
    ] {
        match Invocation::of(fixture(name)).unwrap() {
            Invocation::CustomResource(r) => assert_eq!(r.request_type, kind, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    for (input, action) in [
        ("register", Action::Register),
        ("unregister", Action::Unregister),
        ("show", Action::Show),
    ] {
        match Invocation::of(json!({ "action": input })).unwrap() {
            Invocation::Direct(a) => assert_eq!(a, action),
            other => panic!("{other:?}"),
        }
    }
    let err = Invocation::of(json!({"action": "reboot"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"action\""), "{err}");
    assert!(Invocation::of(json!({"RequestType": "Create"})).is_err());
}

#[test]
fn the_target_comes_from_the_properties_then_the_environment() {
    let create = match Invocation::of(fixture("cfn-create.json")).unwrap() {
        Invocation::CustomResource(r) => r,
        _ => unreachable!(),
    };
    let t = Target::resolve(&create.resource_properties, no_vars).unwrap();
    assert_eq!(
        t.url.as_str(),
        "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/partner-center/webhook"
    );
    assert_eq!(t.events, ["referral-created", "referral-updated"]);

    let env = |name: &str| match name {
        "COSELL_WEBHOOK_URL" => Some("https://example.com/hook".to_string()),
        "COSELL_WEBHOOK_EVENTS" => Some("referral-created, referral-updated".to_string()),
        _ => None,
    };
    let t = Target::resolve(&Map::new(), env).unwrap();
    assert_eq!(t.url.as_str(), "https://example.com/hook");
    assert_eq!(t.events, ["referral-created", "referral-updated"]);

    let err = Target::resolve(&Map::new(), no_vars).unwrap_err();
    assert!(err.contains("COSELL_WEBHOOK_URL"), "{err}");
    let mut plain = Map::new();
    plain.insert("WebhookUrl".into(), json!("http://example.com/hook"));
    plain.insert("Events".into(), json!(["referral-created"]));
    assert!(Target::resolve(&plain, no_vars)
        .unwrap_err()
        .contains("https"));
}

/// Stands in for CloudFormation's pre-signed response URL; keeps what was PUT.
async fn cloudformation() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    async fn answer(State(seen): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) {
        seen.lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap());
    }
    let app = Router::new()
        .route("/response", put(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/response?X-Amz-Signature=abc"), seen)
}

fn request(name: &str, response_url: &str) -> CustomResourceRequest {
    let mut v = fixture(name);
    v["ResponseURL"] = json!(response_url);
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_function_that_could_not_start_still_answers_failed() {
    let (url, seen) = cloudformation().await;
    let create = request("cfn-create.json", &url);
    let response = handle_custom_resource(
        Err("bad secret cosell/pc: has no \"client_id\" key"),
        &reqwest::Client::new(),
        &create,
        Duration::from_secs(20),
        no_vars,
    )
    .await
    .unwrap();
    assert_eq!(response.status, ResponseStatus::Failed);
    let put = seen.lock().unwrap();
    assert_eq!(put.len(), 1);
    assert_eq!(put[0]["Status"], "FAILED");
    assert_eq!(put[0]["RequestId"], create.request_id.as_str());
    assert!(
        put[0]["Reason"].as_str().unwrap().contains("client_id"),
        "{}",
        put[0]
    );
}

#[tokio::test]
async fn the_rollback_of_a_failed_create_succeeds_without_partner_center() {
    let (url, seen) = cloudformation().await;
    let failed = CustomResourceResponse::failed(&request("cfn-create.json", &url), "x");
    let mut delete = request("cfn-delete.json", &url);
    delete.physical_resource_id = Some(failed.physical_resource_id.clone());
    let response = handle_custom_resource(
        Err("no secrets"),
        &reqwest::Client::new(),
        &delete,
        Duration::from_secs(20),
        no_vars,
    )
    .await
    .unwrap();
    assert_eq!(response.status, ResponseStatus::Success);
    assert_eq!(
        seen.lock().unwrap()[0]["PhysicalResourceId"],
        failed.physical_resource_id.as_str()
    );
}

#[tokio::test]
async fn an_unreachable_cloudformation_is_an_error() {
    let create = request("cfn-create.json", "http://127.0.0.1:9/response");
    let err = handle_custom_resource(
        Err("x"),
        &reqwest::Client::new(),
        &create,
        Duration::from_secs(20),
        no_vars,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistrationError::Respond(_)), "{err}");
}

#[tokio::test]
async fn a_direct_invocation_without_a_registrar_says_why() {
    let err = handle_direct(
        Err("missing setting COSELL_PC_SECRET_ARN"),
        Action::Show,
        no_vars,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("COSELL_PC_SECRET_ARN"));
}
