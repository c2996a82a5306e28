//! Dynamics 365 leads: the rows a referral that is a lead lands as, their changes, the
//! opportunity a qualification made from one, and the `QualifyLead` action.
//!
//! Lead columns come from the mapping's `[lead]` part, so every read names its `$select`
//! (the caller's, built by `Mapping::lead_select`).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::client::{read_json, selecting, Kind, Target};
use super::error::DataverseError;
use super::model::{Extra, Opportunity};
use super::{query, DataverseClient};
use crate::retry::Idempotency;

/// `statecode` of a lead.
pub mod lead_state {
    pub const OPEN: i32 = 0;
    pub const QUALIFIED: i32 = 1;
    pub const DISQUALIFIED: i32 = 2;
}

/// `statuscode` of a lead (out-of-the-box status reasons the connector writes).
pub mod lead_status {
    /// Qualified (the one status reason of the Qualified state).
    pub const QUALIFIED: i32 = 3;
    /// Disqualified: Canceled.
    pub const CANCELED: i32 = 7;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Lead {
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leadid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statecode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuscode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifiedon: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Lead {
    pub fn column(&self, name: &str) -> Option<&Value> {
        self.extra.get(name).filter(|v| !v.is_null())
    }

    pub fn state(&self) -> i32 {
        self.statecode.unwrap_or(lead_state::OPEN)
    }
}

/// What `QualifyLead` is asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qualify {
    pub create_account: bool,
    pub create_contact: bool,
    pub create_opportunity: bool,
}

/// The standard columns every lead read selects beside the caller's.
const LEAD_COLUMNS: [&str; 4] = ["leadid", "statecode", "statuscode", "modifiedon"];

fn lead_select(columns: &[String]) -> String {
    let mut all: Vec<&str> = LEAD_COLUMNS.to_vec();
    for c in columns {
        if !all.contains(&c.as_str()) {
            all.push(c);
        }
    }
    all.join(",")
}

impl DataverseClient {
    /// Creates the lead `leads(id)`, or fails with [`DataverseError::Conflict`] when it
    /// exists already (a retried create).
    pub async fn create_lead_with_id(
        &self,
        id: &str,
        body: &Map<String, Value>,
        columns: &[String],
    ) -> Result<Lead, DataverseError> {
        self.create_with_id("leads", "lead", id, body, &lead_select(columns))
            .await
    }

    /// The lead, or `None` when there is none with that id.
    pub async fn get_lead(
        &self,
        id: &str,
        columns: &[String],
    ) -> Result<Option<Lead>, DataverseError> {
        let url = selecting(self.entity_url("leads", "lead", id)?, &lead_select(columns));
        let target = Target { entity: "lead", id };
        match self.get_json("get lead", target, url, None).await {
            Ok(lead) => Ok(Some(lead)),
            Err(DataverseError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Updates the lead while its etag still matches ([`DataverseError::Conflict`] else).
    pub async fn update_lead(
        &self,
        id: &str,
        etag: &str,
        body: &Map<String, Value>,
        columns: &[String],
    ) -> Result<Lead, DataverseError> {
        let url = self.entity_url("leads", "lead", id)?;
        let target = Target { entity: "lead", id };
        self.write_returning(
            "update lead",
            target,
            Method::PATCH,
            url,
            Some(etag),
            body,
            &lead_select(columns),
        )
        .await
    }

    /// The opportunity qualifying the lead made (`originatingleadid`), the oldest if several.
    pub async fn opportunity_from_lead(
        &self,
        lead_id: &str,
    ) -> Result<Option<Opportunity>, DataverseError> {
        let id = query::guid(lead_id).ok_or_else(|| DataverseError::NotFound {
            entity: "lead".into(),
            id: lead_id.to_string(),
        })?;
        let mut url = self.url("opportunities");
        url.query_pairs_mut()
            .append_pair("$select", &self.selects.opportunity())
            .append_pair("$filter", &format!("_originatingleadid_value eq {id}"))
            .append_pair("$orderby", "createdon asc,opportunityid asc");
        let mut rows: Vec<Opportunity> = self.query_all("opportunity from lead", url).await?;
        Ok((!rows.is_empty()).then(|| rows.swap_remove(0)))
    }

    /// Leads flagged for sync (`flag_column` true) modified at or after `watermark`, oldest
    /// first.
    pub async fn flagged_leads_since(
        &self,
        watermark: OffsetDateTime,
        flag_column: &str,
        columns: &[String],
    ) -> Result<Vec<Lead>, DataverseError> {
        let mut url = self.url("leads");
        url.query_pairs_mut()
            .append_pair("$select", &lead_select(columns))
            .append_pair(
                "$filter",
                &format!(
                    "{flag_column} eq true and modifiedon ge {}",
                    query::datetime(watermark)
                ),
            )
            .append_pair("$orderby", "modifiedon asc,leadid asc");
        self.query_all("leads modified since", url).await
    }

    /// Qualifies the lead (`QualifyLead`), as a seller does in the app; the references to
    /// the rows it made, as `(entity, id)`.
    pub async fn qualify_lead(
        &self,
        id: &str,
        what: Qualify,
    ) -> Result<Vec<(String, String)>, DataverseError> {
        let url = self.url(&format!(
            "leads({})/Microsoft.Dynamics.CRM.QualifyLead",
            query::guid(id).unwrap_or_else(|| id.to_string())
        ));
        let body = json!({
            "CreateAccount": what.create_account,
            "CreateContact": what.create_contact,
            "CreateOpportunity": what.create_opportunity,
            "Status": lead_status::QUALIFIED,
        });
        let target = Target { entity: "lead", id };
        // Not idempotent: a replay after it went through finds the lead closed.
        let kind = Kind::Write(Idempotency::NotIdempotent);
        let resp = self
            .send("qualify lead", target, kind, &|| {
                self.http.request(Method::POST, url.clone()).json(&body)
            })
            .await?;
        let answer: Value = read_json("qualify lead", resp).await?;
        let made = answer
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let entity = r
                    .get("@odata.type")?
                    .as_str()?
                    .trim_start_matches("#Microsoft.Dynamics.CRM.")
                    .to_string();
                let id = r.get(format!("{entity}id"))?.as_str()?.to_string();
                Some((entity, id))
            })
            .collect();
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_select_always_names_the_state_and_is_without_repeats() {
        let s = lead_select(&["subject".into(), "statecode".into(), "cosell_audit".into()]);
        assert_eq!(
            s,
            "leadid,statecode,statuscode,modifiedon,subject,cosell_audit"
        );
    }

    #[test]
    fn a_lead_reads_its_columns_and_state() {
        let lead: Lead = serde_json::from_value(json!({
            "@odata.etag": "W/\"5\"", "leadid": "x", "statecode": 1, "subject": "S",
            "cosell_audit": null
        }))
        .unwrap();
        assert_eq!(lead.state(), lead_state::QUALIFIED);
        assert_eq!(lead.column("subject"), Some(&json!("S")));
        assert_eq!(lead.column("cosell_audit"), None);
    }
}
