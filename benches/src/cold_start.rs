//! Cold start of each function binary against the local Lambda runtime API emulation
//! (`cosell_tests::runtime_api`), with moto for Secrets Manager, DynamoDB and SQS and the
//! stand-ins for the two Microsoft APIs. Per run: a fresh process, one real event. Figures:
//! spawn -> first `/next` (init), spawn -> first event answered, peak RSS (VmHWM) once the
//! event is answered, and the size of the release zip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cosell::config::ColumnNames;
use cosell::engine::SyncMessage;
use cosell::queue::sqs::SqsQueue;
use cosell::store::aws_local;
use cosell::store::dynamodb::DynamoStore;
use cosell_tests::runtime_api::RuntimeApi;
use cosell_tests::webhook_signing::DeliverySigner;
use serde_json::{json, Map, Value};

use crate::env::{self, Dv, Pc};

pub const FUNCTIONS: [&str; 4] = [
    "webhook-intake",
    "pair-sync",
    "opportunity-poller",
    "webhook-registration",
];
const REGION: &str = "us-east-1";
const APIGW_FIXTURE: &str = include_str!("../../tests/fixtures/events/apigw-v2-webhook.json");

pub struct ColdStart {
    pub function: &'static str,
    /// Median over the runs.
    pub init: Duration,
    pub first_event: Duration,
    /// Median over the runs: the first event from `/next` to its answer, less the time it
    /// waited on AWS (moto) requests.
    pub first_event_own: Duration,
    /// Median over the runs: the time of the init spent waiting on AWS (secrets, clients).
    pub init_aws: Duration,
    /// Highest over the runs, in bytes.
    pub peak_rss: u64,
    pub zip_bytes: u64,
    /// Which binary was zipped (the arm64 `cargo lambda` build or the host release build).
    pub zipped: String,
    pub handled: bool,
}

/// Where the release binaries are: next to this benchmark's own executable.
fn release_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("executable dir")?.to_path_buf())
}

/// moto on a free port; killed when dropped.
struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto() -> anyhow::Result<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start moto_server (pip install 'moto[server]')")?;
    let url = format!("http://127.0.0.1:{port}");
    let moto = Moto(child, url.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("moto_server did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(moto)
}

/// Creates a Secrets Manager secret in moto (its JSON protocol) and returns its ARN.
async fn create_secret(moto: &str, name: &str, value: &Value) -> anyhow::Result<String> {
    let resp: Value = reqwest::Client::new()
        .post(moto)
        .header("X-Amz-Target", "secretsmanager.CreateSecret")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00",
        )
        .json(&json!({"Name": name, "SecretString": value.to_string()}))
        .send()
        .await?
        .json()
        .await?;
    resp["ARN"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("CreateSecret answered {resp}"))
}

fn sqs_event(body: String) -> Value {
    json!({"Records": [{
        "messageId": uuid_like(),
        "receiptHandle": "bench-receipt",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1770647538120",
                       "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "1770647538131"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench",
        "awsRegion": REGION
    }]})
}

/// A message id no other event of this run has.
fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}{n:016x}", std::process::id())
}

