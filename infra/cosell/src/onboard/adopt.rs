//! `cosell adopt [--apply]`: moving off Microsoft's co-sell connector. Its flows filled the
//! referral id column of every opportunity they synced; adopt reads those opportunities and
//! the referrals, and links each matching pair in the crosswalk, so the connector's first
//! sync of them updates both sides instead of creating a second opportunity or referral.
//! It never writes to Partner Center or Dataverse; without `--apply` it writes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use cosell::config::Config;
use cosell::crosswalk::Link;
use cosell::dataverse::DataverseError;
use cosell::engine::wiring;
use cosell::entra::RefreshTokenStore;
use cosell::partner_center::{ListQuery, PartnerCenterClient, PartnerCenterError, Referral};
use cosell::store::sqlite::SqliteStore;
use cosell::store::{Store, StoreError};
use serde::Serialize;

use super::adopt_plan::{self, Known, Pair, Plan, Row, Unmatched};
use super::stack::{self, AwsArgs};
use crate::local::data_dir;
use crate::local::runtime::{with_stored_refresh_token, DATABASE_FILE};
use crate::ops::output::{write_json, Format, OutputArgs};
use crate::ops::target::TargetArgs;
use crate::ops::{OpsError, Settings};

/// Referrals per page when listing them all.
const PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Args)]
pub struct AdoptArgs {
    /// Write the crosswalk links (without it: a dry run that writes nothing).
    #[arg(long)]
    pub apply: bool,
    /// Read each named referral by its id instead of listing all referrals (then referrals
    /// no opportunity names are not reported).
    #[arg(long)]
    pub by_id: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// A local run's data directory [default: $COSELL_DATA_DIR or ./.cosell].
    #[arg(long, value_name = "DIR", conflicts_with = "stack")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    applied: bool,
    opportunities_with_referral_id: usize,
    /// Linked by this run (`--apply`), or that it would link.
    #[serde(rename = "link")]
    pairs: &'a [Pair],
    already_linked: &'a [Pair],
    unmatched: &'a [Unmatched],
}

/// Where the crosswalk is and how to reach both tenants.
struct Subject {
    config: Config,
    refresh_store: Option<Arc<dyn RefreshTokenStore>>,
    crosswalk: Crosswalk,
}

enum Crosswalk {
    /// A deployed stack's table, or a local store that exists.
    Open(Arc<dyn Store>),
    /// A local data dir without a store yet (adopt before the first `cosell run`):
    /// created only by `--apply`.
    NotYet(PathBuf),
}

