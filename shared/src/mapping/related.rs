//! `[related]`: the opportunity columns that show a co-sell's Microsoft side once its seller
//! has accepted (from Microsoft's own referral in the engagement, a "related referral"):
//! Microsoft's CRM identifier ("Microsoft CRM Identifier" in Microsoft's connector) and the
//! Microsoft seller's name and e-mail. A column left out is not written.
//!
//! UNVERIFIED: the docs name no field for Microsoft's CRM id; it is taken from Microsoft's
//! referral's `externalReferenceId` (the field a party keeps its own CRM's id in), and the
//! seller from its `team`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::partner_center::{Referral, ReferralStatus, ReferralSubstatus};

use super::Mapping;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_id_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_name_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_email_column: Option<String>,
}

impl RelatedSpec {
    /// The configured columns, for `cosell setup dataverse`: (logical name, what it holds).
    pub fn columns(&self) -> Vec<(&str, &'static str)> {
        [
            (&self.crm_id_column, "Microsoft CRM Identifier"),
            (&self.seller_name_column, "Microsoft Seller"),
            (&self.seller_email_column, "Microsoft Seller E-mail"),
        ]
        .into_iter()
        .filter_map(|(c, label)| Some((c.as_deref()?.trim(), label)))
        .filter(|(c, _)| !c.is_empty())
        .collect()
    }
}

/// Microsoft's organization id in a referral (`inviteContext.invitedBy.organizationId` of
/// what it sends, `organizationId` of its own).
pub const MICROSOFT_ORGANIZATION: &str = "msft";

/// Whether `r` is Microsoft's own referral (not the partner's).
pub fn is_microsofts(r: &Referral) -> bool {
    r.organization_id
        .as_deref()
        .is_some_and(|o| o.trim().eq_ignore_ascii_case(MICROSOFT_ORGANIZATION))
}

impl Mapping {
    /// The columns to write from Microsoft's referral in a co-sell's engagement: empty until
    /// Microsoft's seller has accepted it (`Active`/`Accepted`).
    pub fn microsoft_side(&self, microsofts: &Referral) -> Map<String, Value> {
        let mut out = Map::new();
        let accepted = microsofts.status == Some(ReferralStatus::Active)
            && microsofts.substatus == Some(ReferralSubstatus::Accepted);
        if !accepted {
            return out;
        }
        let seller = microsofts.team.as_ref().and_then(|t| t.first());
        let text = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
        };
        let name = seller.map(|m| {
            [m.first_name.as_deref(), m.last_name.as_deref()]
                .into_iter()
                .flatten()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let spec = &self.related;
        for (column, value) in [
            (
                &spec.crm_id_column,
                text(microsofts.external_reference_id.as_deref()),
            ),
            (&spec.seller_name_column, text(name.as_deref())),
            (
                &spec.seller_email_column,
                text(seller.and_then(|m| m.email.as_deref())),
            ),
        ] {
            if let (Some(c), Some(v)) = (column.as_deref().map(str::trim), value) {
                if !c.is_empty() {
                    out.insert(c.to_string(), v);
                }
            }
        }
        out
    }
}
