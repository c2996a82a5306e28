//! What each of the connector's seven opportunity columns must be: its configured logical
//! name, its type and, for the two choices, the option values the mapping uses.

use cosell::config::ColumnNames;
use cosell::dataverse::metadata::{ColumnKind, ColumnSpec};
use cosell::mapping::{resolve_column, Mapping, Transform};

/// The table the columns belong to.
pub const ENTITY: &str = "opportunity";

/// The alternate key setup puts on the referral id column.
pub fn referral_key_name(columns: &ColumnNames) -> String {
    format!("{}_key", columns.referral_id)
}

/// The seven columns, in the order the README lists them.
pub fn specs(columns: &ColumnNames, mapping: &Mapping) -> Vec<ColumnSpec> {
    let spec = |name: &str, label: &str, description: &str, kind: ColumnKind| ColumnSpec {
        logical_name: name.to_string(),
        label: label.to_string(),
        description: description.to_string(),
        kind,
        options: Vec::new(),
    };
    vec![
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
    ]
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
        assert_eq!(specs.len(), 7);
        let help = &specs[3];
        assert_eq!(help.options.len(), 6);
        assert_eq!(help.options[0].0, 100000000);
        let decision = &specs[6];
        assert_eq!(
            decision.options,
            vec![(100000000, "Accept".into()), (100000001, "Decline".into())]
        );
    }
}
