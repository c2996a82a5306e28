//! What a create or update body does to a row: `@odata.bind` lookups turned into
//! `_<attr>_value` GUIDs, read-only columns refused, and the opportunity's state rules
//! (no `statecode` on create, won/lost rows read-only until reopened, status reasons that
//! must belong to their state).

use serde_json::{json, Map, Value};

use crate::odata_error::ApiError;
use crate::state::{table_def, Inner, Row, TableDef, USD_ID};

const OPEN: i64 = 0;

/// Status reasons (`statuscode`) allowed in each opportunity state.
pub fn status_allowed(state: i64, status: i64) -> bool {
    matches!((state, status), (0, 1 | 2) | (1, 3) | (2, 4 | 5))
}

/// The message for edits to a closed opportunity (the client keys its `ReadOnly` error on
/// "read-only").
pub fn closed_message(id: &str) -> String {
    format!(
        "Cannot update a read-only entity: opportunity With Id = {id} is closed (Won or Lost); reopen it first."
    )
}

/// `(attribute, required target set)` of a navigation property.
fn lookup_attribute(nav: &str) -> (String, Option<&'static str>) {
    match nav {
        "customerid_account" => ("customerid".into(), Some("accounts")),
        "customerid_contact" => ("customerid".into(), Some("contacts")),
        "parentcustomerid_account" => ("parentcustomerid".into(), Some("accounts")),
        "parentcustomerid_contact" => ("parentcustomerid".into(), Some("contacts")),
        "parentaccountid" => (nav.into(), Some("accounts")),
        "parentcontactid" => (nav.into(), Some("contacts")),
        "transactioncurrencyid" => (nav.into(), Some("transactioncurrencies")),
        "opportunityid" => (nav.into(), Some("opportunities")),
        "originatingleadid" => (nav.into(), Some("leads")),
        other => (other.to_string(), None),
    }
}

/// `(set, id)` of a bind target: `/set(id)`, `set(id)` or an absolute URL ending in one.
fn parse_target(text: &str) -> Option<(String, String)> {
    let path = text.trim().trim_end_matches('/');
    let last = path.rsplit('/').next()?;
    let open = last.find('(')?;
    let inner = last[open + 1..].strip_suffix(')')?;
    let id = uuid::Uuid::parse_str(inner).ok()?.hyphenated().to_string();
    Some((last[..open].to_string(), id))
}

/// Turns a request body into the column changes to store (`null` clears a column).
pub fn changes_from_body(
    inner: &Inner,
    def: TableDef,
    body: Map<String, Value>,
    existing: Option<&Row>,
) -> Result<Map<String, Value>, ApiError> {
    crate::validation::check(&inner.rejections, def.set, &body)?;
    match def.set {
        "opportunities" => inner.schema.check_body(&body)?,
        "leads" => inner.schema.check_lead_body(&body)?,
        _ => {}
    }
    crate::validation::date_only(def.set, &body)?;
    let mut changes = Map::new();
    for (key, value) in body {
        if let Some(nav) = key.strip_suffix("@odata.bind") {
            let (attr, target_set) = match crate::solution_tables::lookup(def.set, nav) {
                Some(found) => {
                    let (attr, target) = found.map_err(ApiError::bad_request)?;
                    (attr.to_string(), Some(target))
                }
                None => lookup_attribute(nav),
            };
            let column = format!("_{attr}_value");
            if value.is_null() {
                changes.insert(column, Value::Null);
                continue;
            }
            let text = value.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("{key}: a bind value must be a URL string"))
            })?;
            let (set, id) = parse_target(text).ok_or_else(|| {
                ApiError::bad_request(format!("{key}: '{text}' is not a record URL"))
            })?;
            let target = table_def(&set).ok_or_else(|| {
                ApiError::bad_request(format!("{key}: unknown entity set '{set}'"))
            })?;
            if target_set.is_some_and(|t| t != set) {
                return Err(ApiError::bad_request(format!(
                    "{key}: navigation property cannot refer to '{set}'"
                )));
            }
            if !inner.exists(&set, &id) {
                return Err(ApiError::not_found(target.logical, &id));
            }
            changes.insert(column, json!(id));
        } else if key.contains('@') {
            // Annotations in a body are ignored, as Dataverse does.
        } else if key.starts_with('_') && key.ends_with("_value") {
            return Err(ApiError::bad_request(format!(
                "An undeclared property '{key}' which only has property annotations in the payload but no property value was found in the payload. Use '<navigation>@odata.bind' to set a lookup."
            )));
        } else if matches!(key.as_str(), "createdon" | "modifiedon" | "versionnumber") {
            // System-set columns: silently ignored on write.
        } else if key == def.key {
            let same = existing.is_none_or(|r| r.data.get(def.key) == Some(&value));
            if !same {
                return Err(ApiError::bad_request(format!(
                    "The primary key {key} cannot be changed"
                )));
            }
        } else if value.is_null() && is_lookup(&key) {
            changes.insert(format!("_{key}_value"), Value::Null);
        } else {
            changes.insert(key, value);
        }
    }
    match def.set {
        "opportunities" => opportunity_rules(&mut changes, existing)?,
        "contacts" => contact_fullname(&mut changes, existing),
        "leads" => crate::leads::lead_rules(&mut changes, existing)?,
        _ => {}
    }
    Ok(changes)
}

