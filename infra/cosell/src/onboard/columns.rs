//! What each of the connector's opportunity columns must be (seven, and the visibility
//! choice when the mapping reads one): its configured logical name, its type and, for the
//! choices, the option values the mapping uses.

use cosell::config::ColumnNames;
use cosell::dataverse::metadata::{ColumnKind, ColumnSpec};
use cosell::mapping::{resolve_column, Mapping, Transform};

/// The table the columns belong to.
pub const ENTITY: &str = "opportunity";

/// The lead table, which holds the connector's columns too when leads land as leads.
pub const LEAD_ENTITY: &str = "lead";

/// The connector's columns on the lead (`[lead] handling = "lead"`): the sync flag, the
/// referral id and link, the decision and the audit column, typed as on the opportunity.
/// None otherwise.
pub fn lead_specs(columns: &ColumnNames, mapping: &Mapping) -> Vec<ColumnSpec> {
    if mapping.lead.handling != cosell::mapping::lead::LeadHandling::Lead {
        return Vec::new();
    }
    let wanted = [
        &columns.sync_flag,
        &columns.referral_id,
        &columns.referral_link,
        &columns.decision,
        &columns.audit,
    ];
    specs(columns, mapping)
        .into_iter()
        .filter(|s| wanted.contains(&&s.logical_name))
        .collect()
}

/// The alternate key setup puts on the referral id column.
pub fn referral_key_name(columns: &ColumnNames) -> String {
    format!("{}_key", columns.referral_id)
}

/// The columns, in the order the README lists them.
pub fn specs(columns: &ColumnNames, mapping: &Mapping) -> Vec<ColumnSpec> {
    let spec = |name: &str, label: &str, description: &str, kind: ColumnKind| ColumnSpec {
        logical_name: name.to_string(),
        label: label.to_string(),
        description: description.to_string(),
        kind,
        options: Vec::new(),
    };
    let visibility = mapping.deal_type.visibility.as_ref().and_then(|v| {
        let name = resolve_column(&v.column, columns).ok()?;
        let label = |values: &[serde_json::Value], text: &str| {
            values
                .iter()
                .filter_map(serde_json::Value::as_i64)
                .map(|n| (n, text.to_string()))
                .collect::<Vec<_>>()
        };
        let mut options = label(&v.private, "Private");
        options.extend(label(&v.shared, "Shared with Microsoft sellers"));
        Some(ColumnSpec {
            options,
            ..spec(
                name,
                "Referral Visibility",
                "Whether the deal is shared with Microsoft sellers; once shared it cannot go back.",
                ColumnKind::Choice,
            )
        })
    });
    let mut specs = vec![
        spec(
            &columns.sync_flag,
            "Sync with Partner Center",
            "Yes shares the opportunity with Partner Center as a referral.",
            ColumnKind::Boolean,
        ),
        spec(
            &columns.referral_id,
            "Referral Identifier",
            "The Partner Center referral id (set by the connector).",
            ColumnKind::Text { max_length: 100 },
        ),
        spec(
            &columns.referral_link,
            "Referral Link",
            "Link to the referral in Partner Center (set by the connector).",
            ColumnKind::Url { max_length: 500 },
        ),
        ColumnSpec {
            options: help_options(columns, mapping),
            ..spec(
                &columns.help_needed,
                "How can Microsoft help?",
                "Help asked of Microsoft: makes the referral a co-sell referral.",
                ColumnKind::Choice,
            )
        },
        spec(
            &columns.solutions,
            "Partner Center Solutions",
            "Partner Center solution ids, separated by ';'.",
            ColumnKind::Memo { max_length: 4000 },
        ),
        spec(
            &columns.audit,
            "Audit",
            "What the connector did with this opportunity, and why a sync failed.",
            ColumnKind::Memo {
                max_length: 100_000,
            },
        ),
        ColumnSpec {
            options: decision_options(mapping),
            ..spec(
                &columns.decision,
                "Referral Decision",
                "The seller's answer to a received referral.",
                ColumnKind::Choice,
            )
        },
    ];
    // Kept as rows of the solution tables instead, the text column is not needed.
    if mapping.solutions.is_table() {
        specs.retain(|s| s.logical_name != columns.solutions);
    }
    specs.extend(visibility);
    for (name, label) in mapping.related.columns() {
        specs.push(spec(
            name,
            label,
            "Microsoft's side of a co-sell, once its seller accepted (set by the connector).",
            ColumnKind::Text { max_length: 200 },
        ));
    }
    specs
}

