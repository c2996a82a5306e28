//! Rows created together: one `$batch` request holding one change set, so that a new
//! customer, its contact and the opportunity cost one request and exist all or none (a
//! change set is atomic). Each row is an upsert-free create on a caller-chosen id
//! (`PATCH /<set>(<id>)` with `If-None-Match: *`): sent again after its answer was lost,
//! the change set fails with 412 on its first row and changes nothing, and the caller
//! creates row by row, each of which tolerates the 412.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use super::client::{selecting, writable, Kind, Target, NO_TARGET, RETURN_REPRESENTATION};
use super::error::DataverseError;
use super::model::{Account, Contact};
use super::DataverseClient;
use crate::retry::Idempotency;

/// One row of a change set.
#[derive(Debug, Clone)]
pub struct NewRow {
    /// Entity set, e.g. `accounts`.
    pub set: String,
    /// Logical name, e.g. `account` (for error texts).
    pub entity: String,
    pub id: String,
    pub body: Map<String, Value>,
}

impl NewRow {
    pub fn account(id: &str, account: &Account) -> Result<NewRow, DataverseError> {
        let mut body = writable(account)?;
        body.remove("accountid");
        Ok(NewRow {
            set: "accounts".into(),
            entity: "account".into(),
            id: id.to_string(),
            body,
        })
    }

    /// A `parentcustomerid` is bound as the contact's account.
    pub fn contact(id: &str, contact: &Contact) -> Result<NewRow, DataverseError> {
        let mut body = writable(contact)?;
        body.remove("contactid");
        if let Some(account) = &contact.parentcustomerid {
            body.extend([super::bind::contact_company(account)]);
        }
        Ok(NewRow {
            set: "contacts".into(),
            entity: "contact".into(),
            id: id.to_string(),
            body,
        })
    }

    pub fn opportunity(id: &str, body: Map<String, Value>) -> NewRow {
        NewRow {
            set: "opportunities".into(),
            entity: "opportunity".into(),
            id: id.to_string(),
            body,
        }
    }

    /// A row of another table (a solution row): its set names it in error texts too.
    pub fn table(set: &str, id: &str, body: Map<String, Value>) -> NewRow {
        NewRow {
            set: set.to_string(),
            entity: set.to_string(),
            id: id.to_string(),
            body,
        }
    }

    fn select(&self, client: &DataverseClient) -> String {
        match self.entity.as_str() {
            "account" => client.selects.account(),
            "contact" => client.selects.contact(),
            _ => client.selects.opportunity(),
        }
    }
}

/// One operation's answer inside a batch response.
#[derive(Debug, Clone, PartialEq)]
pub struct PartAnswer {
    pub status: u16,
    /// The JSON the operation returned (a created row with `return=representation`).
    pub body: Option<Value>,
}

impl DataverseClient {
    /// Creates one row on its id, as [`DataverseClient::create_together`] would, alone.
    pub async fn create_row(&self, row: &NewRow) -> Result<Value, DataverseError> {
        self.create_with_id(&row.set, &row.entity, &row.id, &row.body, &row.select(self))
            .await
    }

    /// Creates `rows` in order, in one change set, each returned as the service answers
    /// it (`None` when it sent no body). A row that exists already fails the whole change
    /// set with [`DataverseError::Conflict`] naming the first row, and nothing is written.
    pub async fn create_together(
        &self,
        rows: &[NewRow],
    ) -> Result<Vec<Option<Value>>, DataverseError> {
        let call = "create rows together";
        let mut parts = Vec::new();
        for row in rows {
            let url = self.entity_url(&row.set, &row.entity, &row.id)?;
            parts.push((selecting(url, &row.select(self)), &row.body));
        }
        let boundary = format!("batch_{}", uuid::Uuid::new_v4());
        let body = change_set_body(&boundary, &parts);
        let first = rows.first();
        let target = match first {
            Some(r) => Target {
                entity: &r.entity,
                id: &r.id,
            },
            None => NO_TARGET,
        };
        // Every part is create-only on a fixed key: a replay after the first was applied
        // fails on its first row and changes nothing.
        let kind = Kind::Write(Idempotency::Idempotent);
        let answers = self.send_batch(call, target, kind, &boundary, body).await?;
        if answers.len() != rows.len() {
            return Err(DataverseError::Malformed {
                call: call.into(),
                reason: format!("{} answers for {} rows", answers.len(), rows.len()),
            });
        }
        let mut out = Vec::new();
        for (row, a) in rows.iter().zip(answers) {
            if StatusCode::from_u16(a.status).is_ok_and(|s| s.is_success()) {
                out.push(a.body);
                continue;
            }
            let message = a
                .body
                .as_ref()
                .and_then(|b| b["error"]["message"].as_str())
                .unwrap_or_default()
                .to_string();
            return Err(if a.status == 412 {
                DataverseError::Conflict {
                    entity: row.entity.clone(),
                    id: row.id.clone(),
                    message,
                }
            } else {
                DataverseError::Invalid {
                    call: call.into(),
                    status: a.status,
                    code: String::new(),
                    message,
                }
            });
        }
        Ok(out)
    }
}

