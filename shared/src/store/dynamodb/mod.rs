//! [`Store`] on one DynamoDB table (single-table design). Also documented in
//! `docs/storage.md`.
//!
//! | item                  | `pk`                  | `sk`            | indexes / notes                              |
//! |-----------------------|-----------------------|-----------------|----------------------------------------------|
//! | link                  | `REF#<referral id>`   | `LINK`          | all [`Link`] fields, `version`               |
//! | opportunity marker    | `OPP#<opportunity id>`| `LINK`          | `referral_id`; makes the opportunity unique  |
//! | audit entry           | `AUDIT`               | `<time>#<id>`   | `gsi1pk=AUDIT#REF#<r>`, `gsi2pk=AUDIT#OPP#<o>` (sparse), `gsi*sk = sk`, TTL `expires_at` |
//! | state value           | `STATE#<key>`         | `STATE`         | `value`, `version`                           |
//! | delivery key          | `DELIVERY#<key>`      | `DELIVERY`      | TTL `expires_at`, exact `expires_at_ms`       |
//!
//! Creating a link is one `TransactWriteItems` that puts the link and the opportunity
//! marker, each on `attribute_not_exists(pk)`, so neither a referral nor an opportunity can
//! be linked twice. Updates are conditional on `version`; moving a link to another
//! opportunity swaps the marker in the same transaction. Lookups by opportunity read the
//! marker and then the link with consistent reads (a GSI would only be eventually
//! consistent). `<time>` is a fixed-width UTC timestamp, so a reverse key scan is
//! newest-first. DynamoDB deletes expired items lazily (up to days later), so queries also
//! filter on `expires_at`.

mod item;
mod table;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use self::item::*;
use super::time_key::{ceil_seconds, epoch_millis, epoch_seconds, millis, sortable};
use super::{Store, StoreError, SyncRecord, DEFAULT_AUDIT_RETENTION};
use crate::audit::{AuditEntry, AuditQuery, Outcome};
use crate::crosswalk::Link;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    audit_retention: Option<Duration>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
        }
    }

    /// How long audit entries are kept (counted from their `at`); `None` keeps them forever.
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out.item)
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>>
    {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn create_link(&self, stored: Link) -> Result<Link, StoreError> {
        let items = self.link_items(&stored, None)?;
        match self.transact(items).await {
            Ok(()) => Ok(stored),
            Err(e) => Err(match cancellation_codes(&e) {
                Some(codes) if failed(&codes, 0) => StoreError::conflict(format!(
                    "referral {} is already linked",
                    stored.referral_id
                )),
                Some(codes) if failed(&codes, 1) => StoreError::conflict(format!(
                    "opportunity {} is already linked to another referral",
                    stored.opportunity_id
                )),
                Some(_) => StoreError::conflict(format!(
                    "concurrent write while linking referral {}",
                    stored.referral_id
                )),
                None => backend("TransactWriteItems", e),
            }),
        }
    }

    async fn update_link(&self, stored: Link, expected: u64) -> Result<Link, StoreError> {
        let stale = || {
            StoreError::conflict(format!(
                "link for referral {} is not at version {expected}",
                stored.referral_id
            ))
        };
        let current = match self
            .get_item(key(referral_pk(&stored.referral_id), LINK_SK))
            .await?
        {
            Some(item) => link_from_item(&item)?,
            None => return Err(stale()),
        };
        if current.version != expected {
            return Err(stale());
        }
        let version_is = HashMap::from([(":v".to_owned(), n(expected))]);
        if current.opportunity_id == stored.opportunity_id {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(link_to_item(&stored)))
                .condition_expression("version = :v")
                .set_expression_attribute_values(Some(version_is))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(stored),
                Err(e) if is_condition_failed(&e) => Err(stale()),
                Err(e) => Err(backend("PutItem", e)),
            };
        }
        // Re-linked to another opportunity: move the marker in the same transaction.
        let items = self.link_items(&stored, Some(&current))?;
        match self.transact(items).await {
            Ok(()) => Ok(stored),
            Err(e) => Err(match cancellation_codes(&e) {
                Some(codes) if failed(&codes, 2) => StoreError::conflict(format!(
                    "opportunity {} is already linked to another referral",
                    stored.opportunity_id
                )),
                Some(_) => stale(),
                None => backend("TransactWriteItems", e),
            }),
        }
    }

    fn audit_expiry(&self, entry: &AuditEntry) -> Option<i64> {
        self.audit_retention
            .map(|r| epoch_seconds(entry.at) + millis(r) / 1000)
    }

    /// The items of a link write, for one transaction: the link on its version (or on not
    /// existing yet) and the opportunity marker created, kept or moved.
    fn link_items(
        &self,
        stored: &Link,
        previous: Option<&Link>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let Some(previous) = previous else {
            return Ok(vec![
                self.put(
                    link_to_item(stored),
                    "attribute_not_exists(pk)",
                    Item::new(),
                )?,
                self.put(
                    opportunity_marker(stored),
                    "attribute_not_exists(pk)",
                    Item::new(),
                )?,
            ]);
        };
        let version_is = HashMap::from([(":v".to_owned(), n(previous.version))]);
        let mut items = vec![self.put(link_to_item(stored), "version = :v", version_is)?];
        // At that version the stored link points where `previous` does, so a move to
        // another opportunity is known without reading it first.
        if previous.opportunity_id != stored.opportunity_id {
            let delete_old = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(opportunity_pk(&previous.opportunity_id), LINK_SK)))
                .condition_expression("referral_id = :r")
                .expression_attribute_values(":r", s(&stored.referral_id))
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            items.push(TransactWriteItem::builder().delete(delete_old).build());
            items.push(self.put(
                opportunity_marker(stored),
                "attribute_not_exists(pk)",
                Item::new(),
            )?);
        }
        Ok(items)
    }

    async fn conditional_put(
        &self,
        item: Item,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected_version {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem", e)),
        }
    }
}

