//! A new referral for an opportunity, as "create a referral" documents it: the mapped
//! fields, and by the opportunity's deal type (`[deal_type]`) either a private deal
//! (`Independent`, not shared with Microsoft sellers, no target) or the first of the
//! shared-referral steps (`Shared`, shared with Microsoft sellers). The second step, the
//! connected referral for Microsoft, needs the first one's `engagementId`:
//! `partner_center::shared_referral::referral_for_microsoft`.

use serde_json::{json, Value};

use crate::config::ColumnNames;
use crate::dataverse::{Account, Contact, Opportunity};
use crate::partner_center::Referral;

use super::deal_type::{DealChoice, DealType};
use super::error::MappingError;
use super::outbound::{CrmRows, RowValues};
use super::spec::Transform;
use super::transform::to_referral;
use super::{path, Mapping};

/// What creating a referral for an opportunity sends.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    pub deal: DealChoice,
    /// The first (for a private deal the only) POST.
    pub own: Referral,
}

impl CreatePlan {
    /// Whether a connected referral for Microsoft follows the own one.
    pub fn shared_with_microsoft(&self) -> bool {
        self.deal.deal.shared_with_microsoft()
    }
}

/// The fixed part of the body of each deal type.
fn skeleton(deal: DealType) -> Value {
    let shared = deal.shared_with_microsoft();
    json!({
        "type": if shared { "Shared" } else { "Independent" },
        "consent": {
            "consentToToShareInfoWithOthers": true,
            "consentToContact": true,
            // "the key parameter to make this referral a private deal".
            "consentToShareReferralWithMicrosoftSellers": shared,
        },
        "target": [],
    })
}

impl Mapping {
    /// The referral to create for the opportunity. `currency_iso` is the ISO 4217 code of
    /// the row's currency lookup (the row holds only its id). Partner Center needs a
    /// customer contact, a solution and, with a deal value, its currency, and a Services
    /// co-sell referral its taxonomy values: their absence is an error here rather than a
    /// refused POST.
    pub fn outbound_create(
        &self,
        opp: &Opportunity,
        account: Option<&Account>,
        contact: Option<&Contact>,
        columns: &ColumnNames,
        currency_iso: Option<&str>,
    ) -> Result<CreatePlan, MappingError> {
        if contact.is_none() {
            return Err(MappingError::CoSellNeedsContact);
        }
        let deal = self.deal_type(opp, columns);
        if deal.help_but_private {
            return Err(MappingError::HelpButPrivate);
        }
        let values = RowValues::new(CrmRows {
            opportunity: opp,
            account,
            contact,
        });
        let mut referral = skeleton(deal.deal);
        for (n, field) in self.outbound_fields(true) {
            let index = n + 1;
            let Some(segs) = path::parse(&field.referral) else {
                continue;
            };
            let currency = currency_iso.map(|c| Value::String(c.to_string()));
            let crm = if field.transform == Transform::Currency {
                currency.as_ref()
            } else {
                values.get(field, columns)
            };
            let Some(crm) = crm else {
                if field.required {
                    return Err(MappingError::MissingRequired {
                        index,
                        path: field.referral.clone(),
                    });
                }
                continue;
            };
            let value = to_referral(field, &self.value_maps, crm, None).map_err(|reason| {
                MappingError::BadValue {
                    index,
                    path: field.referral.clone(),
                    reason,
                }
            })?;
            path::set(&mut referral, &segs, value);
        }
        let has_email = referral
            .pointer("/customerProfile/team/0/email")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.trim().is_empty());
        if !has_email {
            return Err(MappingError::CoSellNeedsContact);
        }
        let has_solution = referral
            .pointer("/details/requirements/solutions")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has_solution {
            return Err(MappingError::CoSellNeedsSolution);
        }
        let has_value = referral.pointer("/details/dealValue").is_some();
        if has_value && referral.pointer("/details/currency").is_none() {
            return Err(MappingError::NoCurrency);
        }
        self.services.check(&referral)?;
        let own = serde_json::from_value(referral).map_err(|e| MappingError::Build {
            reason: e.to_string(),
        })?;
        Ok(CreatePlan { deal, own })
    }
}
