//! The metadata routes `cosell setup dataverse` and `cosell doctor` use:
//! `EntityDefinitions(LogicalName='opportunity')` (GET, and PUT of the whole definition with
//! `MSCRM.MergeLabels`), its `Attributes` (GET by logical name, the String and Picklist
//! casts with `$expand=OptionSet`, POST), its `Keys` (GET, POST; the index job advances one
//! step per read), `PublishXml`, and `systemusers(id)/...RetrieveUserPrivileges`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::odata_error::ApiError;
use crate::request::Params;
use crate::schema::{Attribute, EntityKey, PUBLISHER_PREFIX};
use crate::state::State;

const ENTITY: &str = "EntityDefinitions(LogicalName='opportunity')";

/// Whether a path segment is a table definition this module answers.
pub fn is_entity_segment(segment: &str) -> bool {
    segment.starts_with("EntityDefinitions")
}

/// The lead's definition: only its columns (`Attributes`) are modelled.
const LEAD_ENTITY: &str = "EntityDefinitions(LogicalName='lead')";

/// The table whose columns a segment names: the opportunity, or the lead.
fn columns_entity(segment: &str) -> Option<&'static str> {
    match segment {
        ENTITY => Some("opportunity"),
        LEAD_ENTITY => Some("lead"),
        _ => None,
    }
}

fn entity_metadata_id() -> &'static str {
    "00000000-0000-0000-0000-0000000000e3"
}

fn unknown_entity(segment: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "0x80040217",
        format!("Could not find an entity for '{segment}'; the stand-in models the opportunity table only."),
    )
}

fn select(mut m: Map<String, Value>, params: &Params) -> Map<String, Value> {
    if let Some(cols) = params.get("$select") {
        let wanted: Vec<&str> = cols.split(',').map(str::trim).collect();
        m.retain(|k, _| k.starts_with('@') || wanted.contains(&k.as_str()));
    }
    m
}

fn entity_json(state: &State) -> Map<String, Value> {
    let inner = state.lock();
    let labels: Vec<Value> = inner
        .schema
        .labels
        .iter()
        .map(|(lang, l)| json!({"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": l, "LanguageCode": lang}))
        .collect();
    let mut m = Map::new();
    m.insert(
        "@odata.context".into(),
        json!(state.api_url("$metadata#EntityDefinitions/$entity")),
    );
    m.insert("MetadataId".into(), json!(entity_metadata_id()));
    m.insert("LogicalName".into(), json!("opportunity"));
    m.insert("SchemaName".into(), json!("Opportunity"));
    m.insert("EntitySetName".into(), json!("opportunities"));
    m.insert("ObjectTypeCode".into(), json!(3));
    m.insert(
        "ChangeTrackingEnabled".into(),
        json!(inner.table("opportunities").change_tracking),
    );
    m.insert(
        "CanChangeTrackingBeEnabled".into(),
        json!({"Value": true, "CanBeChanged": true, "ManagedPropertyLogicalName": "canchangetrackingbeenabled"}),
    );
    m.insert(
        "DisplayName".into(),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": labels}),
    );
    m
}

/// `GET EntityDefinitions(LogicalName='opportunity')`.
pub fn get_entity(state: &State, segment: &str, params: &Params) -> Result<Response, ApiError> {
    if segment != ENTITY {
        return Err(unknown_entity(segment));
    }
    Ok(Json(Value::Object(select(entity_json(state), params))).into_response())
}

