//! Item keys and attribute conversion for the single-table design (see the parent module).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, Direction, Outcome};
use crate::crosswalk::Link;
use crate::store::time_key::sortable;
use crate::store::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
pub(super) const GSI1PK: &str = "gsi1pk";
pub(super) const GSI1SK: &str = "gsi1sk";
pub(super) const GSI2PK: &str = "gsi2pk";
pub(super) const GSI2SK: &str = "gsi2sk";
pub(super) const GSI1: &str = "gsi1";
pub(super) const GSI2: &str = "gsi2";
/// The table's TTL attribute (epoch seconds).
pub(super) const EXPIRES_AT: &str = "expires_at";

pub(super) const LINK_SK: &str = "LINK";
pub(super) const AUDIT_PK: &str = "AUDIT";

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub(super) fn referral_pk(referral_id: &str) -> String {
    format!("REF#{referral_id}")
}

pub(super) fn opportunity_pk(opportunity_id: &str) -> String {
    format!("OPP#{opportunity_id}")
}

pub(super) fn state_key(key: &str) -> Item {
    self::key(format!("STATE#{key}"), "STATE")
}

pub(super) fn delivery_key(key: &str) -> Item {
    self::key(format!("DELIVERY#{key}"), "DELIVERY")
}

pub(super) fn audit_ref_pk(referral_id: &str) -> String {
    format!("AUDIT#REF#{referral_id}")
}

pub(super) fn audit_opp_pk(opportunity_id: &str) -> String {
    format!("AUDIT#OPP#{opportunity_id}")
}

/// `<fixed-width time>#<id>`: newest-first is a reverse key scan.
pub(super) fn audit_sk(at: OffsetDateTime, id: &str) -> String {
    format!("{}#{id}", sortable(at))
}

fn put_opt(item: &mut Item, name: &str, value: Option<&String>) {
    if let Some(v) = value {
        item.insert(name.to_owned(), s(v.clone()));
    }
}

pub(super) fn get_str(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

pub(super) fn req_str(item: &Item, name: &str) -> Result<String, StoreError> {
    get_str(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing")))
}

pub(super) fn req_u64(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a u64: {v}"))),
        _ => Err(StoreError::Corrupt(format!(
            "number attribute {name} missing"
        ))),
    }
}

fn time_attr(t: OffsetDateTime) -> AttributeValue {
    s(t.format(&Rfc3339)
        .expect("an OffsetDateTime formats as RFC 3339"))
}

fn req_time(item: &Item, name: &str) -> Result<OffsetDateTime, StoreError> {
    let text = req_str(item, name)?;
    OffsetDateTime::parse(&text, &Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("attribute {name}: {e}")))
}

pub(super) fn link_to_item(link: &Link) -> Item {
    let mut item = key(referral_pk(&link.referral_id), LINK_SK);
    item.insert("referral_id".into(), s(&link.referral_id));
    item.insert("opportunity_id".into(), s(&link.opportunity_id));
    put_opt(&mut item, "pc_etag", link.pc_etag.as_ref());
    put_opt(&mut item, "dv_etag", link.dv_etag.as_ref());
    put_opt(&mut item, "pc_updated", link.pc_updated.as_ref());
    put_opt(&mut item, "dv_modified", link.dv_modified.as_ref());
    if let Some(base) = &link.base {
        let text = serde_json::to_string(base).expect("a base serializes");
        item.insert("base".into(), s(text));
    }
    item.insert("version".into(), n(link.version));
    item.insert("updated_at".into(), time_attr(link.updated_at));
    item
}

pub(super) fn link_from_item(item: &Item) -> Result<Link, StoreError> {
    Ok(Link {
        referral_id: req_str(item, "referral_id")?,
        opportunity_id: req_str(item, "opportunity_id")?,
        pc_etag: get_str(item, "pc_etag")?,
        dv_etag: get_str(item, "dv_etag")?,
        pc_updated: get_str(item, "pc_updated")?,
        dv_modified: get_str(item, "dv_modified")?,
        base: get_str(item, "base")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("attribute base: {e}")))?,
        version: req_u64(item, "version")?,
        updated_at: req_time(item, "updated_at")?,
    })
}

