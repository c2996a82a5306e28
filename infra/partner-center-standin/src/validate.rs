//! The checks the service makes on a written referral: required fields, enum values (the
//! documented lists of "referral resources") and the status state machine; on a create also
//! the documented fields of the sub-objects and the deal types of "create a referral".

use cosell::mapping::taxonomy::Taxonomy;
use cosell::partner_center::status::{
    ReferralQualification, ReferralStatus, ReferralSubstatus, ReferralTargetType,
};
use cosell::partner_center::{ReferralDirection, ReferralType};
use serde_json::Value;

/// "Required" on the create page (`name` is not marked).
const REQUIRED: &[&str] = &["type", "customerProfile", "consent", "details"];

/// The documented keys of the sub-objects a create may carry (Consent in lower case: the
/// docs' sample mixes PascalCase and camelCase).
const CONSENT_KEYS: &[&str] = &[
    "consenttotoshareinfowithothers",
    "consenttocontact",
    "consenttomicrosofttocontactspecificpartners",
    "consenttosharereferralwithmicrosoftsellers",
];
const INVITE_CONTEXT_KEYS: &[&str] = &["notes", "invitedBy"];
const TARGET_KEYS: &[&str] = &["id", "type"];

/// Microsoft's business profile location id in a target.
pub const MICROSOFT: &str = "msft";

/// The kind of referral a valid create makes.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateKind {
    /// `Independent`: visible to the partner only (a private deal when not shared).
    Independent,
    /// Your own `Shared` referral: a new engagement.
    Shared,
    /// A connected referral in an existing engagement (for Microsoft: target
    /// `BusinessProfileLocation`/`msft`).
    Connected {
        engagement_id: String,
        for_microsoft: bool,
    },
}

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
    if let Some(targets) = r.get("target").filter(|t| !t.is_null()) {
        let Some(targets) = targets.as_array() else {
            return Err("target must be an array of ReferralTarget".into());
        };
        for t in targets {
            known("target type", t.get("type").and_then(Value::as_str), |v| {
                ReferralTargetType::parse(v).is_known()
            })?;
        }
    }
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

fn only_keys(object: Option<&Value>, what: &str, keys: &[&str], fold: bool) -> Result<(), String> {
    let Some(map) = object.and_then(Value::as_object) else {
        return Ok(());
    };
    for k in map.keys() {
        let k_cmp = if fold {
            k.to_ascii_lowercase()
        } else {
            k.clone()
        };
        if !keys.contains(&k_cmp.as_str()) {
            return Err(format!("'{k}' is not a property of {what}"));
        }
    }
    Ok(())
}

fn is_microsoft(t: &Value) -> bool {
    t.get("type").and_then(Value::as_str) == Some("BusinessProfileLocation")
        && t.get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.eq_ignore_ascii_case(MICROSOFT))
}

/// True for a connected referral for Microsoft (a target `BusinessProfileLocation`/`msft`).
pub fn targets_microsoft(r: &Value) -> bool {
    r.get("target")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(is_microsoft))
}

fn consent_to_share_with_microsoft(r: &Value) -> Option<bool> {
    r.get("consent")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("consentToShareReferralWithMicrosoftSellers"))
        .and_then(|(_, v)| v.as_bool())
}

/// A create body (after [`referral`]): the documented sub-object fields, ISO codes, and the
/// deal types. The engagement of a connected referral is checked by the caller.
pub fn create(r: &Value) -> Result<CreateKind, String> {
    referral(r)?;
    only_keys(r.get("consent"), "Consent", CONSENT_KEYS, true)?;
    only_keys(
        r.get("inviteContext"),
        "InviteContext",
        INVITE_CONTEXT_KEYS,
        false,
    )?;
    let targets: Vec<Value> = r
        .get("target")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in &targets {
        only_keys(Some(t), "ReferralTarget", TARGET_KEYS, false)?;
    }
    let details = &r["details"];
    if let Some(c) = details.get("currency").filter(|c| !c.is_null()) {
        let ok = c
            .as_str()
            .is_some_and(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()));
        if !ok {
            return Err(format!("details.currency {c} is not an ISO 4217 code"));
        }
    } else if details.get("dealValue").is_some_and(|v| !v.is_null()) {
        return Err("details.currency is required with details.dealValue".into());
    }
    if let Some(c) = r
        .pointer("/customerProfile/address/country")
        .filter(|c| !c.is_null())
    {
        let ok = c
            .as_str()
            .is_some_and(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()));
        if !ok {
            return Err(format!(
                "customerProfile.address.country {c} is not an ISO 3166 alpha-2 code"
            ));
        }
    }
    services(r, Taxonomy::shipped())?;
    let for_microsoft = targets.iter().any(is_microsoft);
    let engagement = text(r, "engagementId").filter(|e| !e.trim().is_empty());
    let shares = consent_to_share_with_microsoft(r);
    match (ReferralType::parse(text(r, "type").unwrap_or_default()), engagement) {
        (ReferralType::Independent, None) if for_microsoft => Err(
            "a referral for Microsoft is a shared referral: create your own Shared referral, then the referral for Microsoft with its engagementId".into(),
        ),
        (ReferralType::Independent, None) => Ok(CreateKind::Independent),
        (ReferralType::Independent, Some(_)) => {
            Err("an Independent referral cannot join an engagement".into())
        }
        (ReferralType::Shared, None) if for_microsoft => Err(
            "the referral for Microsoft needs the engagementId of your own Shared referral".into(),
        ),
        (ReferralType::Shared, None) => Ok(CreateKind::Shared),
        (ReferralType::Shared, Some(e)) => {
            let connects = targets
                .iter()
                .any(|t| t.get("type").and_then(Value::as_str) == Some("BusinessProfileLocation"));
            if !connects {
                return Err("a connected referral needs a BusinessProfileLocation target".into());
            }
            if for_microsoft && shares == Some(false) {
                return Err("a referral for Microsoft cannot withhold consentToShareReferralWithMicrosoftSellers".into());
            }
            Ok(CreateKind::Connected {
                engagement_id: e.to_string(),
                for_microsoft,
            })
        }
        (other, _) => Err(format!("'{other}' is not a valid type")),
    }
}

