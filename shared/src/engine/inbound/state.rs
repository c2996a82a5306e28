//! Moving the opportunity to the referral's state. Won and lost rows are read-only in
//! Dataverse, so the order matters: reopen before updating a closed row, and update before
//! closing an open one. Closing goes through `WinOpportunity` / `LoseOpportunity`.

use serde_json::{json, Map, Value};

use crate::dataverse::{DataverseClient, Opportunity};
use crate::engine::SyncError;
use crate::mapping::TargetState;
use crate::partner_center::Referral;

use super::trail::Trail;
use super::write;

/// Creates the opportunity (always open: Dataverse refuses `statecode` on create), then
/// closes it when the referral is closed. Returns the row as it stands afterwards.
pub(super) async fn create(
    dv: &DataverseClient,
    mut body: Map<String, Value>,
    target: TargetState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Opportunity, SyncError> {
    if let TargetState::Open { statuscode } = target {
        body.insert("statuscode".into(), json!(statuscode));
    }
    let opp = dv.create_opportunity(&body).await?;
    let id = opp
        .opportunityid
        .clone()
        .ok_or_else(|| SyncError::permanent("Dataverse created an opportunity without an id"))?;
    trail.opportunity(&id);
    trail.step("create_opportunity");
    match target {
        TargetState::Open { .. } => Ok(opp),
        _ => close(dv, &id, target, referral, trail).await,
    }
}

/// Brings an existing opportunity (`current`, just read) in line with the referral.
pub(super) async fn update(
    dv: &DataverseClient,
    current: Opportunity,
    body: &Map<String, Value>,
    target: TargetState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Opportunity, SyncError> {
    let id = current.opportunityid.clone().unwrap_or_default();
    let same_close = current.is_closed()
        && current.statecode == Some(target.statecode())
        && current.statuscode == Some(target.statuscode());
    if same_close {
        // Reopening only to edit and close again would rewrite the close date and history.
        trail.note("the opportunity is already closed as the referral is; its columns are read-only and were left alone");
        return Ok(current);
    }
    let mut etag = current.etag.clone();
    if current.is_closed() {
        etag = dv.reopen_opportunity(&id).await?.etag;
        trail.step("reopen");
    }
    let mut body = body.clone();
    if let TargetState::Open { statuscode } = target {
        if current.is_closed() {
            body.insert("statuscode".into(), json!(statuscode));
        }
    }
    let updated = write::update(dv, &id, etag, &body).await?;
    trail.step("update_opportunity");
    match target {
        TargetState::Open { .. } => Ok(updated),
        _ => close(dv, &id, target, referral, trail).await,
    }
}

async fn close(
    dv: &DataverseClient,
    id: &str,
    target: TargetState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Opportunity, SyncError> {
    let subject = close_subject(referral);
    match target {
        TargetState::Won { statuscode } => {
            dv.win_opportunity(id, &subject, statuscode).await?;
            trail.step("win");
        }
        TargetState::Lost { statuscode } => {
            dv.lose_opportunity(id, &subject, statuscode).await?;
            trail.step("lose");
        }
        TargetState::Open { .. } => {}
    }
    // The close actions return nothing; the crosswalk needs the row's new etag and state.
    Ok(dv.get_opportunity(id).await?)
}

/// The subject of the opportunity-close activity: Partner Center's reason when it gave one.
fn close_subject(referral: &Referral) -> String {
    let status = referral
        .substatus
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "Closed".into());
    match referral.status_reason.as_deref().map(str::trim) {
        Some(reason) if !reason.is_empty() => format!("Partner Center: {status} ({reason})"),
        _ => format!("Partner Center: {status}"),
    }
}
