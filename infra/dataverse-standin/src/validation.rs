//! Business-rule rejections: writes whose body sets a column to a value containing some text
//! fail with a 400, the way a synchronous plug-in or a field validation rejects them in a
//! real org. Lets tests make one record permanently unwritable, then lift the rule.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::odata_error::ApiError;

/// The error code Dataverse uses for a plug-in's `InvalidPluginExecutionException`.
const PLUGIN_ERROR: &str = "0x80040265";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteRejection {
    /// Entity set, e.g. `opportunities`.
    pub set: String,
    pub column: String,
    /// Rejected when the written value (as text) contains this.
    pub contains: String,
    pub message: String,
}

pub(crate) fn check(
    rules: &[WriteRejection],
    set: &str,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    for rule in rules.iter().filter(|r| r.set == set) {
        let hit = body.get(&rule.column).is_some_and(|v| match v {
            Value::String(s) => s.contains(&rule.contains),
            other => other.to_string().contains(&rule.contains),
        });
        if hit {
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                PLUGIN_ERROR,
                rule.message.clone(),
            ));
        }
    }
    Ok(())
}

/// Opportunity columns with DateOnly behaviour (`Edm.Date`): they take `YYYY-MM-DD` only.
const DATE_ONLY: &[(&str, &str)] = &[
    ("opportunities", "estimatedclosedate"),
    ("opportunities", "actualclosedate"),
    ("opportunities", "finaldecisiondate"),
];

/// Refuses a date-time (or anything but `YYYY-MM-DD` or null) in a DateOnly column. The
/// real service's words are not documented; this is the OData conversion error's shape.
pub(crate) fn date_only(set: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    for (_, column) in DATE_ONLY.iter().filter(|(s, _)| *s == set) {
        let ok = match body.get(*column) {
            None | Some(Value::Null) => true,
            Some(Value::String(v)) => time::Date::parse(v, &format).is_ok(),
            Some(_) => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Cannot convert the literal '{}' to the expected type 'Edm.Date'.",
                body[*column]
                    .as_str()
                    .map_or_else(|| body[*column].to_string(), str::to_string)
            )));
        }
    }
    Ok(())
}
