//! Solutions kept as rows (`[solutions] layout = "table"`): the opportunity's child rows,
//! one per solution, each bound to a catalogue row (solution id, name).
//!
//! Reads: every opportunity read carries `$expand=<rows>($select=...;$expand=<catalogue
//! lookup>($select=...))`, and the rows become the text the column layout would hold (the
//! solution ids, sorted, joined by the separator) under the solutions column's name in
//! `Opportunity::extra`, so the merge and the base see the same value either way.
//!
//! Writes: an update goes as one `$batch`: a change set with the opportunity's PATCH and the
//! child rows' creates and deletes, then a GET of the row with its rows (a PATCH's answer
//! never carries an `$expand`). Same request count as the column layout's PATCH. A child
//! row made by the connector has an id derived from the opportunity and the solution, so a
//! replay is refused (412) instead of doubling it. A solution id the catalogue lacks gets
//! a catalogue row (id, and the referral's name for it) in the same change set: the
//! referral names a real Partner Center solution, and refusing would hold the whole deal
//! back over a catalogue that is behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use super::batch::{parse_response, NewRow};
use super::client::{selecting, Kind, NO_TARGET};
use super::error::DataverseError;
use super::model::Opportunity;
use super::{query, DataverseClient};
use crate::config::ColumnNames;
use crate::mapping::solutions::{sorted_ids, SolutionsSpec, SOLUTIONS_PATH};
use crate::mapping::Mapping;
use crate::retry::Idempotency;

/// Namespace of the ids derived for solution rows (UUID v5). Fixed forever.
const NAMESPACE: Uuid = Uuid::from_u128(0x5c0e_11d4_8a3b_4e0f_9d27_61b4_c8e0_a7f3);

/// The table layout's settings and what it learnt of the catalogue.
#[derive(Debug)]
pub(super) struct SolutionRows {
    spec: SolutionsSpec,
    /// The solutions column's configured name: where the text goes in a row's `extra`
    /// and the key a body carries it under.
    column: String,
    separator: String,
    /// Solution id -> catalogue row id, from reads and lookups (the catalogue only grows).
    catalogue: Mutex<HashMap<String, String>>,
}

/// One child row as read.
#[derive(Debug, Clone, PartialEq)]
struct ChildRow {
    id: String,
    etag: Option<String>,
    solution_id: Option<String>,
}

/// One write to a child or catalogue row, in a change set.
#[derive(Debug, Clone)]
pub enum RowWrite {
    /// A create-only PATCH on the row's derived id.
    Create(NewRow),
    /// A DELETE conditional on the etag read.
    Delete {
        set: String,
        id: String,
        etag: Option<String>,
    },
}

fn derived(kind: &str, name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{kind}/{name}").as_bytes()).to_string()
}

impl SolutionRows {
    /// `None` unless the mapping keeps solutions as rows.
    pub(super) fn new(mapping: &Mapping, columns: &ColumnNames) -> Option<SolutionRows> {
        if !mapping.solutions.is_table() {
            return None;
        }
        let field = mapping.field(SOLUTIONS_PATH)?;
        Some(SolutionRows {
            spec: mapping.solutions.clone(),
            column: crate::mapping::resolve_column(&field.column, columns)
                .unwrap_or(&columns.solutions)
                .to_string(),
            separator: field.separator().to_string(),
            catalogue: Mutex::new(HashMap::new()),
        })
    }

    /// The table's names, as the mapping gives them.
    pub(super) fn spec(&self) -> &SolutionsSpec {
        &self.spec
    }

    /// The solutions column's name (dropped from `$select` in this layout).
    pub(super) fn column(&self) -> &str {
        &self.column
    }

    /// The `$expand` every opportunity read carries.
    pub(super) fn expand(&self) -> String {
        let s = &self.spec;
        let own = if s.name_column.is_empty() {
            s.key.clone()
        } else {
            format!("{},{}", s.key, s.name_column)
        };
        format!(
            "{}($select={own};$expand={}($select={},{},{}))",
            s.navigation, s.catalogue_lookup, s.catalogue_key, s.catalogue_id, s.catalogue_name
        )
    }

