//! `cosell status` without an id: the counters a local run recorded (its metrics snapshot
//! in the data directory), one line per metric and dimension set.

use std::io::Write;
use std::path::Path;

use super::error::OpsError;
use super::output::{write_json, Format, Style, Table};
use crate::local::metrics_memory::{read_snapshot, Kind, SeriesSnapshot, SNAPSHOT_FILE};

/// "Direction=inbound Outcome=created", or "-" without dimensions.
fn dimensions(s: &SeriesSnapshot) -> String {
    if s.dimensions.is_empty() {
        return "-".into();
    }
    s.dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A counter's total; a distribution's count, average and largest value.
fn value(s: &SeriesSnapshot) -> String {
    match s.kind {
        Kind::Counter => s.count.to_string(),
        Kind::Distribution if s.count == 0 => "0 values".into(),
        Kind::Distribution => {
            let unit = if s.unit == "Milliseconds" { " ms" } else { "" };
            format!(
                "{} values, avg {:.1}{unit}, max {:.1}{unit}",
                s.count,
                s.sum / s.count as f64,
                s.max
            )
        }
    }
}

pub fn write(
    out: &mut dyn Write,
    dir: &Path,
    format: Format,
    style: &Style,
) -> Result<(), OpsError> {
    let Some(series) = read_snapshot(dir)
        .map_err(|e| OpsError::failed(format!("{}: {e}", dir.join(SNAPSHOT_FILE).display())))?
    else {
        return Err(OpsError::failed(format!(
            "no metrics in {} (no {SNAPSHOT_FILE}): `cosell run` or `cosell demo` writes them there",
            dir.display()
        )));
    };
    match format {
        Format::Json => write_json(out, &series)?,
        Format::Table => {
            writeln!(
                out,
                "{}",
                style.heading(&format!("metrics of the local run in {}", dir.display()))
            )?;
            let mut table = Table::new(&["metric", "dimensions", "value"]);
            for s in &series {
                table.row(vec![s.name.clone(), dimensions(s), value(s)]);
            }
            table.write(out, style)?;
        }
    }
    Ok(())
}
