//! The opportunity's custom columns, as the org's metadata knows them. The stand-in org's
//! solution publisher prefix is `cosell_`: a `cosell_` column exists only once it has been
//! created (through `POST .../Attributes`, or seeded at start), and a write, `$select`,
//! `$filter` or `$orderby` that names one that does not exist fails as Dataverse fails.
//! Other columns are not modelled and are accepted as before.
//!
//! Also here: the table's alternate keys with their index status, the user's privileges
//! (`RetrieveUserPrivileges`) and whether it may customize (System Customizer).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::odata_error::ApiError;

/// Columns with this prefix are the org's own custom columns.
pub const PUBLISHER_PREFIX: &str = "cosell_";

/// Dataverse's code for a validation error (a choice value outside the column's options).
const VALIDATION_ERROR: &str = "0x8004431a";
/// The code of a missing privilege.
pub const PRIVILEGE_DENIED: &str = "0x80040220";

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub logical_name: String,
    pub metadata_id: String,
    /// `Boolean`, `String`, `Memo` or `Picklist`.
    pub attribute_type: String,
    /// A String's `FormatName` (`Text`, `Url`).
    pub format: Option<String>,
    pub max_length: Option<u64>,
    /// A Picklist's `(value, label)` options.
    pub options: Vec<(i64, String)>,
    pub label: String,
}

impl Attribute {
    pub fn new(logical: &str, attribute_type: &str) -> Attribute {
        Attribute {
            logical_name: logical.to_ascii_lowercase(),
            metadata_id: uuid::Uuid::new_v4().to_string(),
            attribute_type: attribute_type.to_string(),
            format: (attribute_type == "String").then(|| "Text".to_string()),
            max_length: match attribute_type {
                "String" => Some(4000),
                "Memo" => Some(1_048_576),
                _ => None,
            },
            options: Vec::new(),
            label: logical.to_string(),
        }
    }

    pub fn with_format(mut self, format: &str) -> Attribute {
        self.format = Some(format.to_string());
        self
    }

    pub fn with_options(mut self, options: &[(i64, &str)]) -> Attribute {
        self.options = options.iter().map(|(v, l)| (*v, l.to_string())).collect();
        self
    }

    fn odata_type(&self) -> String {
        format!(
            "#Microsoft.Dynamics.CRM.{}AttributeMetadata",
            match self.attribute_type.as_str() {
                "Picklist" => "Picklist",
                "Boolean" => "Boolean",
                "Memo" => "Memo",
                _ => "String",
            }
        )
    }

    /// The attribute as `GET .../Attributes(LogicalName='x')` returns it.
    pub fn to_json(&self, expand_options: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("@odata.type".into(), json!(self.odata_type()));
        m.insert("MetadataId".into(), json!(self.metadata_id));
        m.insert("LogicalName".into(), json!(self.logical_name));
        m.insert("SchemaName".into(), json!(self.logical_name));
        m.insert("AttributeType".into(), json!(self.attribute_type));
        m.insert(
            "AttributeTypeName".into(),
            json!({"Value": format!("{}Type", self.attribute_type)}),
        );
        m.insert("IsCustomAttribute".into(), json!(true));
        m.insert(
            "DisplayName".into(),
            json!({"UserLocalizedLabel": {"Label": self.label, "LanguageCode": 1033}}),
        );
        if let Some(f) = &self.format {
            m.insert("FormatName".into(), json!({"Value": f}));
        }
        if let Some(n) = self.max_length {
            m.insert("MaxLength".into(), json!(n));
        }
        if expand_options {
            let options: Vec<Value> = self
                .options
                .iter()
                .map(|(v, l)| json!({"Value": v, "Label": {"UserLocalizedLabel": {"Label": l, "LanguageCode": 1033}}}))
                .collect();
            m.insert(
                "OptionSet".into(),
                json!({"IsGlobal": false, "OptionSetType": "Picklist", "Options": options}),
            );
        }
        m
    }
}

/// The connector's columns (the seven, and the visibility choice and Microsoft-side
/// columns the default mapping reads) with the default names and the types `cosell setup dataverse` gives them (what
/// most tests run against).
pub fn connector_columns() -> Vec<Attribute> {
    let help: Vec<(i64, &str)> = (0..6).map(|i| (100_000_000 + i, "help topic")).collect();
    vec![
        Attribute::new("cosell_syncwithpartnercenter", "Boolean"),
        Attribute::new("cosell_referralidentifier", "String"),
        Attribute::new("cosell_referrallink", "String").with_format("Url"),
        Attribute::new("cosell_howcanmicrosofthelp", "Picklist").with_options(&help),
        Attribute::new("cosell_solutions", "Memo"),
        Attribute::new("cosell_audit", "Memo"),
        Attribute::new("cosell_referraldecision", "Picklist")
            .with_options(&[(100_000_000, "Accept"), (100_000_001, "Decline")]),
        Attribute::new("cosell_referralvisibility", "Picklist").with_options(&[
            (100_000_000, "Private"),
            (100_000_001, "Shared with Microsoft sellers"),
        ]),
        // The default mapping's [related] columns (Microsoft's side of a co-sell).
        Attribute::new("cosell_microsoftcrmidentifier", "String"),
        Attribute::new("cosell_microsoftsellername", "String"),
        Attribute::new("cosell_microsoftselleremail", "String"),
    ]
}