    fn rows_of(&self, opp: &Opportunity) -> Vec<ChildRow> {
        let s = &self.spec;
        let Some(Value::Array(rows)) = opp.extra.get(&s.navigation) else {
            return Vec::new();
        };
        let mut cache = self.catalogue.lock().expect("catalogue cache poisoned");
        rows.iter()
            .filter_map(|r| {
                let id = r.get(&s.key)?.as_str()?.to_string();
                let detail = r.get(&s.catalogue_lookup);
                let solution_id = detail
                    .and_then(|d| d.get(&s.catalogue_id))
                    .and_then(Value::as_str)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty());
                let detail_id = detail
                    .and_then(|d| d.get(&s.catalogue_key))
                    .and_then(Value::as_str);
                if let (Some(sid), Some(did)) = (&solution_id, detail_id) {
                    cache.insert(sid.clone(), did.to_string());
                }
                Some(ChildRow {
                    id,
                    etag: r
                        .get("@odata.etag")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    solution_id,
                })
            })
            .collect()
    }

    /// Puts the rows' solution ids, as text, under the solutions column (removed when the
    /// opportunity has none). A row read without the expanded property is left as it is.
    pub(super) fn fill(&self, opp: &mut Opportunity) {
        if !opp.extra.contains_key(&self.spec.navigation) {
            return;
        }
        let ids: Vec<String> = self
            .rows_of(opp)
            .into_iter()
            .filter_map(|r| r.solution_id)
            .collect();
        let text = sorted_ids(&ids.join(&self.separator), &self.separator);
        if text.is_empty() {
            opp.extra.remove(&self.column);
        } else {
            opp.extra.insert(self.column.clone(), Value::String(text));
        }
    }

    fn child_row(
        &self,
        opportunity_id: &str,
        solution_id: &str,
        detail_id: &str,
        name: &str,
    ) -> NewRow {
        let s = &self.spec;
        let mut body = Map::new();
        body.extend([
            super::bind::bind(&s.opportunity_lookup, "opportunities", opportunity_id),
            super::bind::bind(&s.catalogue_lookup, &s.catalogue_set, detail_id),
        ]);
        if !s.name_column.is_empty() {
            body.insert(s.name_column.clone(), Value::String(name.to_string()));
        }
        NewRow::table(
            &s.set,
            &derived("row", &format!("{opportunity_id}/{solution_id}")),
            body,
        )
    }
}

impl DataverseClient {
    /// Takes the solutions text out of `body` and plans the row writes that bring the
    /// opportunity's rows (`current`, as read; `None` for a new opportunity) to it: a
    /// create per id it lacks (and a catalogue row per id the catalogue lacks, named from
    /// `names`), a delete per row whose id is no longer there. Nothing in the column
    /// layout, or when the body does not change the solutions.
    pub async fn plan_solution_rows(
        &self,
        opportunity_id: &str,
        current: Option<&Opportunity>,
        body: &mut Map<String, Value>,
        names: &BTreeMap<String, String>,
    ) -> Result<Vec<RowWrite>, DataverseError> {
        let Some(rows) = &self.solution_rows else {
            return Ok(Vec::new());
        };
        let Some(wanted) = body.remove(&rows.column) else {
            return Ok(Vec::new());
        };
        let wanted = sorted_ids(wanted.as_str().unwrap_or_default(), &rows.separator);
        let wanted: Vec<&str> = wanted
            .split(rows.separator.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        let have = current.map(|o| rows.rows_of(o)).unwrap_or_default();
        let mut writes = Vec::new();
        for row in &have {
            if row
                .solution_id
                .as_deref()
                .is_some_and(|id| !wanted.contains(&id))
            {
                writes.push(RowWrite::Delete {
                    set: rows.spec.set.clone(),
                    id: row.id.clone(),
                    etag: row.etag.clone(),
                });
            }
        }
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|id| !have.iter().any(|r| r.solution_id.as_deref() == Some(id)))
            .collect();
        let details = self.catalogue_rows(rows, &missing).await?;
        for id in missing {
            let name = names.get(id).map(String::as_str).unwrap_or(id);
            let detail = match details.get(id) {
                Some(d) => d.clone(),
                None => {
                    let s = &rows.spec;
                    let detail = derived("detail", id);
                    let mut body = Map::new();
                    body.insert(s.catalogue_id.clone(), Value::String(id.to_string()));
                    body.insert(s.catalogue_name.clone(), Value::String(name.to_string()));
                    writes.push(RowWrite::Create(NewRow::table(
                        &s.catalogue_set,
                        &detail,
                        body,
                    )));
                    detail
                }
            };
            writes.push(RowWrite::Create(rows.child_row(
                opportunity_id,
                id,
                &detail,
                name,
            )));
        }
        Ok(writes)
    }