impl DataverseClient {
    /// The customer's account (by name and postal code) and contact (by e-mail), each the
    /// oldest match, looked up in one `$batch` of two GETs when both are asked for.
    pub async fn find_customer(
        &self,
        account: Option<(&str, Option<&str>)>,
        email: Option<&str>,
    ) -> Result<(Option<Account>, Option<Contact>), DataverseError> {
        let (Some((name, postal)), Some(email)) = (account, email) else {
            let account = match account {
                Some((name, postal)) => self.find_account(name, postal).await?,
                None => None,
            };
            let contact = match email {
                Some(e) => self.find_contact_by_email(e).await?,
                None => None,
            };
            return Ok((account, contact));
        };
        let call = "find customer";
        let urls = [
            self.find_account_url(name, postal),
            self.find_contact_url(email),
        ];
        let boundary = format!("batch_{}", uuid::Uuid::new_v4());
        let body = reads_body(&boundary, &urls);
        let answers = self
            .send_batch(call, NO_TARGET, Kind::Read, &boundary, body)
            .await?;
        let [a, c] = answers.as_slice() else {
            return Err(DataverseError::Malformed {
                call: call.into(),
                reason: format!("{} answers for 2 lookups", answers.len()),
            });
        };
        Ok((first_row(call, a)?, first_row(call, c)?))
    }
}

