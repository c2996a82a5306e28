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
