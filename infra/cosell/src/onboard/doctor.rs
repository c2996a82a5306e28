//! `cosell doctor [--output json]`: checks, in order, what the connector needs from both
//! tenants and prints each as ok / warn / problem with its fix. Exit 0 when nothing is a
//! problem (warnings do not fail it), 1 otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use cosell::config::Config;
use cosell::dataverse::{DataverseClient, DataverseError};
use cosell::engine::wiring;
use cosell::entra::{Grant, RefreshTokenStore, TokenError, TokenProvider};
use cosell::partner_center::event::{REFERRAL_CREATED, REFERRAL_UPDATED};
use cosell::partner_center::{ListQuery, PartnerCenterClient};
use serde::Serialize;

use super::columns::{self, ENTITY, LEAD_ENTITY};
use super::stack::{self, AwsArgs};
use crate::local::refresh_file::FileRefreshTokenStore;
use crate::ops::output::{write_json, Format, OutputArgs};
use crate::ops::target::TargetArgs;
use crate::ops::{OpsError, Settings};

/// Entra retires a refresh token unused for 90 days: warn well before.
const TOKEN_AGE_WARN: Duration = Duration::from_secs(60 * 86_400);
const TOKEN_AGE_LIMIT: Duration = Duration::from_secs(90 * 86_400);

/// The privileges the connector's application user needs (`Depth` Global where noted).
const NEEDED: [(&str, bool); 8] = [
    // Change tracking needs organization-level read.
    ("prvReadOpportunity", true),
    ("prvWriteOpportunity", false),
    ("prvCreateOpportunity", false),
    ("prvReadAccount", false),
    ("prvCreateAccount", false),
    ("prvReadContact", false),
    ("prvCreateContact", false),
    ("prvAppendToAccount", false),
];

/// And with leads landed as leads (`[lead] handling = "lead"`).
const NEEDED_FOR_LEADS: [(&str, bool); 3] = [
    ("prvReadLead", false),
    ("prvWriteLead", false),
    ("prvCreateLead", false),
];

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// A local run's data directory [default: $COSELL_DATA_DIR or ./.cosell].
    #[arg(long, value_name = "DIR", conflicts_with = "stack")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// How long to wait for Partner Center's test event, in seconds.
    #[arg(long, default_value_t = 20)]
    pub test_event_wait: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Problem,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: None,
    }
}

fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        fix: Some(fix.into()),
        ..check(name, Status::Problem, detail)
    }
}

/// What the checks run against.
struct Subject {
    config: Config,
    refresh_store: Option<Arc<dyn RefreshTokenStore>>,
    /// When the refresh token was last written (its last rotation).
    token_written: Option<SystemTime>,
    token_source: String,
    target: TargetArgs,
    expected_webhook: Option<String>,
}