impl DataverseClient {
    /// POSTs a `$batch` body made with `boundary`; every operation's answer, in order.
    async fn send_batch(
        &self,
        call: &str,
        target: Target<'_>,
        kind: Kind,
        boundary: &str,
        body: String,
    ) -> Result<Vec<PartAnswer>, DataverseError> {
        let url: Url = self.url("$batch");
        let content_type = format!("multipart/mixed; boundary={boundary}");
        let resp = self
            .send(call, target, kind, &|| {
                self.http
                    .request(Method::POST, url.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(body.clone())
            })
            .await?;
        answers_of(call, resp).await
    }
}

/// The first row of a collection answer (`{"value": [...]}`) of a batch part.
fn first_row<T: serde::de::DeserializeOwned>(
    call: &str,
    answer: &PartAnswer,
) -> Result<Option<T>, DataverseError> {
    if !StatusCode::from_u16(answer.status).is_ok_and(|s| s.is_success()) {
        return Err(DataverseError::Invalid {
            call: call.into(),
            status: answer.status,
            code: String::new(),
            message: answer
                .body
                .as_ref()
                .and_then(|b| b["error"]["message"].as_str())
                .unwrap_or_default()
                .to_string(),
        });
    }
    let Some(row) = answer.body.as_ref().and_then(|b| b["value"].get(0)) else {
        return Ok(None);
    };
    serde_json::from_value(row.clone())
        .map(Some)
        .map_err(|e| DataverseError::Malformed {
            call: call.into(),
            reason: e.to_string(),
        })
}

/// Every operation's answer of a batch response.
async fn answers_of(
    call: &str,
    resp: reqwest::Response,
) -> Result<Vec<PartAnswer>, DataverseError> {
    let answer_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.map_err(|e| DataverseError::Malformed {
        call: call.into(),
        reason: e.without_url().to_string(),
    })?;
    parse_response(&answer_type, &text).map_err(|reason| DataverseError::Malformed {
        call: call.into(),
        reason,
    })
}

/// A `$batch` body of GETs, outside any change set (reads may not be in one).
pub fn reads_body(boundary: &str, urls: &[Url]) -> String {
    let mut out = String::new();
    for url in urls {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET {url} HTTP/1.1\r\nAccept: application/json\r\n\r\n"
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// A `$batch` body with one change set of create-only PATCHes (`Content-ID` 1, 2, ...).
pub fn change_set_body(boundary: &str, parts: &[(Url, &Map<String, Value>)]) -> String {
    let change_set = format!("changeset_{}", uuid::Uuid::new_v4());
    let mut out =
        format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={change_set}\r\n\r\n");
    for (i, (url, body)) in parts.iter().enumerate() {
        out.push_str(&format!(
            "--{change_set}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n",
            i + 1
        ));
        out.push_str(&format!("PATCH {url} HTTP/1.1\r\n"));
        out.push_str("Content-Type: application/json; type=entry\r\n");
        out.push_str("If-None-Match: *\r\n");
        out.push_str(&format!("Prefer: {RETURN_REPRESENTATION}\r\n\r\n"));
        out.push_str(&Value::Object((*body).clone()).to_string());
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{change_set}--\r\n--{boundary}--\r\n"));
    out
}

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

/// Every operation's answer of a batch response, change sets flattened, in order.
pub fn parse_response(content_type: &str, text: &str) -> Result<Vec<PartAnswer>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| format!("not a multipart/mixed answer: '{content_type}'"))?;
    let mut out = Vec::new();
    collect(text, &boundary, &mut out)?;
    Ok(out)
}

/// The error body of the first failed operation of a batch answer, as JSON text.
pub(super) fn failed_part(content_type: &str, text: &str) -> Option<String> {
    parse_response(content_type, text)
        .ok()?
        .into_iter()
        .find(|a| a.status >= 400)
        .and_then(|a| a.body)
        .map(|b| b.to_string())
}

fn collect(text: &str, boundary: &str, out: &mut Vec<PartAnswer>) -> Result<(), String> {
    let delimiter = format!("--{boundary}");
    let mut pieces = text.split(delimiter.as_str());
    pieces.next();
    for piece in pieces {
        if piece.starts_with("--") {
            return Ok(());
        }
        let (head, rest) = split_head(piece.trim_start_matches(['\r', '\n']));
        let kind = header(head, "content-type").unwrap_or_default();
        if let Some(inner) = boundary_of(&kind) {
            collect(rest, &inner, out)?;
        } else {
            out.push(http_answer(rest)?);
        }
    }
    Err(format!("the answer does not end with '--{boundary}--'"))
}

fn split_head(part: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = part.find(sep) {
            return (&part[..i], &part[i + sep.len()..]);
        }
    }
    (part, "")
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// `HTTP/1.1 201 Created`, headers, blank line, body.
fn http_answer(part: &str) -> Result<PartAnswer, String> {
    let (head, body) = split_head(part);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line '{status_line}'"))?;
    let body = body.trim();
    let body = if body.is_empty() {
        None
    } else {
        Some(serde_json::from_str(body).map_err(|e| format!("part body: {e}"))?)
    };
    Ok(PartAnswer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_set_body_holds_one_create_only_patch_per_row() {
        let a = json!({"name": "Contoso"}).as_object().cloned().unwrap();
        let o = json!({"name": "Deal", "customerid_account@odata.bind": "/accounts(1)"})
            .as_object()
            .cloned()
            .unwrap();
        let u1 = Url::parse("https://org.example/api/data/v9.2/accounts(1)").unwrap();
        let u2 = Url::parse("https://org.example/api/data/v9.2/opportunities(2)").unwrap();
        let body = change_set_body("batch_x", &[(u1, &a), (u2, &o)]);
        assert!(body.starts_with("--batch_x\r\nContent-Type: multipart/mixed; boundary=changeset_"));
        assert!(body.ends_with("--batch_x--\r\n"));
        assert_eq!(body.matches("If-None-Match: *").count(), 2);
        assert!(body.contains(
            "Content-ID: 1\r\n\r\nPATCH https://org.example/api/data/v9.2/accounts(1) HTTP/1.1"
        ));
        assert!(body.contains(
            "Content-ID: 2\r\n\r\nPATCH https://org.example/api/data/v9.2/opportunities(2)"
        ));
        assert!(body.contains(r#""customerid_account@odata.bind":"/accounts(1)""#));
    }

    #[test]
    fn a_batch_answer_gives_each_operation_in_order() {
        let text = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"accountid\":\"1\"}\r\n\
--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
HTTP/1.1 204 No Content\r\nOData-EntityId: x\r\n\r\n\r\n\
--changesetresponse_2--\r\n--batchresponse_1--\r\n";
        let answers = parse_response("multipart/mixed; boundary=batchresponse_1", text).unwrap();
        assert_eq!(
            answers,
            vec![
                PartAnswer {
                    status: 201,
                    body: Some(json!({"accountid": "1"}))
                },
                PartAnswer {
                    status: 204,
                    body: None
                },
            ]
        );
        assert_eq!(
            failed_part("multipart/mixed; boundary=batchresponse_1", text),
            None
        );
        let failed = text.replace(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"accountid\":\"1\"}",
            "HTTP/1.1 412 Precondition Failed\r\n\r\n{\"error\":{\"code\":\"\",\"message\":\"exists\"}}",
        );
        assert_eq!(
            failed_part("multipart/mixed; boundary=batchresponse_1", &failed).as_deref(),
            Some(r#"{"error":{"code":"","message":"exists"}}"#)
        );
        // Cut short: an error, not fewer answers.
        let cut = &text[..text.len() - 25];
        assert!(parse_response("multipart/mixed; boundary=batchresponse_1", cut).is_err());
        assert!(parse_response("application/json", text).is_err());
    }
}
