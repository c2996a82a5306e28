//! The local Lambda runtime API, exercised by an HTTP client playing the function's runtime,
//! and the pair-sync function binary run against it with DynamoDB, SQS (a FIFO queue) and
//! Secrets Manager served by moto.

#[path = "lambda/binary.rs"]
mod binary;
#[path = "lambda/emf.rs"]
mod emf;
// The same moto launcher as the store and queue contract suites.
#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cosell::engine::disposition::queued;
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::sqs::SqsQueue;
use cosell::queue::{OutMessage, Queue, Received};
use cosell::store::aws_local;
use cosell::store::dynamodb::DynamoStore;
use cosell::store::Store;
use cosell_tests::harness::{standin_settings, Harness};
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

/// The SQS record Lambda makes of a received message (the attributes a FIFO event source
/// passes on).
fn sqs_record(m: &Received, queue_arn: &str, dedup_id: &str) -> Value {
    json!({
        "messageId": m.id,
        "receiptHandle": m.receipt,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": m.receive_count.to_string(),
            "SentTimestamp": "1770647531002",
            "SequenceNumber": "18891457412290297856",
            "MessageGroupId": m.group.clone().unwrap_or_default(),
            "SenderId": "AROAEXAMPLEROLEID:cosell-WebhookIntakeFunction",
            "MessageDeduplicationId": dedup_id,
            "ApproximateFirstReceiveTimestamp": "1770647531010"
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": moto::REGION
    })
}

async fn secret(moto: &str, value: Value) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&aws_local::sdk_config(moto, moto::REGION).await);
    sm.create_secret()
        .name(moto::unique("cosell/secret"))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

