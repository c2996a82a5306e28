//! JSON Patch (RFC 6902) restricted to what the referrals API accepts: `replace` and `add`.

use serde_json::Value;

/// Applies `ops` (a JSON array) to `doc`, or says why not without changing anything.
pub fn apply(doc: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("the body must be a JSON Patch array")?;
    let mut out = doc.clone();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("an operation has no op")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("an operation has no path")?;
        let value = op
            .get("value")
            .cloned()
            .ok_or("an operation has no value")?;
        let add = match kind {
            "add" => true,
            "replace" => false,
            other => {
                return Err(format!(
                    "operation '{other}' is not supported; use replace or add"
                ))
            }
        };
        set(&mut out, path, value, add)?;
    }
    Ok(out)
}

fn tokens(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path '{path}' must start with /"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn set(doc: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    let toks = tokens(path)?;
    let (last, parents) = toks.split_last().ok_or("empty path")?;
    let missing = || format!("path '{path}' does not exist");
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(missing)?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| missing())?;
                a.get_mut(i).ok_or_else(missing)?
            }
            _ => return Err(missing()),
        };
    }
    match cur {
        Value::Object(m) => {
            if !add && !m.contains_key(last) {
                return Err(missing());
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) if add && last == "-" => a.push(value),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            match (add, i) {
                (true, i) if i <= a.len() => a.insert(i, value),
                (false, i) if i < a.len() => a[i] = value,
                _ => return Err(missing()),
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replace_add_and_append() {
        let doc = json!({"details": {"dealValue": 1}, "team": [{"email": "a"}]});
        let ops = json!([
            {"op": "replace", "path": "/details/dealValue", "value": "10000"},
            {"op": "add", "path": "/team/-", "value": {"email": "b"}},
            {"op": "add", "path": "/statusReason", "value": "why"}
        ]);
        let out = apply(&doc, &ops).unwrap();
        assert_eq!(out["details"]["dealValue"], "10000");
        assert_eq!(out["team"][1]["email"], "b");
        assert_eq!(out["statusReason"], "why");
    }

    #[test]
    fn refuses_other_ops_and_missing_targets() {
        let doc = json!({"a": 1});
        assert!(
            apply(&doc, &json!([{"op": "remove", "path": "/a", "value": 0}]))
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            apply(&doc, &json!([{"op": "replace", "path": "/b", "value": 0}]))
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
