//! Change tracking: `Prefer: odata.track-changes` returns every row and a delta link; the
//! delta link returns rows changed since (by row version), then `$deletedEntity` tombstones.
//! Each pass is fixed to the row version current when it started, so paging through it
//! stays consistent while rows change; only the last page carries the delta link.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use crate::collection::{decode_token, encode_token, PageOut};
use crate::odata_error::ApiError;
use crate::request::{Params, Prefs, MAX_PAGE};
use crate::state::{representation, Inner, State, TableDef};

/// The message Dataverse gives for a delta token past its lifetime.
pub const EXPIRED_MESSAGE: &str =
    "Version stamp associated with the client has expired. Please perform a full sync.";

/// True when this request is a change-tracking read.
pub fn is_tracking(params: &Params, prefs: &Prefs) -> bool {
    prefs.track_changes
        || params.get("$deltatoken").is_some()
        || params
            .get("$skiptoken")
            .and_then(|t| decode_token(t).ok())
            .is_some_and(|v| v.get("hi").is_some())
}

struct Pass {
    lo: u64,
    hi: u64,
    epoch: u64,
    delta: bool,
    after: Option<(u64, u64, String)>,
}

fn expired() -> ApiError {
    ApiError::new(http::StatusCode::BAD_REQUEST, "", EXPIRED_MESSAGE)
}

fn pass(inner: &Inner, params: &Params) -> Result<Pass, ApiError> {
    let invalid = || ApiError::bad_request("The $skiptoken value is not valid.");
    if let Some(token) = params.get("$skiptoken") {
        let v = decode_token(token)?;
        let num = |k: &str| v.get(k).and_then(Value::as_u64).ok_or_else(invalid);
        let after = v
            .get("after")
            .and_then(Value::as_array)
            .ok_or_else(invalid)?;
        let after = match after.as_slice() {
            [k, ver, id] => (
                k.as_u64().ok_or_else(invalid)?,
                ver.as_u64().ok_or_else(invalid)?,
                id.as_str().ok_or_else(invalid)?.to_string(),
            ),
            _ => return Err(invalid()),
        };
        let p = Pass {
            lo: num("lo")?,
            hi: num("hi")?,
            epoch: num("e")?,
            delta: v.get("d").and_then(Value::as_bool).unwrap_or(false),
            after: Some(after),
        };
        if p.epoch != inner.delta_epoch {
            return Err(expired());
        }
        return Ok(p);
    }
    if let Some(token) = params.get("$deltatoken") {
        let (version, epoch) = token
            .split_once('!')
            .and_then(|(v, e)| Some((v.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
            .ok_or_else(|| ApiError::bad_request("The $deltatoken value is not valid."))?;
        if epoch != inner.delta_epoch {
            return Err(expired());
        }
        return Ok(Pass {
            lo: version,
            hi: inner.version,
            epoch,
            delta: true,
            after: None,
        });
    }
    Ok(Pass {
        lo: 0,
        hi: inner.version,
        epoch: inner.delta_epoch,
        delta: false,
        after: None,
    })
}

pub fn query(
    state: &State,
    inner: &Inner,
    def: TableDef,
    params: &Params,
    prefs: &Prefs,
) -> Result<PageOut, ApiError> {
    for option in ["$filter", "$orderby", "$expand", "$top"] {
        if params.get(option).is_some() {
            return Err(ApiError::bad_request(format!(
                "The \"{option}\" query parameter isn't supported when Change Tracking is enabled."
            )));
        }
    }
    let table = inner.table(def.set);
    if !table.change_tracking {
        return Err(ApiError::bad_request(format!(
            "Change tracking is not enabled for the entity '{}'.",
            def.logical
        )));
    }
    let p = pass(inner, params)?;
    let select = params.select();
    // (kind, version, id): rows (0) before tombstones (1), each by version.
    let mut items: Vec<((u64, u64, String), Value)> = table
        .rows
        .values()
        .filter(|r| r.version > p.lo && r.version <= p.hi)
        .map(|r| {
            let id = r.data[def.key].as_str().unwrap_or_default().to_string();
            (
                (0, r.version, id),
                Value::Object(representation(r, select.as_deref(), def.key)),
            )
        })
        .collect();
    if p.delta {
        let context = state.api_url(&format!("$metadata#{}/$deletedEntity", def.set));
        items.extend(
            table
                .tombstones
                .iter()
                .filter(|(v, _)| *v > p.lo && *v <= p.hi)
                .map(|(v, id)| {
                    (
                        (1, *v, id.clone()),
                        json!({"@odata.context": context, "id": id, "reason": "deleted"}),
                    )
                }),
        );
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(after) = &p.after {
        items.retain(|(k, _)| k.cmp(after) == Ordering::Greater);
    }
    let page_size = prefs.max_page_size.unwrap_or(MAX_PAGE);
    let more = items.len() > page_size;
    items.truncate(page_size);
    let select_pair: Vec<(&str, &str)> = params
        .get("$select")
        .map(|s| vec![("$select", s)])
        .unwrap_or_default();
    let mut body = Map::new();
    let suffix = if p.delta { "/$delta" } else { "" };
    body.insert(
        "@odata.context".into(),
        json!(state.api_url(&format!("$metadata#{}{suffix}", def.set))),
    );
    if more {
        let last = items.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let token = encode_token(&json!({
            "lo": p.lo, "hi": p.hi, "e": p.epoch, "d": p.delta,
            "after": [last.0, last.1, last.2],
        }));
        let mut pairs = select_pair.clone();
        pairs.push(("$skiptoken", &token));
        let query = Params::default().encode_without(&[], &pairs);
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{}?{query}", state.api_url(def.set))),
        );
    } else {
        let token = format!("{}!{}", p.hi, p.epoch);
        let mut pairs = select_pair.clone();
        pairs.push(("$deltatoken", &token));
        let query = Params::default().encode_without(&[], &pairs);
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{}?{query}", state.api_url(def.set))),
        );
    }
    body.insert(
        "value".into(),
        Value::Array(items.into_iter().map(|(_, v)| v).collect()),
    );
    let mut applied = "odata.track-changes".to_string();
    if let Some(n) = prefs.max_page_size {
        applied.push_str(&format!(",odata.maxpagesize={n}"));
    }
    Ok(PageOut {
        body: Value::Object(body),
        applied: Some(applied),
    })
}