pub async fn run(
    args: DoctorArgs,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> Result<(), OpsError> {
    let checks = match subject(&args, settings).await {
        Ok(s) => checks(&s, &args, settings).await,
        Err(e) => vec![problem(
            "settings",
            e.to_string(),
            "set the COSELL_* settings the message names (see the README, \"Connect your tenants\")",
        )],
    };
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    match args.output.output {
        Format::Json => write_json(
            out,
            &serde_json::json!({"ok": problems == 0, "checks": checks}),
        )?,
        Format::Table => {
            for c in &checks {
                let word = match c.status {
                    Status::Ok => "ok",
                    Status::Warn => "warn",
                    Status::Problem => "PROBLEM",
                    Status::Skipped => "skipped",
                };
                writeln!(out, "{word:<8} {:<28} {}", c.name, c.detail)?;
                if let Some(fix) = &c.fix {
                    writeln!(out, "{:<8} {:<28} fix: {fix}", "", "")?;
                }
            }
        }
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(OpsError::failed(format!(
            "cosell doctor found {problems} problem(s)"
        )))
    }
}

async fn subject(args: &DoctorArgs, settings: &Settings) -> Result<Subject, OpsError> {
    let Some(name) = &args.aws.stack else {
        let mut config = settings.config()?;
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.clone();
        }
        let file = FileRefreshTokenStore::new(&config.data_dir);
        let stored = file.load().ok().flatten();
        let written = std::fs::metadata(file.path())
            .and_then(|m| m.modified())
            .ok();
        let (token_source, token_written) = match (&stored, &config.pc_refresh_token) {
            (Some(t), _) => {
                config.pc_refresh_token = Some(t.clone());
                (file.path().display().to_string(), written)
            }
            (None, Some(_)) => ("COSELL_PC_REFRESH_TOKEN".to_string(), None),
            (None, None) => (String::new(), None),
        };
        let store: Option<Arc<dyn RefreshTokenStore>> = config
            .pc_refresh_token
            .is_some()
            .then(|| Arc::new(file) as Arc<dyn RefreshTokenStore>);
        return Ok(Subject {
            expected_webhook: config.webhook_url.as_ref().map(|u| u.to_string()),
            target: TargetArgs {
                data_dir: Some(config.data_dir.clone()),
                ..TargetArgs::default()
            },
            config,
            refresh_store: store,
            token_written,
            token_source,
        });
    };
    let sdk = args.aws.sdk_config().await;
    let info = stack::describe(&sdk, name).await?;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let stack::StackSettings {
        overrides,
        pc_secret: pc,
        pc_arn,
    } = stack::settings(&sm, name, &info).await?;
    let config = settings.config_with(&[], &overrides)?;
    Ok(Subject {
        expected_webhook: info.webhook_url.clone(),
        target: TargetArgs {
            stack: Some(name.clone()),
            region: args.aws.region.clone(),
            endpoint_url: args.aws.endpoint_url.clone(),
            ..TargetArgs::default()
        },
        refresh_store: Some(Arc::new(
            cosell_edge::secrets::SecretsManagerRefreshStore::new(sm, &pc_arn),
        )),
        token_written: pc.created,
        token_source: format!("secret {pc_arn}"),
        config,
    })
}

fn token_fix(e: &TokenError, which: &str) -> String {
    match e {
        TokenError::Rejected { error, .. } if error == "invalid_client" => format!(
            "the {which} client secret is wrong or expired: create a new secret for the app registration and update COSELL_{}_CLIENT_SECRET (or the stack's secret)",
            if which == "Partner Center" { "PC" } else { "DV" }
        ),
        TokenError::Rejected { error, .. } if error == "invalid_grant" => {
            "the refresh token is expired or revoked: run `cosell login partner-center`".into()
        }
        TokenError::Rejected { error, .. } if error == "unauthorized_client" => {
            format!("the {which} client id names no app in tenant COSELL_TENANT_ID")
        }
        _ => "check the tenant id and the network path to Entra".into(),
    }
}

