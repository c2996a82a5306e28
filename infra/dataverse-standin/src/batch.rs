//! `POST /api/data/v9.2/$batch`: a `multipart/mixed` body of operations run in order, with
//! change sets that succeed or fail as one (a failed part rolls back the parts before it).
//! As documented: at most 1000 operations, no GET inside a change set, `Content-ID`
//! references (`$1`) to rows created earlier in the same change set, and by default the
//! first failing operation stops the batch, which answers with that operation's status;
//! with `Prefer: odata.continue-on-error` it answers 200 and later operations still run.
//!
//! Supported operations: POST to a table, PATCH and DELETE of a row, and outside change sets
//! any GET the single-request routes serve.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::odata_error::ApiError;
use crate::request::{prefs, Params};
use crate::rows::{self, Target};
use crate::state::{Inner, Row, State, API_PREFIX};

/// The documented ceiling on operations in one batch.
pub const MAX_OPERATIONS: usize = 1000;

/// One part as sent: a single operation, or a change set of them.
enum Part {
    Operation(Operation),
    ChangeSet(Vec<Operation>),
}

struct Operation {
    method: String,
    url: String,
    headers: HeaderMap,
    body: String,
    content_id: Option<String>,
}

/// One operation's answer (its body is read once the lock is released).
struct Answer {
    status: StatusCode,
    resp: Response,
    content_id: Option<String>,
}

pub async fn handle(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let continue_on_error = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("odata.continue-on-error"));
    let parts = match parse_request(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let count: usize = parts
        .iter()
        .map(|p| match p {
            Part::Operation(_) => 1,
            Part::ChangeSet(ops) => ops.len(),
        })
        .sum();
    if count > MAX_OPERATIONS {
        return ApiError::bad_request(format!(
            "The number of requests in a batch cannot exceed {MAX_OPERATIONS}."
        ))
        .into_response();
    }

    let mut out: Vec<Vec<Answer>> = Vec::new();
    let mut failed: Option<StatusCode> = None;
    for part in parts {
        let (answers, error) = match part {
            Part::Operation(op) if op.method.eq_ignore_ascii_case("GET") => {
                let answer = get(&state, &op).await;
                let error = (!answer.status.is_success()).then_some(answer.status);
                (vec![answer], error)
            }
            Part::Operation(op) => {
                let mut inner = state.lock();
                let answer = run(&state, &mut inner, &op, &BTreeMap::new());
                let error = (!answer.status.is_success()).then_some(answer.status);
                (vec![answer], error)
            }
            Part::ChangeSet(ops) => change_set(&state, &ops),
        };
        out.push(answers);
        if let Some(status) = error {
            failed.get_or_insert(status);
            if !continue_on_error {
                break;
            }
        }
    }
    let status = match failed {
        Some(s) if !continue_on_error => s,
        _ => StatusCode::OK,
    };
    let boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let text = response_body(&boundary, out).await;
    (
        status,
        [
            (
                "Content-Type",
                format!("multipart/mixed; boundary={boundary}"),
            ),
            ("OData-Version", "4.0".to_string()),
        ],
        text,
    )
        .into_response()
}

/// A GET outside a change set: the same answer the single request would get.
async fn get(state: &Arc<State>, op: &Operation) -> Answer {
    let segment = match segment(&op.url) {
        Ok(s) => s,
        Err(e) => return error_answer(e, op),
    };
    let query = op.url.split_once('?').map(|(_, q)| q);
    let path = match query {
        Some(q) => format!("{API_PREFIX}{segment}?{q}"),
        None => format!("{API_PREFIX}{segment}"),
    };
    let Ok(uri) = path.parse::<axum::http::Uri>() else {
        return error_answer(
            ApiError::bad_request(format!("'{}' is not a valid URL.", op.url)),
            op,
        );
    };
    let resp = rows::get(
        AxState(state.clone()),
        axum::extract::Path(segment),
        uri,
        op.headers.clone(),
    )
    .await;
    answer_of(resp, op)
}