fn is_lookup(column: &str) -> bool {
    matches!(
        column,
        "customerid"
            | "parentaccountid"
            | "parentcontactid"
            | "transactioncurrencyid"
            | "parentcustomerid"
            | "originatingleadid"
    )
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

fn opportunity_rules(
    changes: &mut Map<String, Value>,
    existing: Option<&Row>,
) -> Result<(), ApiError> {
    let new_state = int(changes.get("statecode"));
    let new_status = int(changes.get("statuscode"));
    let Some(row) = existing else {
        if changes.contains_key("statecode") {
            return Err(ApiError::bad_request(
                "The 'statecode' attribute is not valid for create (IsValidForCreate is false). Create the opportunity open and close it with WinOpportunity or LoseOpportunity.",
            ));
        }
        let status = new_status.unwrap_or(1);
        if !status_allowed(OPEN, status) {
            return Err(ApiError::bad_request(format!(
                "{status} is not a valid status code for state code OpportunityState.Open"
            )));
        }
        changes.insert("statecode".into(), json!(OPEN));
        changes.insert("statuscode".into(), json!(status));
        if !changes.contains_key("_transactioncurrencyid_value") {
            changes.insert("_transactioncurrencyid_value".into(), json!(USD_ID));
        }
        return Ok(());
    };
    let current_state = int(row.data.get("statecode")).unwrap_or(OPEN);
    let id = row
        .data
        .get("opportunityid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match new_state {
        Some(OPEN) => {
            let status = new_status.unwrap_or(1);
            if !status_allowed(OPEN, status) {
                return Err(ApiError::bad_request(format!(
                    "{status} is not a valid status code for state code OpportunityState.Open"
                )));
            }
            changes.insert("statuscode".into(), json!(status));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
            "statecode {other} cannot be set by an update; use WinOpportunity or LoseOpportunity"
        )))
        }
        None if current_state != OPEN => {
            return Err(ApiError::bad_request(closed_message(id)));
        }
        None => {
            if let Some(status) = new_status {
                if !status_allowed(current_state, status) {
                    return Err(ApiError::bad_request(format!(
                        "{status} is not a valid status code for state code {current_state}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `fullname` is computed from first and last name, as Dataverse does.
fn contact_fullname(changes: &mut Map<String, Value>, existing: Option<&Row>) {
    if !changes.contains_key("firstname") && !changes.contains_key("lastname") {
        return;
    }
    let pick = |k: &str| -> String {
        changes
            .get(k)
            .or_else(|| existing.and_then(|r| r.data.get(k)))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let full = format!("{} {}", pick("firstname"), pick("lastname"))
        .trim()
        .to_string();
    changes.insert("fullname".into(), json!(full));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_targets_in_all_three_forms() {
        let id = "7eb682f1-ca75-e511-80d4-00155d2a68d1";
        for text in [
            format!("/accounts({id})"),
            format!("accounts({id})"),
            format!(
                "http://127.0.0.1:9/api/data/v9.2/accounts({})",
                id.to_uppercase()
            ),
        ] {
            assert_eq!(
                parse_target(&text),
                Some(("accounts".to_string(), id.to_string()))
            );
        }
        assert_eq!(parse_target("/accounts(nope)"), None);
    }

    #[test]
    fn status_reasons_belong_to_states() {
        assert!(status_allowed(1, 3));
        assert!(!status_allowed(1, 4));
        assert!(status_allowed(2, 5));
        assert!(!status_allowed(0, 3));
    }
}
