//! `cosell demo`: both stand-ins and the whole connector in this process, then a scripted
//! walk-through of a deal's life on both sides, each step timed from the action to the moment
//! the other side shows it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::config::{ColumnNames, Config, Source};
use cosell::store::Store;
use serde_json::{json, Map, Value};

use super::runtime::{Runtime, RuntimeOptions};
use super::standins::{overlay, Standins};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long each step may take to show on the other side.
    pub step_timeout: Duration,
    /// The outbound poll interval (short, so CRM edits travel quickly).
    pub poll_interval: Duration,
    /// Where the store and queues go; a temp dir (removed at the end) when `None`.
    pub data_dir: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            step_timeout: Duration::from_secs(20),
            poll_interval: Duration::from_secs(1),
            data_dir: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub title: &'static str,
    /// From the action to the change observed on the other side (or to the timeout).
    pub elapsed: Duration,
    /// What was observed, or why the step failed.
    pub result: Result<String, String>,
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub steps: Vec<StepReport>,
    pub audit: Vec<AuditEntry>,
    /// Step (d)'s co-sell deal, as the Partner Center stand-in holds it.
    pub co_sell: Option<CoSellSteps>,
}

/// The documented shared-referral steps of the demo's co-sell deal: the seller's own
/// `Shared` referral, then the connected referral for Microsoft in its engagement.
#[derive(Debug, Clone, PartialEq)]
pub struct CoSellSteps {
    /// The own referral (linked to the opportunity).
    pub referral: Value,
    /// The connected referral for Microsoft (target `BusinessProfileLocation`/`msft`).
    pub for_microsoft: Value,
    /// The `MS-RequestId` of each referral POST the stand-in received, in order.
    pub posts: Vec<Option<String>>,
}

impl DemoReport {
    pub fn succeeded(&self) -> bool {
        self.steps.len() == STEPS.len() && self.steps.iter().all(|s| s.result.is_ok())
    }

    pub fn first_failure(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.result.is_err())
    }
}

const STEPS: [&str; 6] = [
    "a. Microsoft shares a referral -> opportunity in the CRM",
    "b. seller edits deal value and close date -> referral updated",
    "c. seller accepts the referral in the CRM -> referral accepted",
    "d. seller flags a co-sell deal -> shared referral + one for Microsoft",
    "e. seller closes the deal as won -> referral closed as won",
    "f. both sides at rest: nothing duplicated, nothing dead-lettered",
];

const OPPORTUNITIES: &str = "opportunities";
/// The decision column's "Accept" option (see the default mapping).
const ACCEPT: i64 = 100000000;
/// The help column's "Demo or proof of concept" option (value map help_needed): a co-sell.
const HELP_DEMO: i64 = 100000003;

/// Runs the whole walk-through, printing each step as it goes. An error means the demo
/// could not even start (ports, data dir); a step that did not converge is in the report.
pub async fn run(options: &DemoOptions) -> anyhow::Result<DemoReport> {
    let temp;
    let data_dir = match &options.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temp dir")?;
            temp.path().to_path_buf()
        }
    };
    let loopback = "127.0.0.1:0".parse().expect("loopback address");
    // A new org: `cosell setup dataverse` creates the columns before anything syncs.
    let dv_config = dataverse_standin::StandinConfig {
        connector_columns: false,
        ..Default::default()
    };
    let standins = Standins::start_with(loopback, loopback, Default::default(), dv_config).await?;
    let settings = overlay(
        standins.settings(&data_dir),
        &[
            ("COSELL_LISTEN", "127.0.0.1:0".to_string()),
            (
                "COSELL_POLL_INTERVAL",
                format!("{}ms", options.poll_interval.as_millis().max(1)),
            ),
        ],
    );
    let config = Config::load(&Source::from_pairs(settings.clone()))?;
    println!("cosell demo: cosell setup dataverse on the stand-in org");
    if let Err(e) = setup_dataverse(settings).await {
        standins.shutdown().await;
        return Err(e);
    }
    println!();
    let runtime_options = RuntimeOptions {
        register_own_url: true,
        fail_delay: Duration::from_millis(500),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::start(&config, runtime_options).await?;
    println!("cosell demo: both stand-ins and the connector, in this process");
    println!("  Partner Center stand-in  {}", standins.pc_url());
    println!("  Dataverse stand-in       {}", standins.dv_url());
    println!("  webhook endpoint         {}", runtime.intake_url());
    println!("  data                     {}", data_dir.display());
    println!();

    let (steps, co_sell) = walk_through(
        &standins,
        &config.columns,
        config.checkmark,
        &runtime,
        options,
    )
    .await;
    let audit = match runtime.store().query_audit(&AuditQuery::default()).await {
        Ok(mut entries) => {
            entries.sort_by_key(|e| e.at);
            entries
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit trail");
            Vec::new()
        }
    };
    runtime.shutdown().await;
    standins.shutdown().await;
    let report = DemoReport {
        steps,
        audit,
        co_sell,
    };
    print_summary(&report);
    Ok(report)
}

