//! Checks of `template.yaml` that the linters do not make: schedule expressions, the FIFO
//! sync queue and its consumer (visibility timeout against the function's timeout, the
//! redrive backstop above the function's own attempts, partial batch responses), dead-letter
//! queues and their alarms, the build of every function, the outputs the CLI reads, and no
//! secret value in an environment variable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cosell_tests::schedule_expression::check;
use serde_yaml::Value;

/// The function binaries, fixed by the design: intake, the reconciler (both directions),
/// the poller (with the sweep), the registration.
const BINARIES: [&str; 4] = [
    "webhook-intake",
    "pair-sync",
    "opportunity-poller",
    "webhook-registration",
];

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml at the repository root");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

fn resources(t: &Value) -> BTreeMap<String, &Value> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect()
}

fn of_type<'a>(t: &'a Value, kind: &str) -> BTreeMap<String, &'a Value> {
    resources(t)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// `!Ref X` or `{Ref: X}`.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref")?.as_str(),
        _ => None,
    }
}

/// `!GetAtt X.Attr`, `!GetAtt [X, Attr]` or `{Fn::GetAtt: [X, Attr]}`.
fn get_att(v: &Value) -> Option<(String, String)> {
    let inner = match v {
        Value::Tagged(t) if t.tag == "GetAtt" => &t.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::GetAtt")?,
        _ => return None,
    };
    match inner {
        Value::String(s) => {
            let (r, a) = s.split_once('.')?;
            Some((r.to_string(), a.to_string()))
        }
        Value::Sequence(s) if s.len() == 2 => {
            Some((s[0].as_str()?.to_string(), s[1].as_str()?.to_string()))
        }
        _ => None,
    }
}

/// A function property, falling back to `Globals.Function`.
fn function_property<'a>(t: &'a Value, function: &'a Value, name: &str) -> Option<&'a Value> {
    function["Properties"]
        .get(name)
        .or_else(|| t["Globals"]["Function"].get(name))
}

