//! `$filter`: a parser and evaluator for the subset of OData the connector uses:
//! `eq ne gt ge lt le`, `and or not`, parentheses, `contains/startswith/endswith`, and
//! string (with `''` escaping), number, boolean, null, GUID, date and date-time literals.
//! String comparisons ignore case, as Dataverse's do.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Guid(String),
    DateTime(OffsetDateTime),
    Date(Date),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(String, Op, Literal),
    Call(Func, String, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Str(String),
    Word(String),
}

fn lex(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || "_-:.+/".contains(c) {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if w.is_empty() {
                    return Err(format!("unexpected character '{c}'"));
                }
                tokens.push(Token::Word(w));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: Token) -> Result<(), String> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            got => Err(format!("expected {t:?}, found {got:?}")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Open) => {
                let e = self.or()?;
                self.expect(Token::Close)?;
                Ok(e)
            }
            Some(Token::Word(w)) => {
                let func = match w.to_ascii_lowercase().as_str() {
                    "contains" => Some(Func::Contains),
                    "startswith" => Some(Func::StartsWith),
                    "endswith" => Some(Func::EndsWith),
                    _ => None,
                };
                if let (Some(f), Some(Token::Open)) = (func, self.tokens.get(self.pos)) {
                    self.pos += 1;
                    let column = match self.next() {
                        Some(Token::Word(c)) => c.to_ascii_lowercase(),
                        t => return Err(format!("{w}: expected a column, found {t:?}")),
                    };
                    self.expect(Token::Comma)?;
                    let text = match self.next() {
                        Some(Token::Str(s)) => s,
                        t => return Err(format!("{w}: expected a string, found {t:?}")),
                    };
                    self.expect(Token::Close)?;
                    return Ok(Expr::Call(f, column, text));
                }
                let op = match self.next() {
                    Some(Token::Word(o)) => match o.to_ascii_lowercase().as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        _ => return Err(format!("unknown operator '{o}'")),
                    },
                    t => return Err(format!("expected an operator after {w}, found {t:?}")),
                };
                let lit = match self.next() {
                    Some(Token::Str(s)) => Literal::Str(s),
                    Some(Token::Word(v)) => literal(&v)?,
                    t => return Err(format!("expected a value, found {t:?}")),
                };
                Ok(Expr::Cmp(w.to_ascii_lowercase(), op, lit))
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

fn literal(word: &str) -> Result<Literal, String> {
    match word.to_ascii_lowercase().as_str() {
        "null" => return Ok(Literal::Null),
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        _ => {}
    }
    if let Ok(u) = uuid::Uuid::parse_str(word) {
        return Ok(Literal::Guid(u.hyphenated().to_string()));
    }
    if let Ok(t) = OffsetDateTime::parse(word, &Rfc3339) {
        // Dataverse keeps 100 ns ticks and refuses a literal finer than that.
        if fractional_digits(word) > 7 {
            return Err(format!(
                "The DateTimeOffset text '{word}' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range."
            ));
        }
        return Ok(Literal::DateTime(t));
    }
    if let Some(d) = parse_date(word) {
        return Ok(Literal::Date(d));
    }
    word.parse::<f64>()
        .map(Literal::Num)
        .map_err(|_| format!("'{word}' is not a value"))
}

/// Digits after the seconds' decimal point of a date-time literal.
fn fractional_digits(word: &str) -> usize {
    word.split_once('.')
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).count())
        .unwrap_or(0)
}

fn parse_date(s: &str) -> Option<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &f).ok().filter(|_| s.len() == 10)
}

/// Parses a `$filter` value.
pub fn parse(input: &str) -> Result<Expr, String> {
    let mut p = Parser {
        tokens: lex(input)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?}", p.tokens[p.pos]));
    }
    Ok(e)
}

impl Expr {
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(row) && b.matches(row),
            Expr::Or(a, b) => a.matches(row) || b.matches(row),
            Expr::Not(e) => !e.matches(row),
            Expr::Call(f, col, text) => {
                let Some(v) = row.get(col).and_then(Value::as_str) else {
                    return false;
                };
                let (v, t) = (v.to_lowercase(), text.to_lowercase());
                match f {
                    Func::Contains => v.contains(&t),
                    Func::StartsWith => v.starts_with(&t),
                    Func::EndsWith => v.ends_with(&t),
                }
            }
            Expr::Cmp(col, op, lit) => {
                let value = row.get(col).unwrap_or(&Value::Null);
                if *lit == Literal::Null || value.is_null() {
                    let both_null = *lit == Literal::Null && value.is_null();
                    return match op {
                        Op::Eq => both_null,
                        Op::Ne => *lit == Literal::Null && !value.is_null(),
                        _ => false,
                    };
                }
                let Some(ord) = compare(value, lit) else {
                    return false;
                };
                match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Ne => ord != Ordering::Equal,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Ge => ord != Ordering::Less,
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                }
            }
        }
    }
}

