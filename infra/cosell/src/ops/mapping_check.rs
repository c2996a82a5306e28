//! `cosell mapping check <file>`: validate a mapping file against the configured columns and
//! print the mapping it produces (with `extends = "default"`, the merged result).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use cosell::mapping::Mapping;
use serde_json::json;

use super::error::OpsError;
use super::output::{write_json, Format, OutputArgs, Style, Table};
use super::settings::Settings;

#[derive(Debug, Clone, Args)]
pub struct MappingArgs {
    #[command(subcommand)]
    pub action: MappingAction,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum MappingAction {
    /// Validate a mapping file and print the effective mapping.
    Check {
        /// The mapping file (TOML).
        file: PathBuf,
    },
}

pub async fn run(
    args: MappingArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let MappingAction::Check { file } = args.action;
    let format = args.output.output;
    let columns = settings.columns()?;
    let errors = match Mapping::from_file(&file) {
        Ok(mapping) => match mapping.validate(&columns) {
            Ok(()) => return print_mapping(&mapping, format, style, out),
            Err(errors) => errors,
        },
        Err(e) => vec![e],
    };
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    match format {
        Format::Json => write_json(
            out,
            &json!({"file": file.display().to_string(), "valid": false, "errors": messages}),
        )?,
        Format::Table => {
            writeln!(out, "{}: {} problem(s)", file.display(), messages.len())?;
            for m in &messages {
                writeln!(out, "  - {m}")?;
            }
        }
    }
    Err(OpsError::failed(format!(
        "{} is not a valid mapping ({} problem(s))",
        file.display(),
        messages.len()
    )))
}

fn print_mapping(
    mapping: &Mapping,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    match format {
        Format::Json => {
            let fields: Vec<_> = mapping
                .fields
                .iter()
                .map(|f| {
                    json!({
                        "referral": f.referral,
                        "table": f.table.as_str(),
                        "column": f.column,
                        "direction": f.direction.as_str(),
                        "transform": f.transform.as_str(),
                        "value_map": f.value_map,
                        "required": f.required,
                    })
                })
                .collect();
            let maps: Vec<&String> = mapping.value_maps.keys().collect();
            write_json(
                out,
                &json!({"valid": true, "fields": fields, "value_maps": maps}),
            )?;
        }
        Format::Table => {
            let mut table = Table::new(&[
                "REFERRAL FIELD",
                "COLUMN",
                "DIRECTION",
                "TRANSFORM",
                "REQUIRED",
            ]);
            for f in &mapping.fields {
                let transform = match &f.value_map {
                    Some(m) => format!("{} ({m})", f.transform.as_str()),
                    None => f.transform.as_str().to_string(),
                };
                table.row(vec![
                    f.referral.clone(),
                    format!("{}.{}", f.table.as_str(), f.column),
                    f.direction.as_str().to_string(),
                    transform,
                    if f.required {
                        "yes".into()
                    } else {
                        String::new()
                    },
                ]);
            }
            table.write(out, style)?;
            writeln!(
                out,
                "valid: {} field(s), {} value map(s)",
                mapping.fields.len(),
                mapping.value_maps.len()
            )?;
        }
    }
    Ok(())
}
