//! Dotted referral paths (`customerProfile.team[0].email`): reading, writing, and the JSON
//! Pointer form a PATCH uses (`/customerProfile/team/0/email`).

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a dotted path; `None` when it is malformed (empty key, bad index).
pub fn parse(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in path.trim().split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return None;
        }
        out.push(Segment::Key(key.to_string()));
        while !rest.is_empty() {
            let close = rest.find(']')?;
            let n = rest.get(1..close)?.parse().ok()?;
            out.push(Segment::Index(n));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
    }
    Some(out)
}

/// The value at the path; JSON null counts as absent.
pub fn get<'a>(root: &'a Value, segs: &[Segment]) -> Option<&'a Value> {
    let mut cur = root;
    for s in segs {
        cur = match s {
            Segment::Key(k) => cur.get(k.as_str())?,
            Segment::Index(i) => cur.get(*i)?,
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// JSON Pointer (RFC 6901) of the path.
pub fn pointer(segs: &[Segment]) -> String {
    segs.iter()
        .map(|s| match s {
            Segment::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Segment::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// A value holding `leaf` at `segs` (objects for keys, one-item arrays for indexes).
pub fn nest(segs: &[Segment], leaf: Value) -> Value {
    segs.iter().rev().fold(leaf, |inner, s| match s {
        Segment::Key(k) => {
            let mut m = Map::new();
            m.insert(k.clone(), inner);
            Value::Object(m)
        }
        Segment::Index(_) => Value::Array(vec![inner]),
    })
}

/// Writes `value` at the path, creating objects and array items on the way. An index past
/// the end appends.
pub fn set(root: &mut Value, segs: &[Segment], value: Value) {
    let Some((first, rest)) = segs.split_first() else {
        *root = value;
        return;
    };
    let child = match first {
        Segment::Key(k) => {
            if !root.is_object() {
                *root = Value::Object(Map::new());
            }
            let map = root.as_object_mut().expect("made an object above");
            map.entry(k.clone()).or_insert(Value::Null)
        }
        Segment::Index(i) => {
            if !root.is_array() {
                *root = Value::Array(Vec::new());
            }
            let arr = root.as_array_mut().expect("made an array above");
            let at = (*i).min(arr.len());
            if at == arr.len() {
                arr.push(Value::Null);
            }
            &mut arr[at]
        }
    };
    set(child, rest, value);
}

/// For a PATCH against `current`: the longest existing prefix of the path, and the op that
/// creates or replaces the value. Returns (pointer, value to write, replace?).
pub fn patch_target(current: &Value, segs: &[Segment], leaf: Value) -> (String, Value, bool) {
    let mut cur = current;
    for (n, s) in segs.iter().enumerate() {
        let next = match s {
            Segment::Key(k) => cur.get(k.as_str()).filter(|v| !v.is_null()),
            Segment::Index(i) => cur.get(*i),
        };
        match next {
            Some(v) => cur = v,
            None => {
                // Missing from here on: add this segment with the rest nested inside it.
                let mut ptr = pointer(&segs[..n]);
                match s {
                    Segment::Index(_) if cur.is_array() => ptr.push_str("/-"),
                    _ => ptr.push_str(&pointer(&segs[n..=n])),
                }
                return (ptr, nest(&segs[n + 1..], leaf), false);
            }
        }
    }
    (pointer(segs), leaf, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_reads_and_points() {
        let segs = parse("customerProfile.team[0].email").unwrap();
        assert_eq!(pointer(&segs), "/customerProfile/team/0/email");
        let v = json!({"customerProfile": {"team": [{"email": "a@b.c"}]}});
        assert_eq!(get(&v, &segs), Some(&json!("a@b.c")));
        assert!(parse("a..b").is_none());
        assert!(parse("a[x]").is_none());
        assert!(parse("a[0]b").is_none());
    }

    #[test]
    fn set_creates_the_way() {
        let mut v = json!({});
        set(
            &mut v,
            &parse("customerProfile.team[0].email").unwrap(),
            json!("x"),
        );
        set(
            &mut v,
            &parse("customerProfile.team[0].firstName").unwrap(),
            json!("y"),
        );
        assert_eq!(
            v,
            json!({"customerProfile": {"team": [{"email": "x", "firstName": "y"}]}})
        );
    }

    #[test]
    fn patch_target_adds_at_the_first_missing_segment() {
        let cur = json!({"details": {"notes": "n"}, "customerProfile": {"team": []}});
        let t = |p: &str| patch_target(&cur, &parse(p).unwrap(), json!(1));
        assert_eq!(
            t("details.notes"),
            ("/details/notes".into(), json!(1), true)
        );
        assert_eq!(
            t("details.dealValue"),
            ("/details/dealValue".into(), json!(1), false)
        );
        assert_eq!(
            t("inviteContext.reason"),
            ("/inviteContext".into(), json!({"reason": 1}), false)
        );
        assert_eq!(
            t("customerProfile.team[0].email"),
            ("/customerProfile/team/-".into(), json!({"email": 1}), false)
        );
    }
}
