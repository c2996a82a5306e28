//! The Services co-sell taxonomy: the partner roles, solution areas and their solution plays
//! Partner Center takes (`shared/mapping/services-taxonomy.toml`, or the file
//! `COSELL_SERVICES_TAXONOMY_FILE` names), and the check of a planned create against it.
//!
//! The docs make the three fields "Required for Services co-sell referrals only" without
//! saying what makes a referral one. This connector's rule: a create that carries any of
//! the three is a Services co-sell referral (the org mapped the columns and the seller
//! filled one in), so it must carry all three, each a value of the taxonomy, the play one
//! of its area's. A create with none of them is not a Services referral and is not checked.

use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The shipped taxonomy.
pub const SERVICES_TAXONOMY_TOML: &str = include_str!("../../mapping/services-taxonomy.toml");

/// The referral fields the taxonomy governs, in the order they are reported.
pub const PARTNER_ROLE: &str = "partnerRole";
pub const SOLUTION_AREA: &str = "solutionArea";
pub const SOLUTION_PLAY: &str = "solutionPlay";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub partner_roles: Vec<String>,
    #[serde(rename = "solution_area")]
    pub areas: Vec<SolutionArea>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolutionArea {
    pub value: String,
    pub plays: Vec<String>,
}

/// A taxonomy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyFileError {
    #[error("cannot read services taxonomy file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("services taxonomy file {path} is not valid: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("services taxonomy file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Why a planned create is not a valid Services co-sell referral.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicesError {
    #[error(
        "a Services co-sell referral needs partnerRole, solutionArea and solutionPlay; missing: {}",
        missing.join(", ")
    )]
    Missing { missing: Vec<&'static str> },
    #[error("'{value}' is not a {field} of the services taxonomy")]
    Unknown { field: &'static str, value: String },
    #[error("{field} must be text, not {value}")]
    NotText { field: &'static str, value: String },
    #[error("solution play '{play}' does not belong to solution area '{area}'")]
    PlayNotInArea { area: String, play: String },
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl Taxonomy {
    /// The shipped file, parsed once.
    pub fn shipped() -> &'static Taxonomy {
        static SHIPPED: OnceLock<Taxonomy> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            Taxonomy::from_toml_str(SERVICES_TAXONOMY_TOML, "services-taxonomy.toml")
                .expect("the shipped services taxonomy is valid")
        })
    }

    pub fn from_file(path: &Path) -> Result<Taxonomy, TaxonomyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaxonomyFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Taxonomy::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and checks a taxonomy: values present, every area with plays, nothing twice.
    pub fn from_toml_str(text: &str, path: &str) -> Result<Taxonomy, TaxonomyFileError> {
        let taxonomy: Taxonomy =
            toml::from_str(text).map_err(|source| TaxonomyFileError::Parse {
                path: path.to_string(),
                source,
            })?;
        let invalid = |reason: String| TaxonomyFileError::Invalid {
            path: path.to_string(),
            reason,
        };
        if taxonomy.partner_roles.is_empty() || taxonomy.areas.is_empty() {
            return Err(invalid(
                "needs partner_roles and at least one [[solution_area]]".into(),
            ));
        }
        let mut seen_areas: Vec<&str> = Vec::new();
        for area in &taxonomy.areas {
            if area.value.trim().is_empty() {
                return Err(invalid("a solution area has an empty value".into()));
            }
            if seen_areas.iter().any(|a| same(a, &area.value)) {
                return Err(invalid(format!(
                    "solution area '{}' is listed twice",
                    area.value
                )));
            }
            seen_areas.push(&area.value);
            if area.plays.iter().all(|p| p.trim().is_empty()) {
                return Err(invalid(format!(
                    "solution area '{}' has no plays",
                    area.value
                )));
            }
        }
        Ok(taxonomy)
    }

    fn area(&self, value: &str) -> Option<&SolutionArea> {
        self.areas.iter().find(|a| same(&a.value, value))
    }

    /// Checks the Services fields of a planned create body (see the module's rule).
    pub fn check(&self, body: &Value) -> Result<(), ServicesError> {
        let fields = [PARTNER_ROLE, SOLUTION_AREA, SOLUTION_PLAY];
        let present = |f: &str| {
            body.get(f).is_some_and(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.trim().is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            })
        };
        if !fields.iter().any(|f| present(f)) {
            return Ok(());
        }
        let missing: Vec<&'static str> = fields.into_iter().filter(|f| !present(f)).collect();
        if !missing.is_empty() {
            return Err(ServicesError::Missing { missing });
        }
        let role = text(body, PARTNER_ROLE)?;
        if !self.partner_roles.iter().any(|r| same(r, role)) {
            return Err(ServicesError::Unknown {
                field: PARTNER_ROLE,
                value: role.to_string(),
            });
        }
        let area_value = text(body, SOLUTION_AREA)?;
        let area = self
            .area(area_value)
            .ok_or_else(|| ServicesError::Unknown {
                field: SOLUTION_AREA,
                value: area_value.to_string(),
            })?;
        let play = text(body, SOLUTION_PLAY)?;
        if area.plays.iter().any(|p| same(p, play)) {
            return Ok(());
        }
        let elsewhere = self
            .areas
            .iter()
            .any(|a| a.plays.iter().any(|p| same(p, play)));
        Err(if elsewhere {
            ServicesError::PlayNotInArea {
                area: area.value.clone(),
                play: play.to_string(),
            }
        } else {
            ServicesError::Unknown {
                field: SOLUTION_PLAY,
                value: play.to_string(),
            }
        })
    }
}

