//! The referral's customer in the CRM: the account (found by name and postal code, created
//! when there is none) and the customer contact (found by e-mail, created when there is
//! none), bound to the opportunity as its customer, parent account and parent contact.

use serde_json::{Map, Value};

use crate::dataverse::{bind, Account, Contact, DataverseClient};
use crate::engine::SyncError;
use crate::mapping::InboundPlan;

use super::trail::Trail;

#[derive(Debug, Default)]
pub(super) struct Parties {
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
}

impl Parties {
    /// The `@odata.bind` entries that attach the parties to the opportunity.
    pub(super) fn bind_into(&self, body: &mut Map<String, Value>) {
        if let Some(a) = &self.account_id {
            body.extend([bind::customer_account(a), bind::parent_account(a)]);
        }
        if let Some(c) = &self.contact_id {
            body.extend([bind::parent_contact(c)]);
        }
    }
}

fn text<'a>(row: &'a Map<String, Value>, column: &str) -> Option<&'a str> {
    row.get(column)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn row_as<T: serde::de::DeserializeOwned>(
    row: &Map<String, Value>,
    what: &str,
) -> Result<T, SyncError> {
    serde_json::from_value(Value::Object(row.clone())).map_err(|e| {
        SyncError::permanent(format!("mapped {what} columns are not a valid row: {e}"))
    })
}

pub(super) async fn find_or_create(
    dv: &DataverseClient,
    plan: &InboundPlan,
    trail: &mut Trail,
) -> Result<Parties, SyncError> {
    let account_id = account(dv, &plan.account, trail).await?;
    let contact_id = match &plan.contact {
        Some(row) => contact(dv, row, account_id.as_deref(), trail).await?,
        None => None,
    };
    Ok(Parties {
        account_id,
        contact_id,
    })
}

async fn account(
    dv: &DataverseClient,
    row: &Map<String, Value>,
    trail: &mut Trail,
) -> Result<Option<String>, SyncError> {
    let Some(name) = text(row, "name") else {
        trail.note("the referral names no customer: no account bound");
        return Ok(None);
    };
    let postal = text(row, "address1_postalcode");
    if let Some(found) = dv.find_account(name, postal).await? {
        return Ok(found.accountid);
    }
    let created = dv
        .create_account(&row_as::<Account>(row, "account")?)
        .await?;
    trail.note(format!(
        "created account {}",
        created.accountid.as_deref().unwrap_or_default()
    ));
    Ok(created.accountid)
}

async fn contact(
    dv: &DataverseClient,
    row: &Map<String, Value>,
    account_id: Option<&str>,
    trail: &mut Trail,
) -> Result<Option<String>, SyncError> {
    // Without an e-mail a contact cannot be found again, so every sync would add one.
    let Some(email) = text(row, "emailaddress1") else {
        trail.note("the customer contact has no e-mail: no contact bound");
        return Ok(None);
    };
    if let Some(found) = dv.find_contact_by_email(email).await? {
        return Ok(found.contactid);
    }
    let mut new: Contact = row_as(row, "contact")?;
    new.parentcustomerid = account_id.map(str::to_string);
    let created = dv.create_contact(&new).await?;
    trail.note(format!(
        "created contact {}",
        created.contactid.as_deref().unwrap_or_default()
    ));
    Ok(created.contactid)
}