/// The first event each function gets: real work against the stand-ins and moto.
fn row(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A flagged open opportunity with every field a new referral needs, and its customer.
fn flagged_opportunity(dv: &Dv, columns: &ColumnNames) -> Option<String> {
    let account = dv.user_insert(
        "accounts",
        row(json!({"name": "Cold Start Ltd", "address1_city": "Redmond",
                   "address1_postalcode": "98052", "address1_country": "USA"})),
    )?;
    let contact = dv.user_insert(
        "contacts",
        row(json!({"firstname": "Ada", "lastname": "Buyer",
                   "emailaddress1": "ada@coldstart.example", "_parentcustomerid_value": account})),
    )?;
    let mut opp = row(json!({
        "name": "Cold start deal", "estimatedvalue": 50000.0, "_transactioncurrencyid_value": dataverse_standin::USD_ID, "estimatedclosedate": "2026-09-30",
        "statecode": 0, "statuscode": 1,
        "_parentaccountid_value": account, "_customerid_value": account,
        "_parentcontactid_value": contact,
    }));
    opp.insert(columns.sync_flag.clone(), json!(true));
    opp.insert(
        columns.solutions.clone(),
        json!("Dynamics365forFieldService"),
    );
    opp.insert(columns.help_needed.clone(), json!(100000003));
    dv.user_insert("opportunities", opp)
}

fn event(function: &str, pc: &Pc, dv: &Dv, columns: &ColumnNames) -> Value {
    match function {
        "webhook-intake" => {
            let id = env::create_referrals(pc, 1).remove(0);
            let signer = DeliverySigner::for_standin(&pc.base_url());
            let (headers, body) = signer.referral_updated(&id);
            let mut e: Value = serde_json::from_str(APIGW_FIXTURE).expect("fixture parses");
            let h = e["headers"].as_object_mut().expect("headers");
            for (name, value) in &headers {
                h.insert(name.to_string(), json!(value.to_str().unwrap_or_default()));
            }
            h.insert("content-length".into(), json!(body.len().to_string()));
            e["body"] = json!(String::from_utf8_lossy(&body));
            e
        }
        // A flagged deal with its customer account and contact: the first event creates its
        // co-sell referral and writes the id and link back, as a seller's first sync would.
        "pair-sync" => {
            let id = flagged_opportunity(dv, columns).unwrap_or_default();
            sqs_event(SyncMessage::for_opportunity(&id, None).to_body())
        }
        "webhook-registration" => json!({"action": "show"}),
        _ => json!({"task": "poll"}),
    }
}

fn has_item_failures(answer: &Value) -> bool {
    answer["batchItemFailures"]
        .as_array()
        .is_some_and(|failures| !failures.is_empty())
}

fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// Zips the arm64 `cargo lambda` bootstrap when there is one, else the host binary.
fn zip_size(release: &Path, function: &str) -> anyhow::Result<(u64, String)> {
    let lambda = release
        .parent()
        .map(|t| t.join("lambda").join(function).join("bootstrap"));
    let (binary, which) = match lambda.filter(|p| p.is_file()) {
        Some(p) => (p, "arm64 bootstrap"),
        None => (release.join(function), "host x86_64 release binary"),
    };
    let dir = tempfile::tempdir()?;
    std::fs::copy(&binary, dir.path().join("bootstrap"))?;
    let status = Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "-9", "function.zip", "bootstrap"])
        .status()
        .context("zip")?;
    if !status.success() {
        bail!("zip failed for {}", binary.display());
    }
    Ok((
        std::fs::metadata(dir.path().join("function.zip"))?.len(),
        which.to_string(),
    ))
}

