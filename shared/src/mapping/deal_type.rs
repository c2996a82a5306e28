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
    /// The seller's answer to "share the deal with Microsoft sellers?", when the org keeps
    /// it in a column of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<VisibilitySpec>,
}

/// `[deal_type.visibility]`: the column saying whether the deal is shared with Microsoft's
/// sellers (`consentToShareReferralWithMicrosoftSellers`), and its values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilitySpec {
    #[serde(default = "visibility_column")]
    pub column: String,
    /// Values meaning shared; the first is the one the connector writes.
    pub shared: Vec<Value>,
    /// Values meaning private; the first is the one the connector writes.
    pub private: Vec<Value>,
}

fn visibility_column() -> String {
    "$col.visibility".into()
}

/// What the visibility column says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Shared,
    Private,
}

/// What the connector writes in the visibility column after a sync, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibilityWrite {
    pub column: String,
    pub value: Value,
    /// For the audit column: the seller's change that was refused, when there was one.
    pub refused: Option<&'static str>,
}

/// Why a change of the visibility column is not made in Partner Center.
pub const VISIBILITY_IRREVERSIBLE: &str = "the referral is shared with Microsoft sellers and cannot be made private again: the visibility was set back to shared";

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
            visibility: None,
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
    /// Help asked of Microsoft on a deal whose visibility column says private: Microsoft
    /// cannot help with a deal it does not see, so it is not sent until one changes.
    pub help_but_private: bool,
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

fn row_value<'a>(row: &'a Value, column: &str, columns: &ColumnNames) -> Option<&'a Value> {
    resolve_column(column, columns)
        .ok()
        .and_then(|c| row.get(c))
        .filter(|v| !v.is_null() && **v != Value::String(String::new()))
}

impl Mapping {
    /// What the opportunity's visibility column says (`None`: no such column configured,
    /// empty, or a value the mapping does not list).
    pub fn visibility(&self, opp: &Opportunity, columns: &ColumnNames) -> Option<Visibility> {
        let spec = self.deal_type.visibility.as_ref()?;
        let row = serde_json::to_value(opp).unwrap_or(Value::Null);
        let value = row_value(&row, &spec.column, columns)?;
        if spec.shared.iter().any(|v| same(v, value)) {
            Some(Visibility::Shared)
        } else if spec.private.iter().any(|v| same(v, value)) {
            Some(Visibility::Private)
        } else {
            None
        }
    }

    /// The visibility column and the value saying `shared` (or private), when configured.
    pub fn visibility_value(&self, columns: &ColumnNames, shared: bool) -> Option<(String, Value)> {
        let spec = self.deal_type.visibility.as_ref()?;
        let column = resolve_column(&spec.column, columns).ok()?.to_string();
        let values = if shared { &spec.shared } else { &spec.private };
        Some((column, values.first()?.clone()))
    }

    /// What the visibility column should show for a pair whose referral is (or is not)
    /// shared with Microsoft's sellers; `None` when it shows it already. Sharing cannot go
    /// back: a shared referral's column set to private is set back, and the write says so.
    /// A private referral's column set to shared is left as the seller set it (the docs
    /// give no way to share an existing private referral: a new referral would be needed).
    pub fn visibility_write(
        &self,
        opp: &Opportunity,
        columns: &ColumnNames,
        referral_shared: bool,
    ) -> Option<VisibilityWrite> {
        let refused = match (referral_shared, self.visibility(opp, columns)) {
            (true, Some(Visibility::Shared)) | (false, Some(_)) => return None,
            (true, Some(Visibility::Private)) => Some(VISIBILITY_IRREVERSIBLE),
            (_, None) => None,
        };
        let (column, value) = self.visibility_value(columns, referral_shared)?;
        Some(VisibilityWrite {
            column,
            value,
            refused,
        })
    }

    /// The deal type of a referral created from `opp`.
    pub fn deal_type(&self, opp: &Opportunity, columns: &ColumnNames) -> DealChoice {
        let spec = &self.deal_type;
        let row = serde_json::to_value(opp).unwrap_or(Value::Null);
        let visibility = self.visibility(opp, columns);
        let Some(value) = row_value(&row, &spec.column, columns) else {
            // No help asked: the visibility column, when there is one, says whether the
            // deal is shared (partner-led) or private.
            let deal = match visibility {
                Some(Visibility::Shared) => DealType::PartnerLed,
                Some(Visibility::Private) => DealType::Private,
                None => spec.when_empty,
            };
            return DealChoice {
                deal,
                help: None,
                help_but_private: false,
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
        let help_but_private =
            deal.shared_with_microsoft() && visibility == Some(Visibility::Private);
        DealChoice {
            deal,
            help,
            help_but_private,
        }
    }
}