/// The marker item that makes an opportunity linkable to one referral only.
pub(super) fn opportunity_marker(link: &Link) -> Item {
    let mut item = key(opportunity_pk(&link.opportunity_id), LINK_SK);
    item.insert("referral_id".into(), s(&link.referral_id));
    item
}

pub(super) fn audit_to_item(entry: &AuditEntry, expires_at: Option<i64>) -> Item {
    let sk = audit_sk(entry.at, &entry.id);
    let mut item = key(AUDIT_PK.to_owned(), &sk);
    if let Some(r) = &entry.referral_id {
        item.insert(GSI1PK.into(), s(audit_ref_pk(r)));
        item.insert(GSI1SK.into(), s(&sk));
    }
    if let Some(o) = &entry.opportunity_id {
        item.insert(GSI2PK.into(), s(audit_opp_pk(o)));
        item.insert(GSI2SK.into(), s(&sk));
    }
    item.insert("id".into(), s(&entry.id));
    item.insert("at".into(), time_attr(entry.at));
    item.insert("direction".into(), s(entry.direction.as_str()));
    put_opt(&mut item, "referral_id", entry.referral_id.as_ref());
    put_opt(&mut item, "opportunity_id", entry.opportunity_id.as_ref());
    item.insert("action".into(), s(&entry.action));
    item.insert("outcome".into(), s(entry.outcome.as_str()));
    put_opt(&mut item, "detail", entry.detail.as_ref());
    put_opt(&mut item, "error", entry.error.as_ref());
    if let Some(t) = expires_at {
        item.insert(EXPIRES_AT.into(), n(t));
    }
    item
}

pub(super) fn audit_from_item(item: &Item) -> Result<AuditEntry, StoreError> {
    let direction = req_str(item, "direction")?;
    let outcome = req_str(item, "outcome")?;
    Ok(AuditEntry {
        id: req_str(item, "id")?,
        at: req_time(item, "at")?,
        direction: Direction::parse(&direction)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown direction {direction}")))?,
        referral_id: get_str(item, "referral_id")?,
        opportunity_id: get_str(item, "opportunity_id")?,
        action: req_str(item, "action")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown outcome {outcome}")))?,
        detail: get_str(item, "detail")?,
        error: get_str(item, "error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn link_round_trips_through_an_item() {
        let mut link = Link::new("r-1", "o-1");
        link.pc_etag = Some("\"e1\"".into());
        let mut base = crate::crosswalk::Base::default();
        base.fields
            .insert("details.notes".into(), serde_json::json!("hi"));
        base.referral_status = Some("Active/Accepted".into());
        link.base = Some(base);
        link.version = 7;
        link.updated_at = datetime!(2026-05-01 12:00:00.25 UTC);
        let item = link_to_item(&link);
        assert_eq!(item.get(PK), Some(&s("REF#r-1")));
        assert!(
            !item.contains_key("dv_etag"),
            "absent options are not written"
        );
        assert_eq!(link_from_item(&item).unwrap(), link);
    }

    #[test]
    fn audit_round_trips_and_sets_only_the_indexes_it_can() {
        let entry = AuditEntry::new(Direction::Inbound, "create", Outcome::Failed)
            .referral("r-1")
            .error("boom");
        let item = audit_to_item(&entry, Some(42));
        assert_eq!(item.get(GSI1PK), Some(&s("AUDIT#REF#r-1")));
        assert!(
            !item.contains_key(GSI2PK),
            "sparse index: no opportunity, no gsi2"
        );
        assert_eq!(item.get(EXPIRES_AT), Some(&n(42)));
        assert_eq!(audit_from_item(&item).unwrap(), entry);
    }

    #[test]
    fn wrong_attribute_type_is_corrupt_not_a_panic() {
        let mut item = link_to_item(&Link::new("r", "o"));
        item.insert("version".into(), s("seven"));
        assert!(matches!(link_from_item(&item), Err(StoreError::Corrupt(_))));
    }
}