/// The events of `function` of the given SAM event type.
fn events<'a>(function: &'a Value, kind: &str) -> Vec<&'a Value> {
    function["Properties"]["Events"]
        .as_mapping()
        .map(|m| {
            m.values()
                .filter(|e| e["Type"].as_str() == Some(kind))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn schedule_checker_accepts_valid_expressions() {
    for good in [
        "rate(1 minute)",
        "rate(15 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "cron(0/15 * * * ? *)",
        "cron(0 8 ? * MON-FRI *)",
        "cron(30 2 1 * ? 2027)",
        "cron(0 9 L * ? *)",
        "cron(0 9 ? * 6#3 *)",
        "cron(0,30 8-17 ? JAN-MAR,DEC MON *)",
    ] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
}

#[test]
fn schedule_checker_rejects_invalid_expressions() {
    for bad in [
        "rate(5 minute)",
        "rate(1 minutes)",
        "rate(2 hour)",
        "rate(1 days)",
        "rate(0 minutes)",
        "rate(05 minutes)",
        "rate(-1 minutes)",
        "rate(1.5 hours)",
        "rate(10 seconds)",
        "rate(10  minutes)",
        "rate(minutes)",
        "rate 5 minutes",
        "every 5 minutes",
        "cron(0/15 * * * *)",
        "cron(0/15 * * * ? * *)",
        "cron(0 8 * * * *)",
        "cron(0 8 ? * ? *)",
        "cron(60 * ? * * *)",
        "cron(0 24 ? * * *)",
        "cron(0 8 ? 13 MON *)",
        "cron(0 8 ? * FUNDAY *)",
        "cron(0/0 * ? * * *)",
        "cron(? * 1 * ? *)",
        "",
    ] {
        assert!(check(bad).is_err(), "accepted {bad:?}");
    }
    assert!(check("rate(5 minute)").unwrap_err().contains("'minutes'"));
}

#[test]
fn every_schedule_expression_is_valid() {
    let t = template();
    let mut found = Vec::new();
    for (name, function) in of_type(&t, "AWS::Serverless::Function") {
        for kind in ["Schedule", "ScheduleV2"] {
            for event in events(function, kind) {
                let p = &event["Properties"];
                let expr = p
                    .get("Schedule")
                    .or_else(|| p.get("ScheduleExpression"))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{name}: a schedule without an expression"));
                found.push(expr.to_string());
            }
        }
    }
    for kind in ["AWS::Events::Rule", "AWS::Scheduler::Schedule"] {
        for (_, r) in of_type(&t, kind) {
            if let Some(expr) = r["Properties"]["ScheduleExpression"].as_str() {
                found.push(expr.to_string());
            }
        }
    }
    assert!(
        found.len() >= 2,
        "the poll and reconcile schedules: {found:?}"
    );
    for expr in &found {
        assert_eq!(check(expr), Ok(()), "{expr}");
    }
}

#[test]
fn the_poller_gets_the_poll_and_reconcile_inputs_of_the_fixtures() {
    let t = template();
    let poller = of_type(&t, "AWS::Serverless::Function")
        .into_values()
        .find(|f| f["Metadata"]["BuildProperties"]["Binary"] == "opportunity-poller")
        .expect("the opportunity-poller function");
    let mut inputs: Vec<serde_json::Value> = events(poller, "Schedule")
        .iter()
        .map(|e| serde_json::from_str(e["Properties"]["Input"].as_str().unwrap()).unwrap())
        .collect();
    inputs.sort_by_key(|v| v.to_string());
    let fixture = |name: &str| -> serde_json::Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    assert_eq!(
        inputs,
        [
            fixture("scheduled-poll.json"),
            fixture("scheduled-reconcile.json")
        ]
    );
}

#[test]
fn queue_visibility_timeouts_are_six_times_their_consumers_timeout() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    let mut consumers = 0;
    for (name, function) in of_type(&t, "AWS::Serverless::Function") {
        let timeout = function_property(&t, function, "Timeout")
            .and_then(Value::as_u64)
            .unwrap_or(3);
        for event in events(function, "SQS") {
            let p = &event["Properties"];
            let (queue, attr) = get_att(&p["Queue"]).expect("Queue: !GetAtt <queue>.Arn");
            assert_eq!(attr, "Arn");
            let visibility = queues[&queue]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap_or(30);
            assert!(
                visibility >= 6 * timeout,
                "{queue}: visibility {visibility}s < 6 x {name}'s timeout {timeout}s"
            );
            let response_types = p["FunctionResponseTypes"].as_sequence().unwrap();
            assert!(
                response_types.contains(&Value::from("ReportBatchItemFailures")),
                "{name}: partial batch responses"
            );
            let batch = p["BatchSize"].as_u64().expect("an explicit BatchSize");
            assert!((1..=10).contains(&batch), "{name}: batch size {batch}");
            // Lambda takes no batching window on a FIFO event source.
            assert_eq!(queues[&queue]["Properties"]["FifoQueue"], true, "{queue}");
            assert!(
                p.get("MaximumBatchingWindowInSeconds").is_none(),
                "{name}: a batching window on a FIFO queue"
            );
            assert_eq!(queue, "SyncQueue");
            consumers += 1;
        }
    }
    assert_eq!(consumers, 1, "pair-sync alone consumes the sync queue");
}

#[test]
fn the_sync_queue_and_its_dead_letter_queue_are_fifo() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    assert_eq!(
        queues.keys().map(String::as_str).collect::<Vec<_>>(),
        ["SyncDeadLetterQueue", "SyncQueue"]
    );
    for name in ["SyncQueue", "SyncDeadLetterQueue"] {
        assert_eq!(queues[name]["Properties"]["FifoQueue"], true, "{name}");
        // A name, if one is given, must end in .fifo; none lets CloudFormation make one.
        if let Some(n) = queues[name]["Properties"]["QueueName"].as_str() {
            assert!(n.ends_with(".fifo"), "{name}: {n}");
        }
    }
    let (dlq, _) =
        get_att(&queues["SyncQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
            .unwrap();
    assert_eq!(dlq, "SyncDeadLetterQueue");
}

/// pair-sync dead-letters a message itself after `SyncMaxAttempts` failed attempts, with
/// its reason; SQS's own redrive (no reason) is only the backstop, so it must come later
/// than any allowed setting.
#[test]
fn the_redrive_backstop_comes_after_the_functions_own_attempts() {
    let t = template();
    let param = &t["Parameters"]["SyncMaxAttempts"];
    let max_setting = param["MaxValue"]
        .as_u64()
        .expect("SyncMaxAttempts has a MaxValue");
    assert!(param["MinValue"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(
        param["Default"].as_u64(),
        Some(u64::from(cosell::engine::disposition::DEFAULT_MAX_ATTEMPTS))
    );
    let redrive = &of_type(&t, "AWS::SQS::Queue")["SyncQueue"]["Properties"]["RedrivePolicy"];
    let backstop = redrive["maxReceiveCount"]
        .as_u64()
        .expect("maxReceiveCount");
    assert!(
        backstop > max_setting,
        "maxReceiveCount {backstop} <= SyncMaxAttempts' MaxValue {max_setting}"
    );
    let f = function_of(&t, "pair-sync");
    assert_eq!(
        reference(&f["Properties"]["Environment"]["Variables"]["COSELL_SYNC_MAX_ATTEMPTS"]),
        Some("SyncMaxAttempts")
    );
}

#[test]
fn nothing_of_the_per_direction_functions_is_left() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    for gone in [
        "referral-sync",
        "opportunity-sync",
        "ReferralSync",
        "OpportunitySync",
        "InboundQueue",
        "OutboundQueue",
        "InboundDeadLetterQueue",
        "OutboundDeadLetterQueue",
        "COSELL_INBOUND_",
        "COSELL_OUTBOUND_",
    ] {
        assert!(!text.contains(gone), "template.yaml still has {gone}");
    }
}

/// The CLI finds a stack's resources by its outputs (`infra/cosell/src/ops/target.rs`):
/// every output it reads exists, and the queue outputs name the sync queue and its DLQ.
#[test]
fn the_outputs_the_cli_reads_exist() {
    let t = template();
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/cosell/src/ops/target.rs");
    let text = std::fs::read_to_string(source).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    let mut read = BTreeSet::new();
    for call in ["need(\"", "get(\""] {
        for piece in code.split(call).skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                read.insert(name);
            }
        }
    }
    for name in ["SyncQueueUrl", "SyncDeadLetterQueueUrl", "TableName"] {
        assert!(read.contains(name), "the scan found {read:?}");
    }
    for name in &read {
        assert!(
            !t["Outputs"][name.as_str()].is_null(),
            "the CLI reads output {name}, which the template lacks"
        );
    }
    assert_eq!(
        reference(&t["Outputs"]["SyncQueueUrl"]["Value"]),
        Some("SyncQueue")
    );
    assert_eq!(
        reference(&t["Outputs"]["SyncDeadLetterQueueUrl"]["Value"]),
        Some("SyncDeadLetterQueue")
    );
}

#[test]
fn every_work_queue_redrives_to_a_dead_letter_queue_with_an_alarm() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    let mut dead_letter_queues = BTreeSet::new();
    for (name, q) in &queues {
        let redrive = &q["Properties"]["RedrivePolicy"];
        if redrive.is_null() {
            continue;
        }
        let (dlq, attr) = get_att(&redrive["deadLetterTargetArn"]).expect("a DLQ ARN");
        assert_eq!(attr, "Arn");
        assert!(queues.contains_key(&dlq), "{name}: {dlq} is not a queue");
        let max = redrive["maxReceiveCount"]
            .as_u64()
            .expect("maxReceiveCount");
        assert!((2..=20).contains(&max), "{name}: maxReceiveCount {max}");
        dead_letter_queues.insert(dlq);
    }
    for name in queues.keys() {
        assert!(
            dead_letter_queues.contains(name)
                || !queues[name]["Properties"]["RedrivePolicy"].is_null(),
            "{name} has no RedrivePolicy and is no DLQ"
        );
    }
    assert_eq!(dead_letter_queues.len(), 1, "{dead_letter_queues:?}");

    let alarmed: BTreeSet<String> = of_type(&t, "AWS::CloudWatch::Alarm")
        .values()
        .filter(|a| {
            let p = &a["Properties"];
            p["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && p["Threshold"].as_f64() == Some(0.0)
                && p["ComparisonOperator"] == "GreaterThanThreshold"
        })
        .flat_map(|a| a["Properties"]["Dimensions"].as_sequence().unwrap().iter())
        .filter(|d| d["Name"] == "QueueName")
        .filter_map(|d| get_att(&d["Value"]).map(|(r, _)| r))
        .collect();
    for dlq in &dead_letter_queues {
        assert!(
            alarmed.contains(dlq),
            "{dlq} has no alarm on visible messages > 0"
        );
    }
}

#[test]
fn every_function_has_an_errors_alarm() {
    let t = template();
    let alarmed: BTreeSet<String> = of_type(&t, "AWS::CloudWatch::Alarm")
        .values()
        .filter(|a| a["Properties"]["MetricName"] == "Errors")
        .flat_map(|a| a["Properties"]["Dimensions"].as_sequence().unwrap().iter())
        .filter(|d| d["Name"] == "FunctionName")
        .filter_map(|d| reference(&d["Value"]).map(str::to_string))
        .collect();
    for name in of_type(&t, "AWS::Serverless::Function").keys() {
        assert!(alarmed.contains(name), "{name} has no Errors alarm");
    }
}

#[test]
fn every_function_is_a_rust_arm64_build_of_a_known_binary() {
    let t = template();
    let mut binaries = Vec::new();
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        let prop =
            |p: &str| function_property(&t, f, p).unwrap_or_else(|| panic!("{name}: no {p}"));
        assert_eq!(prop("Runtime"), "provided.al2023", "{name}");
        assert_eq!(prop("Handler"), "bootstrap", "{name}");
        assert_eq!(
            prop("Architectures").as_sequence().unwrap(),
            &vec![Value::from("arm64")],
            "{name}"
        );
        // SAM merges a function's LoggingConfig map into the global one.
        let log_format = f["Properties"]["LoggingConfig"]
            .get("LogFormat")
            .unwrap_or(&t["Globals"]["Function"]["LoggingConfig"]["LogFormat"]);
        assert_eq!(log_format, "JSON", "{name}");
        let log_group = reference(&f["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{name}: no log group of the template"));
        assert!(
            !resources(&t)[log_group]["Properties"]["RetentionInDays"].is_null(),
            "{name}: its log group keeps logs forever"
        );
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no BuildProperties.Binary"));
        assert!(
            BINARIES.contains(&binary),
            "{name}: unknown binary {binary}"
        );
        assert_eq!(f["Properties"]["CodeUri"], ".", "{name}");
        binaries.push(binary.to_string());
    }
    binaries.sort();
    let mut expected = BINARIES.map(str::to_string).to_vec();
    expected.sort();
    assert_eq!(binaries, expected, "each binary exactly once");
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "apikey",
        "api_key",
        "privatekey",
        "private_key",
    ]
    .iter()
    .any(|w| n.contains(w))
        && !(n.ends_with("arn") || n.ends_with("_name"))
}