fn text<'a>(body: &'a Value, field: &'static str) -> Result<&'a str, ServicesError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s.trim()),
        other => Err(ServicesError::NotText {
            field,
            value: other.map(Value::to_string).unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shipped_file_parses_and_every_area_has_plays() {
        let t = Taxonomy::shipped();
        assert!(!t.partner_roles.is_empty());
        assert_eq!(t.areas.len(), 3, "FY26: three solution areas");
        for area in &t.areas {
            assert!(!area.plays.is_empty(), "{} has plays", area.value);
        }
    }

    #[test]
    fn a_file_with_an_area_without_plays_is_refused() {
        let text = "partner_roles = [\"R\"]\n[[solution_area]]\nvalue = \"A\"\nplays = []\n";
        let err = Taxonomy::from_toml_str(text, "t.toml").unwrap_err();
        assert!(err.to_string().contains("'A' has no plays"), "{err}");
        let twice = "partner_roles = [\"R\"]\n[[solution_area]]\nvalue = \"A\"\nplays = [\"p\"]\n[[solution_area]]\nvalue = \"a\"\nplays = [\"q\"]\n";
        assert!(Taxonomy::from_toml_str(twice, "t.toml").is_err());
    }

    #[test]
    fn no_services_field_is_not_checked_and_a_valid_triple_passes() {
        let t = Taxonomy::shipped();
        assert_eq!(t.check(&json!({"name": "n"})), Ok(()));
        let area = &t.areas[0];
        let body = json!({
            "partnerRole": t.partner_roles[0].to_lowercase(),
            "solutionArea": area.value,
            "solutionPlay": area.plays[0],
        });
        assert_eq!(t.check(&body), Ok(()));
    }

    #[test]
    fn missing_unknown_and_misplaced_values_are_refused() {
        let t = Taxonomy::shipped();
        let (a, b) = (&t.areas[0], &t.areas[1]);
        let role = &t.partner_roles[0];
        let missing = json!({"solutionArea": a.value});
        assert_eq!(
            t.check(&missing),
            Err(ServicesError::Missing {
                missing: vec![PARTNER_ROLE, SOLUTION_PLAY]
            })
        );
        let unknown =
            json!({"partnerRole": role, "solutionArea": "Modern Work", "solutionPlay": a.plays[0]});
        assert!(matches!(
            t.check(&unknown),
            Err(ServicesError::Unknown {
                field: SOLUTION_AREA,
                ..
            })
        ));
        let misplaced =
            json!({"partnerRole": role, "solutionArea": a.value, "solutionPlay": b.plays[0]});
        assert_eq!(
            t.check(&misplaced),
            Err(ServicesError::PlayNotInArea {
                area: a.value.clone(),
                play: b.plays[0].clone()
            })
        );
        let bad_role = json!({"partnerRole": "Reseller?", "solutionArea": a.value, "solutionPlay": a.plays[0]});
        assert!(matches!(
            t.check(&bad_role),
            Err(ServicesError::Unknown {
                field: PARTNER_ROLE,
                ..
            })
        ));
    }
}
