//! Dataverse changes since the stored delta link -> outbound messages.
//!
//! At-least-once: the new delta link (or watermark) is stored only after every message is
//! queued, so a poll that dies midway is read again in full by the next one. With change
//! tracking a poll with no changes costs one request; without it (the table's "Track
//! changes" is off) the poller falls back to `modifiedon ge watermark`, which cannot see
//! deletes. Once in watermark mode it stays there; to switch after enabling change tracking,
//! reset the state under [`DELTA_STATE_KEY`] to `{}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::ColumnNames;
use crate::dataverse::model::Opportunity;
use crate::dataverse::{DataverseClient, DataverseError};
use crate::engine::disposition::queued;
use crate::engine::messages::SyncMessage;
use crate::engine::SyncError;
use crate::queue::{OutMessage, Queue};
use crate::store::{Store, StoreError};
use crate::telemetry::{self, Source};

/// Sync-state key of the opportunity delta link (or `modifiedon` watermark).
pub const DELTA_STATE_KEY: &str = "outbound/opportunity-delta";

/// The most messages one queue batch may carry (an SQS limit).
const BATCH: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub enqueued: usize,
    pub deleted: usize,
    /// The stored delta link had expired (or there was none) and a full read was made.
    pub full_resync: bool,
}

/// The value stored under [`DELTA_STATE_KEY`]: one of the two cursors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
    /// `modifiedon` of the newest row seen, when change tracking is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// `id@version` of the rows at exactly the watermark, already handled (the `ge` query
    /// returns them again; `modifiedon` has whole seconds, so an edit can share it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_watermark: Vec<String>,
}

pub async fn poll_opportunities(
    dv: &DataverseClient,
    store: &dyn Store,
    outbound: &dyn Queue,
    columns: &ColumnNames,
) -> Result<PollReport, SyncError> {
    let cursor = Cursor::load(store, DELTA_STATE_KEY).await?;
    let state = &cursor.state;
    let (report, next) = if state.delta_link.is_none() && state.watermark.is_some() {
        poll_modified(dv, outbound, columns, state).await?
    } else {
        match poll_delta(dv, store, outbound, columns, state.delta_link.as_deref()).await {
            Err(PollFailure::TrackingOff) => {
                tracing::warn!(
                    "change tracking is off for opportunities; polling on modifiedon (deletes are not seen)"
                );
                poll_modified(dv, outbound, columns, &DeltaState::default()).await?
            }
            Err(PollFailure::Sync(e)) => return Err(e),
            Ok(done) => done,
        }
    };

    cursor.save(store, &next).await?;
    telemetry::record::poll_done(Source::OpportunityPoll, report.enqueued, None);
    tracing::info!(
        enqueued = report.enqueued,
        deleted = report.deleted,
        full = report.full_resync,
        "opportunity poll done"
    );
    Ok(report)
}

/// A poll's cursor as stored: the value read, its version, and the state parsed from it.
pub(crate) struct Cursor {
    key: &'static str,
    stored: Option<(String, u64)>,
    pub state: DeltaState,
}

impl Cursor {
    pub(crate) async fn load(store: &dyn Store, key: &'static str) -> Result<Cursor, StoreError> {
        let stored = store.get_state(key).await?;
        let state = match &stored {
            Some((value, _)) => serde_json::from_str::<DeltaState>(value).unwrap_or_else(|e| {
                // A full read is always safe (outbound sync skips what it already wrote).
                tracing::warn!(key, error = %e, "stored poll state unreadable; doing a full read");
                DeltaState::default()
            }),
            None => DeltaState::default(),
        };
        Ok(Cursor { key, stored, state })
    }

    /// Stores `next` (JSON) unless it is what was read. Conditional on the version read: a
    /// concurrent poll that got here first wins, and ours fails to be retried.
    pub(crate) async fn save(&self, store: &dyn Store, next: &str) -> Result<(), StoreError> {
        if self.stored.as_ref().map(|(v, _)| v.as_str()) != Some(next) {
            let version = self.stored.as_ref().map(|(_, v)| *v);
            store.put_state(self.key, next, version).await?;
        }
        Ok(())
    }
}

/// How a change-tracking poll fails: the table's tracking is off (poll on `modifiedon`), or
/// as any sync step does.
pub(crate) enum PollFailure {
    TrackingOff,
    Sync(SyncError),
}

impl From<DataverseError> for PollFailure {
    fn from(e: DataverseError) -> Self {
        match e {
            DataverseError::TrackingOff { .. } => PollFailure::TrackingOff,
            other => PollFailure::Sync(other.into()),
        }
    }
}

impl From<SyncError> for PollFailure {
    fn from(e: SyncError) -> Self {
        PollFailure::Sync(e)
    }
}

impl From<StoreError> for PollFailure {
    fn from(e: StoreError) -> Self {
        PollFailure::Sync(e.into())
    }
}