/// Runs a change set under one lock: every operation, or none (a failure undoes the rows
/// the earlier ones wrote). A failed change set answers with the failing operation only.
fn change_set(state: &State, ops: &[Operation]) -> (Vec<Answer>, Option<StatusCode>) {
    let mut inner = state.lock();
    let mut undo = Undo::new(&inner);
    let mut made: BTreeMap<String, String> = BTreeMap::new();
    let mut answers = Vec::new();
    for op in ops {
        if op.method.eq_ignore_ascii_case("GET") {
            undo.roll_back(&mut inner);
            let e = ApiError::bad_request("GET requests are not allowed in a change set.");
            return (vec![error_answer(e, op)], Some(StatusCode::BAD_REQUEST));
        }
        undo.before(&inner, op, &made);
        let answer = run(state, &mut inner, op, &made);
        if !answer.status.is_success() {
            undo.roll_back(&mut inner);
            let status = answer.status;
            return (vec![answer], Some(status));
        }
        if let Some(created) = created_row(&answer) {
            undo.created(&created);
            if let Some(cid) = &op.content_id {
                made.insert(cid.clone(), created.url.clone());
            }
        }
        answers.push(answer);
    }
    (answers, None)
}

/// A row an operation made, from its answer's `OData-EntityId`.
struct Created {
    url: String,
    set: String,
    id: String,
}

fn created_row(answer: &Answer) -> Option<Created> {
    if answer.status != StatusCode::CREATED && answer.status != StatusCode::NO_CONTENT {
        return None;
    }
    let url = answer
        .resp
        .headers()
        .get("OData-EntityId")
        .and_then(|v| v.to_str().ok())?
        .to_string();
    let segment = url.rsplit('/').next()?.to_string();
    let open = segment.find('(')?;
    let set = segment[..open].to_string();
    let id = segment[open + 1..].trim_end_matches(')').to_string();
    Some(Created { url, set, id })
}

/// What a change set needs to put back: each touched row as it was, and each table's
/// tombstone count.
struct Undo {
    rows: Vec<(String, String, Option<Row>)>,
    tombstones: BTreeMap<String, usize>,
}

impl Undo {
    fn new(inner: &Inner) -> Undo {
        let tombstones = inner
            .tables
            .iter()
            .map(|(set, t)| (set.to_string(), t.tombstones.len()))
            .collect();
        Undo {
            rows: Vec::new(),
            tombstones,
        }
    }

    /// Notes the row a PATCH or DELETE names, as it is now.
    fn before(&mut self, inner: &Inner, op: &Operation, made: &BTreeMap<String, String>) {
        let url = resolve_url(&op.url, made);
        let Ok(Target::Row(def, id)) = segment(&url).and_then(|s| rows::target(&s)) else {
            return;
        };
        let prev = inner.table(def.set).rows.get(&id).cloned();
        self.rows.push((def.set.to_string(), id, prev));
    }

    fn created(&mut self, row: &Created) {
        let known = self
            .rows
            .iter()
            .any(|(s, i, _)| *s == row.set && i.eq_ignore_ascii_case(&row.id));
        if !known {
            self.rows.push((row.set.clone(), row.id.clone(), None));
        }
    }

    fn roll_back(self, inner: &mut Inner) {
        for (set, id, prev) in self.rows.into_iter().rev() {
            let table = inner.table_mut(&set);
            if let Some(now) = table.rows.remove(&id) {
                table.index.remove(&id, &now.data);
            }
            if let Some(row) = prev {
                table.index.add(&id, &row.data);
                table.rows.insert(id, row);
            }
        }
        for (set, len) in self.tombstones {
            inner.table_mut(&set).tombstones.truncate(len);
        }
    }
}