/// What a function of a deployed stack finds: the table, the FIFO sync queue, the secrets
/// (in moto) and the variables the template sets, pointing at the harness's stand-ins.
struct Deployed {
    store: DynamoStore,
    queue: SqsQueue,
    vars: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn deployed(h: &Harness, moto: &str) -> Deployed {
    let table = moto::unique("cosell");
    let store = DynamoStore::new(aws_local::dynamodb_client(moto, moto::REGION).await, &table);
    store.create_table_if_missing().await.unwrap();
    let queue = SqsQueue::create_queues_if_missing(
        aws_local::sqs_client(moto, moto::REGION).await,
        &format!("{}.fifo", moto::unique("sync")),
        10,
        Duration::from_secs(360),
    )
    .await
    .unwrap();
    assert_eq!(queue.kind(), cosell::queue::QueueKind::Fifo);
    let pc = h.pc.config();
    let dv = h.dv.config();
    let pc_arn = secret(
        moto,
        json!({"client_id": pc.client_id, "client_secret": pc.client_secret}),
    )
    .await;
    let dv_arn = secret(
        moto,
        json!({"client_id": dv.client_id, "client_secret": dv.client_secret}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut vars: Vec<(String, String)> = standin_settings(&h.pc, &h.dv, dir.path())
        .into_iter()
        .filter(|(k, _)| !k.contains("CLIENT_") && k != "COSELL_DATA_DIR")
        .collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto),
        ("AWS_REGION", moto::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("COSELL_TABLE_NAME", table.as_str()),
        ("COSELL_SYNC_QUEUE_URL", queue.queue_url()),
        ("COSELL_SYNC_DLQ_URL", queue.dlq_url()),
        ("COSELL_PC_SECRET_ARN", pc_arn.as_str()),
        ("COSELL_DV_SECRET_ARN", dv_arn.as_str()),
        ("COSELL_SYNC_MAX_ATTEMPTS", "3"),
        ("COSELL_LOG_LEVEL", "warn"),
        ("COSELL_STACK_NAME", "cosell-test"),
    ] {
        vars.push((k.to_string(), v.to_string()));
    }
    Deployed {
        store,
        queue,
        vars,
        _dir: dir,
    }
}

/// The reconciler binary as Lambda runs it: an SQS event of the FIFO sync queue with a new
/// referral's message and a poison message in another group. The referral's opportunity is
/// created under the pair key, the link stored in DynamoDB, the poison dead-lettered with
/// its reason, and the batch response reports no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pair_sync_binary_reconciles_a_fifo_batch() {
    let Some(moto) = moto::url() else { return };
    let binary = binary::build("pair-sync");
    let h = Harness::start().await;
    let Deployed {
        store,
        queue,
        vars,
        _dir,
    } = deployed(&h, &moto).await;

    // A new referral, and its message as the intake queues it.
    let referral = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Changed two seconds ago (the webhook's `ResourceChangeUtcDate`): the sync latency.
    let changed_at = time::OffsetDateTime::now_utc() - Duration::from_secs(2);
    let changed_at = changed_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let message = SyncMessage::for_referral(&store, &referral, Origin::Referral, Some(changed_at))
        .await
        .unwrap();
    assert_eq!(message.key, opportunity_id_for(&referral));
    queue.send(&queued(&message)).await.unwrap();
    let poison = OutMessage::new("not a sync message")
        .group("another-pair")
        .dedup_id("poison-1");
    queue.send(&poison).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(
            queue
                .receive(10, Duration::from_secs(360), Duration::from_secs(1))
                .await
                .unwrap(),
        );
        if got.len() == 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "{got:?}");
    got.sort_by_key(|m| m.body == "not a sync message");
    assert_eq!(got[0].group.as_deref(), Some(message.key.as_str()));
    let arn = format!("arn:aws:sqs:{}:000000000000:{}", moto::REGION, "sync.fifo");
    let event = json!({"Records": [
        sqs_record(&got[0], &arn, &message.dedup_id()),
        sqs_record(&got[1], &arn, "poison-1"),
    ]});

    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let api = RuntimeApi::start().await;
    let mut function = api.spawn_function(&binary, "pair-sync", &vars).unwrap();

    let answer = api
        .invoke_with_timeout(event, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    assert_eq!(answer, json!({"batchItemFailures": []}));

    // The reconcile happened: the opportunity under the pair key, linked in DynamoDB.
    let row =
        h.dv.row("opportunities", &message.key)
            .expect("the opportunity was created with the derived id");
    assert_eq!(
        row[h.config.columns.referral_id.as_str()],
        referral.as_str()
    );
    assert_eq!(h.dv.rows("opportunities").len(), 1);
    let link = store
        .get_link_by_referral(&referral)
        .await
        .unwrap()
        .expect("the link");
    assert_eq!(link.opportunity_id, message.key);
    // The poison went to the FIFO DLQ with its reason, in its group.
    let dead = queue.list_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, "not a sync message");
    assert!(
        dead[0].reason.contains("poison message"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].group.as_deref(), Some("another-pair"));
    assert!(
        function.try_wait().unwrap().is_none(),
        "the function is still serving"
    );
    assert_sync_metrics(&function, &referral).await;
}

/// The EMF documents the batch above flushed: one namespace, the stack dimension on every
/// metric, the two messages' outcomes by direction, the failure-rate samples, the latency of
/// the write, the calls and token renewals per service; and nothing of the customer.
async fn assert_sync_metrics(
    function: &cosell_tests::runtime_api::FunctionProcess,
    referral: &str,
) {
    use cosell::telemetry::names::{self, dim};
    // Flushed before the answer is posted; the pipe may still be carrying them.
    let mut points = Vec::new();
    for _ in 0..50 {
        points = emf::points(&function.stdout_lines());
        if !emf::values(&points, names::SYNCS.name, &[]).is_empty()
            || points.iter().any(|p| p.name == names::SYNCS.name)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!points.is_empty(), "no EMF documents on stdout");
    for p in &points {
        assert_eq!(p.namespace, names::NAMESPACE, "{p:?}");
        assert_eq!(
            p.dimensions.get(names::STACK).map(String::as_str),
            Some("cosell-test"),
            "{p:?}"
        );
        let def = names::metric(&p.name).unwrap_or_else(|| panic!("not a metric of ours: {p:?}"));
        assert_eq!(p.unit.as_deref(), Some(def.unit.cloudwatch()), "{p:?}");
        let mut expected: Vec<&str> = def.dimensions.to_vec();
        expected.push(names::STACK);
        expected.sort();
        let got: Vec<&str> = p.dimensions.keys().map(String::as_str).collect();
        assert_eq!(got, expected, "{p:?}");
        // Properties: the invocation's request id only.
        assert!(p.properties.keys().all(|k| k == "RequestId"), "{p:?}");
    }
    let one = |name: &str, dims: &[(&str, &str)]| -> f64 {
        emf::values(&points, name, dims)
            .iter()
            .flat_map(|p| p.values.iter())
            .sum()
    };
    let syncs = names::SYNCS.name;
    let created = [(dim::DIRECTION, "inbound"), (dim::OUTCOME, "created")];
    assert_eq!(one(syncs, &created), 1.0, "{points:#?}");
    let poison = [(dim::DIRECTION, "unknown"), (dim::OUTCOME, "dead-lettered")];
    assert_eq!(one(syncs, &poison), 1.0, "{points:#?}");
    let total: f64 = points
        .iter()
        .filter(|p| p.name == syncs)
        .flat_map(|p| &p.values)
        .sum();
    assert_eq!(total, 2.0, "{points:#?}");
    // The failure rate's samples: one success, one dead letter.
    let mut failed: Vec<f64> = emf::values(&points, names::SYNC_FAILED.name, &[])
        .iter()
        .flat_map(|p| p.values.clone())
        .collect();
    failed.sort_by(f64::total_cmp);
    assert_eq!(failed, vec![0.0, 1.0]);
    // From the change two seconds ago to the opportunity's write.
    let latency = emf::values(
        &points,
        names::SYNC_LATENCY.name,
        &[(dim::DIRECTION, "inbound")],
    );
    let latency: Vec<f64> = latency.iter().flat_map(|p| p.values.clone()).collect();
    assert_eq!(latency.len(), 1, "{points:#?}");
    assert!((2000.0..60_000.0).contains(&latency[0]), "{latency:?}");
    for service in ["partner-center", "dataverse"] {
        let s = [(dim::SERVICE, service)];
        assert!(one(names::CALLS.name, &s) >= 1.0, "{service}: {points:#?}");
        assert!(
            one(names::TOKEN_RENEWALS.name, &s) >= 1.0,
            "{service}: {points:#?}"
        );
        assert_eq!(one(names::TOKEN_RENEWAL_FAILURES.name, &s), 0.0);
    }
    // No customer name, and no id either, in a metric document.
    let docs: Vec<String> = function
        .stdout_lines()
        .into_iter()
        .filter(|l| l.contains("\"_aws\""))
        .collect();
    for doc in &docs {
        assert!(!doc.contains("Contoso"), "{doc}");
        assert!(!doc.contains(referral), "{doc}");
    }
}

/// The poller binary's sweep (`{"task":"reconcile"}`) as Lambda runs it: the new referral is
/// queued, and the EMF lines count it and the page read under the sweep, with the stack's
/// dimension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_binary_counts_what_its_sweep_found() {
    use cosell::telemetry::names::{self, dim};
    let Some(moto) = moto::url() else { return };
    let binary = binary::build("opportunity-poller");
    let h = Harness::start().await;
    let Deployed {
        queue, vars, _dir, ..
    } = deployed(&h, &moto).await;
    h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let api = RuntimeApi::start().await;
    let function = api
        .spawn_function(&binary, "opportunity-poller", &vars)
        .unwrap();
    api.invoke_with_timeout(json!({"task": "reconcile"}), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    let queued = queue
        .receive(10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");

    let sweep = [(dim::SOURCE, "referral-sweep")];
    let mut points = Vec::new();
    for _ in 0..50 {
        points = emf::points(&function.stdout_lines());
        if !emf::values(&points, names::CHANGES_FOUND.name, &sweep).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sum = |name: &str| -> f64 {
        emf::values(&points, name, &sweep)
            .iter()
            .flat_map(|p| p.values.iter())
            .sum()
    };
    assert_eq!(sum(names::CHANGES_FOUND.name), 1.0, "{points:#?}");
    assert!(sum(names::PAGES_READ.name) >= 1.0, "{points:#?}");
    for p in &points {
        assert_eq!(p.namespace, names::NAMESPACE, "{p:?}");
        assert_eq!(
            p.dimensions.get(names::STACK).map(String::as_str),
            Some("cosell-test"),
            "{p:?}"
        );
        let def = names::metric(&p.name).unwrap_or_else(|| panic!("not ours: {p:?}"));
        assert_eq!(p.unit.as_deref(), Some(def.unit.cloudwatch()), "{p:?}");
    }
}
