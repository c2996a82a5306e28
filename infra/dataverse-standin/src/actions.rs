//! Unbound actions and functions: `WinOpportunity`, `LoseOpportunity` and `WhoAmI`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::odata_error::ApiError;
use crate::state::{table_def, today_text, State};
use crate::writes::{changes_from_body, status_allowed};

/// Closes an opportunity as won (`won`) or lost: checks the status reason belongs to the
/// target state, sets state, status and `actualclosedate`, and records an opportunityclose.
pub fn close(state: &State, body: Map<String, Value>, won: bool) -> Result<Response, ApiError> {
    let target_state = if won { 1 } else { 2 };
    let status = body
        .get("Status")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("The parameter 'Status' is required."))?;
    let mut close = match body.get("OpportunityClose") {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "The parameter 'OpportunityClose' is required.",
            ))
        }
    };
    let label = if won { "Won" } else { "Lost" };
    if !status_allowed(target_state, status) {
        return Err(ApiError::bad_request(format!(
            "{status} is not a valid status code for state code OpportunityState.{label}"
        )));
    }
    let closes = table_def("opportunitycloses").expect("known set");
    let mut inner = state.lock();
    let changes = changes_from_body(&inner, closes, std::mem::take(&mut close), None)?;
    let opportunity_id = changes
        .get("_opportunityid_value")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request("OpportunityClose needs 'opportunityid@odata.bind'.")
        })?;
    let row = &inner.table("opportunities").rows[&opportunity_id];
    if row.data.get("statecode").and_then(Value::as_i64) != Some(0) {
        return Err(ApiError::bad_request(format!(
            "Cannot close the opportunity: it is already closed (read-only). Opportunity With Id = {opportunity_id}"
        )));
    }
    let close_date = changes
        .get("actualend")
        .and_then(Value::as_str)
        .and_then(|s| s.get(..10))
        .map(str::to_string)
        .unwrap_or_else(today_text);
    let mut update = Map::new();
    update.insert("statecode".into(), json!(target_state));
    update.insert("statuscode".into(), json!(status));
    update.insert("actualclosedate".into(), json!(close_date));
    inner.update_row("opportunities", &opportunity_id, update);
    let stored: Map<String, Value> = changes.into_iter().filter(|(_, v)| !v.is_null()).collect();
    inner.insert_row(
        "opportunitycloses",
        uuid::Uuid::new_v4().to_string(),
        stored,
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub fn who_am_i(state: &State) -> Response {
    Json(json!({
        "@odata.context": state.api_url("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"),
        "BusinessUnitId": "00000000-0000-0000-0000-00000000b0b0",
        "UserId": state.config.user_id,
        "OrganizationId": "00000000-0000-0000-0000-00000000a0a0",
    }))
    .into_response()
}
