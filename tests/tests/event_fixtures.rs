//! The committed event fixtures have the shapes Lambda delivers: each deserializes into the
//! `aws_lambda_events` type the function will take, with the fields the functions rely on.

use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use cosell::custom_resource::{CustomResourceRequest, RequestType};
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::{Origin, SyncMessage};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&fixture_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn api_gateway_v2_webhook_delivery() {
    let req: ApiGatewayV2httpRequest = fixture("apigw-v2-webhook.json");
    assert_eq!(req.version.as_deref(), Some("2.0"));
    assert_eq!(
        req.route_key.as_deref(),
        Some("POST /partner-center/webhook")
    );
    assert_eq!(req.raw_path.as_deref(), Some("/partner-center/webhook"));
    assert_eq!(req.request_context.http.method, "POST");
    assert_eq!(req.request_context.stage.as_deref(), Some("$default"));
    assert!(!req.is_base64_encoded);
    // Header lookups are case-insensitive, as the webhook verifier needs.
    let header = |name: &str| req.headers.get(name).unwrap().to_str().unwrap();
    assert!(header("Authorization").starts_with("Signature "));
    assert!(header("X-MS-Certificate-Url")
        .starts_with("https://3psostorageacct.blob.core.windows.net/"));
    assert_eq!(header("X-MS-Signature-Algorithm"), "rsa-sha256");

    let body = req.body.expect("a body");
    assert_eq!(header("content-length"), body.len().to_string());
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["EventName"], "referral-updated");
    assert!(event["ResourceUri"]
        .as_str()
        .unwrap()
        .starts_with("https://api.partner.microsoft.com/v1.0/engagements/referrals/"));
}

/// A batch of the FIFO sync queue as Lambda delivers it: the group and de-duplication id
/// among the record's attributes.
#[test]
fn sqs_batch_of_three() {
    let event: SqsEvent = fixture("sqs-batch.json");
    assert_eq!(event.records.len(), 3);
    let ids: Vec<_> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "059f36b4-87a3-44ab-83d2-661975830a7d",
            "2e1424d4-f796-459a-8184-9c92662be6da",
            "c80e8021-a70a-42c7-a470-796e1186f753"
        ]
    );
    let receive_counts: Vec<u32> = event
        .records
        .iter()
        .map(|r| r.attributes["ApproximateReceiveCount"].parse().unwrap())
        .collect();
    assert_eq!(receive_counts, [2, 2, 5]);
    for r in &event.records {
        assert!(!r.receipt_handle.as_deref().unwrap().is_empty());
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
        let arn = r.event_source_arn.as_deref().unwrap();
        assert!(arn.starts_with("arn:aws:sqs:us-east-1:123456789012:"));
        assert!(arn.ends_with(".fifo"), "the sync queue is FIFO: {arn}");
        for attribute in ["MessageGroupId", "MessageDeduplicationId", "SequenceNumber"] {
            assert!(r.attributes.contains_key(attribute), "{attribute}");
        }
    }
    // Two bodies are sync messages, of one pair (a webhook, then the poll), sent in order
    // under their key; the third is a poison message.
    let parsed: Vec<Option<SyncMessage>> = event
        .records
        .iter()
        .map(|r| SyncMessage::parse(r.body.as_deref().unwrap()).ok())
        .collect();
    assert!(parsed[2].is_none());
    assert!(serde_json::from_str::<Value>(event.records[2].body.as_deref().unwrap()).is_err());
    let (webhook, poll) = (parsed[0].clone().unwrap(), parsed[1].clone().unwrap());
    assert_eq!(webhook.origin, Origin::Referral);
    let referral = webhook.referral_id.as_deref().unwrap();
    assert_eq!(
        webhook.key,
        opportunity_id_for(referral),
        "a new referral's key"
    );
    assert_eq!(poll.origin, Origin::Opportunity);
    assert_eq!(poll.key, webhook.key);
    for (r, m) in event.records.iter().zip([&webhook, &poll]) {
        assert_eq!(r.attributes["MessageGroupId"], m.key);
    }
    // The poll names the row's version, so the same version read twice is one message; the
    // webhook names none and is never taken for a duplicate (a fresh id each).
    assert_eq!(poll.version.as_deref(), Some("1288734"));
    assert_eq!(
        event.records[1].attributes["MessageDeduplicationId"],
        poll.dedup_id()
    );
    assert!(webhook.version.is_none());
    assert!(uuid::Uuid::parse_str(&event.records[0].attributes["MessageDeduplicationId"]).is_ok());
    let sequence = |i: usize| -> u128 {
        event.records[i].attributes["SequenceNumber"]
            .parse()
            .unwrap()
    };
    assert!(sequence(0) < sequence(1), "in the group's order");
    assert_ne!(
        event.records[2].attributes["MessageGroupId"], webhook.key,
        "the poison is another pair's"
    );
}

