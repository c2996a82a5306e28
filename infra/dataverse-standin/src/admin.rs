//! Test controls, as methods on the state and as HTTP routes under `/_standin/`: faults
//! (armed, listed, cleared), delta-token expiry, change-tracking switches, request counters,
//! token revocation, and direct row access that behaves like a user editing in the CRM (new
//! etag and modifiedon).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::faults::Fault;
use crate::state::{representation, table_def, State};

impl State {
    pub fn add_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Faults still armed, with what is left of their counts.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.lock()
            .faults
            .iter()
            .filter(|f| f.count > 0)
            .cloned()
            .collect()
    }

    /// Every delta token handed out so far now answers with the expiry error.
    pub fn expire_delta_tokens(&self) {
        self.lock().delta_epoch += 1;
    }

    pub fn set_change_tracking(&self, set: &str, enabled: bool) -> bool {
        let mut inner = self.lock();
        match inner.tables.get_mut(set) {
            Some(t) => {
                t.change_tracking = enabled;
                true
            }
            None => false,
        }
    }

    pub fn revoke_tokens(&self) {
        self.lock().access_tokens.clear();
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }

    pub fn reset_request_counts(&self) {
        self.lock().requests.clear();
    }

    /// A row as the API would return it (with `@odata.etag`).
    pub fn row(&self, set: &str, id: &str) -> Option<Value> {
        let def = table_def(set)?;
        let inner = self.lock();
        let row = inner.tables.get(set)?.rows.get(&id.to_ascii_lowercase())?;
        Some(Value::Object(representation(row, None, def.key)))
    }

    pub fn rows(&self, set: &str) -> Vec<Value> {
        let Some(def) = table_def(set) else {
            return Vec::new();
        };
        let inner = self.lock();
        inner
            .tables
            .get(set)
            .map(|t| {
                t.rows
                    .values()
                    .map(|r| Value::Object(representation(r, None, def.key)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stores columns as given (no API rules), returning the new row's id.
    pub fn user_insert(&self, set: &str, data: Map<String, Value>) -> Option<String> {
        let def = table_def(set)?;
        let id = data
            .get(def.key)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let stored = data.into_iter().filter(|(_, v)| !v.is_null()).collect();
        self.lock().insert_row(set, id.clone(), stored);
        Some(id)
    }

    /// Merges columns into a row (null clears), with a new etag and modifiedon.
    pub fn user_update(&self, set: &str, id: &str, changes: Map<String, Value>) -> Option<Value> {
        table_def(set)?;
        self.lock()
            .update_row(set, &id.to_ascii_lowercase(), changes)?;
        self.row(set, id)
    }

    pub fn user_delete(&self, set: &str, id: &str) -> bool {
        table_def(set).is_some() && self.lock().delete_row(set, &id.to_ascii_lowercase())
    }
}

type S = AxState<Arc<State>>;

/// The JSON object in an admin body, or `None` for any other JSON value.
fn object(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn not_an_object() -> Response {
    (StatusCode::BAD_REQUEST, "expected a JSON object").into_response()
}

fn found(v: Option<Value>) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct Switch {
    enabled: bool,
}

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(
            "/_standin/faults",
            post(|AxState(s): S, Json(f): Json<Fault>| async move {
                s.add_fault(f);
                StatusCode::NO_CONTENT
            })
            .get(|AxState(s): S| async move { Json(json!(s.pending_faults())) })
            .delete(|AxState(s): S| async move {
                s.clear_faults();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_standin/delta-tokens/expire",
            post(|AxState(s): S| async move {
                s.expire_delta_tokens();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_standin/tokens/revoke",
            post(|AxState(s): S| async move {
                s.revoke_tokens();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_standin/change-tracking/{set}",
            put(
                |AxState(s): S, Path(set): Path<String>, Json(w): Json<Switch>| async move {
                    if s.set_change_tracking(&set, w.enabled) {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            ),
        )
        .route(
            "/_standin/requests",
            get(|AxState(s): S| async move { Json(json!(s.request_counts())) }).delete(
                |AxState(s): S| async move {
                    s.reset_request_counts();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/_standin/rows/{set}",
            get(|AxState(s): S, Path(set): Path<String>| async move {
                Json(Value::Array(s.rows(&set)))
            })
            .post(
                |AxState(s): S, Path(set): Path<String>, Json(v): Json<Value>| async move {
                    let Some(data) = object(v) else {
                        return not_an_object();
                    };
                    match s.user_insert(&set, data) {
                        Some(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .route(
            "/_standin/rows/{set}/{id}",
            get(
                |AxState(s): S, Path((set, id)): Path<(String, String)>| async move {
                    found(s.row(&set, &id))
                },
            )
            .patch(
                |AxState(s): S,
                 Path((set, id)): Path<(String, String)>,
                 Json(v): Json<Value>| async move {
                    match object(v) {
                        Some(m) => found(s.user_update(&set, &id, m)),
                        None => not_an_object(),
                    }
                },
            )
            .delete(
                |AxState(s): S, Path((set, id)): Path<(String, String)>| async move {
                    if s.user_delete(&set, &id) {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            ),
        )
}
