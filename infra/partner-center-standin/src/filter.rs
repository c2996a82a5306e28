//! The simple `$filter` forms the docs show: `field op value` clauses joined with `and`.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const FIELDS: &[&str] = &[
    "status",
    "substatus",
    "type",
    "direction",
    "updatedDateTime",
    "createdDateTime",
    "engagementId",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: &'static str,
    pub op: Op,
    pub value: String,
}

pub fn parse(filter: &str) -> Result<Vec<Clause>, String> {
    let lower = filter.to_ascii_lowercase();
    let mut clauses = Vec::new();
    let mut start = 0;
    // Split on " and " case-insensitively, keeping byte offsets of the original.
    while start <= filter.len() {
        let end = lower[start..]
            .find(" and ")
            .map(|i| start + i)
            .unwrap_or(filter.len());
        clauses.push(parse_clause(&filter[start..end])?);
        start = end + " and ".len();
    }
    Ok(clauses)
}

fn parse_clause(text: &str) -> Result<Clause, String> {
    let text = text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    let mut parts = text.splitn(3, ' ');
    let (field, op, value) = match (parts.next(), parts.next(), parts.next()) {
        (Some(f), Some(o), Some(v)) => (f, o, v.trim()),
        _ => return Err(format!("cannot read filter clause '{text}'")),
    };
    let field = FIELDS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(field))
        .ok_or_else(|| format!("filtering on '{field}' is not supported"))?;
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        other => return Err(format!("operator '{other}' is not supported")),
    };
    let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("''", "'"),
        None => value.to_string(),
    };
    Ok(Clause { field, op, value })
}

pub fn matches(clauses: &[Clause], referral: &Value) -> bool {
    clauses.iter().all(|c| {
        let Some(actual) = referral.get(c.field).and_then(Value::as_str) else {
            return false;
        };
        let ord = if c.field.ends_with("DateTime") {
            match (
                OffsetDateTime::parse(actual, &Rfc3339),
                OffsetDateTime::parse(&c.value, &Rfc3339),
            ) {
                (Ok(a), Ok(b)) => a.cmp(&b),
                _ => return false,
            }
        } else {
            actual
                .to_ascii_lowercase()
                .cmp(&c.value.to_ascii_lowercase())
        };
        match c.op {
            Op::Eq => ord.is_eq(),
            Op::Gt => ord.is_gt(),
            Op::Ge => ord.is_ge(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_matches_joined_clauses() {
        let f = parse("(type eq 'Shared' AND direction eq 'Incoming') and updatedDateTime gt 2024-01-01T00:00:00Z").unwrap();
        assert_eq!(f.len(), 3);
        let hit = json!({"type": "Shared", "direction": "incoming", "updatedDateTime": "2024-05-01T00:00:00.1234567Z"});
        let old = json!({"type": "Shared", "direction": "Incoming", "updatedDateTime": "2023-05-01T00:00:00Z"});
        assert!(matches(&f, &hit));
        assert!(!matches(&f, &old));
    }

    #[test]
    fn refuses_unknown_fields_and_operators() {
        assert!(parse("name eq 'x'").is_err());
        assert!(parse("status ne 'New'").is_err());
    }
}
