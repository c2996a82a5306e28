//! What the connector writes on the opportunity about the pair itself, none of it a mapped
//! value: the referral id and link columns, the checkmark on the name (✔ in sync, ✘ when
//! Partner Center refused a write) and the audit column with Partner Center's error text.

use serde_json::{Map, Value};

use crate::dataverse::{DataverseError, Opportunity};
use crate::engine::referral_context::referral_link;
use crate::engine::{Engine, SyncError};
use crate::mapping::with_checkmark;

/// Tries of the decoration write lost to a concurrent CRM edit before giving up for now.
const WRITE_ATTEMPTS: usize = 3;

/// Longest error text put in the audit column (a text column has a maximum length).
const AUDIT_COLUMN_MAX: usize = 2000;

/// The columns a row in sync should show and does not yet: the referral id and link, the
/// name with ✔ (when the option is on), the visibility of the referral (`shared`: with
/// Microsoft's sellers) and an empty audit column, or in it why the seller's change of
/// the visibility was set back.
pub(super) fn in_sync(
    engine: &Engine,
    opp: &Opportunity,
    referral_id: &str,
    shared: bool,
) -> Map<String, Value> {
    let mut changes = Map::new();
    let cols = &engine.columns;
    let link = referral_link(referral_id);
    for (column, value) in [
        (&cols.referral_id, referral_id),
        (&cols.referral_link, &link),
    ] {
        if opp.column_str(column) != Some(value) {
            changes.insert(column.clone(), Value::String(value.to_string()));
        }
    }
    mark(engine, opp, true, &mut changes);
    let visibility = visibility(engine, opp, shared);
    let refused = visibility.as_ref().and_then(|v| v.refused);
    if let Some(v) = visibility {
        changes.insert(v.column, v.value);
    }
    match refused {
        Some(why) => {
            if opp.column(&cols.audit).and_then(Value::as_str) != Some(why) {
                changes.insert(cols.audit.clone(), Value::String(why.to_string()));
            }
        }
        None => {
            if opp
                .column(&cols.audit)
                .is_some_and(|v| v.as_str() != Some(""))
            {
                changes.insert(cols.audit.clone(), Value::Null);
            }
        }
    }
    changes
}

/// What the visibility column needs for a referral that is (or is not) `shared`; `None`
/// when it shows it, and on a won or lost row, which is read-only (its visibility stays as
/// it was closed, and polls of it stay echoes).
pub(super) fn visibility(
    engine: &Engine,
    opp: &Opportunity,
    shared: bool,
) -> Option<crate::mapping::VisibilityWrite> {
    match super::sides::closed_as(opp) {
        Some(_) => None,
        None => engine
            .mapping
            .visibility_write(opp, &engine.columns, shared),
    }
}

/// The columns that show Partner Center's refusal: its error text in the audit column and
/// the name with ✘ (when the option is on); only those not already showing it.
pub(super) fn refused(engine: &Engine, opp: &Opportunity, error: &str) -> Map<String, Value> {
    let text: String = error.chars().take(AUDIT_COLUMN_MAX).collect();
    let mut changes = Map::new();
    mark(engine, opp, false, &mut changes);
    let audit = &engine.columns.audit;
    if opp.column(audit).and_then(Value::as_str) != Some(text.as_str()) {
        changes.insert(audit.clone(), Value::String(text));
    }
    changes
}

fn mark(engine: &Engine, opp: &Opportunity, ok: bool, changes: &mut Map<String, Value>) {
    if !engine.options.checkmark {
        return;
    }
    if let Some(name) = &opp.name {
        let marked = with_checkmark(name, ok);
        if *name != marked {
            changes.insert("name".into(), Value::String(marked));
        }
    }
}

/// Writes the columns `plan` computes for the row, with `If-Match`. After a 412 the row is
/// read again and the columns computed again from it (a seller's rename in between keeps
/// its new name). Returns the row as written (or `opp` itself when nothing was needed).
pub(super) async fn write(
    engine: &Engine,
    opp: &Opportunity,
    plan: impl Fn(&Opportunity) -> Map<String, Value>,
) -> Result<Opportunity, SyncError> {
    let id = opp
        .opportunityid
        .clone()
        .ok_or_else(|| SyncError::permanent("opportunity row without opportunityid"))?;
    let mut row = opp.clone();
    for attempt in 1..=WRITE_ATTEMPTS {
        let changes = plan(&row);
        if changes.is_empty() {
            return Ok(row);
        }
        let etag = row.etag.clone().unwrap_or_else(|| "*".into());
        match engine
            .dv
            .update_opportunity(&id, Some(&etag), &changes)
            .await
        {
            Ok(written) => return Ok(written),
            Err(DataverseError::Conflict { .. }) if attempt < WRITE_ATTEMPTS => {
                row = engine.dv.get_opportunity(&id).await?;
            }
            // A won or lost row is read-only; its decoration stays as it was.
            Err(DataverseError::ReadOnly { .. }) => {
                tracing::info!(opportunity_id = %id, "closed opportunity left undecorated");
                return Ok(row);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::conflict(format!(
        "opportunity {id} kept changing while its sync columns were written"
    )))
}
