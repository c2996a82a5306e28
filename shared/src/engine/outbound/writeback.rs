//! What the connector writes on the opportunity itself: the referral id and link, the
//! checkmark on the name and the audit column. None of these is a mapped outbound value,
//! so the write does not change the row's outbound fingerprint.

use serde_json::{Map, Value};

use crate::dataverse::{DataverseError, Opportunity};
use crate::engine::{Engine, SyncError};
use crate::mapping::with_checkmark;

/// Tries of an If-Match write lost to a concurrent CRM edit before giving up for now.
const WRITE_ATTEMPTS: usize = 3;

/// The columns that show a successful sync, leaving out those already right: the name
/// with ✔ (when the option is on) and an empty audit column.
pub(super) fn success_columns(engine: &Engine, opp: &Opportunity) -> Map<String, Value> {
    let mut changes = Map::new();
    if engine.options.checkmark {
        if let Some(name) = &opp.name {
            let marked = with_checkmark(name, true);
            if *name != marked {
                changes.insert("name".into(), Value::String(marked));
            }
        }
    }
    let audit = &engine.columns.audit;
    if opp.column(audit).is_some_and(|v| v.as_str() != Some("")) {
        changes.insert(audit.clone(), Value::Null);
    }
    changes
}

/// The columns that show a failed sync: the service's error text in the audit column and
/// the name with ✘ (when the option is on); only those not already showing it.
pub(super) fn failure_columns(
    engine: &Engine,
    opp: &Opportunity,
    error: &str,
) -> Map<String, Value> {
    let mut changes = Map::new();
    if engine.options.checkmark {
        if let Some(name) = &opp.name {
            let marked = with_checkmark(name, false);
            if *name != marked {
                changes.insert("name".into(), Value::String(marked));
            }
        }
    }
    let audit = &engine.columns.audit;
    if opp.column(audit).and_then(Value::as_str) != Some(error) {
        changes.insert(audit.clone(), Value::String(error.to_string()));
    }
    changes
}

/// Writes `changes` with If-Match on the row's etag. A concurrent edit (412) does not
/// touch these columns, so the write is redone on the re-read row. Returns the row as
/// written (or `opp` itself when there was nothing to write).
pub(super) async fn write(
    engine: &Engine,
    opp: &Opportunity,
    changes: &Map<String, Value>,
) -> Result<Opportunity, SyncError> {
    if changes.is_empty() {
        return Ok(opp.clone());
    }
    let id = opp
        .opportunityid
        .as_deref()
        .ok_or_else(|| SyncError::permanent("opportunity row without opportunityid"))?;
    let mut etag = opp.etag.clone();
    let mut attempt = 1;
    loop {
        match engine
            .dv
            .update_opportunity(id, etag.as_deref(), changes)
            .await
        {
            Ok(row) => return Ok(row),
            Err(DataverseError::Conflict { .. }) if attempt < WRITE_ATTEMPTS => {
                etag = engine.dv.get_opportunity(id).await?.etag;
                attempt += 1;
            }
            // A won or lost row is read-only; its decoration stays as it was.
            Err(DataverseError::ReadOnly { .. }) => {
                tracing::info!(opportunity_id = id, "closed opportunity left undecorated");
                return Ok(opp.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
}
