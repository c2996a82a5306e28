//! Partner Center → Dynamics 365: the columns to write for one referral.

use serde_json::{Map, Value};

use crate::config::ColumnNames;
use crate::partner_center::Referral;

use super::error::MappingError;
use super::schema::resolve_column;
use super::spec::{Table, Transform};
use super::status::TargetState;
use super::transform::to_crm;
use super::{path, Mapping};

/// What the engine knows about the referral that is not in it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InboundContext {
    /// The link to the referral in Partner Center (for the Referral Link column).
    pub referral_link: String,
    /// The `transactioncurrencyid` of the referral's currency, looked up by
    /// `isocurrencycode`; when `None` the currency column is left out of the plan.
    pub currency_id: Option<String>,
}

/// The writes one referral asks for. Lookup bindings (account, contact, currency) use the
/// Web API's `<column>@odata.bind` names; the engine binds the account and contact it finds
/// or creates (`parentaccountid`, `customerid`, `parentcontactid`) itself.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPlan {
    /// Opportunity columns, connector columns included (sync flag, referral id, link).
    pub opportunity: Map<String, Value>,
    /// Account columns (find by name + postal code, create if none).
    pub account: Map<String, Value>,
    /// Contact columns, when the referral names a customer contact.
    pub contact: Option<Map<String, Value>>,
    pub target_state: TargetState,
    /// The referral's ISO 4217 currency code, for the currency lookup.
    pub currency_iso: Option<String>,
    /// Values that could not be mapped; the rest of the plan is still good.
    pub warnings: Vec<MappingError>,
}

impl Mapping {
    pub fn inbound(
        &self,
        referral: &Referral,
        columns: &ColumnNames,
        ctx: &InboundContext,
    ) -> InboundPlan {
        let json = serde_json::to_value(referral).unwrap_or(Value::Null);
        let mut opportunity = Map::new();
        let mut account = Map::new();
        let mut contact = Map::new();
        let mut currency_iso = None;
        let mut warnings = Vec::new();

        // Referrals that arrive from Partner Center are synced from then on.
        opportunity.insert(columns.sync_flag.clone(), Value::Bool(true));
        if let Some(id) = &referral.id {
            opportunity.insert(columns.referral_id.clone(), Value::String(id.clone()));
        }
        if !ctx.referral_link.is_empty() {
            opportunity.insert(
                columns.referral_link.clone(),
                Value::String(ctx.referral_link.clone()),
            );
        }

        for (n, field) in self.fields.iter().enumerate() {
            if !field.direction.inbound() {
                continue;
            }
            let index = n + 1;
            let target = match field.table {
                Table::Opportunity => &mut opportunity,
                Table::Account => &mut account,
                Table::Contact => &mut contact,
                Table::Unknown(_) => continue,
            };
            let (Some(segs), Ok(column)) = (
                path::parse(&field.referral),
                resolve_column(&field.column, columns),
            ) else {
                continue;
            };
            let Some(raw) = path::get(&json, &segs) else {
                if field.required {
                    warnings.push(MappingError::MissingRequired {
                        index,
                        path: field.referral.clone(),
                    });
                }
                continue;
            };
            let value = match to_crm(field, &self.value_maps, raw) {
                Ok(v) => v,
                Err(reason) => {
                    warnings.push(MappingError::BadValue {
                        index,
                        path: field.referral.clone(),
                        reason,
                    });
                    continue;
                }
            };
            if field.transform == Transform::Currency {
                currency_iso = value.as_str().map(str::to_string);
                if let Some(id) = &ctx.currency_id {
                    target.insert(
                        format!("{column}@odata.bind"),
                        Value::String(format!("/transactioncurrencies({id})")),
                    );
                }
            } else {
                target.insert(column.to_string(), value);
            }
            for (k, v) in &field.set_also {
                target.insert(k.clone(), v.clone());
            }
        }

        let target_state = match (&referral.status, &referral.substatus) {
            (Some(s), Some(ss)) => self.target_state(s, ss),
            _ => None,
        }
        .unwrap_or_else(|| {
            warnings.push(MappingError::UnmappedStatus {
                status: referral
                    .status
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                substatus: referral
                    .substatus
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            });
            TargetState::Open {
                statuscode: crate::dataverse::model::status_reason::IN_PROGRESS,
            }
        });

        InboundPlan {
            opportunity,
            account,
            contact: (!contact.is_empty()).then_some(contact),
            target_state,
            currency_iso,
            warnings,
        }
    }
}
