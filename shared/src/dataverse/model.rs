//! The Dataverse rows the connector reads and writes. Standard columns are typed; connector
//! columns (whose logical names carry each org's publisher prefix) and annotations live in
//! `extra`, read through the names in configuration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

/// `statecode` of an opportunity.
pub mod state {
    pub const OPEN: i32 = 0;
    pub const WON: i32 = 1;
    pub const LOST: i32 = 2;
}

/// `statuscode` of an opportunity (the out-of-the-box status reasons).
pub mod status_reason {
    pub const IN_PROGRESS: i32 = 1;
    pub const ON_HOLD: i32 = 2;
    pub const WON: i32 = 3;
    pub const CANCELED: i32 = 4;
    pub const OUT_SOLD: i32 = 5;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Opportunity {
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunityid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimatedvalue: Option<f64>,
    /// DateOnly: `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimatedclosedate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actualclosedate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrevenuesystemcalculated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statecode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuscode: Option<i32>,
    #[serde(
        rename = "_customerid_value",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub customerid: Option<String>,
    #[serde(
        rename = "_parentaccountid_value",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parentaccountid: Option<String>,
    #[serde(
        rename = "_parentcontactid_value",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parentcontactid: Option<String>,
    #[serde(
        rename = "_transactioncurrencyid_value",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transactioncurrencyid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifiedon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub createdon: Option<String>,
    /// Row version (BigInt); Dataverse sends it as a string or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versionnumber: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Account {
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accountid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_stateorprovince: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_postalcode: Option<String>,
    /// Two-letter ISO 3166 code, as the co-sell solution expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1_country: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Contact {
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emailaddress1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone1: Option<String>,
    #[serde(
        rename = "_parentcustomerid_value",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parentcustomerid: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Opportunity {
    /// A connector column by its configured logical name.
    pub fn column(&self, logical_name: &str) -> Option<&Value> {
        self.extra.get(logical_name).filter(|v| !v.is_null())
    }

    pub fn column_str(&self, logical_name: &str) -> Option<&str> {
        self.column(logical_name).and_then(Value::as_str)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.statecode, Some(state::WON) | Some(state::LOST))
    }
}
