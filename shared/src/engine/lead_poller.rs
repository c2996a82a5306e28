//! Dynamics 365 leads flagged for sync, changed since the stored watermark -> messages of
//! their pairs (a lead's id is its pair key). Runs beside the opportunity poll when the
//! mapping lands leads as leads (`[lead] handling = "lead"`), and does nothing otherwise.
//!
//! `modifiedon ge watermark` (no change tracking: a deleted lead is not seen; its pair is
//! skipped when next reconciled). At-least-once as the opportunity poll: the watermark is
//! stored only after every message is queued.

use time::OffsetDateTime;

use crate::engine::messages::SyncMessage;
use crate::engine::poller::{parse_time, past_watermark, send_all, to_json, Cursor};
use crate::engine::{Engine, SyncError};
use crate::mapping::lead::LeadHandling;
use crate::queue::Queue;

/// Sync-state key of the lead watermark.
pub const LEAD_WATERMARK_KEY: &str = "outbound/lead-watermark";

/// Queues a message for each flagged lead changed since the last poll; how many.
pub async fn poll_leads(engine: &Engine, outbound: &dyn Queue) -> Result<usize, SyncError> {
    if engine.mapping.lead.handling != LeadHandling::Lead {
        return Ok(0);
    }
    let store = engine.store.as_ref();
    let cursor = Cursor::load(store, LEAD_WATERMARK_KEY).await?;
    let state = &cursor.state;
    let mark = state.watermark.as_deref().and_then(parse_time);
    let select = engine.mapping.lead_select(&engine.columns);
    let rows = engine
        .dv
        .flagged_leads_since(
            mark.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            &engine.columns.sync_flag,
            &select,
        )
        .await?;
    let (fresh, next) = past_watermark(state, &rows, |lead| {
        let id = lead.leadid.as_deref()?;
        let modified = lead.modifiedon.as_deref().and_then(parse_time)?;
        Some((
            format!("{id}@{}", lead.etag.clone().unwrap_or_default()),
            modified,
        ))
    });
    let messages: Vec<SyncMessage> = fresh
        .into_iter()
        .filter_map(|lead| {
            let id = lead.leadid.as_deref()?;
            Some(
                SyncMessage::for_opportunity(id, lead.modifiedon.clone())
                    .with_version(lead.etag.clone()),
            )
        })
        .collect();
    send_all(outbound, &messages).await?;
    cursor.save(store, &to_json(&next)).await?;
    tracing::info!(enqueued = messages.len(), "lead poll done");
    Ok(messages.len())
}