/// The connector's columns on the lead, for referrals landed as Dynamics 365 leads (the
/// default names `cosell setup dataverse` gives them).
pub fn lead_connector_columns() -> Vec<Attribute> {
    let keep = [
        "cosell_syncwithpartnercenter",
        "cosell_referralidentifier",
        "cosell_referrallink",
        "cosell_audit",
        "cosell_referraldecision",
    ];
    connector_columns()
        .into_iter()
        .filter(|a| keep.contains(&a.logical_name.as_str()))
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityKey {
    pub schema_name: String,
    pub attributes: Vec<String>,
    /// `Pending`, `InProgress`, `Active` or `Failed`.
    pub status: String,
    /// Reads of the key so far: the index job advances one step per read, so a client that
    /// polls sees Pending, then InProgress, then the outcome.
    pub reads: u32,
    pub fails: bool,
}

#[derive(Debug, Clone)]
pub struct Schema {
    /// Custom columns of the opportunity, by logical name.
    pub columns: BTreeMap<String, Attribute>,
    /// Custom columns of the lead, by logical name.
    pub lead_columns: BTreeMap<String, Attribute>,
    pub keys: Vec<EntityKey>,
    /// The opportunity's display labels by language code (to see `MSCRM.MergeLabels` work).
    pub labels: BTreeMap<u64, String>,
    /// The user holds System Customizer (may change metadata).
    pub customizer: bool,
    /// Privilege name -> depth, as `RetrieveUserPrivileges` reports them.
    pub privileges: BTreeMap<String, String>,
    pub publishes: u64,
}

impl Schema {
    pub fn new(with_connector_columns: bool) -> Schema {
        let by_name = |attrs: Vec<Attribute>| -> BTreeMap<String, Attribute> {
            attrs
                .into_iter()
                .map(|a| (a.logical_name.clone(), a))
                .collect()
        };
        let (columns, lead_columns) = if with_connector_columns {
            (
                by_name(connector_columns()),
                by_name(lead_connector_columns()),
            )
        } else {
            (BTreeMap::new(), BTreeMap::new())
        };
        let mut privileges = BTreeMap::new();
        for table in ["Opportunity", "Account", "Contact", "Lead"] {
            for verb in ["Create", "Read", "Write", "Append", "AppendTo"] {
                privileges.insert(format!("prv{verb}{table}"), "Global".to_string());
            }
        }
        for p in [
            "prvCreateAttribute",
            "prvWriteEntity",
            "prvPublishCustomizations",
        ] {
            privileges.insert(p.to_string(), "Global".to_string());
        }
        Schema {
            columns,
            lead_columns,
            keys: Vec::new(),
            labels: BTreeMap::from([(1033, "Opportunity".into()), (1036, "Opportunité".into())]),
            customizer: true,
            privileges,
            publishes: 0,
        }
    }

    /// The custom columns of `entity` (`opportunity` or `lead`).
    pub fn columns_of(&self, entity: &str) -> &BTreeMap<String, Attribute> {
        match entity {
            "lead" => &self.lead_columns,
            _ => &self.columns,
        }
    }

    pub fn columns_of_mut(&mut self, entity: &str) -> &mut BTreeMap<String, Attribute> {
        match entity {
            "lead" => &mut self.lead_columns,
            _ => &mut self.columns,
        }
    }

    /// A write body naming a column that does not exist, or a value its type refuses.
    pub fn check_body(&self, body: &Map<String, Value>) -> Result<(), ApiError> {
        check_body_in(&self.columns, "opportunity", body)
    }

    /// The same for a lead.
    pub fn check_lead_body(&self, body: &Map<String, Value>) -> Result<(), ApiError> {
        check_body_in(&self.lead_columns, "lead", body)
    }

    /// `$select`, `$filter` and `$orderby` naming a column that does not exist.
    pub fn check_query(&self, texts: &[&str]) -> Result<(), ApiError> {
        check_query_in(&self.columns, "opportunity", texts)
    }

    /// The same for a lead.
    pub fn check_lead_query(&self, texts: &[&str]) -> Result<(), ApiError> {
        check_query_in(&self.lead_columns, "lead", texts)
    }

    /// The 403 for a metadata change by a user who may not customize.
    pub fn require_customizer(&self, user: &str, privilege: &str) -> Result<(), ApiError> {
        if self.customizer {
            return Ok(());
        }
        Err(ApiError::new(
            http::StatusCode::FORBIDDEN,
            PRIVILEGE_DENIED,
            format!("Principal user (Id={user}, type=8, roleCount=1, privilegeCount=0, accessMode=4), is missing {privilege} privilege. Consider adding the privilege to one of the principal's roles."),
        ))
    }
}

fn declared_in(columns: &BTreeMap<String, Attribute>, name: &str) -> bool {
    !name.starts_with(PUBLISHER_PREFIX) || columns.contains_key(name)
}

fn check_body_in(
    columns: &BTreeMap<String, Attribute>,
    entity: &str,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    for (key, value) in body {
        if key.contains('@') {
            continue;
        }
        if !declared_in(columns, key) {
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                "0x0",
                format!("The property '{key}' does not exist on type 'Microsoft.Dynamics.CRM.{entity}'. Make sure to only use property names that are defined by the type or mark the type as open type."),
            ));
        }
        if let Some(attr) = columns.get(key) {
            check_value(attr, value)?;
        }
    }
    Ok(())
}