/// "Required for Services co-sell referrals only": a create that carries one of
/// partnerRole, solutionArea and solutionPlay carries all three, each from the FY26
/// taxonomy (the lists the connector ships), the play one of its area's.
fn services(r: &Value, taxonomy: &Taxonomy) -> Result<(), String> {
    let fields = ["partnerRole", "solutionArea", "solutionPlay"];
    let given = |f: &str| {
        r.get(f)
            .is_some_and(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
    };
    if !fields.iter().any(|f| given(f)) {
        return Ok(());
    }
    let absent: Vec<&str> = fields.iter().copied().filter(|f| !given(f)).collect();
    if !absent.is_empty() {
        return Err(format!(
            "a Services co-sell referral requires {}",
            absent.join(", ")
        ));
    }
    let value = |f: &str| text(r, f).ok_or_else(|| format!("{f} must be a string"));
    let (role, area, play) = (
        value("partnerRole")?,
        value("solutionArea")?,
        value("solutionPlay")?,
    );
    let eq = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    if !taxonomy.partner_roles.iter().any(|p| eq(role, p)) {
        return Err(format!("'{role}' is not a valid partnerRole"));
    }
    let Some(found) = taxonomy.areas.iter().find(|a| eq(area, &a.value)) else {
        return Err(format!("'{area}' is not a valid solutionArea"));
    };
    if !found.plays.iter().any(|p| eq(play, p)) {
        return Err(format!(
            "'{play}' is not a valid solutionPlay for solutionArea '{area}'"
        ));
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
    fn undocumented_values_are_refused() {
        for (field, value) in [
            ("substatus", "Engaged"),
            ("substatus", "Error"),
            ("qualification", "IntentToBuy"),
        ] {
            let mut r = base();
            r[field] = json!(value);
            if field == "substatus" {
                r["status"] = json!("Active");
            }
            assert!(referral(&r).unwrap_err().contains(value), "{field}={value}");
        }
        let mut r = base();
        r["target"] = json!([{"type": "Msft"}]);
        assert!(referral(&r).unwrap_err().contains("Msft"));
        let mut r = base();
        r["inviteContext"] = json!({"reason": "x"});
        assert!(create(&r).unwrap_err().contains("reason"));
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
    fn services_fields_come_together_from_the_taxonomy() {
        let t = Taxonomy::shipped();
        let (a, b) = (&t.areas[0], &t.areas[1]);
        let with = |role: &str, area: &str, play: &str| {
            let mut r = base();
            r["partnerRole"] = json!(role);
            r["solutionArea"] = json!(area);
            r["solutionPlay"] = json!(play);
            r
        };
        let role = t.partner_roles[0].as_str();
        assert!(
            create(&base()).is_ok(),
            "none of them: not a Services referral"
        );
        assert!(create(&with(role, &a.value, &a.plays[0])).is_ok());
        let mut missing = with(role, &a.value, &a.plays[0]);
        missing.as_object_mut().unwrap().remove("partnerRole");
        assert!(create(&missing)
            .unwrap_err()
            .contains("requires partnerRole"));
        assert!(create(&with("Nobody", &a.value, &a.plays[0]))
            .unwrap_err()
            .contains("partnerRole"));
        assert!(create(&with(role, "Modern Work", &a.plays[0]))
            .unwrap_err()
            .contains("solutionArea"));
        assert!(create(&with(role, &a.value, &b.plays[0]))
            .unwrap_err()
            .contains("not a valid solutionPlay for solutionArea"));
    }

    #[test]
    fn closed_is_final() {
        let closed = json!({"status": "Closed"});
        assert!(transition(&closed, &json!({"status": "Active"})).is_err());
        assert!(transition(&json!({"status": "New"}), &json!({"status": "Active"})).is_ok());
    }
}
