//! The mapped opportunity fields of a pair, field by field: each side's values in one
//! canonical form (the CRM's, after the mapping's transforms), and the writes that carry a
//! chosen set of values to either side. The three-way merge (`engine::pair::merge`) works on
//! these; nothing here does I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::ColumnNames;
use crate::dataverse::Opportunity;
use crate::partner_center::Referral;

use super::checkmark::with_checkmark;
use super::outbound::{JsonPatchOp, PatchOp};
use super::schema::{self, resolve_column};
use super::spec::{FieldSpec, Table, Transform};
use super::transform::{canonical_crm, to_crm, to_referral};
use super::{path, Mapping};

/// Field values keyed by referral path, in canonical CRM form. Absent: no value.
pub type FieldValues = BTreeMap<String, Value>;

/// Which ways a field may flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Partner Center -> CRM.
    pub inbound: bool,
    /// CRM -> Partner Center (the referral accepts writes at that path).
    pub outbound: bool,
}

impl Mapping {
    /// The opportunity fields a reconcile merges, with the ways each may flow.
    pub fn pair_fields(&self) -> impl Iterator<Item = (&FieldSpec, Flow)> {
        self.fields
            .iter()
            .filter(|f| f.table == Table::Opportunity && path::parse(&f.referral).is_some())
            .map(|f| {
                let writable =
                    schema::referral_path(&f.referral, &self.schema.referral_paths) == Some(true);
                let flow = Flow {
                    inbound: f.direction.inbound(),
                    outbound: f.direction.outbound() && writable,
                };
                (f, flow)
            })
            .filter(|(_, flow)| flow.inbound || flow.outbound)
    }

    /// The referral's values of the merged fields.
    pub fn referral_values(&self, referral: &Referral) -> FieldValues {
        let json = serde_json::to_value(referral).unwrap_or(Value::Null);
        let mut values = FieldValues::new();
        for (field, _) in self.pair_fields() {
            let Some(segs) = path::parse(&field.referral) else {
                continue;
            };
            let Some(raw) = path::get(&json, &segs) else {
                continue;
            };
            match to_crm(field, &self.value_maps, raw) {
                Ok(v) if !v.is_null() && v != Value::String(String::new()) => {
                    values.insert(field.referral.clone(), self.unordered(field, v));
                }
                Ok(_) => {}
                Err(reason) => {
                    tracing::warn!(field = %field.referral, %reason, "referral value not mapped")
                }
            }
        }
        values
    }

    /// The opportunity's values of the merged fields. `currency_iso` is the ISO code of the
    /// row's currency lookup (the row only holds the lookup's id).
    pub fn opportunity_values(
        &self,
        opp: &Opportunity,
        columns: &ColumnNames,
        currency_iso: Option<&str>,
    ) -> FieldValues {
        let row = serde_json::to_value(opp).unwrap_or(Value::Null);
        let mut values = FieldValues::new();
        for (field, _) in self.pair_fields() {
            let Ok(column) = resolve_column(&field.column, columns) else {
                continue;
            };
            let raw = if field.transform == Transform::Currency {
                currency_iso.map(|c| Value::String(c.to_string()))
            } else {
                row.get(column).filter(|v| !v.is_null()).cloned()
            };
            let Some(raw) = raw else {
                continue;
            };
            match canonical_crm(field, &self.value_maps, &raw) {
                Ok(v) if !v.is_null() && v != Value::String(String::new()) => {
                    values.insert(field.referral.clone(), self.unordered(field, v));
                }
                Ok(_) => {}
                Err(reason) => {
                    tracing::warn!(field = %field.referral, %reason, "opportunity value not mapped")
                }
            }
        }
        values
    }

    /// Solutions kept as rows have no order: their canonical value is sorted, so a
    /// referral listing them in another order than the rows are read is no change.
    fn unordered(&self, field: &FieldSpec, value: Value) -> Value {
        match value {
            Value::String(s)
                if field.transform == Transform::Solutions && self.solutions.is_table() =>
            {
                Value::String(super::solutions::sorted_ids(&s, field.separator()))
            }
            other => other,
        }
    }