/// The environment variables (globals merged with the function's) whose value is, or
/// resolves to, a secret value rather than a pointer to one.
fn secret_env_vars(t: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"].as_mapping();
    let mut scopes: Vec<(String, &serde_yaml::Mapping)> = Vec::new();
    if let Some(g) = globals {
        scopes.push(("Globals".into(), g));
    }
    for (name, f) in of_type(t, "AWS::Serverless::Function") {
        if let Some(vars) = f["Properties"]["Environment"]["Variables"].as_mapping() {
            scopes.push((name, vars));
        }
    }
    for (scope, vars) in scopes {
        for (key, value) in vars {
            let key = key.as_str().unwrap();
            let text = serde_yaml::to_string(value).unwrap();
            let dynamic_secret =
                text.contains("resolve:secretsmanager") || text.contains("resolve:ssm-secure");
            let secret_param = reference(value).is_some_and(|p| {
                looks_secret(p) || t["Parameters"][p]["NoEcho"].as_bool() == Some(true)
            });
            if looks_secret(key) || dynamic_secret || secret_param {
                found.push(format!("{scope}.{key}"));
            }
        }
    }
    found
}

#[test]
fn no_secret_value_is_an_environment_variable() {
    let t = template();
    assert_eq!(secret_env_vars(&t), Vec::<String>::new());
    // The functions find their credentials through secret ARNs instead.
    let vars = &t["Globals"]["Function"]["Environment"]["Variables"];
    for (var, param) in [
        ("COSELL_PC_SECRET_ARN", "PartnerCenterSecretArn"),
        ("COSELL_DV_SECRET_ARN", "DataverseSecretArn"),
    ] {
        assert_eq!(reference(&vars[var]), Some(param));
        let pattern = t["Parameters"][param]["AllowedPattern"].as_str().unwrap();
        assert!(pattern.starts_with("^arn:"), "{param} only takes an ARN");
    }
}

