//! `/v1.0/engagements/referrals`: list with filter/order/paging, get, create, PUT and PATCH,
//! each write with a new eTag and `updatedDateTime`, and a webhook event.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::State;
use crate::token::{unauthorized, REFERRALS_AUDIENCE};
use crate::{deliveries, filter, patch, validate};

pub(crate) fn error(status: StatusCode, description: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16().to_string(), "description": description.into(), "data": [], "source": "Referrals"})),
    )
        .into_response()
}

/// Seven fractional digits, as the service writes them.
pub(crate) fn wire_time(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.format(fmt).expect("UTC time formats")
}

fn with_etag(status: StatusCode, referral: &Value) -> Response {
    let etag = referral["eTag"].as_str().unwrap_or_default().to_string();
    (status, [(http::header::ETAG, etag)], Json(referral.clone())).into_response()
}

pub(crate) fn stamp(inner: &mut crate::state::Inner, r: &mut Value) {
    let now = wire_time(inner.next_write_time());
    r["updatedDateTime"] = json!(now);
    r["eTag"] = json!(format!("\"{}\"", Uuid::new_v4()));
}

fn links(state: &State, r: &mut Value) {
    let id = r["id"].as_str().unwrap_or_default().to_string();
    let engagement = r["engagementId"].as_str().unwrap_or_default().to_string();
    r["links"] = json!({
        "relatedReferrals": {"uri": format!("{}v1.0/engagements/referrals?$filter=engagementId eq '{engagement}'", state.base_url), "method": "GET", "headers": []},
        "self": {"uri": state.referral_url(&id), "method": "GET", "headers": []}
    });
}

/// Stores a new referral with server fields set; used by POST and by the admin helper.
pub(crate) fn insert_new(state: &State, mut r: Value, direction: &str, substatus: &str) -> Value {
    let mut inner = state.lock();
    let id = Uuid::new_v4().to_string();
    r["id"] = json!(id);
    if r.get("engagementId").is_none_or(Value::is_null) {
        r["engagementId"] = json!(Uuid::new_v4().to_string());
    }
    r["direction"] = json!(direction);
    if r.get("status").is_none_or(Value::is_null) {
        r["status"] = json!("New");
        r["substatus"] = json!(substatus);
    }
    stamp(&mut inner, &mut r);
    r["createdDateTime"] = r["updatedDateTime"].clone();
    links(state, &mut r);
    inner.add_referral(r.clone());
    r
}

pub(crate) async fn list(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, REFERRALS_AUDIENCE) {
        return r;
    }
    let clauses = match q.get("$filter").map(|f| filter::parse(f)).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let top = match q.get("$top").map(|t| t.parse::<usize>()).transpose() {
        Ok(t) => t.unwrap_or(state.config.page_size).max(1),
        Err(_) => return error(StatusCode::BAD_REQUEST, "$top must be a number"),
    };
    let offset = match q.get("$skiptoken").map(|t| decode_skiptoken(t)) {
        None => 0,
        Some(Some(o)) => o,
        Some(None) => return error(StatusCode::BAD_REQUEST, "invalid $skiptoken"),
    };
    // Another organization's referrals show only in their engagement's list.
    let by_engagement = clauses.iter().any(|c| c.field == "engagementId");
    let mut hits: Vec<Value> = {
        let inner = state.lock();
        inner
            .referrals
            .iter()
            .filter(|r| {
                by_engagement || !inner.related.contains(r["id"].as_str().unwrap_or_default())
            })
            .filter(|r| filter::matches(&clauses, r))
            .cloned()
            .collect()
    };
    if let Some(order) = q.get("$orderby") {
        let mut parts = order.split_whitespace();
        let field = parts.next().unwrap_or_default();
        if !["createdDateTime", "updatedDateTime"].contains(&field) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("ordering by '{field}' is not supported"),
            );
        }
        let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return error(StatusCode::BAD_REQUEST, format!("bad order '{other}'")),
        };
        // Same digit count everywhere, so text order is time order.
        hits.sort_by(|a, b| a[field].as_str().cmp(&b[field].as_str()));
        if desc {
            hits.reverse();
        }
    }
    let count = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(offset)
        .take(top)
        .map(|r| select(&r, q.get("$select")))
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}v1.0/engagements/$metadata#Referrals", state.base_url),
        "@odata.count": count,
        "value": page,
    });
    if offset + top < count {
        let mut next = state
            .base_url
            .join("v1.0/engagements/referrals")
            .expect("static path");
        {
            let mut pairs = next.query_pairs_mut();
            for key in ["$filter", "$orderby", "$top", "$select"] {
                if let Some(v) = q.get(key) {
                    pairs.append_pair(key, v);
                }
            }
            pairs.append_pair("$skiptoken", &encode_skiptoken(offset + top));
        }
        body["@odata.nextLink"] = json!(next.to_string());
    }
    Json(body).into_response()
}