/// Change tracking: queue the flagged upserts and the deletes of linked rows.
async fn poll_delta(
    dv: &DataverseClient,
    store: &dyn Store,
    outbound: &dyn Queue,
    columns: &ColumnNames,
    delta_link: Option<&str>,
) -> Result<(PollReport, String), PollFailure> {
    let select = [
        "opportunityid",
        "modifiedon",
        columns.sync_flag.as_str(),
        columns.referral_id.as_str(),
    ];
    let set = dv.changes_or_resync(delta_link, &select).await?;
    let mut messages: Vec<SyncMessage> = set
        .upserts
        .iter()
        .filter(|o| wants_sync(o, columns))
        .filter_map(upsert_message)
        .collect();
    let mut deleted = 0;
    for id in &set.deleted {
        // A delete matters only for an opportunity that is linked to a referral.
        if store.get_link_by_opportunity(id).await?.is_some() {
            let mut message = SyncMessage::for_opportunity(id, None);
            message.deleted = true;
            messages.push(message);
            deleted += 1;
        }
    }
    send_all(outbound, &messages).await?;
    let next = DeltaState {
        delta_link: Some(set.delta_link),
        ..DeltaState::default()
    };
    let report = PollReport {
        enqueued: messages.len(),
        deleted,
        full_resync: set.full,
    };
    Ok((report, to_json(&next)))
}

/// `modifiedon ge watermark`, skipping the rows at the watermark that were already queued.
async fn poll_modified(
    dv: &DataverseClient,
    outbound: &dyn Queue,
    columns: &ColumnNames,
    state: &DeltaState,
) -> Result<(PollReport, String), SyncError> {
    let mark = state.watermark.as_deref().and_then(parse_time);
    let rows = dv
        .modified_since(mark.unwrap_or(OffsetDateTime::UNIX_EPOCH))
        .await?;
    let (fresh, next) = past_watermark(state, &rows, |row| {
        let id = row.opportunityid.as_deref()?;
        let modified = row.modifiedon.as_deref().and_then(parse_time)?;
        Some((row_key(id, row), modified))
    });
    let messages: Vec<SyncMessage> = fresh
        .into_iter()
        .filter(|row| wants_sync(row, columns))
        .filter_map(upsert_message)
        .collect();
    send_all(outbound, &messages).await?;
    let report = PollReport {
        enqueued: messages.len(),
        deleted: 0,
        full_resync: mark.is_none(),
    };
    Ok((report, to_json(&next)))
}

/// The rows of a `modifiedon ge watermark` read not yet handled, and the cursor after them.
/// `identity` gives a row's `id@version` and `modifiedon` (rows without are passed over).
pub(crate) fn past_watermark<'a, T>(
    state: &DeltaState,
    rows: &'a [T],
    identity: impl Fn(&T) -> Option<(String, OffsetDateTime)>,
) -> (Vec<&'a T>, DeltaState) {
    let mark = state.watermark.as_deref().and_then(parse_time);
    let mut newest = mark;
    let mut at_newest: Vec<String> = state.at_watermark.clone();
    let mut fresh = Vec::new();
    for row in rows {
        let Some((key, modified)) = identity(row) else {
            continue;
        };
        let seen = Some(modified) == mark && state.at_watermark.contains(&key);
        if !seen {
            fresh.push(row);
        }
        if newest.is_none_or(|n| modified > n) {
            newest = Some(modified);
            at_newest.clear();
        }
        if Some(modified) == newest && !at_newest.contains(&key) {
            at_newest.push(key);
        }
    }
    let next = DeltaState {
        delta_link: None,
        watermark: Some(
            newest
                .map(format_time)
                .unwrap_or_else(|| format_time(OffsetDateTime::UNIX_EPOCH)),
        ),
        at_watermark: at_newest,
    };
    (fresh, next)
}

/// A row's identity at one version: a later edit within the same second differs.
fn row_key(id: &str, row: &Opportunity) -> String {
    let version = match &row.versionnumber {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(v)) => v.to_string(),
        _ => row.etag.clone().unwrap_or_default(),
    };
    format!("{id}@{version}")
}

/// Flagged for sync, or already linked to a referral.
fn wants_sync(o: &Opportunity, columns: &ColumnNames) -> bool {
    let flagged = matches!(o.column(&columns.sync_flag), Some(Value::Bool(true)));
    let linked = o
        .column_str(&columns.referral_id)
        .is_some_and(|s| !s.trim().is_empty());
    flagged || linked
}

fn upsert_message(o: &Opportunity) -> Option<SyncMessage> {
    // The row's version: its etag (Dataverse's row version), else `versionnumber`.
    let version = o.etag.clone().or_else(|| {
        o.versionnumber.as_ref().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    });
    Some(
        SyncMessage::for_opportunity(o.opportunityid.as_deref()?, o.modifiedon.clone())
            .with_version(version),
    )
}

pub(crate) async fn send_all(
    outbound: &dyn Queue,
    messages: &[SyncMessage],
) -> Result<(), SyncError> {
    let out: Vec<OutMessage> = messages.iter().map(queued).collect();
    for chunk in out.chunks(BATCH) {
        outbound.send_batch(chunk).await?;
    }
    Ok(())
}

pub(crate) fn to_json(state: &DeltaState) -> String {
    serde_json::to_string(state).expect("plain struct serializes")
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}