#[test]
fn the_secret_check_catches_secret_values() {
    let bad: Value = serde_yaml::from_str(
        r#"
Parameters:
  PcClientSecret: { Type: String }
  Hidden: { Type: String, NoEcho: true }
  TenantId: { Type: String }
Globals:
  Function:
    Environment:
      Variables:
        COSELL_TENANT_ID: !Ref TenantId
        COSELL_PC_CLIENT_SECRET: literally-the-secret
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          COSELL_SETTING_A: !Ref PcClientSecret
          COSELL_SETTING_B: !Ref Hidden
          COSELL_SETTING_C: "{{resolve:secretsmanager:cosell/dv:SecretString:client_secret}}"
          COSELL_PC_SECRET_ARN: !Ref TenantId
"#,
    )
    .unwrap();
    assert_eq!(
        secret_env_vars(&bad),
        [
            "Globals.COSELL_PC_CLIENT_SECRET",
            "F.COSELL_SETTING_A",
            "F.COSELL_SETTING_B",
            "F.COSELL_SETTING_C"
        ]
    );
}

#[test]
fn functions_read_only_the_secrets_they_are_given() {
    let t = template();
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        let policies = f["Properties"]["Policies"].as_sequence().unwrap();
        for policy in policies {
            if let Some(p) = policy.get("AWSSecretsManagerGetSecretValuePolicy") {
                let secret = reference(&p["SecretArn"]).unwrap_or_default();
                assert!(
                    ["PartnerCenterSecretArn", "DataverseSecretArn"].contains(&secret),
                    "{name} reads an unexpected secret {secret:?}"
                );
            }
            if let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) {
                for s in statements {
                    // BatchGetSecretValue takes no resource and grants nothing by itself:
                    // each secret it returns needs its own GetSecretValue grant.
                    if s["Resource"] == "*" {
                        assert_eq!(
                            s["Action"], "secretsmanager:BatchGetSecretValue",
                            "{name}: a statement on every resource"
                        );
                    }
                    if s["Action"] == "secretsmanager:PutSecretValue" {
                        assert_eq!(reference(&s["Resource"]), Some("PartnerCenterSecretArn"));
                    }
                }
            }
        }
    }
}

#[test]
fn functions_that_read_both_secrets_may_read_them_in_one_call() {
    let t = template();
    let mut seen = 0;
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        let policies = f["Properties"]["Policies"].as_sequence().unwrap();
        let reads: BTreeSet<&str> = policies
            .iter()
            .filter_map(|p| p.get("AWSSecretsManagerGetSecretValuePolicy"))
            .filter_map(|p| reference(&p["SecretArn"]))
            .collect();
        let batch = policies
            .iter()
            .filter_map(|p| p.get("Statement").and_then(Value::as_sequence))
            .flatten()
            .any(|s| s["Action"] == "secretsmanager:BatchGetSecretValue");
        assert_eq!(
            batch,
            reads.len() == 2,
            "{name}: reads {reads:?}, batch grant {batch}"
        );
        seen += usize::from(batch);
    }
    assert_eq!(seen, 2, "pair-sync and the poller read both secrets");
}

#[test]
fn the_webhook_route_and_its_registration() {
    let t = template();
    let functions = of_type(&t, "AWS::Serverless::Function");
    let (intake, _) = functions
        .iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "webhook-intake")
        .unwrap();
    let route = events(functions[intake], "HttpApi")[0]["Properties"].clone();
    assert_eq!(route["Method"], "POST");
    assert_eq!(route["Path"], "/partner-center/webhook");

    let registration = &of_type(&t, "Custom::WebhookRegistration")["WebhookRegistration"];
    let (function, attr) = get_att(&registration["Properties"]["ServiceToken"]).unwrap();
    assert_eq!(attr, "Arn");
    assert_eq!(
        functions[&function]["Metadata"]["BuildProperties"]["Binary"],
        "webhook-registration"
    );
    let url = &registration["Properties"]["WebhookUrl"];
    let Value::Tagged(sub) = url else {
        panic!("WebhookUrl is a !Sub")
    };
    assert_eq!(sub.tag, "Sub");
    assert!(sub
        .value
        .as_str()
        .unwrap()
        .ends_with("/partner-center/webhook"));
    assert_eq!(t["Outputs"]["WebhookUrl"]["Value"], *url);
}

