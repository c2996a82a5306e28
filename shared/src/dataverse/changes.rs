//! Change detection for outbound sync: Dataverse change tracking (a delta link per table,
//! deletes included) with a full resync when the token expires, and `modifiedon` polling
//! for orgs where change tracking is off.

use serde_json::Value;
use time::OffsetDateTime;

use super::client::{DataverseClient, PageBody, NO_TARGET};
use super::error::DataverseError;
use super::model::Opportunity;
use super::query;

/// What changed on a table since a delta link (the opportunity table unless named).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet<T = Opportunity> {
    /// New and updated rows (for a full sync: every row).
    pub upserts: Vec<T>,
    /// Ids of deleted rows.
    pub deleted: Vec<String>,
    /// Where the next call resumes; store it only after the changes are handled.
    pub delta_link: String,
    /// True when this read every row rather than a delta (first run or after expiry), so
    /// rows the caller knows of but that are absent here were deleted meanwhile.
    pub full: bool,
}

impl<T> Default for ChangeSet<T> {
    fn default() -> Self {
        ChangeSet {
            upserts: Vec::new(),
            deleted: Vec::new(),
            delta_link: String::new(),
            full: false,
        }
    }
}

impl DataverseClient {
    /// The changes since `delta_link`, or every row with a first delta link when `None`.
    /// `select` limits the columns (the primary key always comes back).
    /// An expired link gives [`DataverseError::DeltaExpired`].
    pub async fn changes(
        &self,
        delta_link: Option<&str>,
        select: &[&str],
    ) -> Result<ChangeSet, DataverseError> {
        let columns = if select.is_empty() {
            self.selects.opportunity()
        } else {
            select.join(",")
        };
        self.table_changes(
            "opportunity changes",
            "opportunities",
            &columns,
            delta_link,
            |item| serde_json::from_value(item).map_err(|e| e.to_string()),
        )
        .await
    }

    /// The changes of the table `set` since `delta_link` (every row when `None`), each row
    /// turned into a `T` by `parse` (its error text makes the read malformed).
    pub(super) async fn table_changes<T>(
        &self,
        call: &str,
        set: &str,
        select: &str,
        delta_link: Option<&str>,
        parse: impl Fn(Value) -> Result<T, String>,
    ) -> Result<ChangeSet<T>, DataverseError> {
        let first = match delta_link {
            Some(link) => self.own_link(call, link)?,
            None => super::client::selecting(self.url(set), select),
        };
        let prefer = query::prefer_track_changes(self.page_size);
        let mut set = ChangeSet {
            full: delta_link.is_none(),
            ..ChangeSet::default()
        };
        let mut next = Some(first);
        let mut pages = 0u32;
        while let Some(url) = next.take() {
            pages += 1;
            let page: PageBody = self.get_json(call, NO_TARGET, url, Some(&prefer)).await?;
            for item in page.value {
                match deleted_id(&item) {
                    Some(id) => set.deleted.push(id),
                    None => set.upserts.push(parse(item).map_err(|reason| {
                        DataverseError::Malformed {
                            call: call.into(),
                            reason,
                        }
                    })?),
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(link), _) => next = Some(self.own_link(call, &link)?),
                (None, Some(delta)) => {
                    self.own_link(call, &delta)?;
                    set.delta_link = delta;
                }
                (None, None) => {
                    return Err(DataverseError::Malformed {
                        call: call.into(),
                        reason: "last page carries no @odata.deltaLink".into(),
                    })
                }
            }
        }
        tracing::debug!(
            call,
            pages,
            upserts = set.upserts.len(),
            deleted = set.deleted.len(),
            full = set.full,
            "read changes"
        );
        Ok(set)
    }

    /// Like [`Self::changes`], but an expired delta link falls back to a full read.
    pub async fn changes_or_resync(
        &self,
        delta_link: Option<&str>,
        select: &[&str],
    ) -> Result<ChangeSet, DataverseError> {
        match self.changes(delta_link, select).await {
            Err(DataverseError::DeltaExpired) if delta_link.is_some() => {
                tracing::warn!("change-tracking token expired; doing a full resync");
                self.changes(None, select).await
            }
            other => other,
        }
    }

    /// Opportunities modified at or after `watermark`, oldest first (ties by id). Rows at the
    /// watermark itself come back again: de-duplicate by id and version on the caller's side.
    /// Deletes are invisible to this query.
    pub async fn modified_since(
        &self,
        watermark: OffsetDateTime,
    ) -> Result<Vec<Opportunity>, DataverseError> {
        let mut url = self.url("opportunities");
        url.query_pairs_mut()
            .append_pair("$select", &self.selects.opportunity())
            .append_pair(
                "$filter",
                &format!("modifiedon ge {}", query::datetime(watermark)),
            )
            .append_pair("$orderby", "modifiedon asc,opportunityid asc");
        self.query_all("opportunities modified since", url).await
    }
}

/// The id of a `$deletedEntity` tombstone, or `None` for an ordinary row.
fn deleted_id(item: &Value) -> Option<String> {
    let context_says = item
        .get("@odata.context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.ends_with("$deletedEntity"));
    let reason_says = item.get("reason").and_then(Value::as_str) == Some("deleted");
    if context_says || reason_says {
        item.get("id").and_then(Value::as_str).map(str::to_string)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tombstones_are_told_from_rows() {
        let tomb = json!({"@odata.context": "https://o/api/data/v9.2/$metadata#opportunities/$deletedEntity", "id": "abc", "reason": "deleted"});
        assert_eq!(deleted_id(&tomb), Some("abc".into()));
        let row = json!({"@odata.etag": "W/\"1\"", "opportunityid": "abc", "name": "x"});
        assert_eq!(deleted_id(&row), None);
    }
}
