//! The safety net for missed webhooks: referrals updated since the sweep watermark ->
//! inbound messages.
//!
//! The watermark is the newest `updatedDateTime` seen (Partner Center's clock, so our clock's
//! skew does not matter). Each sweep asks for `updatedDateTime ge watermark - overlap`, so a
//! referral whose update became visible a little late is still found; referrals inside the
//! overlap are queued again on the next sweep, which is harmless because inbound sync drops
//! versions it has already applied.
//!
//! The first sweep (no watermark yet) looks back over `overlap` only: importing every
//! existing referral is the operator's `backfill` command, not something a schedule should
//! start by surprise.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::engine::disposition::queued;
use crate::engine::messages::{Origin, SyncMessage};
use crate::engine::SyncError;
use crate::partner_center::{ListQuery, PartnerCenterClient};
use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry::{self, Source};

/// Sync-state key of the Partner Center sweep watermark.
pub const SWEEP_STATE_KEY: &str = "inbound/referral-watermark";

/// The most messages one queue batch may carry (an SQS limit).
const BATCH: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub enqueued: usize,
    pub pages: usize,
    pub watermark: Option<String>,
}

pub async fn sweep_referrals(
    pc: &PartnerCenterClient,
    store: &dyn Store,
    inbound: &dyn Queue,
    overlap: Duration,
) -> Result<SweepReport, SyncError> {
    sweep_referrals_paged(pc, store, inbound, overlap, None).await
}

/// [`sweep_referrals`] asking for `page_size` referrals a page (`None`: the service default).
pub async fn sweep_referrals_paged(
    pc: &PartnerCenterClient,
    store: &dyn Store,
    inbound: &dyn Queue,
    overlap: Duration,
    page_size: Option<u32>,
) -> Result<SweepReport, SyncError> {
    let stored = store.get_state(SWEEP_STATE_KEY).await?;
    let (old_mark, version) = match &stored {
        Some((value, version)) => (parse_mark(value), Some(*version)),
        None => (None, None),
    };
    let since = old_mark.unwrap_or_else(OffsetDateTime::now_utc) - overlap;
    let query = ListQuery {
        filter: Some(format!("updatedDateTime ge {}", rfc3339(since))),
        orderby: Some("updatedDateTime asc".into()),
        top: page_size,
        select: None,
    };

    let mut report = SweepReport::default();
    let mut newest: Option<(OffsetDateTime, String)> = None;
    let mut page = pc.list_first_page(&query).await?;
    loop {
        report.pages += 1;
        let mut messages = Vec::with_capacity(page.referrals.len());
        for referral in &page.referrals {
            let Some(id) = referral.id.clone().filter(|id| !id.is_empty()) else {
                tracing::warn!("listed referral without an id skipped");
                continue;
            };
            let changed_at = referral.updated_date_time.as_ref().map(|t| t.0.clone());
            if let Some(t) = referral
                .updated_date_time
                .as_ref()
                .and_then(|t| t.parse().ok())
            {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, rfc3339(t)));
                }
            }
            let message = SyncMessage::for_referral(store, &id, Origin::Referral, changed_at)
                .await?
                .with_version(referral.e_tag.clone());
            messages.push(queued(&message));
        }
        for chunk in messages.chunks(BATCH) {
            inbound.send_batch(chunk).await?;
        }
        report.enqueued += messages.len();
        match page.next_link.take() {
            Some(next) => page = pc.list_page(&next).await?,
            None => break,
        }
    }

    // Only after everything is queued: a sweep that dies midway is simply repeated.
    let new_mark = match (newest, old_mark) {
        (Some((t, text)), Some(old)) if t > old => Some(text),
        (Some((_, _)), Some(old)) => {
            report.watermark = Some(rfc3339(old));
            None
        }
        (Some((_, text)), None) => Some(text),
        // First sweep and nothing found: start from where it looked, so the next sweep
        // does not leave a gap between this one and its own look-back.
        (None, None) => Some(rfc3339(since)),
        (None, Some(old)) => {
            report.watermark = Some(rfc3339(old));
            None
        }
    };
    if let Some(mark) = new_mark {
        store.put_state(SWEEP_STATE_KEY, &mark, version).await?;
        report.watermark = Some(mark);
    }
    telemetry::record::poll_done(Source::ReferralSweep, report.enqueued, Some(report.pages));
    tracing::info!(
        enqueued = report.enqueued,
        pages = report.pages,
        watermark = report.watermark.as_deref().unwrap_or(""),
        "referral sweep done"
    );
    Ok(report)
}

fn parse_mark(value: &str) -> Option<OffsetDateTime> {
    match OffsetDateTime::parse(value.trim(), &Rfc3339) {
        Ok(t) => Some(t),
        Err(e) => {
            // An unreadable watermark must not stop the safety net: look back `overlap`.
            tracing::warn!(error = %e, "sweep watermark unreadable; starting afresh");
            None
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}