#[test]
fn the_table_matches_the_single_table_design() {
    let t = template();
    let table = &of_type(&t, "AWS::DynamoDB::Table")["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    let keys: Vec<(&str, &str)> = table["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap(),
                k["KeyType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let gsi = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"], "gsi1");
    assert_eq!(gsi["KeySchema"][0]["AttributeName"], "gsi1pk");
    assert_eq!(gsi["KeySchema"][1]["AttributeName"], "gsi1sk");
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        "expires_at"
    );
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
}

/// The function resource whose build is `binary`.
fn function_of<'a>(t: &'a Value, binary: &str) -> &'a Value {
    of_type(t, "AWS::Serverless::Function")
        .into_values()
        .find(|f| f["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

/// The environment variables a function gets: the globals and its own.
fn env_of(t: &Value, function: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for vars in [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ] {
        if let Some(m) = vars.as_mapping() {
            names.extend(m.keys().filter_map(|k| k.as_str().map(str::to_string)));
        }
    }
    names
}

/// The `COSELL_*` names quoted in the non-test sources at `dir` (a file or a folder), right
/// after `prefix` (e.g. `_SECRET_ARN: &str = `).
fn quoted_settings(dir: &std::path::Path, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        {
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests sit at the end of a file: only the code before them counts.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for piece in code.split(&format!("{prefix}\"COSELL_")).skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                found.insert(format!("COSELL_{name}"));
            }
        }
    }
    found
}

fn functions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions")
}

#[test]
fn every_setting_a_function_requires_is_set_by_the_template() {
    let t = template();
    // What the shared edge requires (the AWS resources' names and the secrets' ARNs),
    // every function that uses it must get.
    let edge = functions_dir().join("edge/src");
    let mut required = quoted_settings(&edge.join("aws.rs"), "");
    required.extend(quoted_settings(
        &edge.join("settings.rs"),
        "_SECRET_ARN: &str = ",
    ));
    for name in [
        "COSELL_TABLE_NAME",
        "COSELL_SYNC_QUEUE_URL",
        "COSELL_SYNC_DLQ_URL",
        "COSELL_PC_SECRET_ARN",
        "COSELL_DV_SECRET_ARN",
    ] {
        assert!(required.contains(name), "the scan found {required:?}");
    }
    // And the settings the config has no default for (credentials come from the secrets).
    let config_required = ["COSELL_TENANT_ID", "COSELL_DATAVERSE_URL"];
    for binary in BINARIES {
        let f = function_of(&t, binary);
        let env = env_of(&t, f);
        let own = quoted_settings(&functions_dir().join(binary).join("src"), "");
        for name in required
            .iter()
            .map(String::as_str)
            .chain(config_required)
            .chain(own.iter().map(String::as_str))
        {
            assert!(
                env.contains(name),
                "{binary} reads {name}, which the template does not set"
            );
        }
    }
    // The intake reads these with defaults; the template sets them from parameters.
    let intake = env_of(&t, function_of(&t, "webhook-intake"));
    assert!(intake.contains("COSELL_WEBHOOK_CERT_HOSTS"));
    let pair_sync = env_of(&t, function_of(&t, "pair-sync"));
    assert!(pair_sync.contains("COSELL_SYNC_MAX_ATTEMPTS"));
    let registration = env_of(&t, function_of(&t, "webhook-registration"));
    assert!(
        registration.contains("COSELL_WEBHOOK_URL")
            && registration.contains("COSELL_WEBHOOK_EVENTS")
    );
}

#[test]
fn the_table_declares_both_audit_indexes() {
    let t = template();
    let table = &of_type(&t, "AWS::DynamoDB::Table")["Table"]["Properties"];
    let defined: BTreeSet<&str> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["AttributeType"], "S");
            a["AttributeName"].as_str().unwrap()
        })
        .collect();
    let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    let mut names = Vec::new();
    for index in indexes {
        let name = index["IndexName"].as_str().unwrap();
        let keys: Vec<(&str, &str)> = index["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap(),
                    k["KeyType"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (format!("{name}pk").as_str(), "HASH"),
                (format!("{name}sk").as_str(), "RANGE")
            ],
            "{name}"
        );
        assert_eq!(index["Projection"]["ProjectionType"], "ALL", "{name}");
        names.push(name);
    }
    assert_eq!(names, ["gsi1", "gsi2"]);
    // Every key attribute is defined, and nothing else (CloudFormation refuses extras).
    let keyed: BTreeSet<&str> = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"].into();
    assert_eq!(defined, keyed);
}

/// The IAM actions a function's inline statements grant on `resource` (a `!GetAtt X.Arn`).
fn statement_actions(function: &Value, resource: &str) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
        for s in policy
            .get("Statement")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if get_att(&s["Resource"]).is_some_and(|(r, a)| r == resource && a == "Arn") {
                match &s["Action"] {
                    Value::String(a) => {
                        actions.insert(a.clone());
                    }
                    Value::Sequence(list) => {
                        actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string()))
                    }
                    other => panic!("unexpected Action {other:?}"),
                }
            }
        }
    }
    actions
}

fn policy_names(function: &Value) -> Vec<String> {
    function["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_mapping()?.keys().next()?.as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_intake_may_only_keep_delivery_keys_and_send_to_its_queue() {
    let t = template();
    let intake = function_of(&t, "webhook-intake");
    let actions = statement_actions(intake, "Table");
    let expected: BTreeSet<String> = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ]
    .map(str::to_string)
    .into();
    assert_eq!(actions, expected);
    let names = policy_names(intake);
    assert!(
        !names.iter().any(|n| n.starts_with("DynamoDB")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("SecretsManager")),
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "SQSSendMessagePolicy")
            .count(),
        1
    );
}

