//! Printing results: aligned tables for people (coloured only on a terminal), JSON for scripts.

use std::io::Write;

use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    #[default]
    Table,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// How the current output device wants things drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colours (only when stdout is a terminal).
    pub color: bool,
    /// Progress bars (only when stderr is a terminal).
    pub progress: bool,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Style {
    /// Colours an audit outcome or a verdict word.
    fn paint(&self, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let colour = match text.trim() {
            "failed" | "conflict" | "missing" | "error" => RED,
            "success" | "ok" | "verified" => GREEN,
            "skipped" | "pending" => YELLOW,
            _ => return text.to_string(),
        };
        format!("{colour}{text}{RESET}")
    }

    pub fn heading(&self, text: &str) -> String {
        if self.color {
            format!("{BOLD}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// Rows under a header, padded to the widest cell of each column.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn write(&self, out: &mut dyn Write, style: &Style) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<String>, paint: bool| -> String {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                // Pad first, colour after: escape codes must not count towards the width.
                text.push_str(&if paint {
                    style.paint(cell)
                } else {
                    cell.clone()
                });
                if i < last {
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            // An empty last cell would leave padding at the end of the line.
            text.trim_end().to_string()
        };
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        writeln!(out, "{}", style.heading(&line(header, false)))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row.clone(), true))?;
        }
        Ok(())
    }
}

/// `key  value` lines, keys padded to the same width.
pub fn write_pairs(
    out: &mut dyn Write,
    pairs: &[(&str, String)],
    style: &Style,
) -> std::io::Result<()> {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        writeln!(out, "{:width$}  {}", k, style.paint(v))?;
    }
    Ok(())
}

pub fn write_json(out: &mut dyn Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// A cell for an optional value.
pub fn opt(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// Shortens long free text for a table cell (JSON output keeps it whole).
pub fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_and_colours_only_when_asked() {
        let mut t = Table::new(&["A", "OUTCOME"]);
        t.row(vec!["long value".into(), "failed".into()]);
        t.row(vec!["x".into(), "success".into()]);
        let mut plain = Vec::new();
        t.write(&mut plain, &Style::default()).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert_eq!(
            plain,
            "A           OUTCOME\nlong value  failed\nx           success\n"
        );
        let mut coloured = Vec::new();
        t.write(
            &mut coloured,
            &Style {
                color: true,
                progress: false,
            },
        )
        .unwrap();
        let coloured = String::from_utf8(coloured).unwrap();
        assert!(coloured.contains("\x1b[31mfailed\x1b[0m"));
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn clips_long_text_to_one_line() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
    }
}
