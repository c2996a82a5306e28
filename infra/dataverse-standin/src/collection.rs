//! Collection reads: `$filter`, `$select`, `$orderby` (primary key appended so paging is
//! deterministic), `$top`, and `odata.maxpagesize` paging whose `$skiptoken` holds the
//! sort values of the last row served, so rows written between pages don't shift a page.

use std::cmp::Ordering;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::filter::{self, order_values};
use crate::index;
use crate::odata_error::ApiError;
use crate::request::{Params, Prefs, MAX_PAGE};
use crate::state::{representation, Inner, Row, State, TableDef};

/// A page: its JSON body and the `Preference-Applied` value.
pub struct PageOut {
    pub body: Value,
    pub applied: Option<String>,
}

pub fn encode_token(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn decode_token(text: &str) -> Result<Value, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request("The $skiptoken value is not valid."))
}

fn orderby(params: &Params, key: &str) -> Result<Vec<(String, bool)>, ApiError> {
    let mut out = Vec::new();
    if let Some(text) = params.get("$orderby") {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut words = part.split_whitespace();
            let col = words.next().unwrap_or_default().to_ascii_lowercase();
            let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(d) => {
                    return Err(ApiError::bad_request(format!(
                        "Syntax error in $orderby: '{d}'"
                    )))
                }
            };
            out.push((col, desc));
        }
    }
    if !out.iter().any(|(c, _)| c == key) {
        out.push((key.to_string(), false));
    }
    Ok(out)
}

fn compare_tuples(a: &[Value], b: &[Value], order: &[(String, bool)]) -> Ordering {
    for ((x, y), (_, desc)) in a.iter().zip(b).zip(order) {
        let o = order_values(x, y);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// An ordinary (not change-tracking) collection query.
pub fn query(
    state: &State,
    inner: &Inner,
    def: TableDef,
    params: &Params,
    prefs: &Prefs,
) -> Result<PageOut, ApiError> {
    let filter = params
        .get("$filter")
        .map(|f| {
            filter::parse(f)
                .map_err(|e| ApiError::bad_request(format!("Syntax error in $filter: {e}")))
        })
        .transpose()?;
    let order = orderby(params, def.key)?;
    let select = params.select();
    let expand = crate::expand::of_params(def, params)?;
    let after = params
        .get("$skiptoken")
        .map(|t| {
            decode_token(t).and_then(|v| {
                v.get("after")
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or_else(|| ApiError::bad_request("The $skiptoken value is not valid."))
            })
        })
        .transpose()?;
    let table = inner.table(def.set);
    // An `eq` lookup reads its index bucket, anything else scans; the filter decides either way.
    let candidates: Vec<&Row> = match filter.as_ref().and_then(index::equality) {
        Some((column, bucket)) => table
            .index
            .candidates(&table.rows, column, &bucket)
            .iter()
            .filter_map(|id| table.rows.get(id))
            .collect(),
        None => table.rows.values().collect(),
    };
    // Sort keys first, representations only for the page: a page of 500 out of 100,000
    // rows no longer copies all 100,000.
    let mut rows: Vec<(Vec<Value>, &Row)> = candidates
        .into_iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(&r.data)))
        .map(|r| {
            let tuple = order
                .iter()
                .map(|(c, _)| r.data.get(c).cloned().unwrap_or(Value::Null))
                .collect();
            (tuple, r)
        })
        .collect();
    if let Some(after) = &after {
        rows.retain(|(t, _)| compare_tuples(t, after, &order) == Ordering::Greater);
    }
    rows.sort_by(|a, b| compare_tuples(&a.0, &b.0, &order));
    // `$top` counts only without maxpagesize, as in Dataverse.
    let top = match (prefs.max_page_size, params.get("$top")) {
        (None, Some(t)) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("Invalid $top value '{t}'")))?,
        ),
        _ => None,
    };
    if let Some(top) = top {
        rows.truncate(top);
    }
    let page_size = prefs.max_page_size.unwrap_or(MAX_PAGE);
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(state.api_url(&format!("$metadata#{}", def.set))),
    );
    if more {
        let last = rows.last().map(|(t, _)| t.clone()).unwrap_or_default();
        let token = encode_token(&json!({"after": last}));
        let query = params.encode_without(&["$skiptoken"], &[("$skiptoken", &token)]);
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{}?{query}", state.api_url(def.set))),
        );
    }
    body.insert(
        "value".into(),
        Value::Array(
            rows.into_iter()
                .map(|(_, r)| {
                    let mut out = representation(r, select.as_deref(), def.key);
                    crate::expand::add(inner, def, &r.data, &expand, &mut out);
                    Value::Object(out)
                })
                .collect(),
        ),
    );
    Ok(PageOut {
        body: Value::Object(body),
        applied: prefs
            .max_page_size
            .map(|n| format!("odata.maxpagesize={n}")),
    })
}
