//! The lead table's rules and the bound `QualifyLead` action
//! (`POST leads(<id>)/Microsoft.Dynamics.CRM.QualifyLead`).
//!
//! States and status reasons (the out-of-the-box lead): Open 0 (1 New, 2 Contacted),
//! Qualified 1 (3 Qualified), Disqualified 2 (4 Lost, 5 Cannot Contact, 6 No Longer
//! Interested, 7 Canceled). UNVERIFIED, and chosen strictly: a create may not set the state,
//! an update may disqualify or reactivate but not qualify (that is `QualifyLead`'s, which
//! also makes the rows), and a qualified or disqualified lead is read-only until reactivated.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::odata_error::ApiError;
use crate::state::{Row, State};

const OPEN: i64 = 0;
const QUALIFIED: i64 = 1;
const DISQUALIFIED: i64 = 2;

fn status_allowed(state: i64, status: i64) -> bool {
    matches!(
        (state, status),
        (OPEN, 1 | 2) | (QUALIFIED, 3) | (DISQUALIFIED, 4..=7)
    )
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

/// The state rules of a lead write (`existing` is `None` for a create).
pub fn lead_rules(
    changes: &mut Map<String, Value>,
    existing: Option<&Row>,
) -> Result<(), ApiError> {
    let new_state = int(changes.get("statecode"));
    let new_status = int(changes.get("statuscode"));
    let Some(row) = existing else {
        if changes.contains_key("statecode") {
            return Err(ApiError::bad_request(
                "The 'statecode' attribute is not valid for create (IsValidForCreate is false).",
            ));
        }
        let status = new_status.unwrap_or(1);
        if !status_allowed(OPEN, status) {
            return Err(ApiError::bad_request(format!(
                "{status} is not a valid status code for state code LeadState.Open"
            )));
        }
        changes.insert("statecode".into(), json!(OPEN));
        changes.insert("statuscode".into(), json!(status));
        return Ok(());
    };
    let current = int(row.data.get("statecode")).unwrap_or(OPEN);
    let id = row
        .data
        .get("leadid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match new_state {
        Some(QUALIFIED) => Err(ApiError::bad_request(
            "A lead is qualified with the QualifyLead action, not by setting its state.",
        )),
        Some(state @ (OPEN | DISQUALIFIED)) => {
            let status = new_status.unwrap_or(if state == OPEN { 1 } else { 4 });
            if !status_allowed(state, status) {
                return Err(ApiError::bad_request(format!(
                    "{status} is not a valid status code for state code {state} of lead"
                )));
            }
            if current == QUALIFIED && state == DISQUALIFIED {
                return Err(ApiError::bad_request(read_only(id)));
            }
            changes.insert("statuscode".into(), json!(status));
            Ok(())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "{other} is not a valid state code of lead"
        ))),
        None if current != OPEN => Err(ApiError::bad_request(read_only(id))),
        None => match new_status {
            Some(status) if !status_allowed(OPEN, status) => Err(ApiError::bad_request(format!(
                "{status} is not a valid status code for state code LeadState.Open"
            ))),
            _ => Ok(()),
        },
    }
}

/// Kept with "read-only" in it: the client keys its `ReadOnly` error on that text.
fn read_only(id: &str) -> String {
    format!("Cannot update a read-only entity: lead With Id = {id} is qualified or disqualified; reactivate it first.")
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    body.get(name)
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::bad_request(format!("The parameter '{name}' is required.")))
}