async fn checks(s: &Subject, args: &DoctorArgs, settings: &Settings) -> Vec<Check> {
    let mut out = Vec::new();
    let config = &s.config;
    let http = match wiring::http_client(config) {
        Ok(h) => h,
        Err(e) => return vec![problem("http client", e.to_string(), "report this")],
    };
    let policy = wiring::retry_policy(config);

    // 1. Both token grants.
    let grant = match &config.pc_refresh_token {
        Some(rt) => Grant::RefreshToken(rt.clone()),
        None => Grant::ClientCredentials,
    };
    let mut pc_tokens = TokenProvider::new(
        http.clone(),
        config.pc_token_url(),
        config.pc_client_id.clone(),
        config.pc_client_secret.clone(),
        cosell::partner_center::REFERRALS_SCOPE.to_string(),
        grant,
        policy.clone(),
    );
    if let Some(store) = &s.refresh_store {
        pc_tokens = pc_tokens.with_refresh_store(store.clone());
    }
    let pc_tokens = Arc::new(pc_tokens);
    let pc_ok = if config.pc_refresh_token.is_none() {
        out.push(problem(
            "partner center token",
            "no refresh token: the referrals API takes app + user tokens only",
            "run `cosell login partner-center` as a Referrals admin",
        ));
        false
    } else {
        match pc_tokens.token().await {
            Ok(_) => {
                out.push(check(
                    "partner center token",
                    Status::Ok,
                    format!("refresh-token grant works (token from {})", s.token_source),
                ));
                true
            }
            Err(e) => {
                out.push(problem(
                    "partner center token",
                    e.to_string(),
                    token_fix(&e, "Partner Center"),
                ));
                false
            }
        }
    };
    let dv_tokens = Arc::new(TokenProvider::new(
        http.clone(),
        config.dv_token_url(),
        config.dv_client_id.clone(),
        config.dv_client_secret.clone(),
        DataverseClient::scope_for(&config.dataverse_url),
        Grant::ClientCredentials,
        policy.clone(),
    ));
    let dv_ok = match dv_tokens.token().await {
        Ok(_) => {
            out.push(check(
                "dataverse token",
                Status::Ok,
                "client-credentials grant works",
            ));
            true
        }
        Err(e) => {
            out.push(problem(
                "dataverse token",
                e.to_string(),
                token_fix(&e, "Dataverse"),
            ));
            false
        }
    };

    // 2. The Partner Center user can list referrals.
    let pc = PartnerCenterClient::new(
        http.clone(),
        pc_tokens,
        config.pc_api_url.clone(),
        config.pc_webhook_api_url.clone(),
        policy.clone(),
    );
    if pc_ok {
        let q = ListQuery {
            top: Some(1),
            ..ListQuery::default()
        };
        out.push(match pc.list_first_page(&q).await {
            Ok(p) => check(
                "partner center referrals",
                Status::Ok,
                format!("listed referrals ({} on the first page)", p.referrals.len()),
            ),
            Err(e) => problem(
                "partner center referrals",
                e.to_string(),
                "the signed-in user needs the Referrals admin role in Partner Center; sign in again with `cosell login partner-center`",
            ),
        });
    } else {
        out.push(check(
            "partner center referrals",
            Status::Skipped,
            "needs the Partner Center token",
        ));
    }

    // 3-6. Dataverse: access, columns, change tracking, mapping.
    let dv = DataverseClient::new(
        http.clone(),
        dv_tokens,
        config.dataverse_url.clone(),
        config.columns.clone(),
        policy,
    );
    // The mapping's reads (the solution tables' probe uses them).
    let dv = match wiring::mapping(config) {
        Ok(m) => dv.with_mapping(&m),
        Err(_) => dv,
    };
    if dv_ok {
        dataverse_checks(&dv, config, &mut out).await;
    } else {
        for name in [
            "dataverse access",
            "dataverse columns",
            "change tracking",
            "mapping",
        ] {
            out.push(check(name, Status::Skipped, "needs the Dataverse token"));
        }
    }

    // 7. The webhook.
    if pc_ok {
        webhook_checks(&pc, s, args, settings, &mut out).await;
    } else {
        out.push(check(
            "webhook registration",
            Status::Skipped,
            "needs the Partner Center token",
        ));
    }

    // 8. The refresh token's age.
    out.push(token_age(s));
    out
}