    /// The catalogue row ids of `ids`, from what reads taught and else one query.
    async fn catalogue_rows(
        &self,
        rows: &SolutionRows,
        ids: &[&str],
    ) -> Result<HashMap<String, String>, DataverseError> {
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        {
            let cache = rows.catalogue.lock().expect("catalogue cache poisoned");
            for id in ids {
                match cache.get(*id) {
                    Some(d) => {
                        found.insert(id.to_string(), d.clone());
                    }
                    None => unknown.push(*id),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(found);
        }
        let s = &rows.spec;
        let filter = unknown
            .iter()
            .map(|id| format!("{} eq {}", s.catalogue_id, query::quote(id)))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut url = self.url(&s.catalogue_set);
        url.query_pairs_mut()
            .append_pair(
                "$select",
                &format!("{},{}", s.catalogue_key, s.catalogue_id),
            )
            .append_pair("$filter", &filter);
        let listed: Vec<Value> = self.query_all("find solution details", url).await?;
        let mut cache = rows.catalogue.lock().expect("catalogue cache poisoned");
        for row in listed {
            let (Some(key), Some(id)) = (
                row.get(&s.catalogue_key).and_then(Value::as_str),
                row.get(&s.catalogue_id).and_then(Value::as_str),
            ) else {
                continue;
            };
            // Two catalogue rows for one solution: the first listed serves.
            let id = id.trim().to_string();
            if unknown.contains(&id.as_str()) && !found.contains_key(&id) {
                cache.insert(id.clone(), key.to_string());
                found.insert(id, key.to_string());
            }
        }
        Ok(found)
    }

    /// Creates `creates` (rows made with the opportunity: its customer, itself), writes
    /// `changes` on the opportunity (when there are any) and `writes` on its rows, in one
    /// change set, and reads the row back with its rows in the same `$batch`. A stale etag
    /// (the opportunity's or a row's) or a row that exists already fails it all with
    /// [`DataverseError::Conflict`].
    pub async fn write_opportunity_rows(
        &self,
        id: &str,
        etag: Option<&str>,
        changes: &Map<String, Value>,
        writes: &[RowWrite],
        creates: &[NewRow],
    ) -> Result<Opportunity, DataverseError> {
        let call = "write opportunity and solution rows";
        let mut parts: Vec<Part> = Vec::new();
        for row in creates {
            parts.push(Part::create(self, row)?);
        }
        if !changes.is_empty() {
            let url = self.entity_url("opportunities", "opportunity", id)?;
            parts.push(Part {
                method: "PATCH",
                url,
                condition: Some(("If-Match", etag.unwrap_or("*").to_string())),
                body: Some(changes.clone()),
            });
        }
        for w in writes {
            parts.push(match w {
                RowWrite::Create(row) => Part::create(self, row)?,
                RowWrite::Delete { set, id, etag } => Part {
                    method: "DELETE",
                    url: self.entity_url(set, set, id)?,
                    condition: Some(("If-Match", etag.clone().unwrap_or_else(|| "*".into()))),
                    body: None,
                },
            });
        }
        let read = self.opportunity_url(self.entity_url("opportunities", "opportunity", id)?);
        let boundary = format!("batch_{}", Uuid::new_v4());
        let body = batch_body(&boundary, &parts, &read);
        let url: Url = self.url("$batch");
        let content_type = format!("multipart/mixed; boundary={boundary}");
        // Every part is conditional (an etag, or create-only on a derived id): a replay
        // after the first was applied is refused and changes nothing.
        let kind = Kind::Write(Idempotency::Idempotent);
        let resp = self
            .send(call, NO_TARGET, kind, &|| {
                self.http
                    .request(Method::POST, url.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(body.clone())
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // A catalogue row learnt earlier may have been deleted since.
                if let Some(rows) = &self.solution_rows {
                    rows.catalogue
                        .lock()
                        .expect("catalogue cache poisoned")
                        .clear();
                }
                return Err(e);
            }
        };
        let answer_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text: String = resp.text().await.map_err(|e| DataverseError::Malformed {
            call: call.into(),
            reason: e.without_url().to_string(),
        })?;
        let answers =
            parse_response(&answer_type, &text).map_err(|reason| DataverseError::Malformed {
                call: call.into(),
                reason,
            })?;
        let last = answers.last().filter(|a| a.status == 200);
        let Some(row) = last.and_then(|a| a.body.clone()) else {
            return Err(DataverseError::Malformed {
                call: call.into(),
                reason: format!("{} answers, the last not the row", answers.len()),
            });
        };
        let mut opp: Opportunity =
            serde_json::from_value(row).map_err(|e| DataverseError::Malformed {
                call: call.into(),
                reason: e.to_string(),
            })?;
        self.fill_solutions(&mut opp);
        Ok(opp)
    }

    /// What the org lacks of the tables, lookups and columns the table layout reads, one
    /// text each (reads only; nothing in the column layout). Each is probed with the very
    /// query the connector sends, so a wrong name shows as Dataverse's own refusal.
    pub async fn solution_tables_missing(&self) -> Result<Vec<String>, DataverseError> {
        let Some(rows) = &self.solution_rows else {
            return Ok(Vec::new());
        };
        let s = &rows.spec;
        let probe = |set: &str, select: String, expand: Option<String>| {
            let mut url = self.url(set);
            url.query_pairs_mut()
                .append_pair("$select", &select)
                .append_pair("$top", "1");
            if let Some(e) = expand {
                url.query_pairs_mut().append_pair("$expand", &e);
            }
            url
        };
        let probes = [
            (
                format!("solution rows table {}", s.set),
                probe(&s.set, s.key.clone(), None),
            ),
            (
                format!("solution catalogue {}", s.catalogue_set),
                probe(
                    &s.catalogue_set,
                    format!(
                        "{},{},{}",
                        s.catalogue_key, s.catalogue_id, s.catalogue_name
                    ),
                    None,
                ),
            ),
            (
                format!("opportunity's rows through {}", s.navigation),
                probe("opportunities", "opportunityid".into(), Some(rows.expand())),
            ),
        ];
        let mut missing = Vec::new();
        for (what, url) in probes {
            match self
                .get_json::<Value>("check solution tables", NO_TARGET, url, None)
                .await
            {
                Ok(_) => {}
                Err(DataverseError::Invalid {
                    status: 400 | 404,
                    message,
                    ..
                }) => missing.push(format!("{what}: {message}")),
                Err(e) => return Err(e),
            }
        }
        Ok(missing)
    }

    /// The solution rows' text on a row read with them (nothing in the column layout).
    pub(super) fn fill_solutions(&self, opp: &mut Opportunity) {
        if let Some(rows) = &self.solution_rows {
            rows.fill(opp);
        }
    }

    /// Whether solutions are rows (their writes go through
    /// [`DataverseClient::write_opportunity_rows`]).
    pub fn solutions_as_rows(&self) -> bool {
        self.solution_rows.is_some()
    }

    /// `url` with the opportunity's `$select`, and its rows' `$expand` in the table layout.
    pub(super) fn opportunity_url(&self, url: Url) -> Url {
        let mut url = selecting(url, &self.selects.opportunity());
        if let Some(rows) = &self.solution_rows {
            url.query_pairs_mut().append_pair("$expand", &rows.expand());
        }
        url
    }

    /// Reads one opportunity with its rows, filled.
    pub(super) async fn read_opportunity_row(
        &self,
        call: &str,
        target: super::client::Target<'_>,
        url: Url,
    ) -> Result<Opportunity, DataverseError> {
        let mut opp: Opportunity = self
            .get_json(call, target, self.opportunity_url(url), None)
            .await?;
        self.fill_solutions(&mut opp);
        Ok(opp)
    }
}

/// One operation of the change set.
struct Part {
    method: &'static str,
    url: Url,
    condition: Option<(&'static str, String)>,
    body: Option<Map<String, Value>>,
}

impl Part {
    fn create(client: &DataverseClient, row: &NewRow) -> Result<Part, DataverseError> {
        let url = client.entity_url(&row.set, &row.entity, &row.id)?;
        Ok(Part {
            method: "PATCH",
            url,
            condition: Some(("If-None-Match", "*".into())),
            body: Some(row.body.clone()),
        })
    }
}

/// A `$batch` body: one change set of `parts`, then a GET of `read`.
fn batch_body(boundary: &str, parts: &[Part], read: &Url) -> String {
    let change_set = format!("changeset_{}", Uuid::new_v4());
    let mut out = String::new();
    if !parts.is_empty() {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={change_set}\r\n\r\n"
        ));
        for (i, p) in parts.iter().enumerate() {
            out.push_str(&format!(
                "--{change_set}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n",
                i + 1
            ));
            out.push_str(&format!("{} {} HTTP/1.1\r\n", p.method, p.url));
            if let Some((name, value)) = &p.condition {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            match &p.body {
                Some(body) => {
                    out.push_str("Content-Type: application/json; type=entry\r\n\r\n");
                    out.push_str(&Value::Object(body.clone()).to_string());
                    out.push_str("\r\n");
                }
                None => out.push_str("\r\n"),
            }
        }
        out.push_str(&format!("--{change_set}--\r\n"));
    }
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET {read} HTTP/1.1\r\nAccept: application/json\r\n\r\n--{boundary}--\r\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> SolutionRows {
        let m = Mapping::from_toml_str("extends = \"default\"\n[solutions]\nlayout = \"table\"\n")
            .unwrap();
        let columns = ColumnNames {
            sync_flag: "s".into(),
            referral_id: "r".into(),
            referral_link: "l".into(),
            help_needed: "h".into(),
            solutions: "cosell_solutions".into(),
            audit: "a".into(),
            decision: "d".into(),
            visibility: "v".into(),
        };
        SolutionRows::new(&m, &columns).unwrap()
    }

    #[test]
    fn rows_read_with_the_opportunity_become_the_columns_text() {
        let r = rows();
        assert_eq!(
            r.expand(),
            "cosell_opportunity_cosell_opportunitysolution($select=cosell_opportunitysolutionid,cosell_name;$expand=cosell_solutiondetailid($select=cosell_solutiondetailid,cosell_solutionid,cosell_name))"
        );
        let mut opp: Opportunity = serde_json::from_value(serde_json::json!({
            "opportunityid": "o1",
            "cosell_opportunity_cosell_opportunitysolution": [
                {"cosell_opportunitysolutionid": "c2", "cosell_solutiondetailid": {"cosell_solutiondetailid": "d2", "cosell_solutionid": "SOL-B"}},
                {"cosell_opportunitysolutionid": "c1", "cosell_solutiondetailid": {"cosell_solutiondetailid": "d1", "cosell_solutionid": "SOL-A"}},
                {"cosell_opportunitysolutionid": "c3", "cosell_solutiondetailid": null},
            ]
        }))
        .unwrap();
        r.fill(&mut opp);
        assert_eq!(opp.column_str("cosell_solutions"), Some("SOL-A;SOL-B"));
        assert_eq!(
            r.catalogue.lock().unwrap().get("SOL-B").map(String::as_str),
            Some("d2")
        );
        opp.extra.insert(
            "cosell_opportunity_cosell_opportunitysolution".into(),
            serde_json::json!([]),
        );
        r.fill(&mut opp);
        assert_eq!(opp.column("cosell_solutions"), None);
    }
}
