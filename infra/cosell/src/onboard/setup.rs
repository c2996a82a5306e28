//! `cosell setup dataverse [--dry-run]`: creates whatever is missing of the connector's
//! opportunity columns, the alternate key on the referral id column (waiting for its index)
//! and change tracking, through the Web API's metadata endpoints. A second run changes
//! nothing; a column of the wrong type is reported and nothing at all is changed.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use cosell::config::Config;
use cosell::dataverse::metadata::{AlternateKey, ColumnSpec, LiveColumn};
use cosell::dataverse::{DataverseClient, DataverseError};
use cosell::engine::wiring;

use super::columns::{self, ENTITY, LEAD_ENTITY};
use crate::ops::{OpsError, Settings};

#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub aws: super::stack::AwsArgs,
    /// Print what would be changed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the alternate key's index (e.g. 10m).
    #[arg(long, default_value = "10m", value_parser = crate::local::duration_arg)]
    pub key_timeout: Duration,
    /// How often to look at the key's index status.
    #[arg(long, default_value = "5s", value_parser = crate::local::duration_arg, hide = true)]
    pub key_poll: Duration,
}

/// What the org lacks, from what it has (pure).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<ColumnSpec>,
    /// `(column, what is wrong)`: never altered.
    pub wrong: Vec<(String, String)>,
    /// `(column, kind)` of the columns that are right.
    pub ok: Vec<(String, &'static str)>,
    /// The key to create, when missing.
    pub create_key: Option<String>,
    /// The existing key's index status.
    pub key_status: Option<String>,
    pub enable_change_tracking: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.create_key.is_none() && !self.enable_change_tracking
    }
}

pub fn plan(
    specs: &[ColumnSpec],
    live: &[Option<LiveColumn>],
    keys: &[AlternateKey],
    key_name: &str,
    key_column: &str,
    change_tracking: bool,
) -> Plan {
    let mut p = Plan::default();
    for (spec, found) in specs.iter().zip(live) {
        match found {
            None => p.create.push(spec.clone()),
            Some(l) => match columns::type_problem(spec, l) {
                Some(problem) => p.wrong.push((spec.logical_name.clone(), problem)),
                None => p.ok.push((spec.logical_name.clone(), spec.kind.describe())),
            },
        }
    }
    let existing = keys
        .iter()
        .find(|k| k.key_attributes.len() == 1 && k.key_attributes[0] == key_column);
    match existing {
        Some(k) => p.key_status = Some(k.index_status.clone()),
        None => p.create_key = Some(key_name.to_string()),
    }
    p.enable_change_tracking = !change_tracking;
    p
}

fn refused(e: DataverseError) -> OpsError {
    match &e {
        DataverseError::Invalid { status: 403, .. } | DataverseError::Unauthorized { .. } => {
            OpsError::failed(format!(
                "Dataverse refused the change: {e}\n  fix: the application user needs the System Customizer (or System Administrator) security role to create columns, keys and change tracking; assign it in the Power Platform admin center (Environments > your environment > Settings > Application users), then run `cosell setup dataverse` again"
            ))
        }
        _ => OpsError::failed(format!("Dataverse: {e}")),
    }
}

