//! The metadata side of the Web API, for `cosell setup dataverse` and `cosell doctor`: the
//! opportunity's columns (`EntityDefinitions(LogicalName='opportunity')/Attributes`, choice
//! values through the `PicklistAttributeMetadata` cast), its alternate keys, change
//! tracking (a PUT of the whole table definition), `PublishXml`, and the application
//! user's privileges (`RetrieveUserPrivileges`).

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::{read_json, DataverseClient, Kind, NO_TARGET};
use super::error::DataverseError;
use crate::retry::Idempotency;

/// The label language of what setup creates (English).
const LANGUAGE: u32 = 1033;

/// What a connector column must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Yes/No.
    Boolean,
    /// Single line of text.
    Text { max_length: u32 },
    /// Single line of text in URL format.
    Url { max_length: u32 },
    /// Multiple lines of text.
    Memo { max_length: u32 },
    /// Choice (local option set).
    Choice,
}

impl ColumnKind {
    /// The `AttributeType` Dataverse reports for the kind.
    pub fn attribute_type(&self) -> &'static str {
        match self {
            ColumnKind::Boolean => "Boolean",
            ColumnKind::Text { .. } | ColumnKind::Url { .. } => "String",
            ColumnKind::Memo { .. } => "Memo",
            ColumnKind::Choice => "Picklist",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            ColumnKind::Boolean => "Yes/No",
            ColumnKind::Text { .. } => "text",
            ColumnKind::Url { .. } => "URL-format text",
            ColumnKind::Memo { .. } => "multiple lines of text",
            ColumnKind::Choice => "choice",
        }
    }
}

/// One column setup creates: its logical name, label, kind and, for a choice, the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub logical_name: String,
    pub label: String,
    pub description: String,
    pub kind: ColumnKind,
    /// `(value, label)` of a choice's options.
    pub options: Vec<(i64, String)>,
}

/// A column as the org has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub logical_name: String,
    pub attribute_type: String,
    /// A text column's format (`Text`, `Url`, ...), when read.
    pub format: Option<String>,
    /// A choice column's option values.
    pub options: Vec<i64>,
}

/// An alternate key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternateKey {
    pub schema_name: String,
    pub key_attributes: Vec<String>,
    /// `Pending`, `InProgress`, `Active` or `Failed`.
    pub index_status: String,
}

/// One privilege the user holds through its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub name: String,
    /// `Basic`, `Local`, `Deep` or `Global` (organization).
    pub depth: String,
}

fn label(text: &str) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [{
            "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
            "Label": text,
            "LanguageCode": LANGUAGE,
        }],
    })
}

/// The `POST .../Attributes` body of a column.
pub fn attribute_body(spec: &ColumnSpec) -> Value {
    let mut body = json!({
        "SchemaName": spec.logical_name,
        "DisplayName": label(&spec.label),
        "Description": label(&spec.description),
        "RequiredLevel": {
            "Value": "None",
            "CanBeChanged": true,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
        "AttributeType": spec.kind.attribute_type(),
        "AttributeTypeName": {"Value": format!("{}Type", spec.kind.attribute_type())},
    });
    let extra = match &spec.kind {
        ColumnKind::Boolean => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
            "DefaultValue": false,
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": label("Yes")},
                "FalseOption": {"Value": 0, "Label": label("No")},
                "OptionSetType": "Boolean",
            },
        }),
        ColumnKind::Text { max_length } => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "MaxLength": max_length,
            "FormatName": {"Value": "Text"},
        }),
        ColumnKind::Url { max_length } => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "MaxLength": max_length,
            "FormatName": {"Value": "Url"},
        }),
        ColumnKind::Memo { max_length } => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            "MaxLength": max_length,
            "Format": "TextArea",
            "IsLocalizable": false,
        }),
        ColumnKind::Choice => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            "OptionSet": {
                "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
                "IsGlobal": false,
                "OptionSetType": "Picklist",
                "Options": spec.options.iter().map(|(v, l)| json!({"Value": v, "Label": label(l)})).collect::<Vec<_>>(),
            },
        }),
    };
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

