//! Where a seller opens a referral: the Referral Link column's value.

/// Where a person opens a referral in Partner Center. DECIDE: the portal's referral page;
/// the API's `links.self` is an API URL a seller cannot open.
pub const PORTAL_REFERRAL_URL: &str = "https://partner.microsoft.com/dashboard/v2/referrals/";

/// The Referral Link column's value for a referral id (empty for an unsaved referral).
pub fn referral_link(referral_id: &str) -> String {
    if referral_id.trim().is_empty() {
        return String::new();
    }
    format!("{PORTAL_REFERRAL_URL}{}", referral_id.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_built_from_the_id_only() {
        assert_eq!(
            referral_link(" abc "),
            "https://partner.microsoft.com/dashboard/v2/referrals/abc"
        );
        assert_eq!(referral_link(""), "");
    }
}
