//! Dynamics 365 → Partner Center: a JSON Patch of the fields that changed (a whole new
//! referral is `create_body`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ColumnNames;
use crate::dataverse::{Account, Contact, Opportunity};
use crate::partner_center::Referral;

use super::schema::{self, resolve_column};
use super::spec::{FieldSpec, Table};
use super::transform::{to_crm, to_referral};
use super::{path, Mapping};

/// The two operations Partner Center's PATCH accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    Replace,
    Add,
}

/// One RFC 6902 operation: `{"op": "replace", "path": "/details/dealValue", "value": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonPatchOp {
    pub op: PatchOp,
    pub path: String,
    pub value: Value,
}

/// The CRM rows an outbound mapping reads; fields of a table whose row is absent are skipped.
#[derive(Debug, Clone, Copy)]
pub struct CrmRows<'a> {
    pub opportunity: &'a Opportunity,
    pub account: Option<&'a Account>,
    pub contact: Option<&'a Contact>,
}

/// The rows as JSON objects, read by logical name (connector columns are in `extra`).
pub(super) struct RowValues {
    opportunity: Value,
    account: Option<Value>,
    contact: Option<Value>,
}

impl RowValues {
    pub(super) fn new(rows: CrmRows<'_>) -> Self {
        let v = |r: Result<Value, serde_json::Error>| r.unwrap_or(Value::Null);
        RowValues {
            opportunity: v(serde_json::to_value(rows.opportunity)),
            account: rows.account.map(|a| v(serde_json::to_value(a))),
            contact: rows.contact.map(|c| v(serde_json::to_value(c))),
        }
    }

    /// The column's value; `None` when the row is absent or the value is null.
    pub(super) fn get(&self, field: &FieldSpec, columns: &ColumnNames) -> Option<&Value> {
        let row = match field.table {
            Table::Opportunity => Some(&self.opportunity),
            Table::Account => self.account.as_ref(),
            Table::Contact => self.contact.as_ref(),
            Table::Unknown(_) => None,
        }?;
        let column = resolve_column(&field.column, columns).ok()?;
        row.get(column).filter(|v| !v.is_null())
    }
}

impl Mapping {
    /// Fields sent to Partner Center: flowing outbound, and writable there.
    pub(super) fn outbound_fields(
        &self,
        on_create: bool,
    ) -> impl Iterator<Item = (usize, &FieldSpec)> {
        self.fields.iter().enumerate().filter(move |(_, f)| {
            let flows = if on_create {
                f.sent_on_create()
            } else {
                f.direction.outbound()
            };
            flows && schema::referral_path(&f.referral, &self.schema.referral_paths) == Some(true)
        })
    }

    /// The PATCH for the opportunity's mapped fields that differ from `current`. Status is
    /// separate (`outbound_status`, `status_patch`). An empty CRM value does not clear the
    /// referral's value.
    pub fn outbound_patch(
        &self,
        opp: &Opportunity,
        current: &Referral,
        columns: &ColumnNames,
    ) -> Vec<JsonPatchOp> {
        let rows = CrmRows {
            opportunity: opp,
            account: None,
            contact: None,
        };
        self.outbound_patch_rows(rows, current, columns)
    }

    /// As `outbound_patch`, also covering account and contact fields when those rows are given.
    pub fn outbound_patch_rows(
        &self,
        rows: CrmRows<'_>,
        current: &Referral,
        columns: &ColumnNames,
    ) -> Vec<JsonPatchOp> {
        let values = RowValues::new(rows);
        // Applied as ops are made, so two fields under one missing parent add it only once.
        let mut working = serde_json::to_value(current).unwrap_or(Value::Null);
        let mut ops = Vec::new();
        for (_, field) in self.outbound_fields(false) {
            let Some(segs) = path::parse(&field.referral) else {
                continue;
            };
            let Some(crm) = values.get(field, columns) else {
                continue;
            };
            let now = path::get(&working, &segs).cloned();
            let desired = match to_referral(field, &self.value_maps, crm, now.as_ref()) {
                Ok(v) => v,
                Err(reason) => {
                    tracing::warn!(field = %field.referral, %reason, "value not sent to Partner Center");
                    continue;
                }
            };
            // Compare in the CRM's terms, so a time of day or a number-as-text is no change.
            let unchanged = now.as_ref().is_some_and(|n| {
                match (
                    to_crm(field, &self.value_maps, n),
                    to_crm(field, &self.value_maps, &desired),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => *n == desired,
                }
            });
            if unchanged {
                continue;
            }
            let (pointer, value, replace) = path::patch_target(&working, &segs, desired.clone());
            ops.push(JsonPatchOp {
                op: if replace {
                    PatchOp::Replace
                } else {
                    PatchOp::Add
                },
                path: pointer,
                value,
            });
            path::set(&mut working, &segs, desired);
        }
        ops
    }
}