#[derive(Deserialize)]
struct AttributeBody {
    #[serde(rename = "LogicalName")]
    logical_name: String,
    #[serde(rename = "AttributeType", default)]
    attribute_type: String,
}

#[derive(Deserialize)]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

fn entity_path(entity: &str) -> String {
    format!("EntityDefinitions(LogicalName='{entity}')")
}

impl DataverseClient {
    /// The column, or `None` when the table has no column of that name.
    pub async fn column(
        &self,
        entity: &str,
        logical_name: &str,
    ) -> Result<Option<LiveColumn>, DataverseError> {
        let path = format!(
            "{}/Attributes(LogicalName='{logical_name}')",
            entity_path(entity)
        );
        let mut url = self.url(&path);
        url.query_pairs_mut()
            .append_pair("$select", "LogicalName,AttributeType");
        let attr: AttributeBody = match self.get_json("read column", NO_TARGET, url, None).await {
            Ok(a) => a,
            Err(DataverseError::Invalid { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut live = LiveColumn {
            logical_name: attr.logical_name,
            attribute_type: attr.attribute_type,
            format: None,
            options: Vec::new(),
        };
        match live.attribute_type.as_str() {
            "String" => {
                let mut url = self.url(&format!(
                    "{path}/Microsoft.Dynamics.CRM.StringAttributeMetadata"
                ));
                url.query_pairs_mut()
                    .append_pair("$select", "LogicalName,FormatName");
                let v: Value = self
                    .get_json("read text column", NO_TARGET, url, None)
                    .await?;
                live.format = v["FormatName"]["Value"].as_str().map(str::to_string);
            }
            "Picklist" => {
                let mut url = self.url(&format!(
                    "{path}/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
                ));
                url.query_pairs_mut()
                    .append_pair("$select", "LogicalName")
                    .append_pair("$expand", "OptionSet($select=Options)");
                let v: Value = self
                    .get_json("read choice column", NO_TARGET, url, None)
                    .await?;
                live.options = v["OptionSet"]["Options"]
                    .as_array()
                    .map(|o| o.iter().filter_map(|x| x["Value"].as_i64()).collect())
                    .unwrap_or_default();
            }
            _ => {}
        }
        Ok(Some(live))
    }

    /// Creates the column (`204` from Dataverse; it is usable once published).
    pub async fn create_column(
        &self,
        entity: &str,
        spec: &ColumnSpec,
    ) -> Result<(), DataverseError> {
        let url = self.url(&format!("{}/Attributes", entity_path(entity)));
        let body = attribute_body(spec);
        self.send(
            "create column",
            NO_TARGET,
            Kind::Write(Idempotency::NotIdempotent),
            &|| self.http.post(url.clone()).json(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn alternate_keys(&self, entity: &str) -> Result<Vec<AlternateKey>, DataverseError> {
        #[derive(Deserialize)]
        struct Key {
            #[serde(rename = "SchemaName")]
            schema_name: String,
            #[serde(rename = "KeyAttributes", default)]
            key_attributes: Vec<String>,
            #[serde(rename = "EntityKeyIndexStatus", default)]
            index_status: String,
        }
        let mut url = self.url(&format!("{}/Keys", entity_path(entity)));
        url.query_pairs_mut()
            .append_pair("$select", "SchemaName,KeyAttributes,EntityKeyIndexStatus");
        let keys: Collection<Key> = self.get_json("read keys", NO_TARGET, url, None).await?;
        Ok(keys
            .value
            .into_iter()
            .map(|k| AlternateKey {
                schema_name: k.schema_name,
                key_attributes: k.key_attributes,
                index_status: k.index_status,
            })
            .collect())
    }

    /// Asks for an alternate key; Dataverse builds its index in the background.
    pub async fn create_alternate_key(
        &self,
        entity: &str,
        schema_name: &str,
        display: &str,
        attributes: &[&str],
    ) -> Result<(), DataverseError> {
        let url = self.url(&format!("{}/Keys", entity_path(entity)));
        let body = json!({
            "SchemaName": schema_name,
            "DisplayName": label(display),
            "KeyAttributes": attributes,
        });
        self.send(
            "create key",
            NO_TARGET,
            Kind::Write(Idempotency::NotIdempotent),
            &|| self.http.post(url.clone()).json(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn change_tracking_enabled(&self, entity: &str) -> Result<bool, DataverseError> {
        let mut url = self.url(&entity_path(entity));
        url.query_pairs_mut()
            .append_pair("$select", "LogicalName,ChangeTrackingEnabled");
        let v: Value = self
            .get_json("read table definition", NO_TARGET, url, None)
            .await?;
        Ok(v["ChangeTrackingEnabled"].as_bool().unwrap_or(false))
    }

    /// Turns change tracking on: reads the whole table definition and PUTs it back with
    /// `ChangeTrackingEnabled` set (table definitions take no PATCH), merging labels so the
    /// other languages' labels survive. It cannot be turned off again.
    pub async fn enable_change_tracking(&self, entity: &str) -> Result<(), DataverseError> {
        let url = self.url(&entity_path(entity));
        let mut definition: Map<String, Value> = self
            .get_json("read table definition", NO_TARGET, url.clone(), None)
            .await?;
        definition.retain(|k, _| !k.starts_with("@odata.context"));
        definition.insert("ChangeTrackingEnabled".into(), Value::Bool(true));
        self.send(
            "update table definition",
            NO_TARGET,
            Kind::Write(Idempotency::Idempotent),
            &|| {
                self.http
                    .put(url.clone())
                    .header("MSCRM.MergeLabels", "true")
                    .json(&definition)
            },
        )
        .await?;
        Ok(())
    }

    /// Publishes the table's customizations (`PublishXml`).
    pub async fn publish(&self, entity: &str) -> Result<(), DataverseError> {
        let url = self.url("PublishXml");
        let body = json!({
            "ParameterXml": format!("<importexportxml><entities><entity>{entity}</entity></entities></importexportxml>"),
        });
        self.send(
            "PublishXml",
            NO_TARGET,
            Kind::Write(Idempotency::Idempotent),
            &|| self.http.post(url.clone()).json(&body),
        )
        .await?;
        Ok(())
    }

    /// The privileges the user holds through its security roles.
    pub async fn user_privileges(&self, user_id: &str) -> Result<Vec<Privilege>, DataverseError> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "RolePrivileges", default)]
            role_privileges: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(rename = "PrivilegeName", default)]
            name: String,
            #[serde(rename = "Depth", default)]
            depth: String,
        }
        let url = self.url(&format!(
            "systemusers({user_id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges"
        ));
        let resp = self
            .send("RetrieveUserPrivileges", NO_TARGET, Kind::Read, &|| {
                self.http.get(url.clone())
            })
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let body: Body = read_json("RetrieveUserPrivileges", resp).await?;
        Ok(body
            .role_privileges
            .into_iter()
            .map(|p| Privilege {
                name: p.name,
                depth: p.depth,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_body_carries_its_options_and_cast() {
        let spec = ColumnSpec {
            logical_name: "cosell_decision".into(),
            label: "Decision".into(),
            description: "d".into(),
            kind: ColumnKind::Choice,
            options: vec![(100000000, "Accept".into()), (100000001, "Decline".into())],
        };
        let b = attribute_body(&spec);
        assert_eq!(
            b["@odata.type"],
            "Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        );
        assert_eq!(b["OptionSet"]["Options"][1]["Value"], 100000001);
        assert_eq!(
            b["OptionSet"]["Options"][0]["Label"]["LocalizedLabels"][0]["Label"],
            "Accept"
        );
        let url = attribute_body(&ColumnSpec {
            kind: ColumnKind::Url { max_length: 500 },
            options: vec![],
            ..spec
        });
        assert_eq!(url["FormatName"]["Value"], "Url");
        assert_eq!(url["AttributeType"], "String");
    }
}
