//! Value conversions between the referral's JSON and Dataverse columns, one pair per
//! transform. `to_crm` is the inbound direction, `to_referral` the outbound one; both return
//! a reason text on a value they cannot convert.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::checkmark::strip_checkmark;
use super::country::to_iso2;
use super::spec::{FieldSpec, Transform, ValueMap};

/// Referral value → column value.
pub fn to_crm(
    field: &FieldSpec,
    maps: &BTreeMap<String, ValueMap>,
    value: &Value,
) -> Result<Value, String> {
    match &field.transform {
        Transform::None => Ok(plain(field, value)),
        Transform::Money => amount(value).map(money),
        Transform::DateOnly => date_part(value).map(|d| Value::String(format_date(d))),
        Transform::CountryIso2 => text(value).and_then(|s| to_iso2(&s)).map(Value::String),
        Transform::ValueMap => {
            let map = value_map(field, maps)?;
            let key = text(value)?;
            map.entries
                .iter()
                .find(|e| e.referral.eq_ignore_ascii_case(key.trim()))
                .map(|e| e.crm.clone())
                .ok_or_else(|| format!("'{key}' has no entry in value map"))
        }
        Transform::Solutions => join_items(value, Some("id"), field.separator()),
        Transform::Join => join_items(value, field.item_key.as_deref(), field.separator()),
        Transform::Currency => currency_code(value),
        Transform::Unknown(t) => Err(format!("unknown transform '{t}'")),
    }
}

/// Column value → referral value. `current` is the referral's value at the same path, used to
/// keep the details of solutions that stay.
pub fn to_referral(
    field: &FieldSpec,
    maps: &BTreeMap<String, ValueMap>,
    value: &Value,
    current: Option<&Value>,
) -> Result<Value, String> {
    match &field.transform {
        Transform::None => Ok(plain(field, value)),
        Transform::Money => amount(value).map(money),
        Transform::DateOnly => {
            date_part(value).map(|d| Value::String(format!("{}T00:00:00Z", format_date(d))))
        }
        Transform::CountryIso2 => text(value).and_then(|s| to_iso2(&s)).map(Value::String),
        Transform::ValueMap => {
            let map = value_map(field, maps)?;
            map.entries
                .iter()
                .find(|e| same_choice(&e.crm, value))
                .map(|e| Value::String(e.referral.clone()))
                .ok_or_else(|| format!("{value} has no entry in value map"))
        }
        Transform::Solutions => {
            let keep: Vec<&Value> = current
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let items = split_items(value, field.separator())?
                .into_iter()
                .map(|id| {
                    keep.iter()
                        .find(|s| s.get("id").and_then(Value::as_str) == Some(id.as_str()))
                        .map(|s| (*s).clone())
                        .unwrap_or_else(|| keyed("id", id))
                })
                .collect();
            Ok(Value::Array(items))
        }
        Transform::Join => {
            let items = split_items(value, field.separator())?
                .into_iter()
                .map(|s| match &field.item_key {
                    Some(k) => keyed(k, s),
                    None => Value::String(s),
                })
                .collect();
            Ok(Value::Array(items))
        }
        Transform::Currency => currency_code(value).map(|c| match c {
            Value::String(s) => Value::String(s),
            other => other,
        }),
        Transform::Unknown(t) => Err(format!("unknown transform '{t}'")),
    }
}

/// The column value in the form `to_crm` produces, whatever form the CRM returned it in (so
/// equal values compare and hash equal).
pub fn canonical_crm(
    field: &FieldSpec,
    maps: &BTreeMap<String, ValueMap>,
    value: &Value,
) -> Result<Value, String> {
    let referral = to_referral(field, maps, value, None)?;
    to_crm(field, maps, &referral)
}

fn plain(field: &FieldSpec, value: &Value) -> Value {
    match value {
        Value::String(s) if field.checkmark => Value::String(strip_checkmark(s).to_string()),
        other => other.clone(),
    }
}

fn value_map<'a>(
    field: &FieldSpec,
    maps: &'a BTreeMap<String, ValueMap>,
) -> Result<&'a ValueMap, String> {
    let name = field.value_map.as_deref().unwrap_or_default();
    maps.get(name)
        .ok_or_else(|| format!("value map '{name}' is not defined"))
}

/// Choice values compare as numbers (100000000 and 100000000.0 are the same option),
/// text case-insensitively.
fn same_choice(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        (Value::Number(x), Value::String(y)) | (Value::String(y), Value::Number(x)) => {
            y.trim().parse::<f64>().ok() == x.as_f64()
        }
        _ => a == b,
    }
}

fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected text, found {other}")),
    }
}

fn amount(value: &Value) -> Result<f64, String> {
    let v = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    v.filter(|v| v.is_finite())
        .ok_or_else(|| format!("{value} is not an amount"))
}

/// Money columns have precision 2: round half away from zero to cents.
pub fn round_money(v: f64) -> f64 {
    let cents = (v * 100.0).round() / 100.0;
    // Avoid writing -0.0 for a rounded tiny negative.
    if cents == 0.0 {
        0.0
    } else {
        cents
    }
}

fn money(v: f64) -> Value {
    serde_json::Number::from_f64(round_money(v))
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The UTC date of a timestamp, or the date itself for a `YYYY-MM-DD` value. A timestamp
/// without an offset is taken as UTC (the service documents its times as UTC).
fn date_part(value: &Value) -> Result<Date, String> {
    let s = text(value)?;
    let s = s.trim();
    let bad = || format!("'{s}' is not a date or an RFC 3339 timestamp");
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC).date());
    }
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(s, local) {
        return Ok(t.date());
    }
    Date::parse(s, format_description!("[year]-[month]-[day]")).map_err(|_| bad())
}

fn keyed(key: &str, v: String) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), Value::String(v));
    Value::Object(m)
}

/// An array (of scalars, or objects holding the value under `key`) as one separated text.
fn join_items(value: &Value, key: Option<&str>, sep: &str) -> Result<Value, String> {
    let Value::Array(items) = value else {
        return text(value).map(Value::String);
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let v = match (key, item) {
            (Some(k), Value::Object(m)) => m.get(k).map(text).transpose()?,
            (_, Value::Object(_)) => return Err("list items are objects: set item_key".into()),
            (_, Value::Null) => None,
            (_, scalar) => Some(text(scalar)?),
        };
        if let Some(v) = v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    Ok(Value::String(out.join(sep)))
}

/// A separated text as its items: trimmed, empty ones and repeats dropped.
fn split_items(value: &Value, sep: &str) -> Result<Vec<String>, String> {
    let s = text(value)?;
    let mut out: Vec<String> = Vec::new();
    for part in s.split(sep).map(str::trim).filter(|p| !p.is_empty()) {
        if !out.iter().any(|o| o == part) {
            out.push(part.to_string());
        }
    }
    Ok(out)
}

/// An ISO 4217 code from text, or from an expanded `transactioncurrencyid` row.
fn currency_code(value: &Value) -> Result<Value, String> {
    let raw = match value {
        Value::Object(m) => m
            .get("isocurrencycode")
            .and_then(Value::as_str)
            .ok_or("the currency row has no isocurrencycode")?
            .to_string(),
        other => text(other)?,
    };
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(Value::String(code))
    } else {
        Err(format!("'{raw}' is not an ISO 4217 currency code"))
    }
}
