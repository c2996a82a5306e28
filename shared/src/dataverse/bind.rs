//! `@odata.bind` entries that set lookups on create or update. Each returns a `(key, value)`
//! pair to put into a request body (`body.extend([bind::parent_account(id)])`).

use serde_json::Value;

/// `"<nav>@odata.bind": "/<set>(<id>)"`.
pub fn bind(navigation: &str, entity_set: &str, id: &str) -> (String, Value) {
    (
        format!("{navigation}@odata.bind"),
        Value::String(format!("/{entity_set}({id})")),
    )
}

/// The opportunity's potential customer, as an account (clears a contact customer).
pub fn customer_account(account_id: &str) -> (String, Value) {
    bind("customerid_account", "accounts", account_id)
}

/// The opportunity's potential customer, as a contact (clears an account customer).
pub fn customer_contact(contact_id: &str) -> (String, Value) {
    bind("customerid_contact", "contacts", contact_id)
}

pub fn parent_account(account_id: &str) -> (String, Value) {
    bind("parentaccountid", "accounts", account_id)
}

pub fn parent_contact(contact_id: &str) -> (String, Value) {
    bind("parentcontactid", "contacts", contact_id)
}

/// A contact's company (`parentcustomerid` is a Customer lookup; this binds the account).
pub fn contact_company(account_id: &str) -> (String, Value) {
    bind("parentcustomerid_account", "accounts", account_id)
}

pub fn currency(currency_id: &str) -> (String, Value) {
    bind(
        "transactioncurrencyid",
        "transactioncurrencies",
        currency_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_use_navigation_names() {
        let mut body = serde_json::Map::new();
        body.extend([customer_account("a1"), parent_contact("c1"), currency("u1")]);
        assert_eq!(
            Value::Object(body),
            serde_json::json!({
                "customerid_account@odata.bind": "/accounts(a1)",
                "parentcontactid@odata.bind": "/contacts(c1)",
                "transactioncurrencyid@odata.bind": "/transactioncurrencies(u1)",
            })
        );
    }
}
