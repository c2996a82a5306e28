//! The documented steps of a referral shared with Microsoft ("create a referral", section
//! "Creating a shared referral"): first your own referral of type `Shared`, then "another
//! referral for Microsoft" with the first one's `engagementId`, "so they are tied together",
//! and the target `BusinessProfileLocation`/`msft`.

use super::referral::{InviteContext, Referral, ReferralTarget};
use super::status::{ReferralTargetType, ReferralType};

/// The id of Microsoft's business profile location in a target.
pub const MICROSOFT_TARGET_ID: &str = "msft";

/// The target of the connected referral for Microsoft.
pub fn microsoft_target() -> ReferralTarget {
    ReferralTarget {
        target_type: Some(ReferralTargetType::BusinessProfileLocation),
        id: Some(MICROSOFT_TARGET_ID.into()),
        ..ReferralTarget::default()
    }
}

/// True for the connected referral for Microsoft (second step): it targets Microsoft's
/// business profile location. The partner's own referral of the engagement does not.
pub fn is_for_microsoft(referral: &Referral) -> bool {
    referral
        .target
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|t| {
            t.target_type == Some(ReferralTargetType::BusinessProfileLocation)
                && t.id
                    .as_deref()
                    .is_some_and(|id| id.trim().eq_ignore_ascii_case(MICROSOFT_TARGET_ID))
        })
}

/// The `$filter` that lists the referrals of an engagement (documented example:
/// `engagementId eq '<guid>'`).
pub fn engagement_filter(engagement_id: &str) -> String {
    format!("engagementId eq '{}'", engagement_id.replace('\'', "''"))
}

/// The body of the connected referral for Microsoft, made from the partner's own `Shared`
/// referral as created (what the customer and the deal are), tied to it by `engagementId`.
/// The docs give only the target and the engagementId rule for this body; the rest is this
/// project's choice (UNVERIFIED): the own referral's customer, consent, details, team and
/// external reference (and what else it carries, e.g. `partnerRole`, `solutionArea`,
/// `solutionPlay`), type `Shared`, and for a co-sell the help asked in
/// `inviteContext.notes` ("additional notes for the receiving organization", which is
/// Microsoft here).
pub fn referral_for_microsoft(own: &Referral, engagement_id: &str, help: Option<&str>) -> Referral {
    // Of the untyped fields only the Services co-sell ones: the rest of what the service
    // added to our own referral's answer is its own.
    let extra = own
        .extra
        .iter()
        .filter(|(k, _)| SERVICES_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Referral {
        engagement_id: Some(engagement_id.to_string()),
        external_reference_id: own.external_reference_id.clone(),
        name: own.name.clone(),
        qualification: own.qualification.clone(),
        referral_type: Some(ReferralType::Shared),
        target: Some(vec![microsoft_target()]),
        customer_profile: own.customer_profile.clone(),
        consent: own.consent.clone(),
        details: own.details.clone(),
        team: own.team.clone(),
        invite_context: help.map(|h| InviteContext {
            notes: Some(format!("{HELP_NOTE_PREFIX}{h}")),
            ..InviteContext::default()
        }),
        extra,
        ..Referral::default()
    }
}

/// "Required for Services co-sell referrals only": sent on both steps when mapped.
const SERVICES_FIELDS: &[&str] = &["partnerRole", "solutionArea", "solutionPlay"];

/// How the help asked of Microsoft starts in the connected referral's notes.
pub const HELP_NOTE_PREFIX: &str = "Help needed from Microsoft: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_referral_for_microsoft_is_tied_by_engagement_and_targets_msft() {
        let own = Referral {
            id: Some("r1".into()),
            engagement_id: Some("e1".into()),
            e_tag: Some("\"x\"".into()),
            external_reference_id: Some("opp".into()),
            name: Some("Deal".into()),
            referral_type: Some(ReferralType::Shared),
            ..Referral::default()
        };
        assert!(!is_for_microsoft(&own));
        let ms = referral_for_microsoft(&own, "e1", Some("Demo or proof of concept"));
        assert!(is_for_microsoft(&ms));
        assert_eq!(ms.id, None);
        assert_eq!(ms.e_tag, None);
        assert_eq!(ms.engagement_id.as_deref(), Some("e1"));
        assert_eq!(ms.external_reference_id.as_deref(), Some("opp"));
        assert_eq!(
            ms.invite_context.and_then(|i| i.notes).as_deref(),
            Some("Help needed from Microsoft: Demo or proof of concept")
        );
        let partner_led = referral_for_microsoft(&own, "e1", None);
        assert_eq!(partner_led.invite_context, None);
        assert_eq!(engagement_filter("a'b"), "engagementId eq 'a''b'");
    }
}