/// The path segment after the API prefix of an absolute or root-relative URL.
fn segment(url: &str) -> Result<String, ApiError> {
    let path = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        None => url,
    };
    let path = path.split('?').next().unwrap_or_default();
    path.strip_prefix(API_PREFIX)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("'{url}' is not a Web API URL.")))
}

/// A `$n` URL names the row created by the change set's part with `Content-ID: n`.
fn resolve_url(url: &str, made: &BTreeMap<String, String>) -> String {
    match url.strip_prefix('$') {
        Some(cid) => made.get(cid).cloned().unwrap_or_else(|| url.to_string()),
        None => url.to_string(),
    }
}

fn run(
    state: &State,
    inner: &mut Inner,
    op: &Operation,
    made: &BTreeMap<String, String>,
) -> Answer {
    match run_inner(state, inner, op, made) {
        Ok(resp) => answer_of(resp, op),
        Err(e) => error_answer(e, op),
    }
}

fn run_inner(
    state: &State,
    inner: &mut Inner,
    op: &Operation,
    made: &BTreeMap<String, String>,
) -> Result<Response, ApiError> {
    if let Some(cid) = op.url.strip_prefix('$') {
        if !made.contains_key(cid) {
            return Err(ApiError::bad_request(format!(
                "Content-ID Reference: '${cid}' does not exist in the batch context."
            )));
        }
    }
    let url = resolve_url(&op.url, made);
    let query = url.split_once('?').map(|(_, q)| q);
    let params = Params::parse(query);
    let prefs = prefs(&op.headers);
    let header = |name: &str| {
        op.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let body = || -> Result<Map<String, Value>, ApiError> {
        let mut data = rows::json_body(&Bytes::from(op.body.clone()))?;
        for v in data.values_mut() {
            if let Value::String(s) = v {
                if let Some(cid) = s.strip_prefix('$') {
                    let Some(target) = made.get(cid) else {
                        return Err(ApiError::bad_request(format!(
                            "Content-ID Reference: '${cid}' does not exist in the batch context."
                        )));
                    };
                    *s = target.clone();
                }
            }
        }
        Ok(data)
    };
    let target = rows::target(&segment(&url)?)?;
    match (op.method.to_ascii_uppercase().as_str(), target) {
        ("POST", Target::Set(def)) => {
            let id = rows::create_in(inner, def, body()?)?;
            Ok(rows::row_answer_in(
                state, inner, def, &id, true, &prefs, &params,
            ))
        }
        ("PATCH", Target::Row(def, id)) => {
            let created = rows::upsert_in(
                inner,
                def,
                &id,
                header("if-match"),
                header("if-none-match"),
                body()?,
            )?;
            Ok(rows::row_answer_in(
                state, inner, def, &id, created, &prefs, &params,
            ))
        }
        ("DELETE", Target::Row(def, id)) => {
            rows::delete_in(inner, def, &id, header("if-match"))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (method, _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "0x80060888",
            format!("{method} is not supported on '{url}' in a batch by the stand-in."),
        )),
    }
}

fn answer_of(resp: Response, op: &Operation) -> Answer {
    Answer {
        status: resp.status(),
        resp,
        content_id: op.content_id.clone(),
    }
}

fn error_answer(e: ApiError, op: &Operation) -> Answer {
    answer_of(e.into_response(), op)
}

async fn response_body(boundary: &str, parts: Vec<Vec<Answer>>) -> String {
    let mut out = String::new();
    for (i, answers) in parts.into_iter().enumerate() {
        out.push_str(&format!("--{boundary}\r\n"));
        let in_change_set = answers.iter().any(|a| a.content_id.is_some()) || answers.len() > 1;
        if in_change_set {
            let inner = format!("changesetresponse_{}_{i}", uuid::Uuid::new_v4());
            out.push_str(&format!(
                "Content-Type: multipart/mixed; boundary={inner}\r\n\r\n"
            ));
            for a in answers {
                out.push_str(&format!("--{inner}\r\n"));
                http_part(&mut out, a).await;
            }
            out.push_str(&format!("--{inner}--\r\n"));
        } else {
            for a in answers {
                http_part(&mut out, a).await;
            }
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

async fn http_part(out: &mut String, a: Answer) {
    out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(cid) = &a.content_id {
        out.push_str(&format!("Content-ID: {cid}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&format!(
        "HTTP/1.1 {} {}\r\n",
        a.status.as_u16(),
        a.status.canonical_reason().unwrap_or_default()
    ));
    let (head, body) = a.resp.into_parts();
    for (k, v) in &head.headers {
        if *k == http::header::CONTENT_LENGTH {
            continue;
        }
        out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    out.push_str("\r\n");
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    out.push_str(&String::from_utf8_lossy(&bytes));
    out.push_str("\r\n");
}

// ---- the request body ----

fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Part>, ApiError> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = boundary_of(content_type).ok_or_else(|| {
        ApiError::bad_request(
            "A batch request needs Content-Type: multipart/mixed with a boundary.",
        )
    })?;
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("The batch body is not UTF-8 text."))?;
    let mut parts = Vec::new();
    for chunk in split_parts(text, &boundary)? {
        let (head, rest) = split_head(chunk);
        let head = header_map(head)?;
        let kind = head
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(inner) = boundary_of(kind) {
            let mut ops = Vec::new();
            for op in split_parts(rest, &inner)? {
                let (op_head, op_rest) = split_head(op);
                ops.push(operation(&header_map(op_head)?, op_rest)?);
            }
            parts.push(Part::ChangeSet(ops));
        } else {
            parts.push(Part::Operation(operation(&head, rest)?));
        }
    }
    Ok(parts)
}

/// The parts between `--boundary` lines, up to the closing `--boundary--`.
fn split_parts<'a>(text: &'a str, boundary: &str) -> Result<Vec<&'a str>, ApiError> {
    let delimiter = format!("--{boundary}");
    let mut pieces = text.split(delimiter.as_str());
    pieces.next(); // the preamble
    let mut parts = Vec::new();
    for piece in pieces {
        if piece.starts_with("--") {
            return Ok(parts);
        }
        parts.push(piece.trim_start_matches(['\r', '\n']));
    }
    Err(ApiError::bad_request(format!(
        "The batch body does not end with '--{boundary}--'."
    )))
}

/// Headers and body of a part: split at the first blank line.
fn split_head(part: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = part.find(sep) {
            return (&part[..i], &part[i + sep.len()..]);
        }
    }
    (part, "")
}

fn header_map(head: &str) -> Result<HeaderMap, ApiError> {
    let mut map = HeaderMap::new();
    for line in head.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').ok_or_else(|| {
            ApiError::bad_request(format!("Bad header line '{line}' in a batch part."))
        })?;
        let name = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
            ApiError::bad_request(format!("Bad header name '{k}' in a batch part."))
        })?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| ApiError::bad_request(format!("Bad header value in '{line}'.")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// An `application/http` part: the request line, its headers and body.
fn operation(part_head: &HeaderMap, rest: &str) -> Result<Operation, ApiError> {
    let kind = part_head
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !kind.to_ascii_lowercase().starts_with("application/http") {
        return Err(ApiError::bad_request(format!(
            "A batch part must be application/http, not '{kind}'."
        )));
    }
    let (request_head, body) = split_head(rest);
    let mut lines = request_head.lines();
    let request_line = lines.next().unwrap_or_default().trim();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(ApiError::bad_request(format!(
            "Bad request line '{request_line}' in a batch part."
        )));
    };
    let headers = header_map(&lines.collect::<Vec<_>>().join("\n"))?;
    let content_id = part_head
        .get("content-id")
        .or_else(|| headers.get("content-id"))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    Ok(Operation {
        method: method.to_string(),
        url: url.to_string(),
        headers,
        body: body.trim_end_matches(['\r', '\n']).to_string(),
        content_id,
    })
}
