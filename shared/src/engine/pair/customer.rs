//! The customer rows an opportunity points at (account and contact), read for the
//! referral's customer profile.

use crate::dataverse::{Account, Contact, DataverseError, Opportunity};
use crate::engine::{Engine, SyncError};

pub(super) struct Customer {
    pub account: Option<Account>,
    pub contact: Option<Contact>,
}

/// The opportunity's account (`parentaccountid`, else the customer) and contact
/// (`parentcontactid`). A lookup to a deleted row reads as no row.
pub(super) async fn read(engine: &Engine, opp: &Opportunity) -> Result<Customer, SyncError> {
    let account_id = opp.parentaccountid.as_deref().or(opp.customerid.as_deref());
    let account = match account_id {
        Some(id) => absent_if_missing(engine.dv.get_account(id).await)?,
        None => None,
    };
    let contact = match opp.parentcontactid.as_deref() {
        Some(id) => absent_if_missing(engine.dv.get_contact(id).await)?,
        None => None,
    };
    Ok(Customer { account, contact })
}

fn absent_if_missing<T>(read: Result<T, DataverseError>) -> Result<Option<T>, SyncError> {
    match read {
        Ok(row) => Ok(Some(row)),
        Err(DataverseError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
