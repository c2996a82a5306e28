//! The AWS path: `status`, `audit` and `dlq` against DynamoDB and the FIFO sync queue in
//! moto, with the table and queue URL given as flags (the dead-letter queue found from the
//! redrive policy, or given), or found from a stack's outputs.

#[path = "../../../shared/tests/moto_server/mod.rs"]
mod moto_server;

use std::time::Duration;

use cosell::audit::{AuditEntry, Direction, Outcome};
use cosell::crosswalk::Link;
use cosell::engine::{disposition, Origin, SyncMessage};
use cosell::queue::sqs::SqsQueue;
use cosell::queue::Queue;
use cosell::store::aws_local;
use cosell::store::dynamodb::DynamoStore;
use cosell::store::Store;
use cosell_cli::ops::{run_args, Exit, Settings};
use serde_json::Value;

#[tokio::test]
async fn status_audit_and_dlq_work_against_dynamodb_and_sqs() {
    let Some(url) = moto_server::url() else {
        return;
    };
    let dynamo = aws_local::dynamodb_client(&url, moto_server::REGION).await;
    let sqs = aws_local::sqs_client(&url, moto_server::REGION).await;
    let table = moto_server::unique("cosell-ops");
    let store = DynamoStore::new(dynamo, &table);
    store.create_table_if_missing().await.unwrap();
    let mut link = Link::new("ref-aws", "opp-aws");
    link.pc_etag = Some("\"etag-aws\"".into());
    store.put_link(&link, None).await.unwrap();
    store
        .append_audit(
            &AuditEntry::new(Direction::Inbound, "create_opportunity", Outcome::Failed)
                .referral("ref-aws")
                .error("dataverse said no"),
        )
        .await
        .unwrap();
    store
        .append_audit(
            &AuditEntry::new(Direction::Inbound, "create_opportunity", Outcome::Success)
                .referral("ref-other"),
        )
        .await
        .unwrap();

    let queue = SqsQueue::create_queues_if_missing(
        sqs,
        &format!("{}.fifo", moto_server::unique("sync")),
        5,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let message = SyncMessage {
        key: "opp-aws".into(),
        origin: Origin::Referral,
        referral_id: Some("ref-aws".into()),
        changed_at: Some("2026-05-01T10:00:00Z".into()),
        deleted: false,
        version: None,
    };
    queue.send(&disposition::queued(&message)).await.unwrap();
    let got = queue
        .receive(1, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    queue
        .dead_letter(&got[0], "permanent: bad data")
        .await
        .unwrap();

    let target = [
        "--endpoint-url",
        url.as_str(),
        "--region",
        moto_server::REGION,
        "--table",
        table.as_str(),
        "--queue-url",
        queue.queue_url(),
    ];
    let settings = Settings::Pairs(vec![]);
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(target.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |args: Vec<String>| {
        let settings = settings.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_args(&refs, &settings).await
        }
    };

    let status = run(with(&["status", "opp-aws"])).await;
    assert_eq!(status.exit, Exit::Ok, "{}", status.stderr);
    assert!(status.stdout.contains("ref-aws"));
    assert!(status.stdout.contains("\"etag-aws\""));
    assert!(
        status.stdout.contains("dataverse said no"),
        "{}",
        status.stdout
    );
    assert_eq!(run(with(&["status", "nope"])).await.exit, Exit::Failure);

    let audit = run(with(&["audit", "--failed", "-o", "json"])).await;
    assert_eq!(audit.exit, Exit::Ok, "{}", audit.stderr);
    let v: Value = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["referral_id"], "ref-aws");

    let list = run(with(&["dlq", "list", "-o", "json"])).await;
    assert_eq!(list.exit, Exit::Ok, "{}", list.stderr);
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["queue"], "sync");
    assert_eq!(v[0]["reason"], "permanent: bad data");
    assert_eq!(
        SyncMessage::parse(v[0]["body"].as_str().unwrap()).unwrap(),
        message
    );

    // The dead-letter queue given explicitly finds the same letter.
    let mut explicit = with(&["dlq", "list", "-o", "json"]);
    explicit.extend(["--dlq-url".to_string(), queue.dlq_url().to_string()]);
    let listed = run(explicit).await;
    assert_eq!(listed.exit, Exit::Ok, "{}", listed.stderr);
    let w: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(w.as_array().unwrap().len(), 1, "{w}");

    // The per-direction queue flags are gone.
    let old = run(vec![
        "dlq".into(),
        "list".into(),
        "--table".into(),
        table.clone(),
        "--inbound-queue-url".into(),
        queue.queue_url().into(),
    ])
    .await;
    assert_eq!(old.exit, Exit::Usage, "{}", old.stdout);

    let replay = run(with(&["dlq", "replay", "--all", "--queue", "sync"])).await;
    assert_eq!(replay.exit, Exit::Ok, "{}", replay.stderr);
    assert!(
        replay.stdout.contains("moved 1 dead letter(s)"),
        "{}",
        replay.stdout
    );
    let back = queue
        .receive(10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(SyncMessage::parse(&back[0].body).unwrap(), message);
    assert_eq!(
        back[0].group.as_deref(),
        Some("opp-aws"),
        "a replay goes back into its pair's group"
    );
}

/// `--stack NAME`: the table and queues come from the stack's CloudFormation outputs (moto's
/// CloudFormation, with a stack whose outputs name resources made beforehand).
#[tokio::test]
async fn a_stack_name_finds_the_table_and_queues_from_its_outputs() {
    let Some(url) = moto_server::url() else {
        return;
    };
    let sdk = aws_local::sdk_config(&url, moto_server::REGION).await;
    let dynamo = aws_local::dynamodb_client(&url, moto_server::REGION).await;
    let sqs = aws_local::sqs_client(&url, moto_server::REGION).await;
    let table = moto_server::unique("cosell-stack");
    let store = DynamoStore::new(dynamo, &table);
    store.create_table_if_missing().await.unwrap();
    store
        .put_link(&Link::new("ref-stack", "opp-stack"), None)
        .await
        .unwrap();
    let queue = SqsQueue::create_queues_if_missing(
        sqs,
        &format!("{}.fifo", moto_server::unique("stack-sync")),
        5,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let message = SyncMessage::for_opportunity("opp-stack", None);
    queue.send(&disposition::queued(&message)).await.unwrap();
    let got = queue
        .receive(1, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    queue
        .dead_letter(&got[0], "permanent: stack letter")
        .await
        .unwrap();

    let template = serde_json::json!({
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "TableName": {"Value": table},
            "SyncQueueUrl": {"Value": queue.queue_url()},
            "SyncDeadLetterQueueUrl": {"Value": queue.dlq_url()},
            "WebhookUrl": {"Value": "https://example.invalid/partner-center/webhook"},
        }
    });
    let stack = moto_server::unique("cosell-sync");
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create the stack in moto");

    let settings = Settings::Pairs(vec![]);
    let args = [
        "status",
        "opp-stack",
        "--stack",
        stack.as_str(),
        "--endpoint-url",
        url.as_str(),
        "--region",
        moto_server::REGION,
    ];
    let status = run_args(&args, &settings).await;
    assert_eq!(status.exit, Exit::Ok, "{}", status.stderr);
    assert!(status.stdout.contains("ref-stack"), "{}", status.stdout);

    // The dead-letter queue named by the stack's SyncDeadLetterQueueUrl output.
    let list = run_args(
        &[
            "dlq",
            "list",
            "-o",
            "json",
            "--stack",
            stack.as_str(),
            "--endpoint-url",
            url.as_str(),
            "--region",
            moto_server::REGION,
        ],
        &settings,
    )
    .await;
    assert_eq!(list.exit, Exit::Ok, "{}", list.stderr);
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["queue"], "sync");
    assert_eq!(v[0]["reason"], "permanent: stack letter");

    let missing = run_args(
        &[
            "status",
            "opp-stack",
            "--stack",
            "no-such-stack",
            "--endpoint-url",
            url.as_str(),
            "--region",
            moto_server::REGION,
        ],
        &settings,
    )
    .await;
    assert_eq!(missing.exit, Exit::Failure);
    assert!(
        missing.stderr.contains("no-such-stack"),
        "{}",
        missing.stderr
    );
}
