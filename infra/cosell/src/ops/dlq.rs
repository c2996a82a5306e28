//! `cosell dlq list|show|replay`: messages the workers gave up on, and sending them back.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use cosell::queue::{DeadLetter, Queue};
use serde_json::json;

use super::error::OpsError;
use super::output::{clip, write_json, write_pairs, Format, OutputArgs, Style, Table};
use super::settings::Settings;
use super::since::rfc3339;
use super::target::{Target, TargetArgs};

/// Dead letters read per queue when looking one up or listing all.
const SCAN_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueName {
    /// The FIFO sync queue (every pair's messages, both directions).
    Sync,
}

impl QueueName {
    fn as_str(self) -> &'static str {
        match self {
            QueueName::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// List dead letters with their reasons and receive counts.
    List {
        /// Only this queue's dead letters [default: all].
        #[arg(long, value_enum)]
        queue: Option<QueueName>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter in full.
    Show {
        /// The dead letter's id (from `dlq list`).
        id: String,
        /// Look only in this queue's dead letters [default: all].
        #[arg(long, value_enum)]
        queue: Option<QueueName>,
    },
    /// Move dead letters back to their queue to be worked again.
    Replay {
        /// Ids of the dead letters to move (from `dlq list`).
        ids: Vec<String>,
        /// Move all of them.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Only this queue's dead letters [default: all].
        #[arg(long, value_enum)]
        queue: Option<QueueName>,
    },
}

pub async fn run(
    args: DlqArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let format = args.output.output;
    if let DlqAction::Replay {
        ids, all: false, ..
    } = &args.action
    {
        if ids.is_empty() {
            return Err(OpsError::usage(
                "name the dead letters to replay, or pass --all",
            ));
        }
    }
    if let DlqAction::List { limit: 0, .. } = &args.action {
        return Err(OpsError::usage("--limit must be at least 1"));
    }
    let target = args.target.open(settings).await?;
    match args.action {
        DlqAction::List { queue, limit } => list(&target, queue, limit, format, style, out).await,
        DlqAction::Show { id, queue } => show(&target, queue, &id, format, style, out).await,
        DlqAction::Replay { ids, all, queue } => {
            replay(&target, queue, ids, all, format, out).await
        }
    }
}

fn queues(target: &Target, only: Option<QueueName>) -> Vec<(QueueName, Arc<dyn Queue>)> {
    [(QueueName::Sync, target.queue.clone())]
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .collect()
}

fn as_json(queue: QueueName, d: &DeadLetter) -> serde_json::Value {
    json!({
        "queue": queue.as_str(),
        "id": d.id,
        "reason": d.reason,
        "receive_count": d.receive_count,
        "failed_at": d.failed_at.map(rfc3339),
        "body": d.body,
        "attributes": d.attributes,
    })
}

async fn list(
    target: &Target,
    only: Option<QueueName>,
    limit: usize,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let mut found = Vec::new();
    for (name, queue) in queues(target, only) {
        for d in queue.list_dead_letters(limit).await? {
            found.push((name, d));
        }
    }
    match format {
        Format::Json => {
            let items: Vec<_> = found.iter().map(|(q, d)| as_json(*q, d)).collect();
            write_json(out, &items)?;
        }
        Format::Table if found.is_empty() => writeln!(out, "no dead letters")?,
        Format::Table => {
            let mut table = Table::new(&["QUEUE", "ID", "RECEIVES", "FAILED AT", "REASON", "BODY"]);
            for (q, d) in &found {
                table.row(vec![
                    q.as_str().to_string(),
                    d.id.clone(),
                    d.receive_count.to_string(),
                    d.failed_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                    clip(&d.reason, 60),
                    clip(&d.body, 60),
                ]);
            }
            table.write(out, style)?;
            writeln!(out, "{} dead letter(s)", found.len())?;
        }
    }
    Ok(())
}

async fn show(
    target: &Target,
    only: Option<QueueName>,
    id: &str,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    for (name, queue) in queues(target, only) {
        let letters = queue.list_dead_letters(SCAN_LIMIT).await?;
        let Some(d) = letters.into_iter().find(|d| d.id == id) else {
            continue;
        };
        match format {
            Format::Json => write_json(out, &as_json(name, &d))?,
            Format::Table => {
                let body = serde_json::from_str::<serde_json::Value>(&d.body)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| d.body.clone());
                let mut pairs = vec![
                    ("queue", name.as_str().to_string()),
                    ("id", d.id.clone()),
                    ("reason", d.reason.clone()),
                    ("receives", d.receive_count.to_string()),
                    (
                        "failed at",
                        d.failed_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                    ),
                ];
                for (k, v) in &d.attributes {
                    pairs.push(("attribute", format!("{k}={v}")));
                }
                write_pairs(out, &pairs, style)?;
                writeln!(out, "body:\n{body}")?;
            }
        }
        return Ok(());
    }
    Err(OpsError::failed(format!(
        "no dead letter {id} in {}",
        target.label
    )))
}

async fn replay(
    target: &Target,
    only: Option<QueueName>,
    ids: Vec<String>,
    all: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let mut moved_per_queue = Vec::new();
    let mut missing: Vec<String> = ids.clone();
    for (name, queue) in queues(target, only) {
        let moved = if all {
            queue.replay_dead_letters(None).await?
        } else {
            // Each queue replays only the ids it holds; the rest are someone else's or unknown.
            let held: Vec<String> = queue
                .list_dead_letters(SCAN_LIMIT)
                .await?
                .into_iter()
                .map(|d| d.id)
                .filter(|id| ids.contains(id))
                .collect();
            missing.retain(|id| !held.contains(id));
            if held.is_empty() {
                0
            } else {
                queue.replay_dead_letters(Some(&held)).await?
            }
        };
        moved_per_queue.push((name, moved));
    }
    let total: usize = moved_per_queue.iter().map(|(_, n)| n).sum();
    match format {
        Format::Json => {
            let per_queue: serde_json::Map<String, serde_json::Value> = moved_per_queue
                .iter()
                .map(|(q, n)| (q.as_str().to_string(), json!(n)))
                .collect();
            write_json(
                out,
                &json!({"moved": total, "per_queue": per_queue, "not_found": missing}),
            )?;
        }
        Format::Table => {
            let detail: Vec<String> = moved_per_queue
                .iter()
                .map(|(q, n)| format!("{}: {n}", q.as_str()))
                .collect();
            writeln!(
                out,
                "moved {total} dead letter(s) back to their queue ({})",
                detail.join(", ")
            )?;
            if !missing.is_empty() {
                writeln!(out, "not found: {}", missing.join(", "))?;
            }
        }
    }
    if all || missing.is_empty() {
        Ok(())
    } else {
        Err(OpsError::failed(format!(
            "{} of the named dead letters were not found",
            missing.len()
        )))
    }
}
