//! What both directions need to fingerprint a referral the same way: the inbound context
//! (the Referral Link and the currency row) built from the referral alone. Inbound and
//! outbound must agree on it byte for byte, or each side's write would look like a change
//! to the other and echo back.

use crate::dataverse::DataverseClient;
use crate::engine::{Engine, SyncError};
use crate::mapping::InboundContext;
use crate::partner_center::Referral;

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

/// The context `Mapping::inbound` needs for this referral: its link and the id of the CRM
/// currency row matching its ISO code (`None` when it has no currency or the org lacks it).
pub async fn inbound_context(
    dv: &DataverseClient,
    referral: &Referral,
) -> Result<InboundContext, SyncError> {
    let iso = referral
        .details
        .as_ref()
        .and_then(|d| d.currency.as_deref())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let currency_id = match iso {
        Some(code) => dv.find_currency(&code.to_ascii_uppercase()).await?,
        None => None,
    };
    Ok(InboundContext {
        referral_link: referral_link(referral.id.as_deref().unwrap_or("")),
        currency_id,
    })
}

/// The referral's fingerprint as the crosswalk records it (`Link::pc_hash`).
pub async fn referral_hash(engine: &Engine, referral: &Referral) -> Result<String, SyncError> {
    let ctx = inbound_context(&engine.dv, referral).await?;
    let plan = engine.mapping.inbound(referral, &engine.columns, &ctx);
    Ok(engine.mapping.inbound_hash(&plan))
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
