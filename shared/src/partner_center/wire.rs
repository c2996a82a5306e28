//! Scalar wire types that must round-trip byte for byte.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A timestamp as the service wrote it (e.g. seven fractional digits); parsed on demand,
/// so writing it back never changes its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WireTime(pub String);

impl WireTime {
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        WireTime(t.format(&Rfc3339).unwrap_or_default())
    }

    pub fn parse(&self) -> Result<OffsetDateTime, time::error::Parse> {
        OffsetDateTime::parse(&self.0, &Rfc3339)
    }
}

/// `details.dealValue`: a number in the docs' samples and a string in their PATCH example.
/// Kept in the form it came in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DealValue {
    Number(serde_json::Number),
    Text(String),
}

impl DealValue {
    pub fn from_f64(v: f64) -> Self {
        serde_json::Number::from_f64(v)
            .map(DealValue::Number)
            .unwrap_or_else(|| DealValue::Text(v.to_string()))
    }

    /// The amount, or `None` when the text is not a number.
    pub fn amount(&self) -> Option<f64> {
        match self {
            DealValue::Number(n) => n.as_f64(),
            DealValue::Text(s) => s.trim().parse().ok(),
        }
    }
}
