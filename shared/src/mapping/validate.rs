//! Start-up checks of a mapping against the referral schema, the Dataverse tables and the
//! configured connector columns. Collects every problem, so a user fixes a file in one pass.

use std::collections::HashMap;

use crate::config::ColumnNames;
use crate::partner_center::status::ReferralTargetType;
use crate::partner_center::{
    ReferralDirection, ReferralQualification, ReferralStatus, ReferralSubstatus, ReferralType,
};

use super::error::MappingError;
use super::schema;
use super::spec::{Direction, Table, Transform};
use super::status::{builtin_reason_state, documented_pairs, is_documented, TargetState};
use super::{path, Mapping};

/// The documented values of an enum a value map may declare it `covers`.
fn enum_values(name: &str) -> Option<Vec<String>> {
    fn strs<T: ToString>(v: &[T]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }
    Some(match name {
        "ReferralStatus" => strs(ReferralStatus::KNOWN),
        "ReferralSubstatus" => strs(ReferralSubstatus::KNOWN),
        "ReferralType" => strs(ReferralType::KNOWN),
        "ReferralQualification" => strs(ReferralQualification::KNOWN),
        "ReferralDirection" => strs(ReferralDirection::KNOWN),
        "ReferralTargetType" => strs(ReferralTargetType::KNOWN),
        _ => return None,
    })
}

