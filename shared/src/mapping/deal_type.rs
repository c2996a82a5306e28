//! `[deal_type]`: which of Partner Center's three deal types a referral created from an
//! opportunity is (private, partner-led, co-sell), read from one CRM column. The docs name
//! no referral field for "help needed from Microsoft": the UI's answer picks the deal type,
//! so the mapping reads it here, in one place, and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ColumnNames;
use crate::dataverse::Opportunity;

use super::schema::resolve_column;
use super::Mapping;

/// The deal types of "create a referral".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DealType {
    /// `Independent`, not shared with Microsoft sellers, no target.
    Private,
    /// Shared with Microsoft (the two shared-referral steps), no help asked.
    PartnerLed,
    /// Shared with Microsoft (the two steps), asking for its help.
    CoSell,
}

impl DealType {
    /// Whether the create takes the shared-referral steps (own `Shared` referral, then the
    /// connected referral for Microsoft).
    pub fn shared_with_microsoft(self) -> bool {
        !matches!(self, DealType::Private)
    }
}

/// One CRM value with its own deal type.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DealTypeValue {
    pub crm: Value,
    pub deal: DealType,
}

/// The `[deal_type]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DealTypeSpec {
    /// The opportunity column read (`$col.<name>` for a connector column).
    #[serde(default = "help_column")]
    pub column: String,
    /// The deal type when the column is empty.
    #[serde(default = "private")]
    pub when_empty: DealType,
    /// The deal type of any value not listed in `values`.
    #[serde(default = "co_sell")]
    pub when_set: DealType,
    /// Values with a deal type of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<DealTypeValue>,
    /// The value map naming a co-sell's help topic (CRM value → text sent to Microsoft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_value_map: Option<String>,
}

fn help_column() -> String {
    "$col.help_needed".into()
}
fn private() -> DealType {
    DealType::Private
}
fn co_sell() -> DealType {
    DealType::CoSell
}

impl Default for DealTypeSpec {
    fn default() -> Self {
        DealTypeSpec {
            column: help_column(),
            when_empty: private(),
            when_set: co_sell(),
            values: Vec::new(),
            help_value_map: None,
        }
    }
}

/// What an opportunity's deal-type column says.
#[derive(Debug, Clone, PartialEq)]
pub struct DealChoice {
    pub deal: DealType,
    /// For a co-sell: the help asked of Microsoft, as text (from the help value map, else
    /// the raw value).
    pub help: Option<String>,
}

/// A CRM value and a file's value name the same option: equal, equal numbers, or the same
/// text (a choice read as `"100000003"`).
fn same(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b || text(a) == text(b),
    }
}

impl Mapping {
    /// The deal type of a referral created from `opp`.
    pub fn deal_type(&self, opp: &Opportunity, columns: &ColumnNames) -> DealChoice {
        let spec = &self.deal_type;
        let row = serde_json::to_value(opp).unwrap_or(Value::Null);
        let value = resolve_column(&spec.column, columns)
            .ok()
            .and_then(|c| row.get(c))
            .filter(|v| !v.is_null() && **v != Value::String(String::new()));
        let Some(value) = value else {
            return DealChoice {
                deal: spec.when_empty,
                help: None,
            };
        };
        let deal = spec
            .values
            .iter()
            .find(|v| same(&v.crm, value))
            .map_or(spec.when_set, |v| v.deal);
        let help = (deal == DealType::CoSell).then(|| {
            spec.help_value_map
                .as_ref()
                .and_then(|m| self.value_maps.get(m))
                .and_then(|m| m.entries.iter().find(|e| same(&e.crm, value)))
                .map(|e| e.referral.clone())
                .unwrap_or_else(|| match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
        });
        DealChoice { deal, help }
    }
}
