//! The referral's customer in the CRM: the account (found by name and postal code, else
//! made) and the customer contact (found by e-mail, else made), bound to the opportunity as
//! its customer, parent account and parent contact. A row to make gets an id derived from
//! the referral, so a create retried after a lost response finds its row; it is made with
//! the opportunity, in one change set (`crm::create`).

use serde_json::{Map, Value};

use crate::dataverse::{bind, Account, Contact, DataverseClient, NewRow};
use crate::engine::SyncError;
use crate::mapping::InboundPlan;

use super::key;
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

/// The referral's account and contact: found, or planned as new rows (with ids derived
/// from the referral) that the opportunity's create writes in the same change set.
pub(super) async fn find(
    dv: &DataverseClient,
    plan: &InboundPlan,
    referral_id: &str,
    trail: &mut Trail,
) -> Result<(Parties, Vec<NewRow>), SyncError> {
    let mut new_rows = Vec::new();
    let account_id = account(dv, &plan.account, referral_id, trail, &mut new_rows).await?;
    let contact_id = match &plan.contact {
        Some(row) => {
            contact(
                dv,
                row,
                account_id.as_deref(),
                referral_id,
                trail,
                &mut new_rows,
            )
            .await?
        }
        None => None,
    };
    Ok((
        Parties {
            account_id,
            contact_id,
        },
        new_rows,
    ))
}

async fn account(
    dv: &DataverseClient,
    row: &Map<String, Value>,
    referral_id: &str,
    trail: &mut Trail,
    new_rows: &mut Vec<NewRow>,
) -> Result<Option<String>, SyncError> {
    let Some(name) = text(row, "name") else {
        trail.note("the referral names no customer: no account bound");
        return Ok(None);
    };
    let postal = text(row, "address1_postalcode");
    if let Some(found) = dv.find_account(name, postal).await? {
        return Ok(found.accountid);
    }
    let id = key::account_id_for(referral_id);
    new_rows.push(NewRow::account(&id, &row_as::<Account>(row, "account")?)?);
    Ok(Some(id))
}

async fn contact(
    dv: &DataverseClient,
    row: &Map<String, Value>,
    account_id: Option<&str>,
    referral_id: &str,
    trail: &mut Trail,
    new_rows: &mut Vec<NewRow>,
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
    let id = key::contact_id_for(referral_id);
    new_rows.push(NewRow::contact(&id, &new)?);
    Ok(Some(id))
}
