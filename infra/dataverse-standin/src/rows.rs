//! The entity routes: `/api/data/v9.2/{set}` and `/{set}(<id>)` with GET, POST, PATCH
//! (update, upsert, `If-Match`/`If-None-Match`) and DELETE.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::actions;
use crate::collection;
use crate::metadata;
use crate::odata_error::ApiError;
use crate::request::{prefs, Params, Prefs};
use crate::state::{etag, representation, table_def, Inner, State, TableDef};
use crate::tracking;
use crate::writes::changes_from_body;

/// What a path segment names: an entity set, maybe with a row id, or an action/function.
pub(crate) enum Target {
    Set(TableDef),
    Row(TableDef, String),
    Other(String),
}

pub(crate) fn target(segment: &str) -> Result<Target, ApiError> {
    let Some(open) = segment.find('(') else {
        return Ok(match table_def(segment) {
            Some(def) => Target::Set(def),
            None => Target::Other(segment.to_string()),
        });
    };
    let set = &segment[..open];
    let def = table_def(set).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x8006088a",
            format!("Resource not found for the segment '{set}'."),
        )
    })?;
    let inner = segment[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| ApiError::bad_request(format!("Bad key in '{segment}'")))?;
    let raw = inner
        .strip_prefix(&format!("{}=", def.key))
        .unwrap_or(inner);
    let id = uuid::Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request(format!(
            "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{}'. Ensure that the names and number of key properties match the declared or alternate key properties for the resource '{}'.",
            def.logical, def.logical
        ))
    })?;
    Ok(Target::Row(def, id.hyphenated().to_string()))
}

pub(crate) fn json_body(bytes: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "Error parsing the request body: {e}"
        ))),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A single-row answer: 201/200 with the row, or 204 with `OData-EntityId`.
fn row_answer(
    state: &State,
    def: TableDef,
    id: &str,
    created: bool,
    prefs: &Prefs,
    params: &Params,
) -> Response {
    let inner = state.lock();
    row_answer_in(state, &inner, def, id, created, prefs, params)
}

/// [`row_answer`] with the lock already held (a `$batch` part).
pub(crate) fn row_answer_in(
    state: &State,
    inner: &Inner,
    def: TableDef,
    id: &str,
    created: bool,
    prefs: &Prefs,
    params: &Params,
) -> Response {
    let Some(row) = inner.table(def.set).rows.get(id) else {
        return ApiError::not_found(def.logical, id).into_response();
    };
    let entity_url = state.api_url(&format!("{}({id})", def.set));
    let tag = etag(row.version);
    if !prefs.representation {
        return (
            StatusCode::NO_CONTENT,
            [
                ("OData-Version", "4.0".to_string()),
                ("OData-EntityId", entity_url),
                ("ETag", tag),
            ],
        )
            .into_response();
    }
    let select = params.select();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(state.api_url(&format!("$metadata#{}/$entity", def.set))),
    );
    body.extend(representation(row, select.as_deref(), def.key));
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        [
            ("OData-Version", "4.0".to_string()),
            ("OData-EntityId", entity_url),
            ("Preference-Applied", "return=representation".to_string()),
            ("ETag", tag),
        ],
        Json(Value::Object(body)),
    )
        .into_response()
}