/// `(set, id)` of an entity reference parameter (`{"@odata.type": "...account", "accountid": ..}`).
fn reference(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<(&'static str, String)>, ApiError> {
    let Some(v) = body.get(name) else {
        return Ok(None);
    };
    let m = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be an entity reference")))?;
    for (set, key) in [
        ("accounts", "accountid"),
        ("contacts", "contactid"),
        ("transactioncurrencies", "transactioncurrencyid"),
    ] {
        if let Some(id) = m.get(key).and_then(Value::as_str) {
            return Ok(Some((set, id.to_ascii_lowercase())));
        }
    }
    Err(ApiError::bad_request(format!(
        "{name}: an entity reference needs '@odata.type' and its primary key"
    )))
}

fn copy(from: &Map<String, Value>, pairs: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (src, dst) in pairs {
        if let Some(v) = from.get(*src).filter(|v| !v.is_null()) {
            out.insert((*dst).to_string(), v.clone());
        }
    }
    out
}

/// `QualifyLead`: makes the account, contact and opportunity the parameters ask for, each
/// pointing back at the lead (`originatingleadid`), qualifies the lead, and answers with
/// references to what it made. The copied columns are the out-of-the-box lead mappings'
/// main ones (subject -> name, companyname -> account name, the address, the contact's).
pub fn qualify(
    state: &State,
    lead_id: &str,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    let create_account = flag(&body, "CreateAccount")?;
    let create_contact = flag(&body, "CreateContact")?;
    let create_opportunity = flag(&body, "CreateOpportunity")?;
    let status = body
        .get("Status")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("The parameter 'Status' is required."))?;
    if !status_allowed(QUALIFIED, status) {
        return Err(ApiError::bad_request(format!(
            "{status} is not a valid status code for state code LeadState.Qualified"
        )));
    }
    let customer = reference(&body, "OpportunityCustomerId")?;
    let currency = reference(&body, "OpportunityCurrencyId")?;
    let mut inner = state.lock();
    let lead = inner
        .table("leads")
        .rows
        .get(lead_id)
        .ok_or_else(|| ApiError::not_found("lead", lead_id))?
        .data
        .clone();
    if int(lead.get("statecode")) != Some(OPEN) {
        return Err(ApiError::bad_request(format!(
            "The lead With Id = {lead_id} is not open: only an open lead can be qualified."
        )));
    }
    if let Some((set, id)) = &customer {
        if !inner.exists(set, id) {
            return Err(ApiError::not_found(&set[..set.len() - 1], id));
        }
    }
    let origin = json!(lead_id);
    let mut made = Vec::new();
    let mut account_id = None;
    if create_account {
        let name = lead
            .get("companyname")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.trim().is_empty() {
            return Err(ApiError::bad_request(
                "An account cannot be created from a lead without a company name.",
            ));
        }
        let mut row = copy(
            &lead,
            &[
                ("companyname", "name"),
                ("address1_line1", "address1_line1"),
                ("address1_line2", "address1_line2"),
                ("address1_city", "address1_city"),
                ("address1_stateorprovince", "address1_stateorprovince"),
                ("address1_postalcode", "address1_postalcode"),
                ("address1_country", "address1_country"),
                ("telephone1", "telephone1"),
                ("websiteurl", "websiteurl"),
            ],
        );
        row.insert("_originatingleadid_value".into(), origin.clone());
        let id = uuid::Uuid::new_v4().to_string();
        inner.insert_row("accounts", id.clone(), row);
        made.push(json!({"@odata.type": "#Microsoft.Dynamics.CRM.account", "accountid": id}));
        account_id = Some(id);
    }
    let mut contact_id = None;
    if create_contact {
        let mut row = copy(
            &lead,
            &[
                ("firstname", "firstname"),
                ("lastname", "lastname"),
                ("emailaddress1", "emailaddress1"),
                ("telephone1", "telephone1"),
            ],
        );
        let full = format!(
            "{} {}",
            row.get("firstname")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            row.get("lastname")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        row.insert("fullname".into(), json!(full.trim()));
        if let Some(a) = &account_id {
            row.insert("_parentcustomerid_value".into(), json!(a));
        }
        row.insert("_originatingleadid_value".into(), origin.clone());
        let id = uuid::Uuid::new_v4().to_string();
        inner.insert_row("contacts", id.clone(), row);
        made.push(json!({"@odata.type": "#Microsoft.Dynamics.CRM.contact", "contactid": id}));
        contact_id = Some(id);
    }
    if create_opportunity {
        let mut row = copy(
            &lead,
            &[
                ("subject", "name"),
                ("description", "description"),
                ("estimatedamount", "estimatedvalue"),
                ("estimatedclosedate", "estimatedclosedate"),
            ],
        );
        let customer_id = customer
            .as_ref()
            .map(|(_, id)| id.clone())
            .or_else(|| account_id.clone())
            .or_else(|| contact_id.clone());
        if let Some(c) = customer_id {
            row.insert("_customerid_value".into(), json!(c));
        }
        if let Some(a) = &account_id {
            row.insert("_parentaccountid_value".into(), json!(a));
        }
        if let Some(c) = &contact_id {
            row.insert("_parentcontactid_value".into(), json!(c));
        }
        let currency_id = currency
            .map(|(_, id)| id)
            .unwrap_or_else(|| crate::state::USD_ID.to_string());
        row.insert("_transactioncurrencyid_value".into(), json!(currency_id));
        row.insert("_originatingleadid_value".into(), origin.clone());
        row.insert("statecode".into(), json!(0));
        row.insert("statuscode".into(), json!(1));
        let id = uuid::Uuid::new_v4().to_string();
        inner.insert_row("opportunities", id.clone(), row);
        made.push(
            json!({"@odata.type": "#Microsoft.Dynamics.CRM.opportunity", "opportunityid": id}),
        );
    }
    let mut update = Map::new();
    update.insert("statecode".into(), json!(QUALIFIED));
    update.insert("statuscode".into(), json!(status));
    inner.update_row("leads", lead_id, update);
    Ok((
        StatusCode::OK,
        Json(json!({
            "@odata.context": state.api_url("$metadata#Collection(Microsoft.Dynamics.CRM.crmbaseentity)"),
            "value": made,
        })),
    )
        .into_response())
}