    /// The opportunity columns that write `values` (canonical CRM form). A currency value is
    /// bound through `currency_id` (ISO code -> `transactioncurrencyid`); one the org lacks is
    /// left out. The name gets the checkmark when `checkmark` is on.
    pub fn opportunity_body(
        &self,
        values: &FieldValues,
        columns: &ColumnNames,
        currency_id: &dyn Fn(&str) -> Option<String>,
        checkmark: bool,
    ) -> Map<String, Value> {
        let mut body = Map::new();
        for (field, _) in self.pair_fields() {
            let Some(value) = values.get(&field.referral) else {
                continue;
            };
            let Ok(column) = resolve_column(&field.column, columns) else {
                continue;
            };
            if field.transform == Transform::Currency {
                if let Some(id) = value.as_str().and_then(currency_id) {
                    body.insert(
                        format!("{column}@odata.bind"),
                        Value::String(format!("/transactioncurrencies({id})")),
                    );
                }
                continue;
            }
            let value = match value {
                Value::String(s) if field.checkmark && checkmark => {
                    Value::String(with_checkmark(s, true))
                }
                other => other.clone(),
            };
            body.insert(column.to_string(), value);
            for (k, v) in &field.set_also {
                body.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// The JSON Patch that writes `values` (canonical CRM form) onto `current`.
    pub fn referral_patch(&self, current: &Referral, values: &FieldValues) -> Vec<JsonPatchOp> {
        let mut working = serde_json::to_value(current).unwrap_or(Value::Null);
        let mut ops = Vec::new();
        for (field, _) in self.pair_fields() {
            let Some(value) = values.get(&field.referral) else {
                continue;
            };
            let Some(segs) = path::parse(&field.referral) else {
                continue;
            };
            let now = path::get(&working, &segs).cloned();
            let desired = match to_referral(field, &self.value_maps, value, now.as_ref()) {
                Ok(v) => v,
                Err(reason) => {
                    tracing::warn!(field = %field.referral, %reason, "value not sent to Partner Center");
                    continue;
                }
            };
            if now.as_ref() == Some(&desired) {
                continue;
            }
            let (pointer, leaf, replace) = path::patch_target(&working, &segs, desired.clone());
            ops.push(JsonPatchOp {
                op: if replace {
                    PatchOp::Replace
                } else {
                    PatchOp::Add
                },
                path: pointer,
                value: leaf,
            });
            path::set(&mut working, &segs, desired);
        }
        ops
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// The default connector column names (shared by the mapping's unit tests).
    pub(crate) fn columns() -> ColumnNames {
        ColumnNames {
            sync_flag: "cosell_syncwithpartnercenter".into(),
            referral_id: "cosell_referralidentifier".into(),
            referral_link: "cosell_referrallink".into(),
            help_needed: "cosell_howcanmicrosofthelp".into(),
            solutions: "cosell_solutions".into(),
            audit: "cosell_audit".into(),
            decision: "cosell_referraldecision".into(),
            visibility: "cosell_referralvisibility".into(),
        }
    }

    fn referral(v: Value) -> Referral {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn both_sides_read_the_same_deal_the_same_way() {
        let m = Mapping::default_mapping();
        let r = referral(json!({
            "id": "r1",
            "name": "Contoso ✔",
            "details": {"dealValue": 25000.004, "currency": "usd", "closingDateTime": "2026-03-01T10:00:00Z", "notes": "hi"}
        }));
        let cols = columns();
        let mut opp: Opportunity = serde_json::from_value(json!({
            "opportunityid": "00000000-0000-0000-0000-000000000001",
            "name": "Contoso",
            "estimatedvalue": 25000.0,
            "estimatedclosedate": "2026-03-01",
            "description": "hi",
        }))
        .unwrap();
        opp.extra
            .insert(cols.referral_id.clone(), Value::String("r1".into()));
        let pc = m.referral_values(&r);
        let dv = m.opportunity_values(&opp, &cols, Some("USD"));
        for path in [
            "name",
            "details.dealValue",
            "details.currency",
            "details.closingDateTime",
            "details.notes",
            "id",
        ] {
            assert_eq!(pc.get(path), dv.get(path), "{path}");
        }
        // The CRM's own id goes out as the external reference; the referral has none yet.
        assert!(dv.contains_key("externalReferenceId"));
        assert!(!pc.contains_key("externalReferenceId"));
    }

    #[test]
    fn bodies_write_only_the_chosen_fields() {
        let m = Mapping::default_mapping();
        let cols = columns();
        let values = FieldValues::from([
            ("details.dealValue".to_string(), json!(30000.0)),
            ("details.currency".to_string(), json!("EUR")),
            ("name".to_string(), json!("Deal")),
        ]);
        let body = m.opportunity_body(
            &values,
            &cols,
            &|iso| (iso == "EUR").then(|| "c1".into()),
            true,
        );
        assert_eq!(body["estimatedvalue"], json!(30000.0));
        assert_eq!(body["isrevenuesystemcalculated"], json!(false));
        assert_eq!(
            body["transactioncurrencyid@odata.bind"],
            json!("/transactioncurrencies(c1)")
        );
        assert_eq!(body["name"], json!("Deal ✔"));
        assert!(!body.contains_key("description"));

        let current = referral(json!({"id": "r1", "details": {"dealValue": 1.0}}));
        let ops = m.referral_patch(&current, &values);
        let paths: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
        assert!(paths.contains(&"/details/dealValue"));
        assert!(paths.contains(&"/details/currency"));
        assert!(paths.contains(&"/name"));
        assert_eq!(ops.len(), 3);
    }
}
