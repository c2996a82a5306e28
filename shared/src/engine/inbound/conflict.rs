//! Both sides changed since the last sync. The CRM changed when the opportunity's outbound
//! fingerprint no longer matches the crosswalk's; the referral changed or we would not be
//! here. Then, per field, `[conflict]` decides: for a field the CRM wins (by default the
//! seller's deal fields: value, currency, close date, notes, solutions, help needed) whose
//! CRM value differs from the referral's, the CRM value is kept and the conflict audited.
//! Fields Partner Center wins are written as usual. Never a silent overwrite either way.

use serde_json::{Map, Value};

use crate::config::ColumnNames;
use crate::crosswalk::Link;
use crate::dataverse::Opportunity;
use crate::mapping::{resolve_column, strip_checkmark, Mapping, Side, Table, Transform};

use super::trail::Trail;

/// Removes from `body` the fields the CRM wins; returns true when it kept any.
pub(super) fn keep_crm_winners(
    mapping: &Mapping,
    columns: &ColumnNames,
    link: &Link,
    current: &Opportunity,
    body: &mut Map<String, Value>,
    trail: &mut Trail,
) -> bool {
    let Some(synced) = link.dv_hash.as_deref() else {
        return false;
    };
    if mapping.outbound_hash(current, columns) == synced {
        return false;
    }
    let row = serde_json::to_value(current).unwrap_or(Value::Null);
    let mut kept = false;
    for field in &mapping.fields {
        if field.table != Table::Opportunity
            || !field.direction.inbound()
            || mapping.conflict_winner(&field.referral) != Side::Crm
        {
            continue;
        }
        let Ok(column) = resolve_column(&field.column, columns) else {
            continue;
        };
        let (key, crm) = if field.transform == Transform::Currency {
            // A lookup: the body binds `/transactioncurrencies(<id>)`, the row holds the id.
            let crm = row
                .get(format!("_{column}_value"))
                .and_then(Value::as_str)
                .map(|id| Value::String(format!("/transactioncurrencies({id})")))
                .unwrap_or(Value::Null);
            (format!("{column}@odata.bind"), crm)
        } else {
            (
                column.to_string(),
                row.get(column).cloned().unwrap_or(Value::Null),
            )
        };
        let Some(ours) = body.get(&key) else {
            continue;
        };
        if same(ours, &crm, field.checkmark) {
            continue;
        }
        body.remove(&key);
        kept = true;
        trail.conflict(format!(
            "conflict on {}: changed on both sides, the CRM's value was kept",
            field.referral
        ));
    }
    kept
}

/// Equal for sync purposes: numbers to the cent, names without the checkmark.
fn same(a: &Value, b: &Value, checkmark: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() < 0.005,
            _ => x == y,
        },
        (Value::String(x), Value::String(y)) if checkmark => {
            strip_checkmark(x) == strip_checkmark(y)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sameness_ignores_number_spelling_and_checkmarks_only() {
        assert!(same(&json!(25000), &json!(25000.0), false));
        assert!(!same(&json!(25000), &json!(25000.5), false));
        assert!(same(&json!("Deal ✔"), &json!("Deal"), true));
        assert!(!same(&json!("Deal ✔"), &json!("Deal"), false));
        assert!(!same(&json!("x"), &Value::Null, false));
    }
}
