//! `cosell backfill`: queue every existing referral (optionally only those updated since a
//! date) for an inbound sync. Pages are followed one at a time and the next page's link is
//! saved after each, so a rerun after an interruption continues where it stopped.

use std::io::Write;

use clap::Args;
use cosell::engine::disposition::queued;
use cosell::engine::wiring;
use cosell::engine::{Origin, SyncMessage};
use cosell::partner_center::{ListQuery, Page, PartnerCenterClient};
use cosell::queue::{OutMessage, Queue};
use cosell::store::{Store, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::error::OpsError;
use super::output::{write_json, Format, OutputArgs, Style};
use super::settings::Settings;
use super::since::{parse_since, rfc3339};
use super::target::TargetArgs;

/// Sync-state key of the backfill checkpoint.
pub const CHECKPOINT_KEY: &str = "backfill/checkpoint";

/// What is stored under [`CHECKPOINT_KEY`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The page to read next; `None` once the backfill finished.
    pub next_link: Option<String>,
    /// The `--since` filter of the run this checkpoint belongs to (RFC 3339).
    pub since: Option<String>,
    /// Referrals queued so far by this run.
    pub enqueued: u64,
    pub pages: u64,
    pub updated_at: String,
}

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// Only referrals updated since then: 2026-01-31, 2026-01-31T12:00:00Z, or a duration (30d).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Start from the first page, ignoring a saved checkpoint.
    #[arg(long)]
    pub restart: bool,
    /// Referrals per page requested from Partner Center.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    enqueued: u64,
    pages: u64,
    resumed: bool,
    /// Over all runs of this backfill (including before a resume).
    total_enqueued: u64,
}

pub async fn run(
    args: BackfillArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, OffsetDateTime::now_utc()).map(rfc3339))
        .transpose()
        .map_err(|e| OpsError::usage(format!("--since: {e}")))?;
    let config = settings.config()?;
    let target = args.target.open(settings).await?;
    let http = wiring::http_client(&config).map_err(|e| OpsError::failed(e.to_string()))?;
    let pc = wiring::partner_center_client(&config, &http, None);
    let job = Backfill {
        pc: &pc,
        store: target.store.as_ref(),
        queue: target.queue.as_ref(),
        since,
        restart: args.restart,
        page_size: args.page_size,
        style,
    };
    let report = job.run().await?;
    match args.output.output {
        Format::Json => write_json(out, &report)?,
        Format::Table => {
            writeln!(
                out,
                "queued {} referral(s) from {} page(s){} for sync",
                report.enqueued,
                report.pages,
                if report.resumed {
                    " (resumed from the checkpoint)"
                } else {
                    ""
                }
            )?;
            if report.resumed {
                writeln!(
                    out,
                    "{} queued in all runs of this backfill",
                    report.total_enqueued
                )?;
            }
        }
    }
    Ok(())
}

struct Backfill<'a> {
    pc: &'a PartnerCenterClient,
    store: &'a dyn Store,
    queue: &'a dyn Queue,
    since: Option<String>,
    restart: bool,
    page_size: u32,
    style: &'a Style,
}