pub async fn run(
    args: AdoptArgs,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> Result<(), OpsError> {
    let subject = subject(&args, settings).await?;
    let config = &subject.config;
    // The mapping must load as the connector will run it (it names the columns read here).
    wiring::mapping(config).map_err(|e| OpsError::failed(e.to_string()))?;
    let http = wiring::http_client(config).map_err(|e| OpsError::failed(e.to_string()))?;
    let pc = wiring::partner_center_client(config, &http, subject.refresh_store.clone());
    let dv = wiring::dataverse_client(config, &http);

    let column = &config.columns.referral_id;
    let opportunities = dv
        .opportunities_with_referral_id()
        .await
        .map_err(|e| dataverse_failed(e, column))?;
    let rows: Vec<Row> = opportunities
        .iter()
        .filter_map(|o| Row::from_opportunity(o, column))
        .collect();
    let known = if args.by_id {
        Known::new(read_each(&pc, &rows).await?, false)
    } else {
        let query = ListQuery {
            top: Some(PAGE_SIZE),
            ..ListQuery::default()
        };
        Known::new(pc.list_referrals(&query).await?, true)
    };
    let store = match &subject.crosswalk {
        Crosswalk::Open(s) => Some(s.clone()),
        Crosswalk::NotYet(_) => None,
    };
    let mut plan = adopt_plan::plan(&rows, &known, store.as_deref()).await?;
    if args.apply && !plan.link.is_empty() {
        let store = match subject.crosswalk {
            Crosswalk::Open(s) => s,
            Crosswalk::NotYet(dir) => create_local_store(&dir)?,
        };
        apply(store.as_ref(), &mut plan).await?;
    }
    print(out, &args, rows.len(), &plan)
}

/// Writes each planned link (create-only: a link someone made meanwhile is reported, not
/// overwritten). The base is left empty, as for a link from an earlier version: the first
/// reconcile takes the values both sides agree on as the base and lets the mapping's
/// conflict rules decide the rest (docs/storage.md).
async fn apply(store: &dyn Store, plan: &mut Plan) -> Result<(), OpsError> {
    let mut linked = Vec::with_capacity(plan.link.len());
    for pair in std::mem::take(&mut plan.link) {
        let link = Link::new(&pair.referral_id, &pair.opportunity_id);
        match store.put_link(&link, None).await {
            Ok(_) => linked.push(pair),
            Err(StoreError::Conflict { .. }) => plan.unmatched.push(Unmatched::LinkedMeanwhile {
                referral_id: pair.referral_id,
                opportunity_id: pair.opportunity_id,
            }),
            Err(e) => {
                plan.link = linked;
                return Err(OpsError::failed(format!(
                    "store: {e} (after linking {} pair(s); run adopt --apply again to finish)",
                    plan.link.len()
                )));
            }
        }
    }
    plan.link = linked;
    Ok(())
}

/// The referrals the rows name, one read each; a 404 leaves the id out (reported as not
/// found).
async fn read_each(pc: &PartnerCenterClient, rows: &[Row]) -> Result<Vec<Referral>, OpsError> {
    // Each id once (ids compare without case), asked for as the row spells it.
    let ids: std::collections::BTreeMap<String, &str> = rows
        .iter()
        .map(|r| {
            (
                r.referral_id.trim().to_ascii_lowercase(),
                r.referral_id.trim(),
            )
        })
        .collect();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids.into_values() {
        match pc.get_referral(id).await {
            Ok(r) => found.push(r),
            Err(PartnerCenterError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found)
}

fn dataverse_failed(e: DataverseError, column: &str) -> OpsError {
    OpsError::failed(format!(
        "Dataverse: {e}\n(adopt reads the opportunities whose {column} column holds a referral id: \
         is COSELL_COL_REFERRAL_ID the logical name of Microsoft's \"Referral Identifier\" column? \
         See shared/mapping/microsoft-connector.toml)"
    ))
}

async fn subject(args: &AdoptArgs, settings: &Settings) -> Result<Subject, OpsError> {
    let Some(name) = &args.aws.stack else {
        let mut config = settings.config()?;
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.clone();
        }
        let (config, refresh_store) =
            with_stored_refresh_token(&config).map_err(|e| OpsError::failed(format!("{e:#}")))?;
        let db = config.data_dir.join(DATABASE_FILE);
        let crosswalk = if db.is_file() {
            Crosswalk::Open(Arc::new(SqliteStore::open(&db)?))
        } else {
            Crosswalk::NotYet(config.data_dir.clone())
        };
        return Ok(Subject {
            config,
            refresh_store,
            crosswalk,
        });
    };
    let sdk = args.aws.sdk_config().await;
    let info = stack::describe(&sdk, name).await?;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let stack::StackSettings {
        overrides, pc_arn, ..
    } = stack::settings(&sm, name, &info).await?;
    let config = settings.config_with(&[], &overrides)?;
    let target = TargetArgs {
        stack: Some(name.clone()),
        region: args.aws.region.clone(),
        endpoint_url: args.aws.endpoint_url.clone(),
        ..TargetArgs::default()
    }
    .open(settings)
    .await?;
    Ok(Subject {
        config,
        refresh_store: Some(Arc::new(
            cosell_edge::secrets::SecretsManagerRefreshStore::new(sm, &pc_arn),
        )),
        crosswalk: Crosswalk::Open(target.store),
    })
}

/// The local store as `cosell run` creates it (directory 0700, database 0600).
fn create_local_store(dir: &Path) -> Result<Arc<dyn Store>, OpsError> {
    let fail = |e: std::io::Error| {
        OpsError::failed(format!(
            "cannot create {DATABASE_FILE} in {}: {e}",
            dir.display()
        ))
    };
    data_dir::create(dir).map_err(fail)?;
    let db = data_dir::private_file(dir, DATABASE_FILE).map_err(fail)?;
    Ok(Arc::new(SqliteStore::open(&db)?))
}

fn print(
    out: &mut (dyn Write + Send),
    args: &AdoptArgs,
    opportunities: usize,
    plan: &Plan,
) -> Result<(), OpsError> {
    if args.output.output == Format::Json {
        return Ok(write_json(
            out,
            &Report {
                applied: args.apply,
                opportunities_with_referral_id: opportunities,
                pairs: &plan.link,
                already_linked: &plan.already_linked,
                unmatched: &plan.unmatched,
            },
        )?);
    }
    writeln!(
        out,
        "{opportunities} opportunit{} with a referral id",
        if opportunities == 1 { "y" } else { "ies" }
    )?;
    let verb = if args.apply { "linked" } else { "would link" };
    writeln!(out, "{verb} {} pair(s):", plan.link.len())?;
    for p in &plan.link {
        writeln!(
            out,
            "  referral {}  <->  opportunity {}  {}",
            p.referral_id,
            p.opportunity_id,
            p.name.as_deref().unwrap_or_default()
        )?;
    }
    writeln!(out, "already linked: {} pair(s)", plan.already_linked.len())?;
    writeln!(out, "not matched: {}", plan.unmatched.len())?;
    for u in &plan.unmatched {
        writeln!(out, "  {}", u.describe())?;
    }
    if !args.apply {
        writeln!(
            out,
            "dry run: nothing was written; run `cosell adopt --apply` to write these links to the crosswalk"
        )?;
    }
    Ok(())
}
