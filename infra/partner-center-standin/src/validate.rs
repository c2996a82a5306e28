//! The checks the service makes on a written referral: required fields, enum values and the
//! status state machine.

use cosell::partner_center::status::{ReferralQualification, ReferralStatus, ReferralSubstatus};
use cosell::partner_center::{ReferralDirection, ReferralType};
use serde_json::Value;

const REQUIRED: &[&str] = &["name", "type", "customerProfile", "consent", "details"];

fn text<'a>(r: &'a Value, field: &str) -> Option<&'a str> {
    r.get(field).and_then(Value::as_str)
}

fn known(field: &str, value: Option<&str>, is_known: impl Fn(&str) -> bool) -> Result<(), String> {
    match value {
        Some(v) if !is_known(v) => Err(format!("'{v}' is not a valid {field}")),
        _ => Ok(()),
    }
}

/// A referral body as written (create, full update or the result of a patch).
pub fn referral(r: &Value) -> Result<(), String> {
    if !r.is_object() {
        return Err("the referral must be a JSON object".into());
    }
    for f in REQUIRED {
        if r.get(f).is_none_or(Value::is_null) {
            return Err(format!("the field '{f}' is required"));
        }
    }
    known("type", text(r, "type"), |v| {
        ReferralType::parse(v).is_known()
    })?;
    known("status", text(r, "status"), |v| {
        ReferralStatus::parse(v).is_known()
    })?;
    known("substatus", text(r, "substatus"), |v| {
        ReferralSubstatus::parse(v).is_known()
    })?;
    known("qualification", text(r, "qualification"), |v| {
        ReferralQualification::parse(v).is_known()
    })?;
    known("direction", text(r, "direction"), |v| {
        ReferralDirection::parse(v).is_known()
    })?;
    if let (Some(s), Some(sub)) = (text(r, "status"), text(r, "substatus")) {
        let status = ReferralStatus::parse(s);
        if !status
            .allowed_substatus()
            .contains(&ReferralSubstatus::parse(sub))
        {
            return Err(format!(
                "substatus '{sub}' is not allowed with status '{s}'"
            ));
        }
    }
    Ok(())
}

/// A status change from `before` to `after`.
pub fn transition(before: &Value, after: &Value) -> Result<(), String> {
    let (Some(from), Some(to)) = (text(before, "status"), text(after, "status")) else {
        return Ok(());
    };
    if ReferralStatus::parse(from).may_move_to(&ReferralStatus::parse(to)) {
        Ok(())
    } else {
        Err(format!(
            "a referral cannot move from status '{from}' to '{to}'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"name": "n", "type": "Shared", "customerProfile": {}, "consent": {}, "details": {}})
    }

    #[test]
    fn required_fields_and_enums() {
        assert!(referral(&base()).is_ok());
        let mut r = base();
        r.as_object_mut().unwrap().remove("consent");
        assert!(referral(&r).unwrap_err().contains("consent"));
        let mut r = base();
        r["type"] = json!("Joint");
        assert!(referral(&r).unwrap_err().contains("Joint"));
        let mut r = base();
        r["status"] = json!("Closed");
        r["substatus"] = json!("Accepted");
        assert!(referral(&r).is_err());
    }

    #[test]
    fn closed_is_final() {
        let closed = json!({"status": "Closed"});
        assert!(transition(&closed, &json!({"status": "Active"})).is_err());
        assert!(transition(&json!({"status": "New"}), &json!({"status": "Active"})).is_ok());
    }
}