async fn dataverse_checks(dv: &DataverseClient, config: &Config, out: &mut Vec<Check>) {
    let leads = wiring::mapping(config)
        .map(|m| m.lead.handling == cosell::mapping::lead::LeadHandling::Lead)
        .unwrap_or(true);
    out.push(match access(dv, leads).await {
        Ok(detail) => check("dataverse access", Status::Ok, detail),
        Err(c) => c,
    });
    let mapping = wiring::mapping(config);
    let default_mapping = cosell::mapping::Mapping::default_mapping();
    let used = mapping.as_ref().unwrap_or(&default_mapping);
    let specs = columns::specs(&config.columns, used);
    let lead_specs = columns::lead_specs(&config.columns, used);
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let tables = specs
        .iter()
        .map(|s| (ENTITY, s, s.logical_name.clone()))
        .chain(
            lead_specs
                .iter()
                .map(|s| (LEAD_ENTITY, s, format!("{LEAD_ENTITY}.{}", s.logical_name))),
        );
    let mut count = 0;
    for (entity, spec, shown) in tables {
        count += 1;
        match dv.column(entity, &spec.logical_name).await {
            Ok(None) => missing.push(shown),
            Ok(Some(live)) => {
                if let Some(p) = columns::type_problem(spec, &live) {
                    wrong.push(format!("{shown} {p}"));
                }
            }
            Err(e) => wrong.push(format!("{shown}: cannot read it: {e}")),
        }
    }
    out.push(match (missing.is_empty(), wrong.is_empty()) {
        (true, true) => check(
            "dataverse columns",
            Status::Ok,
            format!("all {count} connector columns exist with the expected types"),
        ),
        (false, true) => problem(
            "dataverse columns",
            format!("missing: {}", missing.join(", ")),
            "run `cosell setup dataverse`",
        ),
        (_, false) => {
            let mut detail = wrong.join("; ");
            if !missing.is_empty() {
                detail.push_str(&format!("; missing: {}", missing.join(", ")));
            }
            problem(
                "dataverse columns",
                detail,
                "delete or rename the wrong-typed columns (or point COSELL_COL_* at right ones), then run `cosell setup dataverse`",
            )
        }
    });
    if dv.solutions_as_rows() {
        out.push(match dv.solution_tables_missing().await {
            Ok(missing) if missing.is_empty() => check(
                "solution tables",
                Status::Ok,
                "the child table, its lookups and the catalogue the mapping names exist",
            ),
            Ok(missing) => problem(
                "solution tables",
                missing.join("; "),
                "create them (README, \"Solutions as rows\") or correct the mapping's [solutions] names",
            ),
            Err(e) => problem(
                "solution tables",
                e.to_string(),
                "check the application user's rights to read those tables",
            ),
        });
        match dv.solution_rows_tracked().await {
            Ok(Some(true)) => out.push(check(
                "solution rows tracking",
                Status::Ok,
                "change tracking is on for the solution rows: added and removed rows are seen",
            )),
            Ok(Some(false)) => out.push(Check {
                fix: Some("turn on Track changes for the solution rows' table (maker portal: the table's properties, Advanced options); it cannot be turned off again".into()),
                ..check(
                    "solution rows tracking",
                    Status::Warn,
                    "change tracking is off for the solution rows: the poller reads them by modifiedon and does not see a removed row until the opportunity changes",
                )
            }),
            // The tables check above says what is wrong with a table that cannot be read.
            Ok(None) | Err(_) => {}
        }
    }
    let key_column = &config.columns.referral_id;
    out.push(match dv.alternate_keys(ENTITY).await {
        Ok(keys) => match keys.iter().find(|k| k.key_attributes.contains(key_column)) {
            Some(k) if k.index_status == "Active" => check(
                "alternate key",
                Status::Ok,
                format!("{} is Active", k.schema_name),
            ),
            Some(k) if k.index_status == "Failed" => problem(
                "alternate key",
                format!(
                    "{} failed to build (duplicate values in {key_column})",
                    k.schema_name
                ),
                "make the referral ids unique, reactivate the key, then run `cosell doctor` again",
            ),
            Some(k) => check(
                "alternate key",
                Status::Warn,
                format!(
                    "{} is {}: Dataverse is still building it",
                    k.schema_name, k.index_status
                ),
            ),
            None => Check {
                fix: Some("run `cosell setup dataverse`".into()),
                ..check(
                    "alternate key",
                    Status::Warn,
                    format!("no alternate key on {key_column}"),
                )
            },
        },
        Err(e) => problem(
            "alternate key",
            e.to_string(),
            "check the application user's rights to read metadata",
        ),
    });
    out.push(match dv.change_tracking_enabled(ENTITY).await {
        Ok(true) => check("change tracking", Status::Ok, "on for opportunity"),
        Ok(false) => problem(
            "change tracking",
            "off for opportunity: the poller cannot see changes",
            "run `cosell setup dataverse` (it turns change tracking on)",
        ),
        Err(e) => problem(
            "change tracking",
            e.to_string(),
            "check the application user's rights to read metadata",
        ),
    });
    out.push(match &mapping {
        Err(e) => problem(
            "mapping",
            e.to_string(),
            "fix the mapping file (`cosell mapping check` shows each error)",
        ),
        Ok(m) => {
            let mut absent = Vec::new();
            for col in &m.schema.opportunity_columns {
                if matches!(dv.column(ENTITY, col).await, Ok(None)) {
                    absent.push(col.clone());
                }
            }
            if absent.is_empty() {
                check(
                    "mapping",
                    Status::Ok,
                    "validates against the configured and live columns",
                )
            } else {
                problem(
                    "mapping",
                    format!(
                        "declares opportunity columns the org lacks: {}",
                        absent.join(", ")
                    ),
                    "create those columns or remove them from the mapping's [schema]",
                )
            }
        }
    });
}