/// `PUT EntityDefinitions(LogicalName='opportunity')`: the whole definition.
pub async fn put_entity(
    AxState(state): AxState<Arc<State>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        if !is_entity_segment(&segment) {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "PUT is supported for definitions and single properties only.",
            ));
        }
        if segment != ENTITY {
            return Err(unknown_entity(&segment));
        }
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Error parsing the request body: {e}")))?;
        let mut inner = state.lock();
        inner
            .schema
            .require_customizer(&state.config.user_id, "prvWriteEntity")?;
        // A partial body would blank what it leaves out: the whole definition is required.
        for k in ["MetadataId", "LogicalName", "SchemaName", "DisplayName"] {
            if !body.contains_key(k) {
                return Err(ApiError::bad_request(format!(
                    "The entity definition is incomplete: '{k}' is missing. Retrieve the whole definition and PUT it back."
                )));
            }
        }
        let enabled = body
            .get("ChangeTrackingEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let table = inner.table_mut("opportunities");
        if table.change_tracking && !enabled {
            return Err(ApiError::bad_request(
                "Change tracking cannot be disabled once it is enabled for an entity.",
            ));
        }
        table.change_tracking = enabled;
        let merge = headers
            .get("MSCRM.MergeLabels")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let sent: Vec<(u64, String)> = Value::Object(body.clone())["DisplayName"]
            ["LocalizedLabels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        Some((
                            l["LanguageCode"].as_u64()?,
                            l["Label"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !merge {
            inner.schema.labels.clear();
        }
        inner.schema.labels.extend(sent);
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The logical name in `Attributes(LogicalName='x')`.
fn attribute_name(part: &str) -> Option<String> {
    let inner = part.strip_prefix("Attributes(")?.strip_suffix(')')?;
    let name = inner
        .strip_prefix("LogicalName=")
        .unwrap_or(inner)
        .trim_matches('\'');
    Some(name.to_ascii_lowercase())
}

/// `GET {segment}/{rest}` under the API.
pub async fn get_nested(
    AxState(state): AxState<Arc<State>>,
    Path((segment, rest)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let params = Params::parse(uri.query());
    let result = (|| -> Result<Response, ApiError> {
        if let Some(user) = segment
            .strip_prefix("systemusers(")
            .and_then(|s| s.strip_suffix(')'))
        {
            if rest == "Microsoft.Dynamics.CRM.RetrieveUserPrivileges" {
                return privileges(&state, user);
            }
            return Err(not_found(&rest));
        }
        let entity = columns_entity(&segment).ok_or_else(|| unknown_entity(&segment))?;
        let mut parts = rest.split('/');
        let first = parts.next().unwrap_or_default();
        let cast = parts.next();
        if first == "Keys" && entity == "opportunity" {
            return Ok(keys(&state, &params));
        }
        let name = attribute_name(first).ok_or_else(|| not_found(first))?;
        let inner = state.lock();
        let attr = inner.schema.columns_of(entity).get(&name).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "0x80040217",
                format!(
                    "Could not find an attribute with LogicalName '{name}' on entity '{entity}'."
                ),
            )
        })?;
        let expand = params
            .get("$expand")
            .is_some_and(|e| e.starts_with("OptionSet"));
        if let Some(cast) = cast {
            let wanted = cast
                .strip_prefix("Microsoft.Dynamics.CRM.")
                .and_then(|c| c.strip_suffix("AttributeMetadata"))
                .ok_or_else(|| not_found(cast))?;
            if wanted != attr.attribute_type {
                return Err(ApiError::bad_request(format!(
                    "The attribute '{name}' is a {} column, not {wanted}.",
                    attr.attribute_type
                )));
            }
            if expand && wanted != "Picklist" {
                return Err(ApiError::bad_request(format!(
                    "Could not find a property named 'OptionSet' on type 'Microsoft.Dynamics.CRM.{wanted}AttributeMetadata'."
                )));
            }
        } else if expand {
            // OptionSet is a navigation property of the derived type only.
            return Err(ApiError::bad_request(
                "Could not find a property named 'OptionSet' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
            ));
        }
        let mut m = select(attr.to_json(expand), &params);
        if expand {
            m.insert("OptionSet".into(), attr.to_json(true)["OptionSet"].clone());
        }
        Ok(Json(Value::Object(m)).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "0x8006088a",
        format!("Resource not found for the segment '{what}'."),
    )
}

fn keys(state: &State, params: &Params) -> Response {
    let mut inner = state.lock();
    let mut out = Vec::new();
    for key in &mut inner.schema.keys {
        key.reads += 1;
        key.status = match (key.status.as_str(), key.fails) {
            ("Pending", _) => "InProgress".into(),
            ("InProgress", true) => "Failed".into(),
            ("InProgress", false) => "Active".into(),
            (other, _) => other.to_string(),
        };
        let mut m = Map::new();
        m.insert("SchemaName".into(), json!(key.schema_name));
        m.insert(
            "LogicalName".into(),
            json!(key.schema_name.to_ascii_lowercase()),
        );
        m.insert("KeyAttributes".into(), json!(key.attributes));
        m.insert("EntityKeyIndexStatus".into(), json!(key.status));
        out.push(Value::Object(select(m, params)));
    }
    Json(json!({"value": out})).into_response()
}

/// `POST {segment}/{rest}`: a new column or key.
pub async fn post_nested(
    AxState(state): AxState<Arc<State>>,
    Path((segment, rest)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        if let Some(lead) = bound_to_lead(&segment, &rest)? {
            return crate::leads::qualify(&state, &lead, crate::rows::json_body(&body)?);
        }
        let entity = columns_entity(&segment).ok_or_else(|| unknown_entity(&segment))?;
        let body: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Error parsing the request body: {e}")))?;
        match rest.as_str() {
            "Attributes" => create_attribute(&state, entity, &segment, &body),
            "Keys" if entity == "opportunity" => create_key(&state, &body),
            other => Err(not_found(other)),
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The lead id of `leads(<id>)/Microsoft.Dynamics.CRM.QualifyLead`, the one action bound to a
/// row the stand-in has.
fn bound_to_lead(segment: &str, rest: &str) -> Result<Option<String>, ApiError> {
    if !segment.starts_with("leads(") {
        return Ok(None);
    }
    if rest != "Microsoft.Dynamics.CRM.QualifyLead" {
        return Err(not_found(rest));
    }
    match crate::rows::target(segment)? {
        crate::rows::Target::Row(_, id) => Ok(Some(id)),
        _ => Err(not_found(segment)),
    }
}

fn created(state: &State, path: String) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("OData-Version", "4.0".to_string()),
            ("OData-EntityId", state.api_url(&path)),
        ],
    )
        .into_response()
}

fn create_attribute(
    state: &State,
    entity: &'static str,
    segment: &str,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    inner
        .schema
        .require_customizer(&state.config.user_id, "prvCreateAttribute")?;
    let schema_name = body
        .get("SchemaName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("SchemaName is required."))?;
    let logical = schema_name.to_ascii_lowercase();
    if !logical.starts_with(PUBLISHER_PREFIX) {
        return Err(ApiError::bad_request(format!(
            "The schema name {schema_name} for this field does not begin with a valid customization prefix ('{PUBLISHER_PREFIX}')."
        )));
    }
    if inner.schema.columns_of(entity).contains_key(&logical) {
        return Err(ApiError::bad_request(format!(
            "An attribute with the name {logical} already exists on entity {entity}."
        )));
    }
    let odata_type = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = odata_type
        .trim_start_matches('#')
        .strip_prefix("Microsoft.Dynamics.CRM.")
        .and_then(|t| t.strip_suffix("AttributeMetadata"))
        .filter(|k| matches!(*k, "Boolean" | "String" | "Memo" | "Picklist"))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "'{odata_type}' is not an attribute type the stand-in creates (Boolean, String, Memo, Picklist)."
            ))
        })?;
    let mut attr = Attribute::new(&logical, kind);
    let body = Value::Object(body.clone());
    if let Some(f) = body["FormatName"]["Value"].as_str() {
        attr.format = Some(f.to_string());
    }
    if let Some(n) = body["MaxLength"].as_u64() {
        attr.max_length = Some(n);
    }
    if kind == "Picklist" {
        attr.options = body["OptionSet"]["Options"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(|x| {
                        let label = x["Label"]["LocalizedLabels"][0]["Label"]
                            .as_str()
                            .unwrap_or_default();
                        Some((x["Value"].as_i64()?, label.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    if let Some(l) = body["DisplayName"]["LocalizedLabels"][0]["Label"].as_str() {
        attr.label = l.to_string();
    }
    let id = attr.metadata_id.clone();
    inner.schema.columns_of_mut(entity).insert(logical, attr);
    drop(inner);
    Ok(created(state, format!("{segment}/Attributes({id})")))
}

fn create_key(state: &State, body: &Map<String, Value>) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    inner
        .schema
        .require_customizer(&state.config.user_id, "prvCreateEntityKey")?;
    let schema_name = body
        .get("SchemaName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("SchemaName is required."))?
        .to_string();
    let attributes: Vec<String> = body
        .get("KeyAttributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if attributes.is_empty() {
        return Err(ApiError::bad_request(
            "KeyAttributes must name at least one column.",
        ));
    }
    for a in &attributes {
        match inner.schema.columns.get(a) {
            Some(attr) if attr.attribute_type == "String" || attr.attribute_type == "Picklist" => {}
            Some(attr) => {
                return Err(ApiError::bad_request(format!(
                    "The attribute {a} of type {} cannot be part of a key.",
                    attr.attribute_type
                )))
            }
            None if !a.starts_with(PUBLISHER_PREFIX) => {}
            None => {
                return Err(ApiError::bad_request(format!(
                    "The attribute {a} does not exist on entity opportunity."
                )))
            }
        }
    }
    if inner
        .schema
        .keys
        .iter()
        .any(|k| k.schema_name.eq_ignore_ascii_case(&schema_name))
    {
        return Err(ApiError::bad_request(format!(
            "A key with the name {schema_name} already exists."
        )));
    }
    // The index job fails on duplicate values already in the table.
    let mut seen = std::collections::HashSet::new();
    let fails = inner.table("opportunities").rows.values().any(|r| {
        let values: Vec<&Value> = attributes.iter().filter_map(|a| r.data.get(a)).collect();
        values.len() == attributes.len() && !seen.insert(format!("{values:?}"))
    });
    inner.schema.keys.push(EntityKey {
        schema_name: schema_name.clone(),
        attributes,
        status: "Pending".into(),
        reads: 0,
        fails,
    });
    drop(inner);
    Ok(created(
        state,
        format!(
            "{ENTITY}/Keys(LogicalName='{}')",
            schema_name.to_ascii_lowercase()
        ),
    ))
}

/// `POST PublishXml`.
pub fn publish(state: &State, body: &Map<String, Value>) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    inner
        .schema
        .require_customizer(&state.config.user_id, "prvPublishCustomizations")?;
    if body.get("ParameterXml").and_then(Value::as_str).is_none() {
        return Err(ApiError::bad_request(
            "The parameter 'ParameterXml' is required.",
        ));
    }
    inner.schema.publishes += 1;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn privileges(state: &State, user: &str) -> Result<Response, ApiError> {
    if !user.eq_ignore_ascii_case(&state.config.user_id) {
        return Err(ApiError::not_found("systemuser", user));
    }
    let inner = state.lock();
    let list: Vec<Value> = inner
        .schema
        .privileges
        .iter()
        .map(|(name, depth)| {
            json!({
                "Depth": depth,
                "PrivilegeId": uuid::Uuid::new_v4().to_string(),
                "BusinessUnitId": "00000000-0000-0000-0000-00000000b0b0",
                "PrivilegeName": name,
            })
        })
        .collect();
    Ok(Json(json!({
        "@odata.context": state.api_url("$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse"),
        "RolePrivileges": list,
    }))
    .into_response())
}