/// Runs `cosell setup dataverse` against the stand-in, printing what it does.
async fn setup_dataverse(settings: Vec<(String, String)>) -> anyhow::Result<()> {
    let args = crate::onboard::setup::SetupArgs {
        aws: Default::default(),
        dry_run: false,
        key_timeout: Duration::from_secs(30),
        key_poll: Duration::from_millis(100),
    };
    let mut out = Vec::new();
    let result =
        crate::onboard::setup::run(args, &crate::ops::Settings::Pairs(settings), &mut out).await;
    for line in String::from_utf8_lossy(&out).lines() {
        println!("  {line}");
    }
    result.map_err(|e| anyhow::anyhow!("cosell setup dataverse: {e}"))
}

async fn walk_through(
    s: &Standins,
    columns: &ColumnNames,
    checkmark: bool,
    runtime: &Runtime,
    options: &DemoOptions,
) -> (Vec<StepReport>, Option<CoSellSteps>) {
    let t = options.step_timeout;
    let mut reports = Vec::new();

    let started = Instant::now();
    let shared = step_shared(s, columns, t).await;
    let Some((referral_id, opportunity_id)) =
        record(&mut reports, 0, started, shared, runtime).await
    else {
        return (reports, None);
    };

    let close_date = (time::OffsetDateTime::now_utc() + time::Duration::days(90)).date();
    let started = Instant::now();
    let edited = step_edit(s, &referral_id, &opportunity_id, close_date, t).await;
    if record(&mut reports, 1, started, edited, runtime)
        .await
        .is_none()
    {
        return (reports, None);
    }

    let started = Instant::now();
    let accepted = step_accept(s, columns, &referral_id, &opportunity_id, t).await;
    if record(&mut reports, 2, started, accepted, runtime)
        .await
        .is_none()
    {
        return (reports, None);
    }

    let started = Instant::now();
    let created = step_new_deal(s, columns, checkmark, close_date, t).await;
    let Some(co_sell) = record(&mut reports, 3, started, created, runtime).await else {
        return (reports, None);
    };
    let co_sell = Some(co_sell);

    let started = Instant::now();
    let won = step_won(s, &referral_id, &opportunity_id, t).await;
    if record(&mut reports, 4, started, won, runtime)
        .await
        .is_none()
    {
        return (reports, co_sell);
    }

    let started = Instant::now();
    let settled = super::demo_settled::step(s, columns, runtime, t).await;
    record(&mut reports, 5, started, settled, runtime).await;
    (reports, co_sell)
}

/// Prints and keeps one step's outcome; on failure adds the latest failed sync's reason.
async fn record<T>(
    reports: &mut Vec<StepReport>,
    index: usize,
    started: Instant,
    outcome: Result<(String, T), String>,
    runtime: &Runtime,
) -> Option<T> {
    let elapsed = started.elapsed();
    let title = STEPS[index];
    match outcome {
        Ok((detail, value)) => {
            println!("ok    {title}  ({})", millis(elapsed));
            println!("      {detail}");
            reports.push(StepReport {
                title,
                elapsed,
                result: Ok(detail),
            });
            Some(value)
        }
        Err(why) => {
            let why = match last_failure(runtime).await {
                Some(f) => format!("{why}; last failed sync: {f}"),
                None => why,
            };
            println!("FAIL  {title}  ({})", millis(elapsed));
            println!("      {why}");
            reports.push(StepReport {
                title,
                elapsed,
                result: Err(why),
            });
            None
        }
    }
}

async fn last_failure(runtime: &Runtime) -> Option<String> {
    let query = AuditQuery {
        failed_only: true,
        ..AuditQuery::default()
    };
    let mut failed = runtime.store().query_audit(&query).await.ok()?;
    failed.sort_by_key(|e| e.at);
    let last = failed.pop()?;
    Some(format!(
        "{} {}",
        last.action,
        last.error.or(last.detail).unwrap_or_default()
    ))
}

