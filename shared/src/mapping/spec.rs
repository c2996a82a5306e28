//! The mapping file as written (TOML). Enum-like settings keep unknown spellings, so
//! `validate` can name them precisely instead of failing the whole parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Declares a string setting that keeps unknown spellings as `Unknown(text)`.
macro_rules! setting {
    ($(#[$meta:meta])* $name:ident default $default:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            Unknown(String),
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($wire => $name::$variant,)+
                    _ => $name::Unknown(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Unknown(s) => s.as_str(),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }
    };
}

setting! {
    /// The Dataverse table a field lands in.
    Table default Opportunity {
        Opportunity => "opportunity",
        Account => "account",
        Contact => "contact",
    }
}

setting! {
    /// Which way a field flows.
    Direction default Both {
        Both => "both",
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

setting! {
    /// How a value changes on its way between the two systems.
    Transform default None {
        None => "none",
        Money => "money",
        DateOnly => "date_only",
        CountryIso2 => "country_iso2",
        ValueMap => "value_map",
        Solutions => "solutions",
        Join => "join",
        Currency => "currency",
    }
}

setting! {
    /// Where an opportunity's solutions live (`[solutions]`, see `solutions.rs`).
    SolutionsLayout default Column {
        Column => "column",
        Table => "table",
    }
}

impl Direction {
    pub fn inbound(&self) -> bool {
        matches!(self, Direction::Both | Direction::Inbound)
    }
    pub fn outbound(&self) -> bool {
        matches!(self, Direction::Both | Direction::Outbound)
    }
}

/// One `[[field]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Dotted path in the referral JSON; array items as `[0]`.
    pub referral: String,
    #[serde(default)]
    pub table: Table,
    /// Dataverse logical name, or `$col.<name>` for a configured connector column.
    pub column: String,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub transform: Transform,
    /// The `[value_maps.<name>]` used by `transform = "value_map"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_map: Option<String>,
    /// Missing value: a warning inbound, an error when creating a referral.
    #[serde(default)]
    pub required: bool,
    /// Sent when the connector creates a referral from an opportunity. Defaults to true
    /// for fields that flow outbound; set it on inbound fields the create still needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// Strip the ✔/✘ suffix before comparing or sending.
    #[serde(default)]
    pub checkmark: bool,
    /// Sent to Partner Center only along with another write to the referral (an accept, a
    /// decline, a CRM edit), never on its own: a value the referral can do without for a
    /// while costs no request. Nor does a change to it alone count as a change to the pair.
    #[serde(default)]
    pub defer: bool,
    /// For `join` and `solutions`: the text separator (default `;`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// For `join`: the key of each array item that holds the value (items are scalars if unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_key: Option<String>,
    /// Constant columns written (inbound) on the same table along with this field.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set_also: Map<String, Value>,
    /// In a file that extends the default: `false` removes the default entry for this path.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl FieldSpec {
    /// Whether `outbound_create` sends this field.
    pub fn sent_on_create(&self) -> bool {
        self.create.unwrap_or_else(|| self.direction.outbound())
    }

    pub fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or(";")
    }
}

/// A named map between Partner Center strings and Dataverse values (usually choice numbers).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMap {
    /// A documented enum this map must cover completely (e.g. "ReferralQualification").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    pub entries: Vec<ValueMapEntry>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMapEntry {
    pub referral: String,
    pub crm: Value,
}

/// `[status]`: the status table both ways.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    #[serde(default)]
    pub inbound: Vec<StatusInbound>,
    #[serde(default)]
    pub outbound: Vec<StatusOutbound>,
}

/// Partner Center status/substatus → Dataverse state and status reason.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusInbound {
    pub status: String,
    pub substatus: String,
    /// open | won | lost
    pub state: String,
    pub statuscode: i32,
}

/// Dataverse state (and decision column) → Partner Center status. First match wins; an
/// unset condition matches anything.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusOutbound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statecode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuscode: Option<i32>,
    /// Value of the connector's decision column (accept / decline choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<i64>,
    pub status: String,
    pub substatus: String,
    /// Text for the referral's `statusReason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The side whose value wins when both changed the same field since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    PartnerCenter,
    Crm,
}

/// `[conflict]`: a default winner and per-field winners keyed by referral path (a path
/// also covers everything under it; `status` names the status table).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictSpec {
    #[serde(default = "partner_center")]
    pub default: Side,
    #[serde(default)]
    pub fields: BTreeMap<String, Side>,
}

fn partner_center() -> Side {
    Side::PartnerCenter
}

impl Default for ConflictSpec {
    fn default() -> Self {
        ConflictSpec {
            default: Side::PartnerCenter,
            fields: BTreeMap::new(),
        }
    }
}

/// `[schema]`: fields and columns beyond the built-in lists (e.g. a field the service added
/// after this release, or a custom column of the org).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaExtras {
    #[serde(default)]
    pub referral_paths: Vec<String>,
    #[serde(default)]
    pub opportunity_columns: Vec<String>,
    #[serde(default)]
    pub account_columns: Vec<String>,
    #[serde(default)]
    pub contact_columns: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// `"default"`: start from the shipped mapping and apply this file on top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub value_maps: BTreeMap<String, ValueMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictSpec>,
    #[serde(default)]
    pub schema: SchemaExtras,
    /// `[deal_type]` (see `deal_type.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_type: Option<super::deal_type::DealTypeSpec>,
    /// `[lead]` (see `lead.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<super::lead::LeadSpec>,
    /// `[related]` (see `related.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<super::related::RelatedSpec>,
    /// `[solutions]` (see `solutions.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solutions: Option<super::solutions::SolutionsSpec>,
}
