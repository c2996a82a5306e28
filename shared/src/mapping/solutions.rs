//! `[solutions]`: where an opportunity's solutions live in the CRM. `column` (the default):
//! one text column of separated solution ids (the `details.requirements.solutions` field's
//! column). `table`: Microsoft's co-sell layout, a child table of the opportunity with one
//! row per solution, each row bound to a row of a catalogue of solution details (solution
//! id, name). Either way the merge sees the same canonical value, the ids joined by the
//! field's separator; the Dataverse adapter turns it into rows and back
//! (`dataverse::solution_rows`). In the table layout the order of the ids means nothing,
//! so the canonical value is sorted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::MappingError;
use super::spec::{SolutionsLayout, Transform};
use super::Mapping;

/// The referral path the solutions field maps.
pub const SOLUTIONS_PATH: &str = "details.requirements.solutions";

/// `[solutions]` as written. The table's names default to the `cosell_` tables (the
/// stand-in's, and what a partner creates by hand: see README); Microsoft's connector
/// names them otherwise (`microsoft-connector.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolutionsSpec {
    pub layout: SolutionsLayout,
    /// Entity set of the child table (one row per solution on the opportunity).
    pub set: String,
    /// Primary key of the child table.
    pub key: String,
    /// The opportunity's collection-valued navigation property to the child rows (`$expand`).
    pub navigation: String,
    /// The child's single-valued navigation property to the opportunity (`@odata.bind`).
    pub opportunity_lookup: String,
    /// The child's single-valued navigation property to the catalogue row (`@odata.bind`,
    /// nested `$expand`).
    pub catalogue_lookup: String,
    /// A text column of the child row set to the solution's name on create (`""`: none).
    pub name_column: String,
    /// Entity set of the catalogue ("Microsoft Solution Details").
    pub catalogue_set: String,
    /// Primary key of the catalogue.
    pub catalogue_key: String,
    /// The catalogue column holding the Partner Center solution id.
    pub catalogue_id: String,
    /// The catalogue column holding the solution's name.
    pub catalogue_name: String,
}

impl Default for SolutionsSpec {
    fn default() -> Self {
        let s = |v: &str| v.to_string();
        SolutionsSpec {
            layout: SolutionsLayout::Column,
            set: s("cosell_opportunitysolutions"),
            key: s("cosell_opportunitysolutionid"),
            navigation: s("cosell_opportunity_cosell_opportunitysolution"),
            opportunity_lookup: s("cosell_opportunityid"),
            catalogue_lookup: s("cosell_solutiondetailid"),
            name_column: s("cosell_name"),
            catalogue_set: s("cosell_solutiondetails"),
            catalogue_key: s("cosell_solutiondetailid"),
            catalogue_id: s("cosell_solutionid"),
            catalogue_name: s("cosell_name"),
        }
    }
}

impl SolutionsSpec {
    pub fn is_table(&self) -> bool {
        self.layout == SolutionsLayout::Table
    }

    fn names(&self) -> [(&'static str, &str); 10] {
        [
            ("set", &self.set),
            ("key", &self.key),
            ("navigation", &self.navigation),
            ("opportunity_lookup", &self.opportunity_lookup),
            ("catalogue_lookup", &self.catalogue_lookup),
            ("catalogue_set", &self.catalogue_set),
            ("catalogue_key", &self.catalogue_key),
            ("catalogue_id", &self.catalogue_id),
            ("catalogue_name", &self.catalogue_name),
            ("name_column", &self.name_column),
        ]
    }
}

/// A Web API name: letters, digits and `_` (anything else would break the URL it goes in).
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Mapping {
    /// `[solutions]`: a known layout; for the table, names that fit a URL and a solutions
    /// field with the `solutions` transform for the rows to carry.
    pub(super) fn check_solutions(&self, errors: &mut Vec<MappingError>) {
        let spec = &self.solutions;
        let reason = match &spec.layout {
            SolutionsLayout::Unknown(l) => {
                Some(format!("unknown layout '{l}' (use column or table)"))
            }
            SolutionsLayout::Column => None,
            SolutionsLayout::Table => {
                let bad = spec
                    .names()
                    .into_iter()
                    .find(|(k, v)| !(plain_name(v) || (*k == "name_column" && v.is_empty())));
                match (bad, self.field(SOLUTIONS_PATH)) {
                    (Some((k, v)), _) => Some(format!("{k} = '{v}' is not a table or column name")),
                    (None, None) => Some(format!(
                        "layout = \"table\" needs the {SOLUTIONS_PATH} field to be mapped"
                    )),
                    (None, Some(f)) if f.transform != Transform::Solutions => Some(format!(
                        "layout = \"table\" needs the {SOLUTIONS_PATH} field's transform to be \"solutions\""
                    )),
                    _ => None,
                }
            }
        };
        if let Some(reason) = reason {
            errors.push(MappingError::Solutions { reason });
        }
    }
}

/// The names the referral gives its solutions, by id (for catalogue rows the CRM lacks).
pub fn names_of(referral: &crate::partner_center::Referral) -> BTreeMap<String, String> {
    let json = serde_json::to_value(referral).unwrap_or_default();
    let items = json
        .pointer("/details/requirements/solutions")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|s| {
            let id = s.get("id")?.as_str()?.trim();
            let name = s.get("name")?.as_str()?.trim();
            (!id.is_empty() && !name.is_empty()).then(|| (id.to_string(), name.to_string()))
        })
        .collect()
}

/// Sorts the ids of a separated text (the table layout's canonical form).
pub fn sorted_ids(text: &str, separator: &str) -> String {
    let mut ids: Vec<&str> = text
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ColumnNames;

    fn columns() -> ColumnNames {
        let c = |n: &str| format!("cosell_{n}");
        ColumnNames {
            sync_flag: c("sync"),
            referral_id: c("referralid"),
            referral_link: c("referrallink"),
            help_needed: c("helpneeded"),
            solutions: c("solutions"),
            audit: c("audit"),
            decision: c("decision"),
            visibility: c("visibility"),
        }
    }

    #[test]
    fn the_default_keeps_the_column_and_a_file_can_ask_for_the_table() {
        let m = Mapping::default_mapping();
        assert!(!m.solutions.is_table());
        let m = Mapping::from_toml_str("extends = \"default\"\n[solutions]\nlayout = \"table\"\n")
            .unwrap();
        assert!(m.solutions.is_table());
        assert_eq!(m.solutions.set, "cosell_opportunitysolutions");
        m.validate(&columns()).unwrap();
    }

    #[test]
    fn a_bad_layout_or_name_is_named() {
        for (text, needle) in [
            ("[solutions]\nlayout = \"rows\"\n", "unknown layout 'rows'"),
            (
                "[solutions]\nlayout = \"table\"\nset = \"a b\"\n",
                "set = 'a b'",
            ),
        ] {
            let m = Mapping::from_toml_str(&format!("extends = \"default\"\n{text}")).unwrap();
            let errors = m.validate(&columns()).unwrap_err();
            assert!(
                errors.iter().any(|e| e.to_string().contains(needle)),
                "{errors:?}"
            );
        }
        let without_field = "[solutions]\nlayout = \"table\"\n";
        let m = Mapping::from_toml_str(without_field).unwrap();
        let errors = m.validate(&columns()).unwrap_err();
        assert!(errors.iter().any(|e| e.to_string().contains("needs the")));
    }

    #[test]
    fn ids_sort_and_repeat_once() {
        assert_eq!(sorted_ids("b; a;;b", ";"), "a;b");
    }
}
