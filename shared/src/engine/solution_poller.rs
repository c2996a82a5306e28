//! Solution rows changed in the CRM -> messages of their opportunities, for the table
//! layout (`[solutions] layout = "table"`). Adding or removing a row leaves the
//! opportunity's own columns and `modifiedon` as they were, so the opportunity poll does
//! not see it; this poll does, and the pair's reconcile reads the opportunity with its rows
//! (a row change that changes no solution is an echo there, and costs that one read).
//!
//! Change tracking on the child table gives deletes as tombstones that carry only the row's
//! id, so each row seen is remembered with its opportunity (sync state
//! `solution-row/<row id>`), written when the row is first seen. A tombstone of a row never
//! seen belongs to a row made and removed between two polls: nothing to send. With the
//! child table's change tracking off the poll falls back to `modifiedon`, which cannot see
//! deletes. At-least-once as the opportunity poll: the cursor is stored only after every
//! message is queued.

use std::collections::BTreeSet;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use time::OffsetDateTime;

use crate::dataverse::{DataverseClient, SolutionRowSeen};
use crate::engine::messages::SyncMessage;
use crate::engine::poller::{
    parse_time, past_watermark, send_all, to_json, Cursor, DeltaState, PollFailure,
};
use crate::engine::SyncError;
use crate::queue::Queue;
use crate::store::{Store, StoreError};

/// Sync-state key of the solution rows' delta link (or `modifiedon` watermark).
pub const SOLUTION_ROWS_STATE_KEY: &str = "outbound/solution-rows-delta";

/// Prefix of the sync-state keys that remember a row's opportunity.
pub const ROW_STATE_PREFIX: &str = "solution-row/";

/// Store calls in flight at once while rows are remembered (a full read sees every row).
const IN_FLIGHT: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolutionPollReport {
    /// Opportunities queued (each once, however many of its rows changed).
    pub enqueued: usize,
    /// Rows seen changed, and deleted.
    pub rows: usize,
    pub deleted_rows: usize,
    /// Every row was read (the first poll, or after the delta link expired).
    pub full: bool,
}

/// Queues a message for every opportunity whose solution rows changed since the last poll.
/// Does nothing in the column layout.
pub async fn poll_solution_rows(
    dv: &DataverseClient,
    store: &dyn Store,
    outbound: &dyn Queue,
) -> Result<SolutionPollReport, SyncError> {
    if !dv.tracks_solution_rows() {
        return Ok(SolutionPollReport::default());
    }
    let cursor = Cursor::load(store, SOLUTION_ROWS_STATE_KEY).await?;
    let state = &cursor.state;
    let (report, next) = if state.delta_link.is_none() && state.watermark.is_some() {
        poll_modified(dv, outbound, state).await?
    } else {
        match poll_tracked(dv, store, outbound, state.delta_link.as_deref()).await {
            Err(PollFailure::TrackingOff) => {
                tracing::warn!(
                    "change tracking is off for the solution rows; polling on modifiedon (removed rows are not seen)"
                );
                poll_modified(dv, outbound, &DeltaState::default()).await?
            }
            Err(PollFailure::Sync(e)) => return Err(e),
            Ok(done) => done,
        }
    };
    cursor.save(store, &next).await?;
    tracing::info!(
        enqueued = report.enqueued,
        rows = report.rows,
        deleted_rows = report.deleted_rows,
        full = report.full,
        "solution row poll done"
    );
    Ok(report)
}

/// Change tracking on the child table: the rows' opportunities, a removed row's by what was
/// remembered of it.
async fn poll_tracked(
    dv: &DataverseClient,
    store: &dyn Store,
    outbound: &dyn Queue,
    delta_link: Option<&str>,
) -> Result<(SolutionPollReport, String), PollFailure> {
    let set = dv.solution_row_changes(delta_link).await?;
    let mut opportunities = remember(store, &set.upserts).await?;
    for row in &set.deleted {
        if let Some((opportunity, _)) = store.get_state(&row_key(row)).await? {
            opportunities.insert(opportunity);
        }
    }
    let messages = messages(opportunities);
    send_all(outbound, &messages).await?;
    let next = DeltaState {
        delta_link: Some(set.delta_link),
        ..DeltaState::default()
    };
    let report = SolutionPollReport {
        enqueued: messages.len(),
        rows: set.upserts.len(),
        deleted_rows: set.deleted.len(),
        full: set.full,
    };
    Ok((report, to_json(&next)))
}

/// `modifiedon ge watermark` on the child table (no deletes).
async fn poll_modified(
    dv: &DataverseClient,
    outbound: &dyn Queue,
    state: &DeltaState,
) -> Result<(SolutionPollReport, String), SyncError> {
    let mark = state.watermark.as_deref().and_then(parse_time);
    let rows = dv
        .solution_rows_modified_since(mark.unwrap_or(OffsetDateTime::UNIX_EPOCH))
        .await?;
    let (fresh, next) = past_watermark(state, &rows, |row| {
        let modified = row.modifiedon.as_deref().and_then(parse_time)?;
        let etag = row.etag.as_deref().unwrap_or_default();
        Some((format!("{}@{etag}", row.row_id), modified))
    });
    let messages = messages(
        fresh
            .iter()
            .filter_map(|r| r.opportunity_id.clone())
            .collect(),
    );
    send_all(outbound, &messages).await?;
    let report = SolutionPollReport {
        enqueued: messages.len(),
        rows: fresh.len(),
        deleted_rows: 0,
        full: mark.is_none(),
    };
    Ok((report, to_json(&next)))
}

/// Remembers each row's opportunity (a conditional create, so a row seen before costs a
/// read as well); the opportunities of the rows.
async fn remember(
    store: &dyn Store,
    rows: &[SolutionRowSeen],
) -> Result<BTreeSet<String>, StoreError> {
    let owned: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| Some((r.row_id.clone(), r.opportunity_id.clone()?)))
        .collect();
    stream::iter(owned)
        .map(|(row, opportunity)| async move {
            remember_row(store, &row, &opportunity).await?;
            Ok::<_, StoreError>(opportunity)
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await
}

async fn remember_row(store: &dyn Store, row: &str, opportunity: &str) -> Result<(), StoreError> {
    let key = row_key(row);
    match store.put_state(&key, opportunity, None).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => match store.get_state(&key).await? {
            Some((known, _)) if known == opportunity => Ok(()),
            // Moved to another opportunity (or a concurrent poll): the newest read wins.
            Some((_, version)) => store
                .put_state(&key, opportunity, Some(version))
                .await
                .map(|_| ()),
            None => store.put_state(&key, opportunity, None).await.map(|_| ()),
        },
        Err(e) => Err(e),
    }
}

fn row_key(row: &str) -> String {
    format!("{ROW_STATE_PREFIX}{}", row.to_ascii_lowercase())
}

/// One message per opportunity, without a version: a row change leaves the opportunity's
/// version as it was, so the message must not be taken for one already queued.
fn messages(opportunities: BTreeSet<String>) -> Vec<SyncMessage> {
    opportunities
        .iter()
        .map(|id| SyncMessage::for_opportunity(id, None))
        .collect()
}
