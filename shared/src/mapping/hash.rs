//! Fingerprints of exactly the mapped values, for echo suppression: after the connector
//! writes one side it records the fingerprint of what it wrote, and a change event whose
//! fingerprint matches is its own write coming back (or a change to nothing it maps).
//! Values are canonical (checkmark stripped, money rounded, dates as dates, object keys
//! sorted) so a different but equal spelling hashes the same.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::ColumnNames;
use crate::dataverse::Opportunity;

use super::inbound::InboundPlan;
use super::schema::resolve_column;
use super::spec::Table;
use super::transform::canonical_crm;
use super::Mapping;

/// The value with object keys sorted at every level.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn digest(v: &Value) -> String {
    let text = canonical(v).to_string();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Mapping {
    /// Fingerprint of everything an inbound plan writes.
    pub fn inbound_hash(&self, plan: &InboundPlan) -> String {
        digest(&serde_json::json!({
            "opportunity": plan.opportunity,
            "account": plan.account,
            "contact": plan.contact,
            "state": [plan.target_state.statecode(), plan.target_state.statuscode()],
            "currency": plan.currency_iso,
        }))
    }

    /// Fingerprint of the opportunity values the outbound direction reads: the outbound
    /// fields of the opportunity table, the state, the sync flag and decision columns, and
    /// the deal-type column a create reads.
    pub fn outbound_hash(&self, opp: &Opportunity, columns: &ColumnNames) -> String {
        let row = serde_json::to_value(opp).unwrap_or(Value::Null);
        let mut values = Map::new();
        for field in &self.fields {
            if field.table != Table::Opportunity || !field.direction.outbound() {
                continue;
            }
            let Ok(column) = resolve_column(&field.column, columns) else {
                continue;
            };
            let value = match row.get(column).filter(|v| !v.is_null()) {
                Some(v) => canonical_crm(field, &self.value_maps, v).unwrap_or_else(|_| v.clone()),
                None => Value::Null,
            };
            values.insert(format!("{}:{column}", field.referral), value);
        }
        for column in [&columns.sync_flag, &columns.decision] {
            values.insert(
                column.clone(),
                opp.column(column).cloned().unwrap_or(Value::Null),
            );
        }
        if let Ok(column) = resolve_column(&self.deal_type.column, columns) {
            values.insert(
                format!("deal_type:{column}"),
                row.get(column).cloned().unwrap_or(Value::Null),
            );
        }
        values.insert("statecode".into(), opp.statecode.into());
        values.insert("statuscode".into(), opp.statuscode.into());
        digest(&Value::Object(values))
    }
}