fn encode_skiptoken(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn select(r: &Value, fields: Option<&String>) -> Value {
    let Some(fields) = fields else {
        return r.clone();
    };
    let mut out = Map::new();
    for f in fields.split(',').map(str::trim).chain(["id"]) {
        if let Some(v) = r.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

pub(crate) async fn get_one(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, REFERRALS_AUDIENCE) {
        return r;
    }
    match state.lock().find(&id) {
        Some(r) => with_etag(StatusCode::OK, r),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Referral {id} was not found"),
        ),
    }
}

pub(crate) async fn create(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, REFERRALS_AUDIENCE) {
        return r;
    }
    let mut r: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let kind = match validate::create(&r) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match &kind {
        // The shared-referral steps: the engagement is that of your own Shared referral.
        validate::CreateKind::Connected { engagement_id, .. } => {
            let inner = state.lock();
            let own = inner.referrals.iter().any(|x| {
                x["engagementId"].as_str() == Some(engagement_id.as_str())
                    && x["type"].as_str() == Some("Shared")
            });
            if !own {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("engagement {engagement_id} has no Shared referral to connect to"),
                );
            }
        }
        validate::CreateKind::Independent | validate::CreateKind::Shared => {
            // A new engagement: the service assigns its id.
            if let Some(obj) = r.as_object_mut() {
                obj.remove("engagementId");
            }
        }
    }
    if let Some(obj) = r.as_object_mut() {
        for server_field in ["id", "eTag", "createdDateTime", "updatedDateTime", "links"] {
            obj.remove(server_field);
        }
    }
    let stored = insert_new(&state, r, "Outgoing", "Pending");
    deliveries::emit(
        &state,
        "referral-created",
        Some(stored["id"].as_str().unwrap_or_default()),
        None,
    );
    with_etag(StatusCode::CREATED, &stored)
}

enum Write {
    Full,
    Patch,
}

async fn write(
    state: Arc<State>,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    kind: Write,
) -> Response {
    if let Some(r) = unauthorized(&state, &headers, REFERRALS_AUDIENCE) {
        return r;
    }
    let input: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let if_match = headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok());
    let stored = {
        let mut inner = state.lock();
        let Some(pos) = inner.position(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                format!("Referral {id} was not found"),
            );
        };
        if inner.related.contains(&id) {
            return error(
                StatusCode::FORBIDDEN,
                format!("Referral {id} belongs to another organization"),
            );
        }
        let current = inner.referrals[pos].clone();
        match (if_match, &kind) {
            (None, Write::Full) => {
                return error(StatusCode::BAD_REQUEST, "the If-Match header is required")
            }
            (Some(tag), _) if tag != "*" && current["eTag"].as_str() != Some(tag) => {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "the referral was changed since it was read",
                )
            }
            _ => {}
        }
        let mut next = match kind {
            Write::Patch => match patch::apply(&current, &input) {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            },
            Write::Full => {
                if input.get("links").is_some() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "remove the links object before a full update",
                    );
                }
                input
            }
        };
        if let Err(e) =
            validate::referral(&next).and_then(|_| validate::transition(&current, &next))
        {
            return error(StatusCode::BAD_REQUEST, e);
        }
        // Server-owned fields keep their values whatever the body says.
        for f in ["id", "createdDateTime", "direction", "engagementId"] {
            next[f] = current[f].clone();
        }
        stamp(&mut inner, &mut next);
        links(&state, &mut next);
        inner.referrals[pos] = next.clone();
        next
    };
    deliveries::emit(&state, "referral-updated", Some(&id), None);
    let representation = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.contains("return=representation"));
    match kind {
        Write::Patch if !representation => {
            let etag = stored["eTag"].as_str().unwrap_or_default().to_string();
            (StatusCode::NO_CONTENT, [(http::header::ETAG, etag)]).into_response()
        }
        _ => with_etag(StatusCode::OK, &stored),
    }
}

pub(crate) async fn put(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    write(state, headers, id, body, Write::Full).await
}

pub(crate) async fn patch_one(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    write(state, headers, id, body, Write::Patch).await
}