/// The senders of sync work send to the sync queue only; pair-sync may also forward (the
/// sync queue), dead-letter (its DLQ) and extend a message's visibility for a retry.
#[test]
fn the_sync_queue_senders_and_its_consumer_have_their_grants() {
    let t = template();
    let send_targets = |binary: &str| -> BTreeSet<String> {
        function_of(&t, binary)["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| p.get("SQSSendMessagePolicy"))
            .filter_map(|p| get_att(&p["QueueName"]).map(|(r, _)| r))
            .collect()
    };
    for binary in ["webhook-intake", "opportunity-poller"] {
        assert_eq!(
            send_targets(binary),
            ["SyncQueue".to_string()].into(),
            "{binary}"
        );
    }
    assert_eq!(
        send_targets("pair-sync"),
        ["SyncQueue".to_string(), "SyncDeadLetterQueue".to_string()].into()
    );
    let f = function_of(&t, "pair-sync");
    assert!(
        statement_actions(f, "SyncQueue").contains("sqs:ChangeMessageVisibility"),
        "pair-sync cannot extend a message's visibility"
    );
    assert!(send_targets("webhook-registration").is_empty());
}

/// Every function that saves the rotated refresh token may move the version stage (the
/// versioned write needs it), and a failed save reaches the alarm topic through a metric
/// filter on the exact log line the functions write.
#[test]
fn refresh_token_saves_are_versioned_and_their_failures_alarm() {
    let t = template();
    let text = |v: &Value| serde_yaml::to_string(v).unwrap();
    let mut savers = 0;
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        let policies = text(&f["Properties"]["Policies"]);
        if policies.contains("secretsmanager:PutSecretValue") {
            savers += 1;
            assert!(
                policies.contains("secretsmanager:UpdateSecretVersionStage"),
                "{name} saves the refresh token without UpdateSecretVersionStage"
            );
        }
    }
    assert!(
        savers >= 3,
        "expected the three functions that call Partner Center to save, found {savers}"
    );

    let filters = of_type(&t, "AWS::Logs::MetricFilter");
    let pattern = format!("$.event = \"{}\"", cosell_edge::secrets::SAVE_FAILED_EVENT);
    let counted: BTreeSet<String> = filters
        .values()
        .filter(|f| {
            f["Properties"]["FilterPattern"]
                .as_str()
                .is_some_and(|p| p.contains(&pattern))
        })
        .filter_map(|f| reference(&f["Properties"]["LogGroupName"]).map(str::to_string))
        .collect();
    for group in [
        "PairSyncLogGroup",
        "OpportunityPollerLogGroup",
        "WebhookRegistrationLogGroup",
    ] {
        assert!(
            counted.contains(group),
            "no save-failure metric filter on {group}"
        );
    }
    let alarm = &resources(&t)["RefreshTokenSaveFailuresAlarm"];
    assert_eq!(
        alarm["Properties"]["MetricName"].as_str(),
        Some("RefreshTokenSaveFailures")
    );
    assert!(text(&alarm["Properties"]["AlarmActions"]).contains("AlarmTopicArn"));
}

#[test]
fn the_registration_subscribes_the_handled_referral_events_and_test_created() {
    let t = template();
    let registration = &of_type(&t, "Custom::WebhookRegistration")["WebhookRegistration"];
    let events = &registration["Properties"]["Events"];
    let parameter = reference(events).expect("Events refers to a parameter");
    let default = t["Parameters"][parameter]["Default"]
        .as_str()
        .expect("the parameter has a default");
    let registered: BTreeSet<&str> = default.split(',').map(str::trim).collect();
    let wanted = cosell::partner_center::event::registered_events();
    let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    assert_eq!(registered, wanted);
    assert!(registered.contains("test-created"));
    for e in cosell::partner_center::event::REFERRAL_EVENTS {
        assert!(registered.contains(e), "{e} is not registered");
    }
}

/// `!If [cond, a, b]` or `{Fn::If: [...]}`: its three parts.
fn if_parts(v: &Value) -> Option<&Vec<Value>> {
    let inner = match v {
        Value::Tagged(t) if t.tag == "If" => &t.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::If")?,
        _ => return None,
    };
    inner.as_sequence().filter(|s| s.len() == 3)
}

