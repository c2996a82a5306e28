//! What kind of referral a record is, by the documented classification ("referrals API
//! introduction"): `type`, `qualification` and the inviting organization.
//!
//! | type | qualification | invitedBy.organizationId | kind |
//! |---|---|---|---|
//! | Independent | Direct | `msft` or none | Marketplace lead |
//! | Independent | SalesQualified, MarketingQualified | `msft` | qualified lead |
//! | Independent or Shared | SalesQualified or None | a partner's | co-sell opportunity |
//!
//! A record the table does not cover is taken for a co-sell opportunity (what the
//! connector synced before it classified).

use serde_json::Value;

use super::{Referral, ReferralQualification, ReferralType};
use crate::mapping::related::MICROSOFT_ORGANIZATION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralKind {
    MarketplaceLead,
    QualifiedLead,
    CoSellOpportunity,
}

impl ReferralKind {
    pub fn is_lead(self) -> bool {
        !matches!(self, ReferralKind::CoSellOpportunity)
    }

    pub fn label(self) -> &'static str {
        match self {
            ReferralKind::MarketplaceLead => "a Marketplace lead",
            ReferralKind::QualifiedLead => "a qualified lead",
            ReferralKind::CoSellOpportunity => "a co-sell opportunity",
        }
    }
}

impl Referral {
    /// The organization that sent the referral (`inviteContext.invitedBy.organizationId`).
    fn invited_by(&self) -> Option<&str> {
        self.invite_context
            .as_ref()?
            .invited_by
            .as_ref()?
            .get("organizationId")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|o| !o.is_empty())
    }

    pub fn kind(&self) -> ReferralKind {
        let by_microsoft = self
            .invited_by()
            .is_some_and(|o| o.eq_ignore_ascii_case(MICROSOFT_ORGANIZATION));
        let independent = self.referral_type == Some(ReferralType::Independent);
        match &self.qualification {
            Some(ReferralQualification::Direct)
                if independent && (by_microsoft || self.invited_by().is_none()) =>
            {
                ReferralKind::MarketplaceLead
            }
            Some(
                ReferralQualification::SalesQualified | ReferralQualification::MarketingQualified,
            ) if independent && by_microsoft => ReferralKind::QualifiedLead,
            _ => ReferralKind::CoSellOpportunity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referral(kind: &str, qualification: &str, invited_by: Option<&str>) -> Referral {
        let mut v = serde_json::json!({"type": kind, "qualification": qualification});
        if let Some(o) = invited_by {
            v["inviteContext"] = serde_json::json!({"invitedBy": {"organizationId": o}});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_documented_table() {
        use ReferralKind::*;
        let cases = [
            ("Independent", "Direct", Some("msft"), MarketplaceLead),
            ("Independent", "Direct", None, MarketplaceLead),
            ("Independent", "SalesQualified", Some("msft"), QualifiedLead),
            (
                "Independent",
                "MarketingQualified",
                Some("MSFT"),
                QualifiedLead,
            ),
            (
                "Independent",
                "SalesQualified",
                Some("4f1c-partner"),
                CoSellOpportunity,
            ),
            ("Shared", "SalesQualified", Some("msft"), CoSellOpportunity),
            ("Shared", "None", Some("4f1c-partner"), CoSellOpportunity),
            ("Shared", "Direct", Some("msft"), CoSellOpportunity),
            (
                "Independent",
                "Direct",
                Some("4f1c-partner"),
                CoSellOpportunity,
            ),
            ("Independent", "MarketingQualified", None, CoSellOpportunity),
        ];
        for (t, q, by, want) in cases {
            assert_eq!(referral(t, q, by).kind(), want, "{t} {q} {by:?}");
        }
    }
}
