//! The opportunities that already name a referral: what `cosell adopt` builds the
//! crosswalk from when moving off Microsoft's connector (whose flows filled that column).

use super::model::Opportunity;
use super::{DataverseClient, DataverseError};

impl DataverseClient {
    /// Every opportunity whose referral-id column holds a value, oldest first (open and
    /// closed alike: a closed deal's referral is still linked). Read-only.
    pub async fn opportunities_with_referral_id(&self) -> Result<Vec<Opportunity>, DataverseError> {
        let filter = format!("{} ne null", self.columns().referral_id);
        let mut url = self.opportunity_url(self.url("opportunities"));
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$orderby", "createdon asc,opportunityid asc");
        let mut rows: Vec<Opportunity> = self
            .query_all("list opportunities with a referral id", url)
            .await?;
        rows.iter_mut().for_each(|o| self.fill_solutions(o));
        Ok(rows)
    }
}
