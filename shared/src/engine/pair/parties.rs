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

/// The referral's account and contact: found (both looked up in one request), or planned
/// as new rows (with ids derived from the referral) that the opportunity's create writes in
/// the same change set.
pub(super) async fn find(
    dv: &DataverseClient,
    plan: &InboundPlan,
    referral_id: &str,
    trail: &mut Trail,
) -> Result<(Parties, Vec<NewRow>), SyncError> {
    let name = text(&plan.account, "name");
    if name.is_none() {
        trail.note("the referral names no customer: no account bound");
    }
    // Without an e-mail a contact cannot be found again, so every sync would add one.
    let email = plan.contact.as_ref().and_then(|c| text(c, "emailaddress1"));
    if plan.contact.is_some() && email.is_none() {
        trail.note("the customer contact has no e-mail: no contact bound");
    }
    let postal = text(&plan.account, "address1_postalcode");
    let (found_account, found_contact) = dv.find_customer(name.map(|n| (n, postal)), email).await?;

    let mut new_rows = Vec::new();
    let account_id = match (name, found_account) {
        (None, _) => None,
        (Some(_), Some(found)) => found.accountid,
        (Some(_), None) => {
            let id = key::account_id_for(referral_id);
            new_rows.push(NewRow::account(
                &id,
                &row_as::<Account>(&plan.account, "account")?,
            )?);
            Some(id)
        }
    };
    let contact_id = match (plan.contact.as_ref(), email, found_contact) {
        (Some(_), Some(_), Some(found)) => found.contactid,
        (Some(row), Some(_), None) => {
            let mut new: Contact = row_as(row, "contact")?;
            new.parentcustomerid = account_id.clone();
            let id = key::contact_id_for(referral_id);
            new_rows.push(NewRow::contact(&id, &new)?);
            Some(id)
        }
        _ => None,
    };
    Ok((
        Parties {
            account_id,
            contact_id,
        },
        new_rows,
    ))
}