pub async fn run(
    args: SetupArgs,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> Result<(), OpsError> {
    let config = match &args.aws.stack {
        None => settings.config()?,
        // The Dataverse app and URL come from the stack's secret and parameters.
        Some(name) => {
            let sdk = args.aws.sdk_config().await;
            let info = super::stack::describe(&sdk, name).await?;
            let sm = aws_sdk_secretsmanager::Client::new(&sdk);
            let found = super::stack::settings(&sm, name, &info).await?;
            settings.config_with(&[], &found.overrides)?
        }
    };
    let mapping = wiring::mapping(&config).map_err(|e| OpsError::failed(e.to_string()))?;
    let http = wiring::http_client(&config).map_err(|e| OpsError::failed(e.to_string()))?;
    let dv = wiring::dataverse_client(&config, &http);
    let specs = columns::specs(&config.columns, &mapping);
    let key_name = columns::referral_key_name(&config.columns);
    let p = read_state(&dv, &specs, &config, &key_name).await?;
    let lead_specs = columns::lead_specs(&config.columns, &mapping);
    let leads = read_lead_state(&dv, &lead_specs).await?;
    writeln!(
        out,
        "Dataverse setup of table {ENTITY} at {}",
        config.dataverse_url
    )?;
    print_plan(out, &p, &config)?;
    for (name, state) in &leads.ok {
        writeln!(out, "  column {LEAD_ENTITY}.{name:<27} {state:<24} ok")?;
    }
    for s in &leads.create {
        writeln!(
            out,
            "  column {LEAD_ENTITY}.{:<27} {:<24} create",
            s.logical_name,
            s.kind.describe()
        )?;
    }
    for (name, problem) in &leads.wrong {
        writeln!(out, "  column {LEAD_ENTITY}.{name:<27} WRONG: {problem}")?;
    }
    if !leads.wrong.is_empty() {
        return Err(OpsError::failed(format!(
            "{} lead column(s) exist with the wrong type; nothing was changed.\n  fix: delete or rename them in the maker portal (Tables > Lead > Columns), or set COSELL_COL_* to columns of the right type, then run `cosell setup dataverse` again",
            leads.wrong.len()
        )));
    }
    solution_tables(&dv, out).await?;
    if !p.wrong.is_empty() {
        return Err(OpsError::failed(format!(
            "{} column(s) exist with the wrong type; nothing was changed.\n  fix: delete or rename them in the maker portal (Tables > Opportunity > Columns), or set COSELL_COL_* to columns of the right type, then run `cosell setup dataverse` again",
            p.wrong.len()
        )));
    }
    if p.is_empty() && leads.create.is_empty() {
        writeln!(
            out,
            "Nothing to change: the columns, the alternate key and change tracking are set up."
        )?;
        return key_outcome(p.key_status.as_deref(), &config);
    }
    if args.dry_run {
        writeln!(out, "Dry run: nothing was changed.")?;
        return Ok(());
    }
    for spec in &p.create {
        dv.create_column(ENTITY, spec).await.map_err(refused)?;
        writeln!(out, "created column {}", spec.logical_name)?;
    }
    if !p.create.is_empty() {
        dv.publish(ENTITY).await.map_err(refused)?;
        writeln!(out, "published the {ENTITY} table")?;
    }
    for spec in &leads.create {
        dv.create_column(LEAD_ENTITY, spec).await.map_err(refused)?;
        writeln!(out, "created column {LEAD_ENTITY}.{}", spec.logical_name)?;
    }
    if !leads.create.is_empty() {
        dv.publish(LEAD_ENTITY).await.map_err(refused)?;
        writeln!(out, "published the {LEAD_ENTITY} table")?;
    }
    let mut key_status = p.key_status.clone();
    if let Some(name) = &p.create_key {
        dv.create_alternate_key(
            ENTITY,
            name,
            "Referral Identifier",
            &[config.columns.referral_id.as_str()],
        )
        .await
        .map_err(refused)?;
        writeln!(
            out,
            "created alternate key {name}; Dataverse builds its index in the background"
        )?;
        key_status = Some(wait_for_key(&dv, &config, &args, out).await?);
    }
    if p.enable_change_tracking {
        dv.enable_change_tracking(ENTITY).await.map_err(refused)?;
        dv.publish(ENTITY).await.map_err(refused)?;
        writeln!(out, "turned change tracking on for {ENTITY}")?;
    }
    writeln!(out, "Done. Next: `cosell doctor`.")?;
    key_outcome(key_status.as_deref(), &config)
}

/// The lead's connector columns as they stand (none asked for unless leads land as leads).
async fn read_lead_state(dv: &DataverseClient, specs: &[ColumnSpec]) -> Result<Plan, OpsError> {
    let mut p = Plan::default();
    for spec in specs {
        match dv
            .column(LEAD_ENTITY, &spec.logical_name)
            .await
            .map_err(refused)?
        {
            None => p.create.push(spec.clone()),
            Some(live) => match columns::type_problem(spec, &live) {
                Some(problem) => p.wrong.push((spec.logical_name.clone(), problem)),
                None => p.ok.push((spec.logical_name.clone(), spec.kind.describe())),
            },
        }
    }
    Ok(p)
}

/// The table layout's tables are checked, not created: a table with its lookups is the
/// org's to make (or Microsoft's connector solution's), and nothing is changed while any of
/// them is missing.
async fn solution_tables(
    dv: &DataverseClient,
    out: &mut (dyn Write + Send),
) -> Result<(), OpsError> {
    if !dv.solutions_as_rows() {
        return Ok(());
    }
    let missing = dv.solution_tables_missing().await.map_err(refused)?;
    if missing.is_empty() {
        writeln!(
            out,
            "  ok       solution tables (the mapping's [solutions] layout = \"table\")"
        )?;
        return Ok(());
    }
    for m in &missing {
        writeln!(out, "  missing  {m}")?;
    }
    Err(OpsError::failed(format!(
        "the mapping keeps solutions as rows, and the org lacks {} of what it names; nothing was changed.\n  fix: create the child table and the catalogue (README, \"Solutions as rows\"), or correct the names in the mapping's [solutions], then run `cosell setup dataverse` again; setup does not create tables",
        missing.len()
    )))
}

async fn read_state(
    dv: &DataverseClient,
    specs: &[ColumnSpec],
    config: &Config,
    key_name: &str,
) -> Result<Plan, OpsError> {
    let mut live = Vec::new();
    for s in specs {
        live.push(dv.column(ENTITY, &s.logical_name).await.map_err(refused)?);
    }
    let keys = dv.alternate_keys(ENTITY).await.map_err(refused)?;
    let tracking = dv.change_tracking_enabled(ENTITY).await.map_err(refused)?;
    Ok(plan(
        specs,
        &live,
        &keys,
        key_name,
        &config.columns.referral_id,
        tracking,
    ))
}

fn print_plan(out: &mut (dyn Write + Send), p: &Plan, config: &Config) -> std::io::Result<()> {
    for s in &p.create {
        writeln!(
            out,
            "  column {:<32} {:<24} create",
            s.logical_name,
            s.kind.describe()
        )?;
    }
    for (name, kind) in &p.ok {
        writeln!(out, "  column {name:<32} {kind:<24} ok")?;
    }
    for (name, problem) in &p.wrong {
        writeln!(
            out,
            "  column {name:<32} WRONG TYPE: {problem} (left as it is)"
        )?;
    }
    match (&p.create_key, &p.key_status) {
        (Some(k), _) => writeln!(
            out,
            "  alternate key {k} on {}: create",
            config.columns.referral_id
        )?,
        (None, Some(s)) => writeln!(
            out,
            "  alternate key on {}: {s}",
            config.columns.referral_id
        )?,
        (None, None) => {}
    }
    if p.enable_change_tracking {
        writeln!(
            out,
            "  change tracking: turn on (it cannot be turned off again)"
        )?;
    } else {
        writeln!(out, "  change tracking: on")?;
    }
    Ok(())
}

/// Polls the key until its index is Active or Failed.
async fn wait_for_key(
    dv: &DataverseClient,
    config: &Config,
    args: &SetupArgs,
    out: &mut (dyn Write + Send),
) -> Result<String, OpsError> {
    let deadline = tokio::time::Instant::now() + args.key_timeout;
    let mut last = String::new();
    loop {
        let keys = dv.alternate_keys(ENTITY).await.map_err(refused)?;
        let status = keys
            .iter()
            .find(|k| k.key_attributes.contains(&config.columns.referral_id))
            .map(|k| k.index_status.clone())
            .unwrap_or_else(|| "missing".into());
        if status != last {
            writeln!(out, "  key index: {status}")?;
            let _ = out.flush();
            last = status.clone();
        }
        if status == "Active" || status == "Failed" || status == "missing" {
            return Ok(status);
        }
        if tokio::time::Instant::now() >= deadline {
            writeln!(
                out,
                "  the key's index is still {status}; run `cosell doctor` later to see it Active"
            )?;
            return Ok(status);
        }
        tokio::time::sleep(args.key_poll).await;
    }
}

fn key_outcome(status: Option<&str>, config: &Config) -> Result<(), OpsError> {
    match status {
        Some("Failed") => Err(OpsError::failed(format!(
            "the alternate key's index failed: some opportunities share a value in {}\n  fix: give those opportunities distinct values (or clear the duplicates), then reactivate the key (maker portal: Tables > Opportunity > Keys) and run `cosell setup dataverse` again",
            config.columns.referral_id
        ))),
        _ => Ok(()),
    }
}