async fn access(dv: &DataverseClient, leads: bool) -> Result<String, Check> {
    let denied = |e: DataverseError| {
        problem(
            "dataverse access",
            e.to_string(),
            "add the app registration as an application user of the environment and give it a security role (see the README)",
        )
    };
    let user = dv.who_am_i().await.map_err(denied)?;
    let privileges = dv.user_privileges(&user).await.map_err(denied)?;
    let mut lacking = Vec::new();
    let for_leads = if leads { &NEEDED_FOR_LEADS[..] } else { &[] };
    for &(name, global) in NEEDED.iter().chain(for_leads) {
        match privileges.iter().find(|p| p.name == name) {
            None => lacking.push(name.to_string()),
            Some(p) if global && p.depth != "Global" => {
                lacking.push(format!("{name} at organization level (has {})", p.depth))
            }
            Some(_) => {}
        }
    }
    if lacking.is_empty() {
        Ok(format!(
            "application user {user} can read and write opportunities, accounts and contacts"
        ))
    } else {
        Err(problem(
            "dataverse access",
            format!("application user {user} lacks {}", lacking.join(", ")),
            "add these privileges to the application user's security role (Power Platform admin center > Environments > Settings > Security roles)",
        ))
    }
}

async fn webhook_checks(
    pc: &PartnerCenterClient,
    s: &Subject,
    args: &DoctorArgs,
    settings: &Settings,
    out: &mut Vec<Check>,
) {
    let registration = match pc.get_registration().await {
        Ok(r) => r,
        Err(e) => {
            out.push(problem(
                "webhook registration",
                e.to_string(),
                "check the Partner Center app's permissions",
            ));
            return;
        }
    };
    let Some(reg) = registration else {
        out.push(problem(
            "webhook registration",
            "no webhook is registered: referral events will not arrive",
            "run `cosell webhook register` (or deploy the stack, which registers it)",
        ));
        return;
    };
    let missing: Vec<&str> = [REFERRAL_CREATED, REFERRAL_UPDATED]
        .into_iter()
        .filter(|e| !reg.webhook_events.iter().any(|r| r == e))
        .collect();
    let Some(expected) = &s.expected_webhook else {
        out.push(check(
            "webhook registration",
            Status::Warn,
            format!(
                "registered to {} (COSELL_WEBHOOK_URL is not set, so it cannot be compared)",
                reg.webhook_url
            ),
        ));
        return;
    };
    if reg.webhook_url.trim_end_matches('/') != expected.trim_end_matches('/') {
        out.push(problem(
            "webhook registration",
            format!("registered to {}, not to {expected}", reg.webhook_url),
            format!("run `cosell webhook register --url {expected}` (Partner Center keeps one URL per event)"),
        ));
        return;
    }
    if !missing.is_empty() {
        out.push(problem(
            "webhook registration",
            format!("registered without {}", missing.join(", ")),
            "run `cosell webhook register`",
        ));
        return;
    }
    out.push(check(
        "webhook registration",
        Status::Ok,
        format!("{expected} for referral-created and referral-updated"),
    ));
    let target = match s.target.open(settings).await {
        Ok(t) => t,
        Err(e) => {
            out.push(check(
                "webhook test event",
                Status::Skipped,
                format!("no connector data to confirm arrival: {e}"),
            ));
            return;
        }
    };
    let wait = Duration::from_secs(args.test_event_wait.max(1));
    out.push(
        match crate::ops::webhook::round_trip(pc, &target, wait).await {
            Ok(r) if r.ok => check("webhook test event", Status::Ok, r.message),
            Ok(r) => problem(
                "webhook test event",
                r.message,
                "make sure the connector is running and reachable at the registered URL",
            ),
            Err(e) => problem(
                "webhook test event",
                e.to_string(),
                "run `cosell webhook test` for details",
            ),
        },
    );
}

fn token_age(s: &Subject) -> Check {
    let Some(written) = s.token_written else {
        return check(
            "refresh token age",
            Status::Skipped,
            "unknown (no stored token, or it is set in the environment)",
        );
    };
    let age = SystemTime::now()
        .duration_since(written)
        .unwrap_or_default();
    let days = age.as_secs() / 86_400;
    if age >= TOKEN_AGE_LIMIT {
        problem(
            "refresh token age",
            format!("last renewed {days} days ago: Entra has retired it"),
            "run `cosell login partner-center`",
        )
    } else if age >= TOKEN_AGE_WARN {
        Check {
            fix: Some(
                "run the connector (each use renews it) or `cosell login partner-center`".into(),
            ),
            ..check(
                "refresh token age",
                Status::Warn,
                format!("last renewed {days} days ago; Entra retires it at 90 days unused"),
            )
        }
    } else {
        check(
            "refresh token age",
            Status::Ok,
            format!("last renewed {days} day(s) ago"),
        )
    }
}