impl Mapping {
    pub fn validate(&self, columns: &ColumnNames) -> Result<(), Vec<MappingError>> {
        let mut errors = Vec::new();
        self.check_fields(columns, &mut errors);
        self.check_value_maps(&mut errors);
        self.check_status(&mut errors);
        self.check_deal_type(columns, &mut errors);
        errors.extend(self.lead.validate(columns));
        self.check_solutions(&mut errors);
        for field in self.conflict.fields.keys() {
            if field != "status"
                && !schema::referral_path_or_prefix(field, &self.schema.referral_paths)
            {
                errors.push(MappingError::UnknownConflictField {
                    field: field.clone(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// `[deal_type]` reads a known opportunity column; its help value map exists.
    fn check_deal_type(&self, columns: &ColumnNames, errors: &mut Vec<MappingError>) {
        let spec = &self.deal_type;
        let known = schema::resolve_column(&spec.column, columns).is_ok_and(|c| {
            schema::column(
                &Table::Opportunity,
                c,
                columns,
                &self.schema.opportunity_columns,
            )
            .is_some()
        });
        if !known {
            errors.push(MappingError::DealType {
                reason: format!("'{}' is not a known opportunity column", spec.column),
            });
        }
        if let Some(v) = &spec.visibility {
            let known = schema::resolve_column(&v.column, columns).is_ok_and(|c| {
                schema::column(
                    &Table::Opportunity,
                    c,
                    columns,
                    &self.schema.opportunity_columns,
                )
                .is_some()
            });
            if !known {
                errors.push(MappingError::DealType {
                    reason: format!(
                        "visibility: '{}' is not a known opportunity column",
                        v.column
                    ),
                });
            }
            if v.shared.is_empty() || v.private.is_empty() {
                errors.push(MappingError::DealType {
                    reason: "visibility: give at least one shared and one private value".into(),
                });
            }
            if v.shared.iter().any(|s| v.private.contains(s)) {
                errors.push(MappingError::DealType {
                    reason: "visibility: a value is both shared and private".into(),
                });
            }
        }
        if let Some(map) = &spec.help_value_map {
            if !self.value_maps.contains_key(map) {
                errors.push(MappingError::DealType {
                    reason: format!("help_value_map '{map}' is not defined"),
                });
            }
        }
    }

    fn check_fields(&self, columns: &ColumnNames, errors: &mut Vec<MappingError>) {
        let mut targets: HashMap<(String, String), usize> = HashMap::new();
        for (n, f) in self.fields.iter().enumerate() {
            let index = n + 1;
            let p = || f.referral.clone();
            let writable = if path::parse(&f.referral).is_some() {
                schema::referral_path(&f.referral, &self.schema.referral_paths)
            } else {
                None
            };
            match writable {
                None => errors.push(MappingError::UnknownReferralPath { index, path: p() }),
                Some(false) if f.direction.outbound() || f.sent_on_create() => {
                    errors.push(MappingError::ReadOnlyOutbound { index, path: p() })
                }
                Some(_) => {}
            }
            if let Direction::Unknown(d) = &f.direction {
                errors.push(MappingError::UnknownDirection {
                    index,
                    path: p(),
                    direction: d.clone(),
                });
            }
            match &f.transform {
                Transform::Unknown(t) => errors.push(MappingError::UnknownTransform {
                    index,
                    path: p(),
                    transform: t.clone(),
                }),
                Transform::ValueMap => {
                    let name = f.value_map.clone().unwrap_or_default();
                    if !self.value_maps.contains_key(&name) {
                        errors.push(MappingError::MissingValueMap {
                            index,
                            path: p(),
                            map: name,
                        });
                    }
                }
                _ => {}
            }
            if let Table::Unknown(t) = &f.table {
                errors.push(MappingError::UnknownTable {
                    index,
                    path: p(),
                    table: t.clone(),
                });
                continue;
            }
            let column = match schema::resolve_column(&f.column, columns) {
                Ok(c) => c.to_string(),
                Err(placeholder) => {
                    errors.push(MappingError::UnknownPlaceholder {
                        index,
                        path: p(),
                        placeholder: placeholder.to_string(),
                    });
                    continue;
                }
            };
            let extra = match f.table {
                Table::Opportunity => &self.schema.opportunity_columns,
                Table::Account => &self.schema.account_columns,
                _ => &self.schema.contact_columns,
            };
            let table = f.table.as_str().to_string();
            match schema::column(&f.table, &column, columns, extra) {
                None => errors.push(MappingError::UnknownColumn {
                    index,
                    path: p(),
                    table: table.clone(),
                    column: column.clone(),
                }),
                Some(false) if f.direction.inbound() => errors.push(MappingError::ReadOnlyColumn {
                    index,
                    path: p(),
                    table: table.clone(),
                    column: column.clone(),
                }),
                Some(_) => {}
            }
            if let Some(first) = targets.insert((table.clone(), column.clone()), index) {
                errors.push(MappingError::DuplicateColumn {
                    index,
                    first_index: first,
                    path: p(),
                    table,
                    column,
                });
            }
        }
    }

    fn check_value_maps(&self, errors: &mut Vec<MappingError>) {
        for (name, map) in &self.value_maps {
            let mut seen: Vec<String> = Vec::new();
            for e in &map.entries {
                let key = e.referral.trim().to_ascii_lowercase();
                if seen.contains(&key) {
                    errors.push(MappingError::ValueMapDuplicate {
                        map: name.clone(),
                        value: e.referral.clone(),
                    });
                }
                seen.push(key);
            }
            let Some(covers) = &map.covers else { continue };
            let Some(values) = enum_values(covers.trim()) else {
                errors.push(MappingError::UnknownEnum {
                    map: name.clone(),
                    covers: covers.clone(),
                });
                continue;
            };
            let missing: Vec<String> = values
                .into_iter()
                .filter(|v| !seen.contains(&v.to_ascii_lowercase()))
                .collect();
            if !missing.is_empty() {
                errors.push(MappingError::ValueMapNotTotal {
                    map: name.clone(),
                    missing,
                });
            }
        }
    }

    fn check_status(&self, errors: &mut Vec<MappingError>) {
        let pair_error = |rule: String, status: &str, substatus: &str| {
            let (s, ss) = (
                ReferralStatus::parse(status),
                ReferralSubstatus::parse(substatus),
            );
            (!is_documented(&s, &ss)).then(|| MappingError::StatusUndocumentedPair {
                rule,
                status: status.to_string(),
                substatus: substatus.to_string(),
            })
        };
        for (n, r) in self.status.inbound.iter().enumerate() {
            let rule = format!("inbound #{}", n + 1);
            errors.extend(pair_error(rule.clone(), &r.status, &r.substatus));
            match TargetState::from_word(&r.state, r.statuscode) {
                None => errors.push(MappingError::UnknownState {
                    rule,
                    state: r.state.clone(),
                }),
                Some(t) => {
                    if builtin_reason_state(r.statuscode).is_some_and(|s| s != t.statecode()) {
                        errors.push(MappingError::StatusStateMismatch {
                            rule,
                            state: r.state.clone(),
                            statuscode: r.statuscode,
                        });
                    }
                }
            }
        }
        for (n, r) in self.status.outbound.iter().enumerate() {
            let rule = format!("outbound #{}", n + 1);
            errors.extend(pair_error(rule.clone(), &r.status, &r.substatus));
            if let (Some(state), Some(code)) = (r.statecode, r.statuscode) {
                if builtin_reason_state(code).is_some_and(|s| s != state) {
                    errors.push(MappingError::StatusStateMismatch {
                        rule,
                        state: state.to_string(),
                        statuscode: code,
                    });
                }
            }
        }
        let missing: Vec<String> = documented_pairs()
            .into_iter()
            .filter(|(s, ss)| self.target_state(s, ss).is_none())
            .map(|(s, ss)| format!("{s}/{ss}"))
            .collect();
        if !missing.is_empty() {
            errors.push(MappingError::StatusNotTotal { missing });
        }
    }
}
