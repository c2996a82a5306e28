//! Writes for the pair reconcile: creates with a caller-chosen id that a retry cannot
//! duplicate (`PATCH /<set>(<id>)` with `If-None-Match: *`: Dataverse creates the row, or
//! answers 412 when it exists), a conditional reopen, and the org's currency rows.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::{read_json, selecting, writable, Kind, Target, RETURN_REPRESENTATION};
use super::error::DataverseError;
use super::model::{state, status_reason, Account, Contact, Opportunity};
use super::DataverseClient;
use crate::retry::Idempotency;

/// One `transactioncurrency` row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Currency {
    pub transactioncurrencyid: String,
    pub isocurrencycode: String,
}

impl DataverseClient {
    /// Creates the row `set(id)` from `body`, or fails with [`DataverseError::Conflict`]
    /// when a row with that id exists already (a retried create, or a crash's leftover).
    pub(super) async fn create_with_id<T: DeserializeOwned>(
        &self,
        set: &str,
        entity: &str,
        id: &str,
        body: &Map<String, Value>,
        select: &str,
    ) -> Result<T, DataverseError> {
        let call = format!("create {entity}");
        let url = selecting(self.entity_url(set, entity, id)?, select);
        let target = Target { entity, id };
        // Create-only on a fixed key: a replay after the first was applied gets 412.
        let kind = Kind::Write(Idempotency::Idempotent);
        let resp = self
            .send(&call, target, kind, &|| {
                self.http
                    .request(Method::PATCH, url.clone())
                    .header("If-None-Match", "*")
                    .header("Prefer", RETURN_REPRESENTATION)
                    .json(body)
            })
            .await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            // The service may ignore `Prefer`: read the row it made.
            return self.get_json(&call, target, url, None).await;
        }
        read_json(&call, resp).await
    }

    pub async fn create_opportunity_with_id(
        &self,
        id: &str,
        body: &Map<String, Value>,
    ) -> Result<Opportunity, DataverseError> {
        if self.solution_rows.is_some() {
            let row = super::batch::NewRow::opportunity(id, body.clone());
            return self
                .write_opportunity_rows(id, None, &Map::new(), &[], &[row])
                .await;
        }
        let select = self.selects.opportunity();
        self.create_with_id("opportunities", "opportunity", id, body, &select)
            .await
    }

    pub async fn create_account_with_id(
        &self,
        id: &str,
        account: &Account,
    ) -> Result<Account, DataverseError> {
        let mut body = writable(account)?;
        body.remove("accountid");
        let select = self.selects.account();
        self.create_with_id("accounts", "account", id, &body, &select)
            .await
    }

    /// A `parentcustomerid` is bound as the contact's account.
    pub async fn create_contact_with_id(
        &self,
        id: &str,
        contact: &Contact,
    ) -> Result<Contact, DataverseError> {
        let mut body = writable(contact)?;
        body.remove("contactid");
        if let Some(account) = &contact.parentcustomerid {
            body.extend([super::bind::contact_company(account)]);
        }
        let select = self.selects.contact();
        self.create_with_id("contacts", "contact", id, &body, &select)
            .await
    }

    /// Reopens a won or lost opportunity while its etag still matches.
    pub async fn reopen_opportunity_if(
        &self,
        id: &str,
        etag: &str,
    ) -> Result<Opportunity, DataverseError> {
        let mut body = Map::new();
        body.insert("statecode".into(), json!(state::OPEN));
        body.insert("statuscode".into(), json!(status_reason::IN_PROGRESS));
        let url = self.entity_url("opportunities", "opportunity", id)?;
        let target = Target {
            entity: "opportunity",
            id,
        };
        self.write_returning(
            "reopen opportunity",
            target,
            Method::PATCH,
            url,
            Some(etag),
            &body,
            &self.selects.opportunity(),
        )
        .await
    }

    /// Every currency row of the org (a handful; read once and cached by the engine).
    pub async fn list_currencies(&self) -> Result<Vec<Currency>, DataverseError> {
        let mut url = self.url("transactioncurrencies");
        url.query_pairs_mut()
            .append_pair("$select", "transactioncurrencyid,isocurrencycode");
        self.query_all("list currencies", url).await
    }
}