/// (a): returns the referral id and the opportunity id.
async fn step_shared(
    s: &Standins,
    columns: &ColumnNames,
    t: Duration,
) -> Result<(String, (String, String)), String> {
    let referral =
        s.pc.create_incoming_referral("Contoso ERP rollout", "Contoso Ltd");
    let referral_id = text(&referral, "id").ok_or("the stand-in returned no referral id")?;
    let wants_contact = referral.pointer("/customerProfile/team/0/email").is_some();
    let opportunity = wait_for(t, "the opportunity with its account", || {
        s.dv.rows(OPPORTUNITIES).into_iter().find(|o| {
            same_id(o.get(&columns.referral_id), &referral_id)
                && account_of(o).is_some()
                && (!wants_contact || o.get("_parentcontactid_value").is_some())
        })
    })
    .await?;
    let opportunity_id = text(&opportunity, "opportunityid").ok_or("opportunity without id")?;
    let account = account_of(&opportunity)
        .and_then(|id| s.dv.row("accounts", &id))
        .ok_or("the opportunity's account row is missing")?;
    let contact = match text(&opportunity, "_parentcontactid_value") {
        Some(id) => {
            let c =
                s.dv.row("contacts", &id)
                    .ok_or("the bound contact row is missing")?;
            format!(
                ", contact {}",
                text(&c, "emailaddress1").unwrap_or_default()
            )
        }
        None => " (the referral names no customer contact)".to_string(),
    };
    let delivery =
        s.pc.deliveries()
            .into_iter()
            .rev()
            .find(|d| d.referral_id.as_deref() == Some(referral_id.as_str()))
            .map(|d| format!("; webhook {} ({} attempt(s))", d.outcome, d.attempts))
            .unwrap_or_default();
    Ok((
        format!(
            "opportunity '{}' for account '{}'{contact}{delivery}",
            text(&opportunity, "name").unwrap_or_default(),
            text(&account, "name").unwrap_or_default(),
        ),
        (referral_id, opportunity_id),
    ))
}

/// (b): the deal value and close date travel from the CRM to the referral.
async fn step_edit(
    s: &Standins,
    referral_id: &str,
    opportunity_id: &str,
    close_date: time::Date,
    t: Duration,
) -> Result<(String, ()), String> {
    let close = close_date.to_string();
    user_update(
        s,
        opportunity_id,
        json!({"estimatedvalue": 40000.0, "estimatedclosedate": close}),
    )?;
    let r = wait_for(t, "the referral's new deal value and close date", || {
        s.pc.referral(referral_id).filter(|r| {
            r.pointer("/details/dealValue").and_then(Value::as_f64) == Some(40000.0)
                && r.pointer("/details/closingDateTime")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.starts_with(&close))
        })
    })
    .await?;
    Ok((
        format!(
            "referral dealValue {} {}, closingDateTime {}",
            r.pointer("/details/dealValue").cloned().unwrap_or_default(),
            r.pointer("/details/currency")
                .and_then(Value::as_str)
                .unwrap_or(""),
            r.pointer("/details/closingDateTime")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        (),
    ))
}

/// (c): the decision column says Accept.
async fn step_accept(
    s: &Standins,
    columns: &ColumnNames,
    referral_id: &str,
    opportunity_id: &str,
    t: Duration,
) -> Result<(String, ()), String> {
    let mut change = Map::new();
    change.insert(columns.decision.clone(), json!(ACCEPT));
    user_update(s, opportunity_id, Value::Object(change))?;
    wait_for(t, "the referral to be Active/Accepted", || {
        s.pc.referral(referral_id)
            .filter(|r| status_is(r, "Active", "Accepted"))
    })
    .await?;
    Ok(("referral status Active / Accepted".to_string(), ()))
}

