//! Writing the opportunity. Won and lost rows are read-only in Dataverse, so the order
//! matters: reopen before updating a closed row, update before closing an open one. Every
//! update carries `If-Match` with the etag read; a 412 sends the reconcile back to fresh
//! reads ([`Step::Raced`]), never a resend of the body planned before it. Closing goes
//! through `WinOpportunity` / `LoseOpportunity`.

use serde_json::{json, Map, Value};

use crate::dataverse::{DataverseError, NewRow, Opportunity, RowWrite};
use crate::engine::Engine;
use crate::mapping::{solutions, TargetState};
use crate::partner_center::Referral;

use super::merge::CrmState;
use super::sides::closed_as;
use super::trail::Trail;
use super::Step;

fn raced(e: DataverseError) -> Step {
    match e {
        DataverseError::Conflict { .. } | DataverseError::ReadOnly { .. } => {
            Step::Raced(format!("the opportunity changed while it was written: {e}"))
        }
        other => Step::Failed(other.into()),
    }
}

/// Creates the opportunity `id` (always open: Dataverse refuses `statecode` on create),
/// with the customer rows it binds (`parties`) in the same change set, then closes it when
/// the referral is closed. `None` when a row with that id exists already (an earlier try
/// made it): the caller reads and reconciles it.
pub(super) async fn create(
    engine: &Engine,
    id: &str,
    mut body: Map<String, Value>,
    parties: Vec<NewRow>,
    target: TargetState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Option<Opportunity>, Step> {
    if let TargetState::Open { statuscode } = target {
        body.insert("statuscode".into(), json!(statuscode));
    }
    let names = solutions::names_of(referral);
    let rows = engine
        .dv
        .plan_solution_rows(id, None, &mut body, &names)
        .await
        .map_err(|e| Step::Failed(e.into()))?;
    let made = if engine.dv.solutions_as_rows() {
        with_rows(engine, id, body, parties, rows, trail).await
    } else if parties.is_empty() {
        engine.dv.create_opportunity_with_id(id, &body).await
    } else {
        together(engine, id, body, parties, trail).await
    };
    let opp = match made {
        Ok(opp) => opp,
        Err(DataverseError::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(Step::Failed(e.into())),
    };
    trail.crm_step("create_opportunity");
    match target {
        TargetState::Open { .. } => Ok(Some(opp)),
        _ => close(engine, id, target, referral, trail).await.map(Some),
    }
}

/// The customer rows and the opportunity in one change set. When it fails with 412, an
/// earlier try made some of them (its answer was lost, or a crash came between): they are
/// then made one by one, each taking an existing row as made.
async fn together(
    engine: &Engine,
    id: &str,
    body: Map<String, Value>,
    parties: Vec<NewRow>,
    trail: &mut Trail,
) -> Result<Opportunity, DataverseError> {
    let dv = &engine.dv;
    let mut rows = parties.clone();
    rows.push(NewRow::opportunity(id, body.clone()));
    match dv.create_together(&rows).await {
        Ok(mut answers) => {
            for row in &parties {
                trail.note(format!("created {} {}", row.entity, row.id));
            }
            match answers.pop().flatten() {
                Some(v) => serde_json::from_value(v).map_err(|e| DataverseError::Malformed {
                    call: "create rows together".into(),
                    reason: e.to_string(),
                }),
                None => dv.get_opportunity(id).await,
            }
        }
        Err(DataverseError::Conflict { .. }) => {
            for row in &parties {
                match dv.create_row(row).await {
                    Ok(_) => trail.note(format!("created {} {}", row.entity, row.id)),
                    Err(DataverseError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            dv.create_opportunity_with_id(id, &body).await
        }
        Err(e) => Err(e),
    }
}

/// [`together`] when solutions are rows: the customer rows, the opportunity and its
/// solution rows in one change set, read back in the same `$batch`.
async fn with_rows(
    engine: &Engine,
    id: &str,
    body: Map<String, Value>,
    parties: Vec<NewRow>,
    rows: Vec<RowWrite>,
    trail: &mut Trail,
) -> Result<Opportunity, DataverseError> {
    let dv = &engine.dv;
    let none = Map::new();
    let mut creates = parties.clone();
    creates.push(NewRow::opportunity(id, body.clone()));
    match dv
        .write_opportunity_rows(id, None, &none, &rows, &creates)
        .await
    {
        Ok(opp) => {
            for row in &parties {
                trail.note(format!("created {} {}", row.entity, row.id));
            }
            Ok(opp)
        }
        Err(DataverseError::Conflict { .. }) => {
            for row in &parties {
                match dv.create_row(row).await {
                    Ok(_) => trail.note(format!("created {} {}", row.entity, row.id)),
                    Err(DataverseError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let opp = NewRow::opportunity(id, body);
            dv.write_opportunity_rows(id, None, &none, &rows, &[opp])
                .await
        }
        Err(e) => Err(e),
    }
}

/// Brings `current` (just read) to `state` and writes `body` on it. A row that stays
/// closed is read-only: nothing is written and it comes back as it was.
pub(super) async fn apply(
    engine: &Engine,
    current: &Opportunity,
    body: Map<String, Value>,
    state: CrmState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Opportunity, Step> {
    let id = current.opportunityid.clone().unwrap_or_default();
    let closed = closed_as(current).is_some();
    let etag = current.etag.clone().unwrap_or_else(|| "*".into());
    let target = match state {
        CrmState::Keep if closed => {
            if !body.is_empty() {
                trail.note(
                    "the opportunity is closed: its columns are read-only and were left alone",
                );
            }
            return Ok(current.clone());
        }
        CrmState::Keep => None,
        CrmState::Move(t) => Some(t),
    };
    let mut etag = etag;
    let mut body = body;
    if closed {
        let reopened = engine
            .dv
            .reopen_opportunity_if(&id, &etag)
            .await
            .map_err(raced)?;
        trail.crm_step("reopen");
        etag = reopened.etag.unwrap_or_else(|| "*".into());
        if let Some(TargetState::Open { statuscode }) = target {
            body.insert("statuscode".into(), json!(statuscode));
        }
    }
    let names = solutions::names_of(referral);
    let rows = engine
        .dv
        .plan_solution_rows(&id, Some(current), &mut body, &names)
        .await
        .map_err(|e| Step::Failed(e.into()))?;
    let mut row = current.clone();
    if !body.is_empty() || !rows.is_empty() {
        let written = if rows.is_empty() {
            engine.dv.update_opportunity(&id, Some(&etag), &body).await
        } else {
            engine
                .dv
                .write_opportunity_rows(&id, Some(&etag), &body, &rows, &[])
                .await
        };
        row = written.map_err(raced)?;
        trail.crm_step("update_opportunity");
    }
    match target {
        Some(t @ (TargetState::Won { .. } | TargetState::Lost { .. })) => {
            close(engine, &id, t, referral, trail).await
        }
        _ => Ok(row),
    }
}

async fn close(
    engine: &Engine,
    id: &str,
    target: TargetState,
    referral: &Referral,
    trail: &mut Trail,
) -> Result<Opportunity, Step> {
    let subject = close_subject(referral);
    let dv = &engine.dv;
    let closed = match target {
        TargetState::Won { statuscode } => {
            trail.crm_step("win");
            dv.win_opportunity(id, &subject, statuscode).await
        }
        TargetState::Lost { statuscode } => {
            trail.crm_step("lose");
            dv.lose_opportunity(id, &subject, statuscode).await
        }
        TargetState::Open { .. } => Ok(()),
    };
    closed.map_err(|e| Step::Failed(e.into()))?;
    // The close actions return nothing; the crosswalk needs the row's new etag and state.
    engine
        .dv
        .get_opportunity(id)
        .await
        .map_err(|e| Step::Failed(e.into()))
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