impl Backfill<'_> {
    async fn run(&self) -> Result<Report, OpsError> {
        let (saved, mut version) = match self.store.get_state(CHECKPOINT_KEY).await? {
            Some((text, v)) => {
                let ck: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                    OpsError::failed(format!(
                        "unreadable checkpoint {CHECKPOINT_KEY} ({e}); pass --restart"
                    ))
                })?;
                (Some(ck), Some(v))
            }
            None => (None, None),
        };
        let resume = saved.filter(|ck| !self.restart && ck.next_link.is_some());
        if let Some(ck) = &resume {
            if ck.since != self.since {
                return Err(OpsError::usage(format!(
                    "an interrupted backfill (--since {}) is waiting to be resumed; rerun it with the same --since, or pass --restart",
                    ck.since.as_deref().unwrap_or("none")
                )));
            }
        }
        let mut ck = resume.clone().unwrap_or(Checkpoint {
            since: self.since.clone(),
            ..Default::default()
        });
        let first_run_total = ck.enqueued;
        let bar = self.progress_bar();
        bar.set_position(ck.enqueued);

        let mut enqueued = 0u64;
        let mut pages = 0u64;
        let mut page = match ck.next_link.as_deref() {
            Some(link) => {
                let url = Url::parse(link).map_err(|e| {
                    OpsError::failed(format!(
                        "checkpoint holds a bad page link ({e}); pass --restart"
                    ))
                })?;
                self.pc.list_page(&url).await
            }
            None => self.pc.list_first_page(&self.query()).await,
        }
        .map_err(|e| interrupted(e.into(), enqueued, pages))?;
        loop {
            if let Some(total) = page.count {
                bar.set_length(total);
            }
            let n = self
                .enqueue(&page)
                .await
                .map_err(|e| interrupted(e, enqueued, pages))?;
            enqueued += n;
            pages += 1;
            bar.inc(n);
            ck.next_link = page.next_link.as_ref().map(Url::to_string);
            ck.enqueued += n;
            ck.pages += 1;
            ck.updated_at = rfc3339(OffsetDateTime::now_utc());
            version = Some(
                self.save(&ck, version)
                    .await
                    .map_err(|e| interrupted(e, enqueued, pages))?,
            );
            let Some(next) = page.next_link.take() else {
                break;
            };
            page = self
                .pc
                .list_page(&next)
                .await
                .map_err(|e| interrupted(e.into(), enqueued, pages))?;
        }
        bar.finish_and_clear();
        Ok(Report {
            enqueued,
            pages,
            resumed: resume.is_some(),
            total_enqueued: first_run_total + enqueued,
        })
    }

    fn query(&self) -> ListQuery {
        ListQuery {
            filter: self
                .since
                .as_ref()
                .map(|s| format!("updatedDateTime ge {s}")),
            top: Some(self.page_size),
            ..Default::default()
        }
    }

    fn progress_bar(&self) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if !self.style.progress {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} backfill {pos}/{len} referrals [{elapsed}] {wide_bar}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// Queues one message per referral of the page, under its pair's key; returns how many.
    async fn enqueue(&self, page: &Page) -> Result<u64, OpsError> {
        let mut messages: Vec<OutMessage> = Vec::with_capacity(page.referrals.len());
        for r in &page.referrals {
            let Some(id) = r.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) else {
                continue;
            };
            let changed_at = r.updated_date_time.as_ref().map(|t| t.0.clone());
            let message =
                SyncMessage::for_referral(self.store, id, Origin::Operator, changed_at).await?;
            messages.push(queued(&message));
        }
        // SQS takes at most 10 per batch.
        for chunk in messages.chunks(10) {
            self.queue.send_batch(chunk).await?;
        }
        Ok(messages.len() as u64)
    }

    async fn save(&self, ck: &Checkpoint, version: Option<u64>) -> Result<u64, OpsError> {
        let text = serde_json::to_string(ck).map_err(|e| OpsError::failed(e.to_string()))?;
        match self.store.put_state(CHECKPOINT_KEY, &text, version).await {
            Ok(v) => Ok(v),
            Err(StoreError::Conflict { .. }) => Err(OpsError::failed(
                "another backfill moved the checkpoint; is a second one running?",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

fn interrupted(e: OpsError, enqueued: u64, pages: u64) -> OpsError {
    OpsError::failed(format!(
        "backfill stopped after {enqueued} referral(s) from {pages} page(s): {e}\nrun the same command again to continue from the checkpoint"
    ))
}

/// The saved checkpoint, for `status`-like reporting and tests.
pub async fn checkpoint(store: &dyn Store) -> Result<Option<Checkpoint>, OpsError> {
    match store.get_state(CHECKPOINT_KEY).await? {
        Some((text, _)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| OpsError::failed(format!("unreadable checkpoint: {e}"))),
        None => Ok(None),
    }
}
