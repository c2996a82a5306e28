//! `[lead]`: what becomes of a referral that is a lead (a Marketplace lead or a qualified
//! lead, by `partner_center::classify`) rather than a co-sell opportunity, and, when it
//! lands as a Dynamics 365 lead, which referral values fill which lead columns.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::MappingError;
use super::schema::resolve_column;
use super::spec::{FieldSpec, Transform};
use super::{path, transform, FieldValues, Mapping};
use crate::config::ColumnNames;
use crate::partner_center::Referral;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadHandling {
    /// A Dynamics 365 lead while it is new; qualifying the lead moves the pair to the
    /// opportunity the qualification made. One already accepted lands as an opportunity.
    #[default]
    Lead,
    /// Synced as an opportunity, like a co-sell opportunity.
    Opportunity,
    /// Not synced: the audit trail says why.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeadSpec {
    #[serde(default)]
    pub handling: LeadHandling,
    /// `[[lead.field]]`: referral path -> lead column, Partner Center to the CRM only (the
    /// seller works the lead in the CRM; its answer goes back through the decision column
    /// and the qualification). `table` and `direction` are not read.
    #[serde(default, rename = "field", skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSpec>,
}

impl LeadSpec {
    /// A stand-alone file without `[lead]`: leads are synced as opportunities (it names no
    /// lead columns to land them with).
    pub(super) fn unnamed() -> LeadSpec {
        LeadSpec {
            handling: LeadHandling::Opportunity,
            fields: Vec::new(),
        }
    }

    /// An overriding file's `[lead]`: its handling, and its fields when it lists any.
    pub(super) fn apply(&mut self, other: LeadSpec) {
        self.handling = other.handling;
        if !other.fields.is_empty() {
            self.fields = other.fields;
        }
    }

    pub(super) fn validate(&self, columns: &ColumnNames) -> Vec<MappingError> {
        let mut errors = Vec::new();
        if self.handling == LeadHandling::Lead && self.fields.is_empty() {
            errors.push(MappingError::Lead(
                "[lead] handling = \"lead\" needs [[lead.field]] entries".into(),
            ));
        }
        for (n, f) in self.fields.iter().enumerate() {
            let at = format!("[[lead.field]] #{}", n + 1);
            if path::parse(&f.referral).is_none() {
                errors.push(MappingError::Lead(format!(
                    "{at}: '{}' is not a referral path",
                    f.referral
                )));
            }
            if resolve_column(&f.column, columns).map_or(true, str::is_empty) {
                errors.push(MappingError::Lead(format!(
                    "{at}: column '{}' is not a column",
                    f.column
                )));
            }
            if matches!(
                f.transform,
                Transform::Currency | Transform::Solutions | Transform::Unknown(_)
            ) {
                errors.push(MappingError::Lead(format!(
                    "{at}: transform '{}' is not for a lead column",
                    f.transform.as_str()
                )));
            }
        }
        errors
    }
}

impl Mapping {
    /// The lead columns the connector reads: the mapped ones and its own (sync flag,
    /// referral id and link, decision, audit).
    pub fn lead_select(&self, columns: &ColumnNames) -> Vec<String> {
        let mut out: Vec<String> = [
            &columns.sync_flag,
            &columns.referral_id,
            &columns.referral_link,
            &columns.decision,
            &columns.audit,
        ]
        .into_iter()
        .cloned()
        .collect();
        for f in &self.lead.fields {
            if let Ok(c) = resolve_column(&f.column, columns) {
                if !out.iter().any(|o| o == c) {
                    out.push(c.to_string());
                }
            }
        }
        out
    }