/// How a stored value compares with a literal, when they are comparable.
fn compare(value: &Value, lit: &Literal) -> Option<Ordering> {
    match lit {
        Literal::Str(s) => Some(value.as_str()?.to_lowercase().cmp(&s.to_lowercase())),
        Literal::Guid(g) => Some(value.as_str()?.to_ascii_lowercase().cmp(g)),
        Literal::Num(n) => {
            let v = match value {
                Value::Number(x) => x.as_f64()?,
                Value::String(s) => s.parse().ok()?,
                _ => return None,
            };
            v.partial_cmp(n)
        }
        Literal::Bool(b) => Some(value.as_bool()?.cmp(b)),
        Literal::DateTime(t) => Some(
            OffsetDateTime::parse(value.as_str()?, &Rfc3339)
                .ok()?
                .cmp(t),
        ),
        Literal::Date(d) => Some(parse_date(value.as_str()?.get(..10)?)?.cmp(d)),
        Literal::Null => None,
    }
}

/// Orders two stored values the way `$orderby` does: nulls first, numbers by value,
/// date-times by instant, other strings without regard to case.
pub fn order_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => {
            match (
                OffsetDateTime::parse(x, &Rfc3339),
                OffsetDateTime::parse(y, &Rfc3339),
            ) {
                (Ok(tx), Ok(ty)) => tx.cmp(&ty),
                _ => x.to_lowercase().cmp(&y.to_lowercase()),
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn strings_ignore_case_and_unescape_quotes() {
        let r = row(json!({"lastname": "O'Bryan", "name": "Contoso"}));
        assert!(parse("lastname eq 'o''bryan'").unwrap().matches(&r));
        assert!(!parse("lastname eq 'OBryan'").unwrap().matches(&r));
        assert!(parse("contains(name,'TOS')").unwrap().matches(&r));
        assert!(!parse("startswith(name,'tos')").unwrap().matches(&r));
    }

    #[test]
    fn precedence_and_parentheses() {
        let r = row(json!({"a": 1, "b": 2, "c": 3}));
        assert!(parse("a eq 9 and b eq 9 or c eq 3").unwrap().matches(&r));
        assert!(!parse("a eq 9 and (b eq 9 or c eq 3)").unwrap().matches(&r));
        assert!(parse("not (a eq 9)").unwrap().matches(&r));
    }

    #[test]
    fn dates_guids_numbers_and_null() {
        let r = row(json!({
            "modifiedon": "2024-05-01T10:00:00Z",
            "_customerid_value": "7eb682f1-ca75-e511-80d4-00155d2a68d1",
            "estimatedvalue": 1500.5,
            "description": null,
        }));
        assert!(parse("modifiedon ge 2024-05-01T10:00:00Z")
            .unwrap()
            .matches(&r));
        assert!(!parse("modifiedon gt 2024-05-01T12:00:00+01:00")
            .unwrap()
            .matches(&r));
        assert!(
            parse("_customerid_value eq 7EB682F1-CA75-E511-80D4-00155D2A68D1")
                .unwrap()
                .matches(&r)
        );
        assert!(parse("estimatedvalue gt 1000 and estimatedvalue le 1500.5")
            .unwrap()
            .matches(&r));
        assert!(parse("description eq null and name eq null")
            .unwrap()
            .matches(&r));
        assert!(!parse("description ne 'x'").unwrap().matches(&r));
    }

    #[test]
    fn date_times_finer_than_ticks_are_refused() {
        assert!(parse("modifiedon ge 2024-05-01T10:00:00.1234567Z").is_ok());
        let err = parse("modifiedon ge 2024-05-01T10:00:00.123456789Z").unwrap_err();
        assert!(err.contains("DateTimeOffset"), "{err}");
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(parse("name eq 'open").is_err());
        assert!(parse("name like 'x'").is_err());
        assert!(parse("name eq 'x' extra").is_err());
    }
}
