//! `cosell status <id>`: what the connector knows about one referral or opportunity.

use std::io::Write;

use clap::Args;
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::crosswalk::Link;
use cosell::store::Store;
use serde_json::json;

use super::audit_table::audit_table;
use super::error::OpsError;
use super::logs_query;
use super::output::{opt, write_json, write_pairs, Format, OutputArgs, Style};
use super::settings::Settings;
use super::since::rfc3339;
use super::status_metrics;
use super::target::TargetArgs;

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// A Partner Center referral id or a Dataverse opportunity id. Without one: the
    /// counters of a local run (its metrics snapshot in the data directory).
    pub id: Option<String>,
    /// How many of the latest audit entries to show.
    #[arg(long, default_value_t = 10)]
    pub entries: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(
    args: StatusArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let Some(id) = args.id.as_deref().map(str::trim) else {
        if let Some(stack) = &args.target.stack {
            writeln!(
                out,
                "stack {stack}: its metrics are on the CloudWatch dashboard {stack}-cosell-sync"
            )?;
            return Ok(());
        }
        let dir = args
            .target
            .data_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir());
        return status_metrics::write(out, &dir, args.output.output, style);
    };
    if id.is_empty() {
        return Err(OpsError::usage("the id is empty"));
    }
    let target = args.target.open(settings).await?;
    let store = target.store.as_ref();
    let link = match store.get_link_by_referral(id).await? {
        Some(l) => Some(l),
        None => store.get_link_by_opportunity(id).await?,
    };
    // Without a link the audit trail may still say why (e.g. a failed first sync).
    let (referral, opportunity) = match &link {
        Some(l) => (l.referral_id.clone(), l.opportunity_id.clone()),
        None => (id.to_string(), id.to_string()),
    };
    let audit = recent_audit(store, &referral, &opportunity, args.entries).await?;
    let query = logs_query::query(&[&referral, &opportunity]);
    let stack = args.target.stack.as_deref().unwrap_or("<stack>");

    match args.output.output {
        Format::Json => write_json(
            out,
            &json!({
                "id": id,
                "link": link,
                "audit": audit,
                "logs_insights": {"query": query, "log_groups": logs_query::log_groups(stack)},
            }),
        )?,
        Format::Table => {
            match &link {
                Some(l) => write_link(out, l, style)?,
                None => writeln!(out, "no link for {id} in {}", target.label)?,
            }
            writeln!(out)?;
            if audit.is_empty() {
                writeln!(out, "no audit entries")?;
            } else {
                writeln!(
                    out,
                    "{}",
                    style.heading(&format!("last {} audit entries", audit.len()))
                )?;
                audit_table(&audit).write(out, style)?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "{}",
                style.heading("CloudWatch Logs Insights query for this pair")
            )?;
            writeln!(
                out,
                "log groups: {}",
                logs_query::log_groups(stack).join(" ")
            )?;
            writeln!(out, "{query}")?;
        }
    }
    match link {
        Some(_) => Ok(()),
        None => Err(OpsError::failed(format!(
            "{id} is neither a linked referral nor a linked opportunity in {}",
            target.label
        ))),
    }
}

fn write_link(out: &mut dyn Write, l: &Link, style: &Style) -> std::io::Result<()> {
    write_pairs(
        out,
        &[
            ("referral", l.referral_id.clone()),
            ("opportunity", l.opportunity_id.clone()),
            ("link version", l.version.to_string()),
            ("link updated", rfc3339(l.updated_at)),
            ("referral etag", opt(l.pc_etag.as_deref())),
            ("opportunity etag", opt(l.dv_etag.as_deref())),
            ("referral synced at", opt(l.pc_updated.as_deref())),
            ("opportunity synced at", opt(l.dv_modified.as_deref())),
        ],
        style,
    )
}

/// The newest entries naming either id, newest first, without duplicates.
async fn recent_audit(
    store: &dyn Store,
    referral: &str,
    opportunity: &str,
    limit: usize,
) -> Result<Vec<AuditEntry>, OpsError> {
    let by_referral = store
        .query_audit(&AuditQuery {
            referral_id: Some(referral.to_string()),
            limit: Some(limit),
            ..Default::default()
        })
        .await?;
    let by_opportunity = store
        .query_audit(&AuditQuery {
            opportunity_id: Some(opportunity.to_string()),
            limit: Some(limit),
            ..Default::default()
        })
        .await?;
    let mut all = by_referral;
    for e in by_opportunity {
        if !all.iter().any(|a| a.id == e.id) {
            all.push(e);
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.at));
    all.truncate(limit);
    Ok(all)
}