    /// The lead columns' values from `referral`, keyed by referral path, in the column's
    /// form: what the lead should show. A value that does not convert is left out.
    pub fn lead_values(&self, referral: &Referral) -> FieldValues {
        let json = serde_json::to_value(referral).unwrap_or(Value::Null);
        let mut values = FieldValues::new();
        for f in &self.lead.fields {
            let Some(raw) = path::parse(&f.referral).and_then(|s| path::get(&json, &s).cloned())
            else {
                continue;
            };
            match transform::to_crm(f, &self.value_maps, &raw) {
                Ok(v) if !v.is_null() && v != Value::String(String::new()) => {
                    values.insert(f.referral.clone(), v);
                }
                Ok(_) => {}
                Err(reason) => {
                    tracing::warn!(field = %f.referral, %reason, "referral value not mapped to the lead")
                }
            }
        }
        values
    }

    /// The lead write that takes the lead from showing `base` to showing `wanted`: each
    /// changed field's column, cleared (`null`) where the referral no longer has a value.
    pub fn lead_body(
        &self,
        base: &FieldValues,
        wanted: &FieldValues,
        columns: &ColumnNames,
    ) -> Map<String, Value> {
        let mut body = Map::new();
        for f in &self.lead.fields {
            let (now, before) = (wanted.get(&f.referral), base.get(&f.referral));
            if now == before {
                continue;
            }
            let Ok(column) = resolve_column(&f.column, columns) else {
                continue;
            };
            body.insert(column.to_string(), now.cloned().unwrap_or(Value::Null));
            if now.is_some() {
                for (k, v) in &f.set_also {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::mapping::pair::tests::columns as cols;

    fn referral(v: Value) -> Referral {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_default_lands_leads_as_leads_with_the_documented_columns() {
        let m = Mapping::default_mapping();
        assert_eq!(m.lead.handling, LeadHandling::Lead);
        let cols = cols();
        let r = referral(json!({
            "id": "r-1", "name": "Fabrikam lead",
            "customerProfile": {"name": "Fabrikam", "address": {"country": "USA", "city": "Redmond"},
                "team": [{"firstName": "Ana", "lastName": "Diaz", "email": "ana@fabrikam.example", "phoneNumber": "555"}]},
            "details": {"notes": "Wants a demo"}
        }));
        let values = m.lead_values(&r);
        let body = m.lead_body(&FieldValues::new(), &values, &cols);
        assert_eq!(body["subject"], json!("Fabrikam lead"));
        assert_eq!(body["companyname"], json!("Fabrikam"));
        assert_eq!(body["firstname"], json!("Ana"));
        assert_eq!(body["lastname"], json!("Diaz"));
        assert_eq!(body["emailaddress1"], json!("ana@fabrikam.example"));
        assert_eq!(body["telephone1"], json!("555"));
        assert_eq!(body["address1_city"], json!("Redmond"));
        assert_eq!(body["address1_country"], json!("US"), "alpha-3 converted");
        assert_eq!(body["description"], json!("Wants a demo"));
        let select = m.lead_select(&cols);
        for c in ["subject", "companyname", &cols.decision, &cols.audit] {
            assert!(select.iter().any(|s| s == c), "{c} read");
        }
    }

    #[test]
    fn only_changed_fields_are_written_and_a_removed_value_is_cleared() {
        let m = Mapping::default_mapping();
        let cols = cols();
        let before = referral(json!({"id": "r", "name": "A", "details": {"notes": "n"}}));
        let after = referral(json!({"id": "r", "name": "B"}));
        let body = m.lead_body(&m.lead_values(&before), &m.lead_values(&after), &cols);
        assert_eq!(body.len(), 2, "{body:?}");
        assert_eq!(body["subject"], json!("B"));
        assert_eq!(body["description"], Value::Null);
        let same = m.lead_body(&m.lead_values(&after), &m.lead_values(&after), &cols);
        assert!(same.is_empty());
    }

    #[test]
    fn an_override_keeps_the_default_fields_unless_it_lists_its_own() {
        let m =
            Mapping::from_toml_str("extends = \"default\"\n[lead]\nhandling = \"skip\"\n").unwrap();
        assert_eq!(m.lead.handling, LeadHandling::Skip);
        assert!(!m.lead.fields.is_empty());
        let bare = LeadSpec {
            handling: LeadHandling::Lead,
            fields: Vec::new(),
        };
        assert!(!bare.validate(&cols()).is_empty());
    }
}
