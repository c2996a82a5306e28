//! What `cosell adopt` would link: each opportunity that names a referral (filled by
//! Microsoft's connector), matched against the referrals Partner Center has and the links
//! the crosswalk already holds. Nothing here writes.

use std::collections::{BTreeMap, BTreeSet};

use cosell::dataverse::Opportunity;
use cosell::partner_center::{shared_referral, Referral};
use cosell::store::{Store, StoreError};
use serde::Serialize;

/// An opportunity as adopt sees it: its id and the referral id its column holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub opportunity_id: String,
    pub referral_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Row {
    /// The row's ids, when it has both (the query asks for rows with a referral id, but a
    /// value of only spaces is no id).
    pub fn from_opportunity(opp: &Opportunity, referral_column: &str) -> Option<Row> {
        let opportunity_id = opp.opportunityid.as_deref()?.trim().to_string();
        let referral_id = opp
            .column(referral_column)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|r| !r.is_empty())?
            .to_string();
        Some(Row {
            opportunity_id,
            referral_id,
            name: opp.name.clone(),
        })
    }
}

/// What Partner Center said about the referral ids.
pub struct Known {
    /// By normalized id.
    pub found: BTreeMap<String, Referral>,
    /// The whole list was read: referrals no opportunity names can be reported.
    pub complete: bool,
}

impl Known {
    pub fn new(referrals: impl IntoIterator<Item = Referral>, complete: bool) -> Known {
        let found = referrals
            .into_iter()
            .filter_map(|r| Some((norm(r.id.as_deref()?), r)))
            .filter(|(id, _)| !id.is_empty())
            .collect();
        Known { found, complete }
    }
}

/// One referral <-> opportunity pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub referral_id: String,
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why something was not linked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unmatched {
    /// The opportunity names a referral Partner Center does not have (for this user).
    ReferralNotFound {
        opportunity_id: String,
        referral_id: String,
    },
    /// Several opportunities name the same referral: which one is the deal is the seller's
    /// call, so none is linked.
    ReferralOnSeveralOpportunities {
        referral_id: String,
        opportunity_ids: Vec<String>,
    },
    /// The crosswalk links the referral to another opportunity already.
    ReferralLinkedElsewhere {
        referral_id: String,
        opportunity_id: String,
        linked_to: String,
    },
    /// The crosswalk links the opportunity to another referral already.
    OpportunityLinkedElsewhere {
        opportunity_id: String,
        referral_id: String,
        linked_to: String,
    },
    /// A referral no opportunity names: the connector's first sync of it creates one.
    ReferralWithoutOpportunity {
        referral_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Linked by someone else between the plan and its write (`--apply` only).
    LinkedMeanwhile {
        referral_id: String,
        opportunity_id: String,
    },
}

impl Unmatched {
    pub fn describe(&self) -> String {
        match self {
            Unmatched::ReferralNotFound {
                opportunity_id,
                referral_id,
            } => format!(
                "opportunity {opportunity_id} names referral {referral_id}, which Partner Center does not have"
            ),
            Unmatched::ReferralOnSeveralOpportunities {
                referral_id,
                opportunity_ids,
            } => format!(
                "referral {referral_id} is named by {} opportunities ({}): clear the column on all but one",
                opportunity_ids.len(),
                opportunity_ids.join(", ")
            ),
            Unmatched::ReferralLinkedElsewhere {
                referral_id,
                opportunity_id,
                linked_to,
            } => format!(
                "referral {referral_id} (named by opportunity {opportunity_id}) is already linked to opportunity {linked_to}"
            ),
            Unmatched::OpportunityLinkedElsewhere {
                opportunity_id,
                referral_id,
                linked_to,
            } => format!(
                "opportunity {opportunity_id} names referral {referral_id} but is already linked to referral {linked_to}"
            ),
            Unmatched::ReferralWithoutOpportunity { referral_id, name } => format!(
                "referral {referral_id}{} has no opportunity: the connector's first sync of it creates one",
                name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            Unmatched::LinkedMeanwhile {
                referral_id,
                opportunity_id,
            } => format!(
                "referral {referral_id} or opportunity {opportunity_id} was linked by someone else meanwhile: run adopt again"
            ),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Pairs to link.
    pub link: Vec<Pair>,
    /// Pairs the crosswalk holds already (a second run finds every pair here).
    pub already_linked: Vec<Pair>,
    pub unmatched: Vec<Unmatched>,
}

/// Partner Center ids are GUIDs; compare them without case or stray spaces.
fn norm(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

/// Matches `rows` to `known` referrals and to the crosswalk (`None`: none exists yet).
pub async fn plan(
    rows: &[Row],
    known: &Known,
    store: Option<&dyn Store>,
) -> Result<Plan, StoreError> {
    let mut by_referral: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_referral
            .entry(norm(&row.referral_id))
            .or_default()
            .push(row);
    }
    let mut plan = Plan::default();
    for (id, named_by) in &by_referral {
        let [row] = named_by.as_slice() else {
            plan.unmatched
                .push(Unmatched::ReferralOnSeveralOpportunities {
                    referral_id: named_by[0].referral_id.clone(),
                    opportunity_ids: named_by.iter().map(|r| r.opportunity_id.clone()).collect(),
                });
            continue;
        };
        let Some(referral) = known.found.get(id) else {
            plan.unmatched.push(Unmatched::ReferralNotFound {
                opportunity_id: row.opportunity_id.clone(),
                referral_id: row.referral_id.clone(),
            });
            continue;
        };
        // Partner Center's spelling of the id: the one its webhooks carry.
        let referral_id = referral
            .id
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_string();
        let pair = Pair {
            referral_id: referral_id.clone(),
            opportunity_id: row.opportunity_id.clone(),
            name: row.name.clone(),
        };
        if let Some(link) = link_of_referral(store, &referral_id).await? {
            if link.eq_ignore_ascii_case(&row.opportunity_id) {
                plan.already_linked.push(pair);
            } else {
                plan.unmatched.push(Unmatched::ReferralLinkedElsewhere {
                    referral_id,
                    opportunity_id: row.opportunity_id.clone(),
                    linked_to: link,
                });
            }
            continue;
        }
        if let Some(store) = store {
            if let Some(other) = store.get_link_by_opportunity(&row.opportunity_id).await? {
                plan.unmatched.push(Unmatched::OpportunityLinkedElsewhere {
                    opportunity_id: row.opportunity_id.clone(),
                    referral_id,
                    linked_to: other.referral_id,
                });
                continue;
            }
        }
        plan.link.push(pair);
    }
    if known.complete {
        let named: BTreeSet<&String> = by_referral.keys().collect();
        for (id, referral) in &known.found {
            // The connected referral for Microsoft is never paired (its engagement's own
            // referral is).
            if named.contains(id) || shared_referral::is_for_microsoft(referral) {
                continue;
            }
            let referral_id = referral.id.as_deref().unwrap_or_default().trim();
            if link_of_referral(store, referral_id).await?.is_some() {
                continue;
            }
            plan.unmatched.push(Unmatched::ReferralWithoutOpportunity {
                referral_id: referral_id.to_string(),
                name: referral.name.clone(),
            });
        }
    }
    Ok(plan)
}

/// The opportunity the crosswalk links `referral_id` to.
async fn link_of_referral(
    store: Option<&dyn Store>,
    referral_id: &str,
) -> Result<Option<String>, StoreError> {
    match store {
        Some(s) => Ok(s
            .get_link_by_referral(referral_id)
            .await?
            .map(|l| l.opportunity_id)),
        None => Ok(None),
    }
}
