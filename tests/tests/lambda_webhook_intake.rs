//! The `webhook-intake` function binary run as Lambda runs it: against the local runtime API,
//! with DynamoDB and SQS served by moto and the signing certificate by the Partner Center
//! stand-in. Real API Gateway HTTP API (payload 2.0) events go in; the test checks the HTTP
//! answers and the messages on the FIFO sync queue (grouped by pair key).

#[path = "lambda/binary.rs"]
mod binary;
// The same moto launcher as the store and queue contract suites.
#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::time::Duration;

use base64::Engine as _;
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::sqs::SqsQueue;
use cosell::queue::Queue;
use cosell::store::aws_local;
use cosell::store::dynamodb::DynamoStore;
use cosell_tests::runtime_api::RuntimeApi;
use cosell_tests::webhook_signing::DeliverySigner;
use http::HeaderMap;
use serde_json::{json, Value};

/// The committed API Gateway v2 fixture with this delivery's headers and body.
fn api_gateway_event(headers: &HeaderMap, body: &[u8], base64: bool) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/events/apigw-v2-webhook.json"
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let h = event["headers"].as_object_mut().unwrap();
    for name in [
        "authorization",
        "x-ms-certificate-url",
        "x-ms-signature-algorithm",
    ] {
        h.remove(name);
    }
    for (name, value) in headers {
        h.insert(name.as_str().to_string(), json!(value.to_str().unwrap()));
    }
    h.insert("content-length".into(), json!(body.len().to_string()));
    if base64 {
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        event["isBase64Encoded"] = json!(true);
    } else {
        event["body"] = json!(std::str::from_utf8(body).unwrap());
    }
    event
}

/// The JSON body of an HTTP API response the function returned.
fn answer(response: &Value) -> (u64, Value) {
    assert_eq!(
        response["headers"]["content-type"], "application/json",
        "{response}"
    );
    let body = response["body"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"));
    (
        response["statusCode"].as_u64().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

/// Every message as (group, body).
async fn drain(queue: &SqsQueue) -> Vec<(Option<String>, String)> {
    let mut bodies = Vec::new();
    loop {
        let got = queue
            .receive(10, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap();
        if got.is_empty() {
            return bodies;
        }
        for m in got {
            queue.ack(&m.receipt).await.unwrap();
            bodies.push((m.group, m.body));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_flow_through_the_binary_to_the_sync_queue() {
    let Some(moto) = moto::url() else { return };
    let binary = binary::build("webhook-intake");

    let (pc, _) = partner_center_standin::StandinHandle::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let table = moto::unique("cosell");
    DynamoStore::new(
        aws_local::dynamodb_client(&moto, moto::REGION).await,
        &table,
    )
    .create_table_if_missing()
    .await
    .unwrap();
    let queue = SqsQueue::create_queues_if_missing(
        aws_local::sqs_client(&moto, moto::REGION).await,
        &format!("{}.fifo", moto::unique("sync")),
        5,
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    let api = RuntimeApi::start().await;
    let cert_host = pc.base_url().host_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("standin-root.pem");
    pc.write_root_pem(&roots).unwrap();
    let roots = roots.display().to_string();
    let mut function = api
        .spawn_function(
            &binary,
            "webhook-intake",
            &[
                ("AWS_ENDPOINT_URL", moto.as_str()),
                ("AWS_REGION", moto::REGION),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("COSELL_TABLE_NAME", table.as_str()),
                ("COSELL_SYNC_QUEUE_URL", queue.queue_url()),
                ("COSELL_SYNC_DLQ_URL", queue.dlq_url()),
                ("COSELL_WEBHOOK_CERT_HOSTS", cert_host.as_str()),
                (
                    "COSELL_WEBHOOK_CERT_ORGS",
                    partner_center_standin::CERT_ORGANIZATION,
                ),
                ("COSELL_WEBHOOK_CERT_ROOTS", roots.as_str()),
                ("COSELL_LOG_LEVEL", "warn"),
            ],
        )
        .unwrap();
    let cold = function
        .cold_start(Duration::from_secs(20))
        .await
        .expect("the function asked for its first event");
    println!("webhook-intake cold start (spawn to first /next): {cold:?}");

    let signer = DeliverySigner::for_standin(&pc.base_url());

    // A plain body, then a base64 one (API Gateway encodes bodies it deems binary).
    let (headers, body) = signer.referral_updated("3d6b8f2a-9c41-4e57-b0a2-6f1e8d9c7b35");
    let out = api
        .invoke(api_gateway_event(&headers, &body, false))
        .await
        .unwrap();
    let (status, json) = answer(&out);
    assert_eq!((status, &json["status"]), (200, &json!("queued")), "{json}");
    assert_eq!(json["referral_id"], "3d6b8f2a-9c41-4e57-b0a2-6f1e8d9c7b35");

    let (headers2, body2) = signer.referral_updated("7a0c4e19-2b58-4d3f-8e6a-1c9b2d4f6a80");
    let out = api
        .invoke(api_gateway_event(&headers2, &body2, true))
        .await
        .unwrap();
    assert_eq!(answer(&out).1["status"], "queued", "{out}");

    // The first delivery again: remembered in DynamoDB, so not queued twice.
    let out = api
        .invoke(api_gateway_event(&headers, &body, false))
        .await
        .unwrap();
    assert_eq!(
        answer(&out),
        (
            200,
            json!({"status": "duplicate", "referral_id": "3d6b8f2a-9c41-4e57-b0a2-6f1e8d9c7b35"})
        )
    );

    // A tampered body: refused with a JSON error, nothing queued.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'3').unwrap();
    tampered[at] = b'4';
    let out = api
        .invoke(api_gateway_event(&headers, &tampered, false))
        .await
        .unwrap();
    let (status, json) = answer(&out);
    assert_eq!(status, 401, "{json}");
    assert_eq!(json["error"]["code"], "bad_signature");

    let mut queued: Vec<(Option<String>, SyncMessage)> = drain(&queue)
        .await
        .iter()
        .map(|(group, body)| (group.clone(), SyncMessage::parse(body).unwrap()))
        .collect();
    queued.sort_by(|a, b| a.1.referral_id.cmp(&b.1.referral_id));
    let ids: Vec<&str> = queued
        .iter()
        .map(|(_, m)| m.referral_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "3d6b8f2a-9c41-4e57-b0a2-6f1e8d9c7b35",
            "7a0c4e19-2b58-4d3f-8e6a-1c9b2d4f6a80"
        ]
    );
    for (group, m) in &queued {
        assert_eq!(m.origin, Origin::Referral);
        // Not linked: each in the group of the id its opportunity will get.
        assert_eq!(m.key, opportunity_id_for(m.referral_id.as_deref().unwrap()));
        assert_eq!(group.as_deref(), Some(m.key.as_str()));
    }
    assert!(queue.list_dead_letters(10).await.unwrap().is_empty());
    assert!(
        function.try_wait().unwrap().is_none(),
        "the function is still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_setting_stops_the_function_at_init() {
    let binary = binary::build("webhook-intake");
    let api = RuntimeApi::start().await;
    let mut function = api
        .spawn_function(
            &binary,
            "webhook-intake",
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("COSELL_TABLE_NAME", ""),
            ],
        )
        .unwrap();
    // It exits with an error (Lambda reports Runtime.ExitError) instead of taking events.
    let mut exited = None;
    for _ in 0..100 {
        exited = function.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = exited.expect("the function exited within 10 s");
    assert!(!status.success(), "{status}");
    assert!(
        function
            .cold_start(Duration::from_millis(10))
            .await
            .is_none(),
        "it never asked for an event"
    );
}