/// (d): a new opportunity flagged "Sync with Partner Center", with a customer and contact,
/// asking Microsoft for help: a co-sell, made by the two documented shared-referral steps.
async fn step_new_deal(
    s: &Standins,
    columns: &ColumnNames,
    checkmark: bool,
    close_date: time::Date,
    t: Duration,
) -> Result<(String, CoSellSteps), String> {
    let account =
        s.dv.user_insert(
            "accounts",
            object(json!({"name": "Fabrikam Inc", "address1_city": "Redmond",
                "address1_postalcode": "98052", "address1_country": "US"})),
        )
        .ok_or("cannot insert the account")?;
    let contact = s
        .dv
        .user_insert(
            "contacts",
            object(json!({"firstname": "Dana", "lastname": "Buyer",
                "emailaddress1": "dana.buyer@fabrikam.example", "_parentcustomerid_value": account})),
        )
        .ok_or("cannot insert the contact")?;
    let mut opp = object(json!({
        "name": "Fabrikam data platform",
        "estimatedvalue": 120000.0,
        "isrevenuesystemcalculated": false,
        "estimatedclosedate": close_date.to_string(),
        "description": "Migrating the warehouse to Azure",
        "statecode": 0,
        "statuscode": 1,
        "_customerid_value": account,
        "_parentaccountid_value": account,
        "_parentcontactid_value": contact,
        "_transactioncurrencyid_value": dataverse_standin::USD_ID,
    }));
    opp.insert(columns.sync_flag.clone(), json!(true));
    opp.insert(columns.solutions.clone(), json!("SOL-15974-MQF"));
    opp.insert(columns.help_needed.clone(), json!(HELP_DEMO));
    let opportunity_id =
        s.dv.user_insert(OPPORTUNITIES, opp)
            .ok_or("cannot insert the opportunity")?;
    let (row, referral) = wait_for(t, "the referral id and link written back", || {
        let row = s.dv.row(OPPORTUNITIES, &opportunity_id)?;
        let id = text(&row, &columns.referral_id)?;
        text(&row, &columns.referral_link)?;
        if checkmark && !text(&row, "name").is_some_and(|n| n.ends_with('✔')) {
            return None;
        }
        let referral = s.pc.referral(&id)?;
        Some((row, referral))
    })
    .await?;
    let engagement = text(&referral, "engagementId").ok_or("the referral has no engagementId")?;
    let for_microsoft = wait_for(t, "the connected referral for Microsoft", || {
        s.pc.referrals_for_microsoft(&engagement).into_iter().next()
    })
    .await?;
    let posts =
        s.pc.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/engagements/referrals"))
            .map(|r| r.request_id)
            .collect();
    let detail = format!(
        "referral {} ({}, {} / {}), then the referral for Microsoft {} in engagement {engagement}; opportunity now '{}', link {}",
        text(&referral, "id").unwrap_or_default(),
        text(&referral, "type").unwrap_or_default(),
        text(&referral, "status").unwrap_or_default(),
        text(&referral, "substatus").unwrap_or_default(),
        text(&for_microsoft, "id").unwrap_or_default(),
        text(&row, "name").unwrap_or_default(),
        text(&row, &columns.referral_link).unwrap_or_default(),
    );
    Ok((
        detail,
        CoSellSteps {
            referral,
            for_microsoft,
            posts,
        },
    ))
}

/// (e): the seller marks the first deal won.
async fn step_won(
    s: &Standins,
    referral_id: &str,
    opportunity_id: &str,
    t: Duration,
) -> Result<(String, ()), String> {
    user_update(s, opportunity_id, json!({"statecode": 1, "statuscode": 3}))?;
    wait_for(t, "the referral to be Closed/Won", || {
        s.pc.referral(referral_id)
            .filter(|r| status_is(r, "Closed", "Won"))
    })
    .await?;
    Ok(("referral status Closed / Won".to_string(), ()))
}

fn user_update(s: &Standins, opportunity_id: &str, changes: Value) -> Result<(), String> {
    s.dv.user_update(OPPORTUNITIES, opportunity_id, object(changes))
        .map(|_| ())
        .ok_or_else(|| format!("opportunity {opportunity_id} is gone"))
}

async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("no sign of {what} after {}", millis(timeout)));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn print_summary(report: &DemoReport) {
    println!();
    println!("{:<70} {:>6} {:>9}", "step", "result", "time");
    for (i, title) in STEPS.iter().enumerate() {
        let (result, time) = match report.steps.get(i) {
            Some(s) if s.result.is_ok() => ("ok", millis(s.elapsed)),
            Some(s) => ("FAIL", millis(s.elapsed)),
            None => ("-", "not run".to_string()),
        };
        println!("{title:<70} {result:>6} {time:>9}");
    }
    println!();
    println!("audit trail: {} entries", report.audit.len());
    for e in &report.audit {
        println!(
            "  {:02}:{:02}:{:02}.{:03} {:<8} {:<20} {:<8} referral {} opportunity {}",
            e.at.hour(),
            e.at.minute(),
            e.at.second(),
            e.at.millisecond(),
            e.direction.as_str(),
            e.action,
            e.outcome.as_str(),
            short(e.referral_id.as_deref()),
            short(e.opportunity_id.as_deref()),
        );
    }
}

fn short(id: Option<&str>) -> String {
    match id {
        Some(id) => id.chars().take(8).collect(),
        None => "-".to_string(),
    }
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn same_id(v: Option<&Value>, id: &str) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|x| x.eq_ignore_ascii_case(id))
}

fn account_of(opportunity: &Value) -> Option<String> {
    text(opportunity, "_parentaccountid_value").or_else(|| text(opportunity, "_customerid_value"))
}

fn status_is(r: &Value, status: &str, substatus: &str) -> bool {
    r.get("status").and_then(Value::as_str) == Some(status)
        && r.get("substatus").and_then(Value::as_str) == Some(substatus)
}
