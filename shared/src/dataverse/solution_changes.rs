//! The solution rows' own changes (`[solutions] layout = "table"`). A seller adding or
//! removing a row changes no column of the opportunity, not even its `modifiedon`, so the
//! opportunity poll alone would see it only with the opportunity's next edit. These reads
//! give each changed row's opportunity: change tracking on the child table (deletes come
//! as tombstones that carry only the row's id), else `modifiedon` (no deletes).

use serde_json::Value;
use time::OffsetDateTime;

use super::changes::ChangeSet;
use super::error::DataverseError;
use super::{query, DataverseClient};

/// A solution row seen new or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolutionRowSeen {
    pub row_id: String,
    /// The opportunity the row belongs to (`None`: its lookup is empty).
    pub opportunity_id: Option<String>,
    pub modifiedon: Option<String>,
    /// The row's etag: one row at one version is one change.
    pub etag: Option<String>,
}

/// The names a read of the child table needs: (set, key, the lookup's value property).
struct Names {
    set: String,
    key: String,
    lookup_value: String,
}

impl Names {
    /// The columns every read of the rows selects.
    fn select(&self) -> String {
        format!("{},{},modifiedon", self.key, self.lookup_value)
    }
}

impl DataverseClient {
    /// True when the mapping keeps solutions as rows, whose changes are polled apart.
    pub fn tracks_solution_rows(&self) -> bool {
        self.solution_rows.is_some()
    }

    fn solution_names(&self) -> Option<Names> {
        let spec = self.solution_rows.as_ref()?.spec();
        Some(Names {
            set: spec.set.clone(),
            key: spec.key.clone(),
            // A lookup's value property is `_<attribute>_value`, the attribute's logical
            // name in lower case (the navigation property may be the schema name).
            lookup_value: format!("_{}_value", spec.opportunity_lookup.to_ascii_lowercase()),
        })
    }

    /// The solution rows changed since `delta_link` (every row, `full`, when `None` or when
    /// the link has expired). Nothing in the column layout.
    pub async fn solution_row_changes(
        &self,
        delta_link: Option<&str>,
    ) -> Result<ChangeSet<SolutionRowSeen>, DataverseError> {
        let Some(names) = self.solution_names() else {
            return Ok(ChangeSet::default());
        };
        match self.read_row_changes(&names, delta_link).await {
            Err(DataverseError::DeltaExpired) if delta_link.is_some() => {
                tracing::warn!("solution rows' change-tracking token expired; reading them all");
                self.read_row_changes(&names, None).await
            }
            other => other,
        }
    }

    async fn read_row_changes(
        &self,
        names: &Names,
        delta_link: Option<&str>,
    ) -> Result<ChangeSet<SolutionRowSeen>, DataverseError> {
        self.table_changes(
            "solution row changes",
            &names.set,
            &names.select(),
            delta_link,
            |v| seen(names, &v).ok_or_else(|| format!("a row without its key {}", names.key)),
        )
        .await
    }

    /// Whether the child table's change tracking is on (`None` in the column layout): one
    /// change-tracking read of a single row.
    pub async fn solution_rows_tracked(&self) -> Result<Option<bool>, DataverseError> {
        let Some(names) = self.solution_names() else {
            return Ok(None);
        };
        let url = super::client::selecting(self.url(&names.set), &names.key);
        let prefer = query::prefer_track_changes(1);
        match self
            .get_json::<Value>(
                "solution rows tracked",
                super::client::NO_TARGET,
                url,
                Some(&prefer),
            )
            .await
        {
            Ok(_) => Ok(Some(true)),
            Err(DataverseError::TrackingOff { .. }) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }

    /// Solution rows modified at or after `watermark`, oldest first; for a child table whose
    /// change tracking is off. Deletes are invisible to this query.
    pub async fn solution_rows_modified_since(
        &self,
        watermark: OffsetDateTime,
    ) -> Result<Vec<SolutionRowSeen>, DataverseError> {
        let Some(names) = self.solution_names() else {
            return Ok(Vec::new());
        };
        let mut url = self.url(&names.set);
        url.query_pairs_mut()
            .append_pair("$select", &names.select())
            .append_pair(
                "$filter",
                &format!("modifiedon ge {}", query::datetime(watermark)),
            )
            .append_pair("$orderby", &format!("modifiedon asc,{} asc", names.key));
        let rows: Vec<Value> = self.query_all("solution rows modified since", url).await?;
        Ok(rows.iter().filter_map(|v| seen(&names, v)).collect())
    }
}

fn seen(names: &Names, v: &Value) -> Option<SolutionRowSeen> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(SolutionRowSeen {
        row_id: text(&names.key)?,
        opportunity_id: text(&names.lookup_value).filter(|s| !s.is_empty()),
        modifiedon: text("modifiedon"),
        etag: text("@odata.etag"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_names_its_opportunity_through_the_lookups_value_property() {
        let names = Names {
            set: "msp_partnercentersolutions".into(),
            key: "msp_partnercentersolutionid".into(),
            lookup_value: "_msp_opportunityid_value".into(),
        };
        let row = json!({"@odata.etag": "W/\"7\"", "msp_partnercentersolutionid": "r1",
            "_msp_opportunityid_value": "o1", "modifiedon": "2026-12-02T01:00:00Z"});
        let got = seen(&names, &row).unwrap();
        assert_eq!(got.row_id, "r1");
        assert_eq!(got.opportunity_id.as_deref(), Some("o1"));
        assert_eq!(got.etag.as_deref(), Some("W/\"7\""));
        let orphan = json!({"msp_partnercentersolutionid": "r2", "_msp_opportunityid_value": null});
        assert_eq!(seen(&names, &orphan).unwrap().opportunity_id, None);
        assert!(seen(&names, &json!({"other": 1})).is_none());
    }
}
