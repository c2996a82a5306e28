//! The pair key and the ids derived from it. Every message names its pair by the
//! opportunity id; an opportunity (and its account and contact) created from a referral
//! gets an id derived from the referral id, so a create retried after a lost response
//! finds the row it made instead of making a second one.

use uuid::Uuid;

use crate::store::{Store, StoreError};

/// The namespace of every id the connector derives (UUID v5). Fixed forever: changing it
/// would give existing referrals new opportunity ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x271c_5e23_16e6_4b5a_aee2_07d8_9157_ea15);

fn derived(role: &str, name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{role}/{}", name.trim()).as_bytes()).to_string()
}

/// The id of the opportunity the connector creates for a referral: the pair key of every
/// referral that arrives unlinked.
pub fn opportunity_id_for(referral_id: &str) -> String {
    derived("opportunity", referral_id)
}

/// The id of the account created for a referral's customer (when no account matches).
pub fn account_id_for(referral_id: &str) -> String {
    derived("account", referral_id)
}

/// The id of the contact created for a referral's customer contact (when none matches).
pub fn contact_id_for(referral_id: &str) -> String {
    derived("contact", referral_id)
}

/// The `MS-RequestId` of the one logical create of a referral for the opportunity `key`,
/// sent again on every retry of that create.
pub fn create_request_id(key: &str) -> String {
    derived("create-referral", key)
}

/// The `MS-RequestId` of the second shared-referral step for the opportunity `key` (the
/// connected referral for Microsoft): another logical create than the first step's.
pub fn connect_request_id(key: &str) -> String {
    derived("connect-referral", key)
}

/// The pair key of a referral: its linked opportunity, else the id its opportunity gets.
pub async fn key_for_referral(store: &dyn Store, referral_id: &str) -> Result<String, StoreError> {
    let referral_id = referral_id.trim();
    Ok(match store.get_link_by_referral(referral_id).await? {
        Some(link) => link.opportunity_id,
        None => opportunity_id_for(referral_id),
    })
}

/// True for a GUID, the form of every Dataverse row id (an external reference that is not
/// one is another system's id, never one of our opportunities).
pub fn is_row_id(text: &str) -> bool {
    Uuid::parse_str(text.trim()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_per_role_and_guids() {
        let a = opportunity_id_for("r-1");
        assert_eq!(a, opportunity_id_for(" r-1 "));
        assert_ne!(a, opportunity_id_for("r-2"));
        let roles = [
            a.clone(),
            account_id_for("r-1"),
            contact_id_for("r-1"),
            create_request_id("r-1"),
        ];
        for (i, x) in roles.iter().enumerate() {
            assert!(is_row_id(x));
            for y in &roles[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert!(!is_row_id("CRM-42"));
    }
}