#[test]
fn eventbridge_scheduled_event() {
    let event: EventBridgeEvent = fixture("eventbridge-scheduled.json");
    assert_eq!(event.detail_type, "Scheduled Event");
    assert_eq!(event.source, "aws.events");
    assert_eq!(event.account.as_deref(), Some("123456789012"));
    assert_eq!(
        event.time.unwrap().to_rfc3339(),
        "2026-02-09T14:33:00+00:00"
    );
    assert_eq!(event.resources.unwrap().len(), 1);
    assert_eq!(event.detail, serde_json::json!({}));
}

#[test]
fn scheduled_task_inputs() {
    // With an `Input`, EventBridge delivers that JSON instead of the Scheduled Event.
    for (file, task) in [
        ("scheduled-poll.json", "poll"),
        ("scheduled-reconcile.json", "reconcile"),
    ] {
        let v: Value = fixture(file);
        assert_eq!(v, serde_json::json!({ "task": task }), "{file}");
    }
}

#[test]
fn cloudformation_requests() {
    let create: CloudFormationCustomResourceRequest = fixture("cfn-create.json");
    let CloudFormationCustomResourceRequest::Create(create) = create else {
        panic!("cfn-create.json is not a Create");
    };
    assert_eq!(create.logical_resource_id, "WebhookRegistration");
    assert_eq!(create.resource_type, "Custom::WebhookRegistration");
    assert!(create.response_url.starts_with("https://"));
    assert!(create.stack_id.starts_with("arn:aws:cloudformation:"));
    assert_eq!(
        create.resource_properties["WebhookUrl"],
        "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/partner-center/webhook"
    );
    assert_eq!(
        create.resource_properties["ServiceToken"].as_str(),
        create.service_token.as_deref()
    );

    let update: CloudFormationCustomResourceRequest = fixture("cfn-update.json");
    let CloudFormationCustomResourceRequest::Update(update) = update else {
        panic!("cfn-update.json is not an Update");
    };
    assert!(update
        .physical_resource_id
        .starts_with("partner-center-webhook:"));
    assert_eq!(
        update.resource_properties["Events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        update.old_resource_properties["Events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let delete: CloudFormationCustomResourceRequest = fixture("cfn-delete.json");
    let CloudFormationCustomResourceRequest::Delete(delete) = delete else {
        panic!("cfn-delete.json is not a Delete");
    };
    assert_eq!(delete.physical_resource_id, update.physical_resource_id);
    assert_ne!(delete.request_id, update.request_id);
}

#[test]
fn cloudformation_requests_read_by_our_own_protocol_type() {
    for (file, kind) in [
        ("cfn-create.json", RequestType::Create),
        ("cfn-update.json", RequestType::Update),
        ("cfn-delete.json", RequestType::Delete),
    ] {
        let r: CustomResourceRequest = fixture(file);
        assert_eq!(r.request_type, kind, "{file}");
        assert_eq!(r.logical_resource_id, "WebhookRegistration");
        assert_eq!(
            r.physical_resource_id.is_some(),
            kind != RequestType::Create
        );
        assert_eq!(
            r.old_resource_properties.is_some(),
            kind == RequestType::Update
        );
        assert!(r
            .property("WebhookUrl")
            .unwrap()
            .ends_with("/partner-center/webhook"));
    }
}