/// The values of the value map(s) that name the help column's options: the deal type's
/// help map when `[deal_type]` reads this column, and any field's map writing into it.
fn help_options(columns: &ColumnNames, mapping: &Mapping) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    let deal = &mapping.deal_type;
    let deal_map = (resolve_column(&deal.column, columns).unwrap_or_default()
        == columns.help_needed)
        .then_some(deal.help_value_map.as_ref())
        .flatten();
    let field_maps = mapping.fields.iter().filter_map(|field| {
        let target = resolve_column(&field.column, columns).unwrap_or_default();
        (target == columns.help_needed && field.transform == Transform::ValueMap)
            .then_some(field.value_map.as_ref())
            .flatten()
    });
    for name in deal_map.into_iter().chain(field_maps) {
        let Some(map) = mapping.value_maps.get(name) else {
            continue;
        };
        for e in &map.entries {
            if let Some(v) = e.crm.as_i64() {
                if !out.iter().any(|(x, _)| *x == v) {
                    out.push((v, e.referral.clone()));
                }
            }
        }
    }
    out
}

/// The decision values the status rules read, labelled by what they do.
fn decision_options(mapping: &Mapping) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for rule in &mapping.status.outbound {
        let Some(v) = rule.decision else { continue };
        if out.iter().any(|(x, _)| *x == v) {
            continue;
        }
        let label = match rule.substatus.as_str() {
            "Accepted" => "Accept".to_string(),
            "Declined" => "Decline".to_string(),
            other => format!("{} ({other})", rule.status),
        };
        out.push((v, label));
    }
    out.sort();
    out
}

/// How a live column differs from its spec; `None` when it is right.
pub fn type_problem(
    spec: &ColumnSpec,
    live: &cosell::dataverse::metadata::LiveColumn,
) -> Option<String> {
    let want = spec.kind.attribute_type();
    if live.attribute_type != want {
        return Some(format!(
            "is a {} column; the connector needs {} ({want})",
            live.attribute_type,
            spec.kind.describe()
        ));
    }
    if matches!(spec.kind, ColumnKind::Url { .. }) && live.format.as_deref() != Some("Url") {
        return Some(format!(
            "is text in format {}; the connector needs URL-format text",
            live.format.as_deref().unwrap_or("(unknown)")
        ));
    }
    let missing: Vec<String> = spec
        .options
        .iter()
        .filter(|(v, _)| !live.options.contains(v))
        .map(|(v, l)| format!("{v} ({l})"))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "lacks the choice values the mapping uses: {}",
            missing.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_columns() -> ColumnNames {
        crate::ops::Settings::Pairs(vec![]).columns().unwrap()
    }

    #[test]
    fn the_choices_carry_the_mappings_values() {
        let specs = specs(&default_columns(), &Mapping::default_mapping());
        assert_eq!(specs.len(), 11);
        let help = &specs[3];
        assert_eq!(help.options.len(), 6);
        assert_eq!(help.options[0].0, 100000000);
        let decision = &specs[6];
        assert_eq!(
            decision.options,
            vec![(100000000, "Accept".into()), (100000001, "Decline".into())]
        );
        let visibility = &specs[7];
        assert_eq!(visibility.logical_name, "cosell_referralvisibility");
        assert_eq!(
            visibility.options,
            vec![
                (100000000, "Private".into()),
                (100000001, "Shared with Microsoft sellers".into())
            ]
        );
    }

    #[test]
    fn a_mapping_without_a_visibility_or_related_column_has_seven() {
        let mut mapping = Mapping::default_mapping();
        mapping.deal_type.visibility = None;
        mapping.related = Default::default();
        assert_eq!(specs(&default_columns(), &mapping).len(), 7);
    }
}
