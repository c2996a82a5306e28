//! `[lead]`: what becomes of a referral that is a lead (a Marketplace lead or a qualified
//! lead, by `partner_center::classify`) rather than a co-sell opportunity.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadHandling {
    /// Synced as an opportunity, like a co-sell opportunity.
    #[default]
    Opportunity,
    /// Not synced: the audit trail says why.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeadSpec {
    #[serde(default)]
    pub handling: LeadHandling,
}
