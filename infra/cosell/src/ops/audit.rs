//! `cosell audit`: the audit trail, filtered.

use std::io::Write;

use clap::Args;
use cosell::audit::AuditQuery;
use time::OffsetDateTime;

use super::audit_table::audit_table;
use super::error::OpsError;
use super::output::{write_json, Format, OutputArgs, Style};
use super::settings::Settings;
use super::since::parse_since;
use super::target::TargetArgs;

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only entries since then: 2026-01-31, 2026-01-31T12:00:00Z, or a duration back (24h, 7d).
    #[arg(long, value_name = "DATE|DURATION")]
    pub since: Option<String>,
    /// Only failed entries.
    #[arg(long)]
    pub failed: bool,
    /// Only entries about this referral.
    #[arg(long, value_name = "ID")]
    pub referral: Option<String>,
    /// Only entries about this opportunity.
    #[arg(long, value_name = "ID")]
    pub opportunity: Option<String>,
    /// At most this many entries (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(
    args: AuditArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, OffsetDateTime::now_utc()))
        .transpose()
        .map_err(|e| OpsError::usage(format!("--since: {e}")))?;
    if args.limit == 0 {
        return Err(OpsError::usage("--limit must be at least 1"));
    }
    let target = args.target.open(settings).await?;
    let query = AuditQuery {
        referral_id: args.referral,
        opportunity_id: args.opportunity,
        since,
        failed_only: args.failed,
        limit: Some(args.limit),
    };
    let entries = target.store.query_audit(&query).await?;
    match args.output.output {
        Format::Json => write_json(out, &entries)?,
        Format::Table if entries.is_empty() => writeln!(out, "no matching audit entries")?,
        Format::Table => audit_table(&entries).write(out, style)?,
    }
    Ok(())
}
