//! Opportunity updates guarded by `If-Match`. A 412 means another writer got in between our
//! read and our write: read again and redo, a few times, then leave it to a later retry.

use serde_json::{Map, Value};

use crate::dataverse::{DataverseClient, DataverseError, Opportunity};
use crate::engine::error::CONFLICT_RETRY;
use crate::engine::SyncError;

/// Attempts per sync before a busy row is left to the queue's retry.
pub(super) const MAX_ATTEMPTS: usize = 3;

pub(super) async fn update(
    dv: &DataverseClient,
    id: &str,
    etag: Option<String>,
    body: &Map<String, Value>,
) -> Result<Opportunity, SyncError> {
    let mut etag = etag;
    for attempt in 1..=MAX_ATTEMPTS {
        match dv.update_opportunity(id, etag.as_deref(), body).await {
            Ok(opp) => return Ok(opp),
            Err(DataverseError::Conflict { .. }) => {
                tracing::info!(
                    opportunity_id = id,
                    attempt,
                    "opportunity changed under us, reading it again"
                );
                let fresh = dv.get_opportunity(id).await?;
                if fresh.is_closed() {
                    return Err(closed_meanwhile(id));
                }
                etag = fresh.etag;
            }
            // Someone closed it after we read it open: the next attempt reads and reopens.
            Err(DataverseError::ReadOnly { .. }) => return Err(closed_meanwhile(id)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::retry(
        Some(CONFLICT_RETRY),
        format!("opportunity {id} kept changing; gave up after {MAX_ATTEMPTS} attempts"),
    ))
}

fn closed_meanwhile(id: &str) -> SyncError {
    SyncError::retry(
        Some(CONFLICT_RETRY),
        format!("opportunity {id} was closed while it was being updated"),
    )
}