/// The cold starts, and the median time of one DynamoDB call to moto from this process (the
/// sync functions' first event makes three in a row).
pub async fn run(runs: usize) -> anyhow::Result<(Vec<ColdStart>, Duration)> {
    let release = release_dir()?;
    let moto = start_moto().await?;
    let (pc, dv) = (env::start_pc().await?, env::start_dv().await?);
    let table = format!("cosell-bench-{}", std::process::id());
    let dynamodb = aws_local::dynamodb_client(&moto.1, REGION).await;
    DynamoStore::new(dynamodb.clone(), &table)
        .create_table_if_missing()
        .await?;
    let mut calls = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        dynamodb.describe_table().table_name(&table).send().await?;
        calls.push(t.elapsed());
    }
    calls.sort();
    let moto_call = calls[calls.len() / 2];
    let sqs = aws_local::sqs_client(&moto.1, REGION).await;
    let queue =
        SqsQueue::create_queues_if_missing(sqs, "bench-sync.fifo", 10, Duration::from_secs(60))
            .await?;
    let dir = tempfile::tempdir()?;
    let config = env::Connector::open(&pc, &dv, dir.path())?.config;
    let pc_cfg = pc.config();
    let pc_arn = create_secret(
        &moto.1,
        "bench/pc",
        &json!({"client_id": pc_cfg.client_id, "client_secret": pc_cfg.client_secret}),
    )
    .await?;
    let dv_cfg = dv.config();
    let dv_arn = create_secret(
        &moto.1,
        "bench/dv",
        &json!({"client_id": dv_cfg.client_id, "client_secret": dv_cfg.client_secret}),
    )
    .await?;

    // The connector's settings minus credentials (those come from the secrets).
    let mut vars: Vec<(String, String)> =
        cosell_tests::harness::standin_settings(&pc, &dv, dir.path())
            .into_iter()
            .filter(|(k, _)| !k.contains("CLIENT_") && k != "COSELL_DATA_DIR")
            .collect();
    let timer = crate::aws_timer::AwsTimer::start(&moto.1).await?;
    for (k, v) in [
        ("AWS_ENDPOINT_URL", timer.url.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("COSELL_TABLE_NAME", table.as_str()),
        ("COSELL_SYNC_QUEUE_URL", queue.queue_url()),
        ("COSELL_SYNC_DLQ_URL", queue.dlq_url()),
        ("COSELL_PC_SECRET_ARN", pc_arn.as_str()),
        ("COSELL_DV_SECRET_ARN", dv_arn.as_str()),
    ] {
        vars.push((k.to_string(), v.to_string()));
    }
    // The functions' own logs (stderr) are quiet unless asked for, e.g. to see where a first
    // event spends its time.
    let log = std::env::var("COSELL_BENCH_FUNCTION_LOG").unwrap_or_else(|_| "warn".into());
    vars.push(("COSELL_LOG_LEVEL".into(), log));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut out = Vec::new();
    for function in FUNCTIONS {
        let binary = release.join(function);
        if !binary.is_file() {
            eprintln!("cold start: {} is not built; skipped", binary.display());
            continue;
        }
        let (mut inits, mut firsts, mut owns, mut init_aws, mut rss, mut handled) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0, true);
        for _ in 0..runs {
            let e = event(function, &pc, &dv, &config.columns);
            let api = RuntimeApi::start().await;
            let mut process = api.spawn_function(&binary, function, &vars)?;
            let spawned = Instant::now();
            let outcome = api.invoke_with_timeout(e, Duration::from_secs(20)).await;
            let answered = Instant::now();
            let first = answered - spawned;
            let init = process.cold_start(Duration::from_secs(1)).await;
            let asked = spawned + init.unwrap_or(first);
            owns.push((answered - asked).saturating_sub(timer.waited(asked, answered)));
            init_aws.push(timer.waited(spawned, asked));
            rss = rss.max(peak_rss(process.id()));
            match &outcome {
                Err(err) => {
                    eprintln!("cold start: {function} answered with an error: {err}");
                    handled = false;
                }
                // A queue consumer reports a message it could not sync as a batch item
                // failure, inside a successful answer.
                Ok(answer) if has_item_failures(answer) => {
                    eprintln!("cold start: {function} could not sync its message: {answer}");
                    handled = false;
                }
                Ok(_) => {}
            }
            inits.push(init.unwrap_or(first));
            firsts.push(first);
        }
        inits.sort();
        firsts.sort();
        owns.sort();
        init_aws.sort();
        let (zip_bytes, zipped) = zip_size(&release, function)?;
        out.push(ColdStart {
            function,
            init: inits[inits.len() / 2],
            first_event: firsts[firsts.len() / 2],
            first_event_own: owns[owns.len() / 2],
            init_aws: init_aws[init_aws.len() / 2],
            peak_rss: rss,
            zip_bytes,
            zipped,
            handled,
        });
    }
    drop(moto);
    dv.shutdown().await;
    pc.shutdown().await;
    Ok((out, moto_call))
}
