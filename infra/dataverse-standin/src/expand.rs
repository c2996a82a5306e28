//! `$expand` on row and collection reads, and the navigation properties it can follow: the
//! opportunity's standard lookups (single-valued) and the solution tables' relationships
//! (`solution_tables.rs`). As Dataverse does: options inside the parentheses are separated
//! by `;`; `$select` limits the related row's columns; a nested `$expand` follows a lookup
//! of the related row; `$orderby` and `$top` are refused inside a collection-valued expand
//! that nests another; a property the table does not have is a 400.

use serde_json::{Map, Value};

use crate::odata_error::ApiError;
use crate::state::{representation, table_def, Inner, TableDef};

/// Where a navigation property leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// A lookup of this row (`_<attr>_value`) to one row of `target`.
    One {
        attr: &'static str,
        target: &'static str,
    },
    /// The rows of `child` whose lookup `attr` names this row.
    Many {
        child: &'static str,
        attr: &'static str,
    },
}

/// `(entity set, navigation property, where it leads)`.
const NAVS: &[(&str, &str, Nav)] = &[
    (
        "opportunities",
        "parentaccountid",
        Nav::One {
            attr: "parentaccountid",
            target: "accounts",
        },
    ),
    (
        "opportunities",
        "parentcontactid",
        Nav::One {
            attr: "parentcontactid",
            target: "contacts",
        },
    ),
    (
        "opportunities",
        "transactioncurrencyid",
        Nav::One {
            attr: "transactioncurrencyid",
            target: "transactioncurrencies",
        },
    ),
];

/// The navigation property `nav` of the table `set`.
pub fn navigation(set: &str, nav: &str) -> Option<Nav> {
    NAVS.iter()
        .chain(crate::solution_tables::NAVS)
        .find(|(s, n, _)| *s == set && *n == nav)
        .map(|(_, _, to)| *to)
}

/// One `$expand` item: `nav($select=a,b;$expand=...)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Item {
    pub nav: String,
    pub select: Option<Vec<String>>,
    pub expand: Vec<Item>,
    /// Options the stand-in recognises but does not serve (`$filter`, `$orderby`, `$top`).
    pub other: Vec<String>,
}

/// Splits on `sep` outside parentheses.
fn split_top(text: &str, sep: char) -> Result<Vec<&str>, ApiError> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(syntax(text));
                }
            }
            c if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(syntax(text));
    }
    out.push(&text[start..]);
    Ok(out)
}

fn syntax(text: &str) -> ApiError {
    ApiError::bad_request(format!("Syntax error in $expand: '{text}'"))
}

/// Parses a `$expand` value.
pub fn parse(text: &str) -> Result<Vec<Item>, ApiError> {
    let mut items = Vec::new();
    for part in split_top(text, ',')? {
        let part = part.trim();
        if part.is_empty() {
            return Err(syntax(text));
        }
        let (nav, options) = match part.find('(') {
            Some(open) => {
                let inner = part[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| syntax(text))?;
                (&part[..open], Some(inner))
            }
            None => (part, None),
        };
        let mut item = Item {
            nav: nav.trim().to_string(),
            ..Item::default()
        };
        for option in options
            .map(|o| split_top(o, ';'))
            .transpose()?
            .unwrap_or_default()
        {
            let (name, value) = option.split_once('=').ok_or_else(|| syntax(text))?;
            match name.trim().to_ascii_lowercase().as_str() {
                "$select" => {
                    item.select = Some(
                        value
                            .split(',')
                            .map(|c| c.trim().to_ascii_lowercase())
                            .filter(|c| !c.is_empty())
                            .collect(),
                    )
                }
                "$expand" => item.expand = parse(value)?,
                "$filter" | "$orderby" | "$top" => item.other.push(name.trim().to_string()),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "The query option '{other}' is not supported in $expand."
                    )))
                }
            }
        }
        items.push(item);
    }
    Ok(items)
}

/// The navigation property a table does not have, as Dataverse words it.
fn no_property(def: TableDef, nav: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Could not find a property named '{nav}' on type 'Microsoft.Dynamics.CRM.{}'.",
        def.logical
    ))
}

/// Checks `items` against the tables before any row is read (a bad expand fails the whole
/// request, also on an empty collection).
pub fn check(def: TableDef, items: &[Item]) -> Result<(), ApiError> {
    for item in items {
        let to = navigation(def.set, &item.nav).ok_or_else(|| no_property(def, &item.nav))?;
        let (target, many) = match to {
            Nav::One { target, .. } => (target, false),
            Nav::Many { child, .. } => (child, true),
        };
        if let Some(option) = item.other.first() {
            let nested = many && !item.expand.is_empty();
            let message = if nested && option != "$filter" {
                format!("{option} is not supported with a nested $expand on a collection-valued navigation property.")
            } else {
                format!("{option} inside $expand is not served by the stand-in.")
            };
            return Err(ApiError::bad_request(message));
        }
        check(
            table_def(target).expect("navigation targets are tables"),
            &item.expand,
        )?;
    }
    Ok(())
}

/// Adds the expanded properties of `items` (already checked) to `out`, the representation
/// of `row` of table `def`.
pub fn add(
    inner: &Inner,
    def: TableDef,
    row: &Map<String, Value>,
    items: &[Item],
    out: &mut Map<String, Value>,
) {
    for item in items {
        let Some(to) = navigation(def.set, &item.nav) else {
            continue;
        };
        let value = match to {
            Nav::One { attr, target } => {
                let target_def = table_def(target).expect("navigation targets are tables");
                row.get(&format!("_{attr}_value"))
                    .and_then(Value::as_str)
                    .and_then(|id| inner.table(target).rows.get(id))
                    .map(|r| Value::Object(related(inner, target_def, r, item)))
                    .unwrap_or(Value::Null)
            }
            Nav::Many { child, attr } => {
                let child_def = table_def(child).expect("navigation targets are tables");
                let id = row.get(def.key).cloned().unwrap_or(Value::Null);
                let column = format!("_{attr}_value");
                let rows = inner
                    .table(child)
                    .rows
                    .values()
                    .filter(|r| r.data.get(&column) == Some(&id))
                    .map(|r| Value::Object(related(inner, child_def, r, item)))
                    .collect();
                Value::Array(rows)
            }
        };
        out.insert(item.nav.clone(), value);
    }
}

fn related(
    inner: &Inner,
    def: TableDef,
    row: &crate::state::Row,
    item: &Item,
) -> Map<String, Value> {
    let mut out = representation(row, item.select.as_deref(), def.key);
    add(inner, def, &row.data, &item.expand, &mut out);
    out
}

/// `$expand` of a request, parsed and checked against `def`.
pub fn of_params(def: TableDef, params: &crate::request::Params) -> Result<Vec<Item>, ApiError> {
    let Some(text) = params.get("$expand") else {
        return Ok(Vec::new());
    };
    let items = parse(text)?;
    check(def, &items)?;
    Ok(items)
}