pub async fn get(
    AxState(state): AxState<Arc<State>>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(uri.query());
    let prefs = prefs(&headers);
    let result = (|| -> Result<Response, ApiError> {
        if metadata::is_entity_segment(&segment) {
            return metadata::get_entity(&state, &segment, &params);
        }
        let found = target(&segment)?;
        if let Target::Set(d) | Target::Row(d, _) = &found {
            let texts: Vec<&str> = ["$select", "$filter", "$orderby"]
                .iter()
                .filter_map(|k| params.get(k))
                .collect();
            match d.set {
                "opportunities" => state.lock().schema.check_query(&texts)?,
                "leads" => state.lock().schema.check_lead_query(&texts)?,
                _ => {}
            }
        }
        match found {
            Target::Other(name) if name == "WhoAmI" => Ok(actions::who_am_i(&state)),
            Target::Other(name) => Err(unknown_segment(&name)),
            Target::Row(def, id) => {
                let expand = crate::expand::of_params(def, &params)?;
                let inner = state.lock();
                let row = inner
                    .table(def.set)
                    .rows
                    .get(&id)
                    .ok_or_else(|| ApiError::not_found(def.logical, &id))?;
                let tag = etag(row.version);
                // Never 304 with `$expand`: the related rows may have changed.
                if expand.is_empty() && header(&headers, "if-none-match") == Some(tag.as_str()) {
                    return Ok(StatusCode::NOT_MODIFIED.into_response());
                }
                let mut body = Map::new();
                body.insert(
                    "@odata.context".into(),
                    json!(state.api_url(&format!("$metadata#{}/$entity", def.set))),
                );
                body.extend(representation(row, params.select().as_deref(), def.key));
                crate::expand::add(&inner, def, &row.data, &expand, &mut body);
                Ok((
                    [("OData-Version", "4.0".to_string()), ("ETag", tag)],
                    Json(Value::Object(body)),
                )
                    .into_response())
            }
            Target::Set(def) => {
                let inner = state.lock();
                let page = if tracking::is_tracking(&params, &prefs) {
                    tracking::query(&state, &inner, def, &params, &prefs)?
                } else {
                    collection::query(&state, &inner, def, &params, &prefs)?
                };
                let mut resp = Json(page.body).into_response();
                resp.headers_mut()
                    .insert("OData-Version", http::HeaderValue::from_static("4.0"));
                if let Some(applied) = page.applied {
                    if let Ok(v) = http::HeaderValue::from_str(&applied) {
                        resp.headers_mut().insert("Preference-Applied", v);
                    }
                }
                Ok(resp)
            }
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn unknown_segment(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "0x8006088a",
        format!("Resource not found for the segment '{name}'."),
    )
}

pub async fn post(
    AxState(state): AxState<Arc<State>>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(uri.query());
    let prefs = prefs(&headers);
    let result = (|| -> Result<Response, ApiError> {
        match target(&segment)? {
            Target::Other(name) if name == "WinOpportunity" => {
                actions::close(&state, json_body(&body)?, true)
            }
            Target::Other(name) if name == "LoseOpportunity" => {
                actions::close(&state, json_body(&body)?, false)
            }
            Target::Other(name) if name == "PublishXml" => {
                metadata::publish(&state, &json_body(&body)?)
            }
            Target::Other(name) => Err(unknown_segment(&name)),
            Target::Row(..) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "POST to a single record is not supported; use PATCH.",
            )),
            Target::Set(def) => {
                let id = create_in(&mut state.lock(), def, json_body(&body)?)?;
                Ok(row_answer(&state, def, &id, true, &prefs, &params))
            }
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /<set>`: the row gets the key the body names, else a new one.
pub(crate) fn create_in(
    inner: &mut Inner,
    def: TableDef,
    data: Map<String, Value>,
) -> Result<String, ApiError> {
    let id = match data.get(def.key) {
        Some(v) => v
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| u.hyphenated().to_string())
            .ok_or_else(|| ApiError::bad_request(format!("{} must be a GUID", def.key)))?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    insert(inner, def, &id, data)?;
    Ok(id)
}

/// Stores a new row with a caller-chosen or generated id; an id in use is the duplicate-key
/// error Dataverse gives (412, `0x80040237`).
fn insert(
    inner: &mut Inner,
    def: TableDef,
    id: &str,
    data: Map<String, Value>,
) -> Result<(), ApiError> {
    if inner.exists(def.set, id) {
        return Err(ApiError::duplicate());
    }
    let changes = changes_from_body(inner, def, data, None)?;
    let stored: Map<String, Value> = changes.into_iter().filter(|(_, v)| !v.is_null()).collect();
    inner.insert_row(def.set, id.to_string(), stored);
    Ok(())
}

/// `PATCH /<set>(<id>)`: an update, or an upsert's create (true) when the row is missing
/// and `If-Match` is not sent; `If-None-Match: *` refuses an existing row.
pub(crate) fn upsert_in(
    inner: &mut Inner,
    def: TableDef,
    id: &str,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    data: Map<String, Value>,
) -> Result<bool, ApiError> {
    let Some(row) = inner.table(def.set).rows.get(id).cloned() else {
        if if_match.is_some() {
            return Err(ApiError::not_found(def.logical, id));
        }
        insert(inner, def, id, data)?;
        return Ok(true);
    };
    if if_none_match == Some("*") {
        return Err(ApiError::duplicate());
    }
    if let Some(tag) = if_match {
        if tag != "*" && tag != etag(row.version) {
            return Err(ApiError::version_mismatch());
        }
    }
    let changes = changes_from_body(inner, def, data, Some(&row))?;
    inner.update_row(def.set, id, changes);
    Ok(false)
}

pub async fn patch(
    AxState(state): AxState<Arc<State>>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(uri.query());
    let prefs = prefs(&headers);
    let result = (|| -> Result<Response, ApiError> {
        let Target::Row(def, id) = target(&segment)? else {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "PATCH needs a record URL.",
            ));
        };
        let data = json_body(&body)?;
        let if_match = header(&headers, "if-match");
        let if_none_match = header(&headers, "if-none-match");
        // One lock from the existence check to the write: two racing upserts of a new id
        // make one row and one update, never a duplicate-key error.
        let created = upsert_in(&mut state.lock(), def, &id, if_match, if_none_match, data)?;
        Ok(row_answer(&state, def, &id, created, &prefs, &params))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        let Target::Row(def, id) = target(&segment)? else {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "DELETE needs a record URL.",
            ));
        };
        delete_in(&mut state.lock(), def, &id, header(&headers, "if-match"))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /<set>(<id>)`, conditional on `If-Match` when sent.
pub(crate) fn delete_in(
    inner: &mut Inner,
    def: TableDef,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ApiError> {
    let row = inner
        .table(def.set)
        .rows
        .get(id)
        .ok_or_else(|| ApiError::not_found(def.logical, id))?;
    if let Some(tag) = if_match {
        if tag != "*" && tag != etag(row.version) {
            return Err(ApiError::version_mismatch());
        }
    }
    inner.delete_row(def.set, id);
    Ok(())
}