fn check_query_in(
    columns: &BTreeMap<String, Attribute>,
    entity: &str,
    texts: &[&str],
) -> Result<(), ApiError> {
    for text in texts {
        for name in prefixed_names(text) {
            if !declared_in(columns, &name) {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "0x0",
                    format!("Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."),
                ));
            }
        }
    }
    Ok(())
}

fn check_value(attr: &Attribute, value: &Value) -> Result<(), ApiError> {
    if value.is_null() {
        return Ok(());
    }
    let edm = match attr.attribute_type.as_str() {
        "Boolean" if !value.is_boolean() => Some("Edm.Boolean"),
        "Picklist" if !value.is_i64() => Some("Edm.Int32"),
        "String" | "Memo" if !value.is_string() => Some("Edm.String"),
        _ => None,
    };
    if let Some(edm) = edm {
        return Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "0x0",
            format!("Cannot convert the literal '{value}' to the expected type '{edm}'."),
        ));
    }
    if attr.attribute_type == "Picklist" {
        let v = value.as_i64().unwrap_or_default();
        if !attr.options.iter().any(|(o, _)| *o == v) {
            let accepted: Vec<String> = attr.options.iter().map(|(o, _)| o.to_string()).collect();
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                VALIDATION_ERROR,
                format!("A validation error occurred. The value {v} of '{}' on record of type 'opportunity' is outside the valid range. Accepted Values: {}", attr.logical_name, accepted.join(",")),
            ));
        }
    }
    if let (Some(max), Some(s)) = (attr.max_length, value.as_str()) {
        if s.chars().count() as u64 > max {
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                VALIDATION_ERROR,
                format!("A validation error occurred. The length of the '{}' attribute of the 'opportunity' entity exceeded the maximum allowed length of '{max}'.", attr.logical_name),
            ));
        }
    }
    Ok(())
}

/// Every `cosell_...` word in a query option.
fn prefixed_names(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = lower[i..].find(PUBLISHER_PREFIX) {
        let start = i + at;
        let boundary = start == 0 || !is_word(bytes[start - 1]);
        let mut end = start + PUBLISHER_PREFIX.len();
        while end < bytes.len() && is_word(bytes[end]) {
            end += 1;
        }
        // `'cosell_x'` inside a string literal is a value, not a column.
        let quoted = start > 0 && bytes[start - 1] == b'\'';
        if boundary && !quoted {
            out.push(lower[start..end].to_string());
        }
        i = end;
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_prefixed_columns_are_refused() {
        let s = Schema::new(false);
        assert!(s.check_query(&["name,estimatedvalue"]).is_ok());
        let err = s
            .check_query(&["cosell_referralidentifier eq 'x'"])
            .unwrap_err();
        assert!(err.message.contains("'cosell_referralidentifier'"));
        assert!(s.check_query(&["name eq 'cosell_x'"]).is_ok());
        let full = Schema::new(true);
        assert!(full
            .check_query(&["cosell_referralidentifier eq 'x'"])
            .is_ok());
        let mut body = Map::new();
        body.insert("cosell_referraldecision".into(), json!(7));
        assert!(full
            .check_body(&body)
            .unwrap_err()
            .message
            .contains("outside the valid range"));
        body.insert("cosell_referraldecision".into(), json!(100_000_001));
        body.insert("cosell_syncwithpartnercenter".into(), json!("yes"));
        assert!(full
            .check_body(&body)
            .unwrap_err()
            .message
            .contains("Edm.Boolean"));
    }
}