#[test]
fn the_intakes_table_grant_is_held_to_the_keys_it_writes() {
    let t = template();
    let intake = function_of(&t, "webhook-intake");
    let statements: Vec<&Value> = intake["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("Statement").and_then(Value::as_sequence))
        .flatten()
        .filter(|s| get_att(&s["Resource"]).is_some_and(|(r, _)| r == "Table"))
        .collect();
    assert!(!statements.is_empty());
    // The store keeps a delivery under DELIVERY#<key> and a state value under STATE#<key>.
    let expected: BTreeSet<String> = [
        format!("DELIVERY#{}*", cosell::engine::intake::DELIVERY_KEY_PREFIX),
        format!("STATE#{}", cosell::engine::intake::TEST_EVENT_STATE_KEY),
    ]
    .into();
    // The referral links (REF#<referral>) it only reads, for the pair key of its message.
    let links: BTreeSet<String> = ["REF#*".to_string()].into();
    let mut writes = 0;
    for s in statements {
        let keys: BTreeSet<String> = s["Condition"]["ForAllValues:StringLike"]
            ["dynamodb:LeadingKeys"]
            .as_sequence()
            .unwrap_or_else(|| panic!("no LeadingKeys condition on {s:?}"))
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        if s["Action"] == "dynamodb:GetItem" {
            assert!(keys == links || keys == expected, "{keys:?}");
        } else {
            assert_eq!(keys, expected);
            writes += 1;
        }
    }
    assert_eq!(writes, 1, "one statement grants the writes");
}

#[test]
fn the_intake_has_reserved_concurrency_from_a_parameter() {
    let t = template();
    let intake = function_of(&t, "webhook-intake");
    let reserved = &intake["Properties"]["ReservedConcurrentExecutions"];
    let parts = if_parts(reserved).expect("ReservedConcurrentExecutions: !If [...]");
    assert_eq!(reference(&parts[1]), Some("IntakeReservedConcurrency"));
    let p = &t["Parameters"]["IntakeReservedConcurrency"];
    assert_eq!(p["Type"], "Number");
    assert!(p["Default"].as_u64().is_some_and(|d| d >= 1), "{p:?}");
}

#[test]
fn every_work_queue_has_an_age_of_oldest_message_alarm() {
    let t = template();
    let aged: BTreeSet<String> = of_type(&t, "AWS::CloudWatch::Alarm")
        .values()
        .filter(|a| a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage")
        .flat_map(|a| a["Properties"]["Dimensions"].as_sequence().unwrap().iter())
        .filter_map(|d| get_att(&d["Value"]).map(|(r, _)| r))
        .collect();
    for (name, q) in of_type(&t, "AWS::SQS::Queue") {
        if !q["Properties"]["RedrivePolicy"].is_null() {
            assert!(aged.contains(&name), "{name} has no age alarm");
        }
    }
}

#[test]
fn every_alarm_notifies_the_stacks_topic_and_an_email_can_subscribe() {
    let t = template();
    assert_eq!(resources(&t)["AlarmTopic"]["Type"], "AWS::SNS::Topic");
    let subs = of_type(&t, "AWS::SNS::Subscription");
    let sub = subs.values().next().expect("an e-mail subscription");
    assert_eq!(sub["Condition"], "HasAlarmEmail");
    assert_eq!(sub["Properties"]["Protocol"], "email");
    assert_eq!(
        reference(&sub["Properties"]["Endpoint"]),
        Some("AlarmEmail")
    );
    assert_eq!(
        reference(&sub["Properties"]["TopicArn"]),
        Some("AlarmTopic")
    );
    assert_eq!(t["Parameters"]["AlarmEmail"]["Default"], "");
    for (name, alarm) in of_type(&t, "AWS::CloudWatch::Alarm") {
        let actions = &alarm["Properties"]["AlarmActions"];
        let parts = if_parts(actions).unwrap_or_else(|| panic!("{name}: AlarmActions"));
        for branch in &parts[1..] {
            assert!(
                branch
                    .as_sequence()
                    .is_some_and(|l| l.iter().any(|a| reference(a) == Some("AlarmTopic"))),
                "{name} does not notify AlarmTopic in every case"
            );
        }
    }
    // The outputs say who is notified, naming the case where nobody is.
    let out = &t["Outputs"]["AlarmNotifications"]["Value"];
    assert!(serde_yaml::to_string(out).unwrap().contains("NOBODY"));
}

/// The dashboard's body with its `${...}` substitutions replaced by `<...>`, as JSON.
fn dashboard_body(t: &Value) -> serde_json::Value {
    let dashboards = of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = &dashboards.values().next().unwrap()["Properties"]["DashboardBody"];
    let text = match body {
        Value::Tagged(s) if s.tag == "Sub" => s.value.as_str().expect("a !Sub string"),
        other => panic!("DashboardBody is not a !Sub string: {other:?}"),
    };
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("closed ${") + start;
        plain.push_str(&rest[..start]);
        plain.push_str(&format!("<{}>", &rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    plain.push_str(rest);
    serde_json::from_str(&plain).expect("the dashboard body is JSON")
}

/// The allowed values of each dimension the code emits.
fn dimension_values(key: &str) -> Vec<String> {
    use cosell::telemetry::names::{dim, Direction, Outcome, Service, Source};
    match key {
        dim::DIRECTION => Direction::ALL.iter().map(|d| d.as_str().into()).collect(),
        dim::OUTCOME => Outcome::ALL.iter().map(|o| o.as_str().into()).collect(),
        dim::SERVICE => Service::ALL.iter().map(|s| s.as_str().into()).collect(),
        dim::SOURCE => Source::ALL.iter().map(|s| s.as_str().into()).collect(),
        // The intake's answers: HTTP status codes.
        dim::STATUS => (100..600).map(|c: u16| c.to_string()).collect(),
        other => panic!("no such dimension in the code: {other}"),
    }
}

/// Every widget metric of our namespace names a metric of `cosell::telemetry::names` with
/// exactly its dimensions (and the stack's), each with a value the code emits; every metric
/// the code emits is on the dashboard; the queues' backlog, oldest age and DLQ depth are.
#[test]
fn the_dashboard_shows_the_metrics_the_code_emits() {
    use cosell::telemetry::names;
    let t = template();
    let body = dashboard_body(&t);
    let mut shown = std::collections::BTreeSet::new();
    let mut sqs = Vec::new();
    let widgets = body["widgets"].as_array().expect("widgets");
    assert!(widgets.len() >= 6, "{}", widgets.len());
    for widget in widgets {
        let title = widget["properties"]["title"].as_str().unwrap_or("?");
        for row in widget["properties"]["metrics"].as_array().expect("metrics") {
            let row = row.as_array().unwrap();
            let parts: Vec<&str> = row.iter().filter_map(|v| v.as_str()).collect();
            if parts.is_empty() {
                // A math expression: its ids must be defined in the widget.
                let expr = row[0]["expression"].as_str().expect("an expression");
                assert!(!expr.is_empty(), "{title}");
                continue;
            }
            if parts[0] == "AWS/SQS" {
                sqs.push((parts[1].to_string(), parts[3].to_string()));
                continue;
            }
            assert_eq!(parts[0], names::NAMESPACE, "{title}: {row:?}");
            let def = names::metric(parts[1])
                .unwrap_or_else(|| panic!("{title}: {} is not a metric the code emits", parts[1]));
            shown.insert(def.name);
            let pairs: BTreeMap<&str, &str> =
                parts[2..].chunks(2).map(|kv| (kv[0], kv[1])).collect();
            assert_eq!(
                pairs.get(names::STACK),
                Some(&"<AWS::StackName>"),
                "{title}: {row:?}"
            );
            let mut expected: Vec<&str> = def.dimensions.to_vec();
            expected.push(names::STACK);
            expected.sort();
            assert_eq!(
                pairs.keys().copied().collect::<Vec<_>>(),
                expected,
                "{title}: {row:?}"
            );
            for (k, v) in pairs.iter().filter(|(k, _)| **k != names::STACK) {
                assert!(
                    dimension_values(k).iter().any(|a| a == v),
                    "{title}: {k}={v} is never emitted"
                );
            }
        }
    }
    let all: std::collections::BTreeSet<&str> = names::ALL.iter().map(|m| m.name).collect();
    assert_eq!(
        shown, all,
        "metrics the code emits but the dashboard does not show"
    );
    for (metric, queue) in [
        (
            "ApproximateNumberOfMessagesVisible",
            "<SyncQueue.QueueName>",
        ),
        ("ApproximateAgeOfOldestMessage", "<SyncQueue.QueueName>"),
        (
            "ApproximateNumberOfMessagesVisible",
            "<SyncDeadLetterQueue.QueueName>",
        ),
    ] {
        assert!(
            sqs.iter().any(|(m, q)| m == metric && q == queue),
            "{metric} of {queue} is not on the dashboard"
        );
    }
}

/// The alarms of issue 22 exist on the metrics the code emits, notify the stack's topic
/// (see also `every_alarm_notifies_the_stacks_topic_and_an_email_can_subscribe`) and say
/// what to do.
#[test]
fn the_failure_rate_and_token_alarms_watch_emitted_metrics() {
    use cosell::telemetry::names;
    let t = template();
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let text = |v: &Value| serde_yaml::to_string(v).unwrap();
    for existing in [
        "SyncQueueAgeAlarm",
        "SyncDeadLetterQueueAlarm",
        "PairSyncErrorsAlarm",
        "WebhookIntakeErrorsAlarm",
        "OpportunityPollerErrorsAlarm",
        "WebhookRegistrationErrorsAlarm",
    ] {
        assert!(alarms.contains_key(existing), "{existing} is gone");
    }

    let rate = &alarms["SyncFailureRateAlarm"]["Properties"];
    assert_eq!(
        reference(&rate["Threshold"]),
        Some("SyncFailureRatePercent")
    );
    assert_eq!(t["Parameters"]["SyncFailureRatePercent"]["Type"], "Number");
    let stat = &rate["Metrics"][0]["MetricStat"];
    assert_eq!(stat["Metric"]["Namespace"], names::NAMESPACE);
    assert_eq!(stat["Metric"]["MetricName"], names::SYNC_FAILED.name);
    assert_eq!(stat["Metric"]["Dimensions"][0]["Name"], names::STACK);
    assert_eq!(stat["Stat"], "Average");
    assert_eq!(rate["Metrics"][1]["Expression"], "100 * failed");
    assert!(text(&rate["AlarmActions"]).contains("AlarmTopic"));

    for (alarm, service, says) in [
        (
            "PartnerCenterTokenAlarm",
            "partner-center",
            "cosell login partner-center",
        ),
        ("DataverseTokenAlarm", "dataverse", "client secret"),
    ] {
        let p = &alarms[alarm]["Properties"];
        assert_eq!(p["Namespace"], names::NAMESPACE, "{alarm}");
        assert_eq!(
            p["MetricName"],
            names::TOKEN_RENEWAL_FAILURES.name,
            "{alarm}"
        );
        let dims = p["Dimensions"].as_sequence().unwrap();
        assert_eq!(
            dims.len(),
            names::TOKEN_RENEWAL_FAILURES.dimensions.len() + 1
        );
        assert_eq!(dims[0]["Name"], names::STACK);
        assert_eq!(dims[1]["Name"], names::dim::SERVICE);
        assert_eq!(dims[1]["Value"], service);
        assert!(text(&p["AlarmDescription"]).contains(says), "{alarm}");
        assert!(text(&p["AlarmActions"]).contains("AlarmTopic"), "{alarm}");
    }
    // The functions know their stack: the dimension the alarms and widgets select on.
    let vars = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        reference(&vars["COSELL_STACK_NAME"]),
        Some("AWS::StackName")
    );
}
