//! The declarative field mapping between a Partner Center referral and a Dynamics 365
//! opportunity (with its account and contact). The rules live in a TOML file: the shipped
//! default (`shared/mapping/default.toml`, Microsoft's connector behaviour) or a user file
//! that replaces it or, with `extends = "default"`, changes it entry by entry.

mod checkmark;
mod conflict;
mod country;
mod create_body;
mod deal_type;
mod error;
mod hash;
mod inbound;
pub mod lead;
mod outbound;
mod pair;
mod path;
pub mod related;
mod schema;
pub mod solutions;
mod spec;
mod status;
pub mod taxonomy;
mod transform;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

pub use checkmark::{strip_checkmark, with_checkmark};
pub use country::to_iso2;
pub use create_body::CreatePlan;
pub use deal_type::{
    DealChoice, DealType, DealTypeSpec, DealTypeValue, Visibility, VisibilitySpec, VisibilityWrite,
    VISIBILITY_IRREVERSIBLE,
};
pub use error::MappingError;
pub use inbound::{InboundContext, InboundPlan};
pub use outbound::{CrmRows, JsonPatchOp, PatchOp};
pub use pair::{FieldValues, Flow};
pub use schema::resolve_column;
pub use spec::{
    ConflictSpec, Direction, FieldSpec, MappingFile, SchemaExtras, Side, SolutionsLayout,
    StatusInbound, StatusOutbound, StatusSpec, Table, Transform, ValueMap, ValueMapEntry,
};
pub use status::{status_patch, TargetState};
pub use transform::round_money;

/// The shipped default mapping (Microsoft's Dynamics 365 co-sell connector).
pub const DEFAULT_MAPPING_TOML: &str = include_str!("../../mapping/default.toml");

/// A loaded mapping. Call `validate` once at start-up; the mapping functions skip (and log)
/// entries that validation would reject rather than fail a whole record.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub fields: Vec<FieldSpec>,
    pub value_maps: BTreeMap<String, ValueMap>,
    pub status: StatusSpec,
    pub conflict: ConflictSpec,
    pub schema: SchemaExtras,
    /// `[deal_type]`: the deal type of a referral created from an opportunity.
    pub deal_type: DealTypeSpec,
    /// `[related]`: where a co-sell's Microsoft side lands once its seller accepted.
    pub related: related::RelatedSpec,
    /// `[lead]`: what becomes of a referral that is a lead.
    pub lead: lead::LeadSpec,
    /// `[solutions]`: a text column (default) or Microsoft's child table.
    pub solutions: solutions::SolutionsSpec,
    /// What a Services co-sell create is checked against (the shipped taxonomy unless
    /// `COSELL_SERVICES_TAXONOMY_FILE` names another).
    pub services: taxonomy::Taxonomy,
}

impl Mapping {
    /// The shipped default.
    pub fn default_mapping() -> Mapping {
        let file: MappingFile =
            toml::from_str(DEFAULT_MAPPING_TOML).expect("the shipped default mapping parses");
        Mapping::from_parts(file)
    }

    /// Parses a mapping file's text. Does not validate (that needs the configured columns).
    pub fn from_toml_str(text: &str) -> Result<Mapping, MappingError> {
        let file: MappingFile = toml::from_str(text).map_err(|e| MappingError::Parse {
            reason: e.to_string(),
        })?;
        match file.extends.as_deref().map(str::trim) {
            None | Some("") => Ok(Mapping::from_parts(file)),
            Some(base) if base.eq_ignore_ascii_case("default") => {
                let mut mapping = Mapping::default_mapping();
                mapping.apply(file);
                Ok(mapping)
            }
            Some(other) => Err(MappingError::UnknownBase {
                name: other.to_string(),
            }),
        }
    }

    pub fn from_file(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Mapping::from_toml_str(&text)
    }

    /// The mapping the connector runs with: the file when one is configured, else the
    /// default; validated against the configured columns.
    pub fn load(
        file: Option<&Path>,
        columns: &crate::config::ColumnNames,
    ) -> Result<Mapping, Vec<MappingError>> {
        let mapping = match file {
            Some(p) => Mapping::from_file(p).map_err(|e| vec![e])?,
            None => Mapping::default_mapping(),
        };
        mapping.validate(columns)?;
        Ok(mapping)
    }

    fn from_parts(file: MappingFile) -> Mapping {
        Mapping {
            fields: file.fields.into_iter().filter(|f| f.enabled).collect(),
            value_maps: file.value_maps,
            status: file.status.unwrap_or_default(),
            conflict: file.conflict.unwrap_or_default(),
            schema: file.schema,
            deal_type: file.deal_type.unwrap_or_default(),
            related: file.related.unwrap_or_default(),
            lead: file.lead.unwrap_or_else(lead::LeadSpec::unnamed),
            solutions: file.solutions.unwrap_or_default(),
            services: taxonomy::Taxonomy::shipped().clone(),
        }
    }

    /// Applies an overriding file: a field with the same referral path replaces the existing
    /// entry (or removes it with `enabled = false`), new paths are added; value maps replace
    /// by name; a `[status]` table replaces the status rules; conflict winners merge.
    fn apply(&mut self, file: MappingFile) {
        for field in file.fields {
            let at = self
                .fields
                .iter()
                .position(|f| f.referral.trim() == field.referral.trim());
            match (at, field.enabled) {
                (Some(i), true) => self.fields[i] = field,
                (Some(i), false) => {
                    self.fields.remove(i);
                }
                (None, true) => self.fields.push(field),
                (None, false) => {}
            }
        }
        self.value_maps.extend(file.value_maps);
        if let Some(deal_type) = file.deal_type {
            self.deal_type = deal_type;
        }
        if let Some(related) = file.related {
            self.related = related;
        }
        if let Some(lead) = file.lead {
            self.lead.apply(lead);
        }
        if let Some(solutions) = file.solutions {
            self.solutions = solutions;
        }
        if let Some(status) = file.status {
            self.status = status;
        }
        if let Some(conflict) = file.conflict {
            self.conflict.default = conflict.default;
            self.conflict.fields.extend(conflict.fields);
        }
        let s = &mut self.schema;
        s.referral_paths.extend(file.schema.referral_paths);
        s.opportunity_columns
            .extend(file.schema.opportunity_columns);
        s.account_columns.extend(file.schema.account_columns);
        s.contact_columns.extend(file.schema.contact_columns);
    }

    /// The field entry for a referral path, if mapped.
    pub fn field(&self, referral_path: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.referral == referral_path)
    }
}