fn backend<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(format!("dynamodb {op}: {}", DisplayErrorContext(&e)))
}

fn is_condition_failed<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.is_conditional_check_failed_exception())
}

/// Per-item cancellation codes of a cancelled transaction, `None` for any other error.
fn cancellation_codes<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

fn failed(codes: &[String], index: usize) -> bool {
    codes
        .get(index)
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

#[async_trait]
impl Store for DynamoStore {
    async fn get_link_by_referral(&self, referral_id: &str) -> Result<Option<Link>, StoreError> {
        self.get_item(key(referral_pk(referral_id), LINK_SK))
            .await?
            .map(|item| link_from_item(&item))
            .transpose()
    }

    async fn get_link_by_opportunity(
        &self,
        opportunity_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let Some(marker) = self
            .get_item(key(opportunity_pk(opportunity_id), LINK_SK))
            .await?
        else {
            return Ok(None);
        };
        let referral_id = req_str(&marker, "referral_id")?;
        let link = self.get_link_by_referral(&referral_id).await?;
        // The marker and the link are written together; this guards a torn manual edit.
        Ok(link.filter(|l| l.opportunity_id == opportunity_id))
    }

    async fn put_link(
        &self,
        link: &Link,
        expected_version: Option<u64>,
    ) -> Result<Link, StoreError> {
        let mut stored = link.clone();
        stored.version = expected_version.unwrap_or(0) + 1;
        stored.updated_at = OffsetDateTime::now_utc();
        match expected_version {
            None => self.create_link(stored).await,
            Some(v) => self.update_link(stored, v).await,
        }
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let expires_at = self.audit_expiry(entry);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_to_item(entry, expires_at)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(StoreError::conflict(format!(
                "audit entry {} already exists",
                entry.id
            ))),
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = q.effective_limit();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (index, pk_name, sk_name, pk_value) = match (&q.referral_id, &q.opportunity_id) {
            (Some(r), _) => (Some(GSI1), GSI1PK, GSI1SK, audit_ref_pk(r)),
            (None, Some(o)) => (Some(GSI2), GSI2PK, GSI2SK, audit_opp_pk(o)),
            (None, None) => (None, PK, SK, AUDIT_PK.to_owned()),
        };
        // Only names and values an expression uses may be sent, so build them together.
        let mut names = HashMap::from([
            ("#pk".to_owned(), pk_name.to_owned()),
            ("#exp".to_owned(), EXPIRES_AT.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":pk".to_owned(), s(pk_value)),
            (
                ":now".to_owned(),
                n(epoch_seconds(OffsetDateTime::now_utc())),
            ),
        ]);
        let mut key_condition = "#pk = :pk".to_owned();
        if let Some(since) = q.since {
            names.insert("#sk".into(), sk_name.into());
            values.insert(":since".into(), s(sortable(since)));
            key_condition.push_str(" AND #sk >= :since");
        }
        let mut filter = "(attribute_not_exists(#exp) OR #exp > :now)".to_owned();
        if q.failed_only {
            names.insert("#outcome".into(), "outcome".into());
            values.insert(":failed".into(), s(Outcome::Failed.as_str()));
            filter.push_str(" AND #outcome = :failed");
        }
        if let (Some(_), Some(o)) = (&q.referral_id, &q.opportunity_id) {
            names.insert("#opp".into(), "opportunity_id".into());
            values.insert(":opp".into(), s(o));
            filter.push_str(" AND #opp = :opp");
        }

        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(&key_condition)
                .filter_expression(&filter)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(limit.min(1000)).unwrap_or(1000))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query", e))?;
            for item in page.items() {
                out.push(audit_from_item(item)?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        match self.get_item(state_key(key)).await? {
            Some(item) => Ok(Some((req_str(&item, "value")?, req_u64(&item, "version")?))),
            None => Ok(None),
        }
    }

    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let version = expected_version.unwrap_or(0) + 1;
        let mut item = state_key(key);
        item.insert("value".into(), s(value));
        item.insert("version".into(), n(version));
        if self.conditional_put(item, expected_version).await? {
            Ok(version)
        } else {
            Err(StoreError::conflict(match expected_version {
                None => format!("state {key} already exists"),
                Some(v) => format!("state {key} is not at version {v}"),
            }))
        }
    }

    /// One conditional `PutItem`: taken when absent or past its exact expiry.
    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut item = delivery_key(key);
        // The TTL attribute only drives DynamoDB's lazy clean-up; the exact expiry decides.
        item.insert(
            EXPIRES_AT.into(),
            n(epoch_seconds(now).saturating_add(ceil_seconds(ttl))),
        );
        item.insert(
            "expires_at_ms".into(),
            n(epoch_millis(now).saturating_add(millis(ttl))),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at_ms <= :now")
            .expression_attribute_values(":now", n(epoch_millis(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        // DeleteItem of an absent key succeeds, matching "forgetting an unknown key is fine".
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(delivery_key(key)))
            .send()
            .await
            .map_err(|e| backend("DeleteItem", e))?;
        Ok(())
    }

    /// One `TransactWriteItems`: the link items and the audit entries succeed or fail together (at most 100 items, far more than a sync writes).
    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        if record.is_empty() {
            return Ok(None);
        }
        let stored = record.link.map(|w| {
            let mut stored = w.link.clone();
            stored.version = w.expected_version().unwrap_or(0) + 1;
            stored.updated_at = OffsetDateTime::now_utc();
            (stored, w.previous)
        });
        let mut items = match &stored {
            Some((link, previous)) => self.link_items(link, *previous)?,
            None => Vec::new(),
        };
        let link_items = items.len();
        for entry in record.audit {
            let item = audit_to_item(entry, self.audit_expiry(entry));
            items.push(self.put(item, "attribute_not_exists(pk)", Item::new())?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(stored.map(|(link, _)| link)),
            Err(e) => Err(match cancellation_codes(&e) {
                Some(codes) => {
                    let referral = stored.as_ref().map_or("", |(l, _)| l.referral_id.as_str());
                    if codes
                        .iter()
                        .take(link_items)
                        .any(|c| c == "ConditionalCheckFailed")
                    {
                        StoreError::conflict(format!(
                            "link for referral {referral} changed or is taken (codes {codes:?})"
                        ))
                    } else {
                        StoreError::conflict(format!(
                            "sync record for referral {referral} cancelled (codes {codes:?})"
                        ))
                    }
                }
                None => backend("TransactWriteItems", e),
            }),
        }
    }
}
