//! A checker of EventBridge schedule expressions. Linters accept `rate(5 minute)` and a
//! five-field cron, which EventBridge then refuses at deploy (or, for a rate, never matches
//! the intent): the template tests run every expression through this.

/// `Ok` when `expr` is a valid `rate(...)` or `cron(...)` expression, else why not.
pub fn check(expr: &str) -> Result<(), String> {
    if let Some(inner) = strip(expr, "rate(") {
        check_rate(inner)
    } else if let Some(inner) = strip(expr, "cron(") {
        check_cron(inner)
    } else {
        Err(format!("'{expr}' is neither rate(...) nor cron(...)"))
    }
}

fn strip<'a>(expr: &'a str, prefix: &str) -> Option<&'a str> {
    expr.strip_prefix(prefix)?.strip_suffix(')')
}

fn check_rate(inner: &str) -> Result<(), String> {
    let parts: Vec<&str> = inner.split(' ').collect();
    let [value, unit] = parts[..] else {
        return Err(format!("rate({inner}): expected 'rate(value unit)'"));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with('0') {
        return Err(format!(
            "rate({inner}): '{value}' is not a positive whole number"
        ));
    }
    let singular = value == "1";
    let (expected, base) = match unit.trim_end_matches('s') {
        base @ ("minute" | "hour" | "day") => (
            if singular {
                base.to_string()
            } else {
                format!("{base}s")
            },
            base,
        ),
        _ => {
            return Err(format!(
                "rate({inner}): unit '{unit}' is not minute(s), hour(s) or day(s)"
            ))
        }
    };
    if unit != expected {
        return Err(format!(
            "rate({inner}): use '{expected}' for {value} {base}(s) (singular only for 1)"
        ));
    }
    Ok(())
}

/// Minutes, hours, day-of-month, month, day-of-week, year.
fn check_cron(inner: &str) -> Result<(), String> {
    let fields: Vec<&str> = inner.split(' ').collect();
    if fields.len() != 6 || fields.iter().any(|f| f.is_empty()) {
        return Err(format!(
            "cron({inner}): needs exactly 6 space-separated fields (minutes hours day-of-month month day-of-week year), found {}",
            fields.len()
        ));
    }
    const NAMES: [&str; 6] = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    const RANGES: [(u32, u32); 6] = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2199)];
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    for (i, field) in fields.iter().enumerate() {
        let name = NAMES[i];
        if *field == "?" {
            if i != 2 && i != 4 {
                return Err(format!(
                    "cron({inner}): '?' is only allowed in day-of-month or day-of-week"
                ));
            }
            continue;
        }
        let (lo, hi) = RANGES[i];
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            if let Some(step) = step {
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("cron({inner}): bad step '{step}' in {name}"))?;
            }
            let special = matches!((i, range), (2, "L" | "W" | "LW") | (4, "L"))
                || (i == 2 && range.ends_with('W'))
                || (i == 4 && (range.contains('#') || range.ends_with('L')));
            if range == "*" || special {
                continue;
            }
            for bound in range.split('-') {
                let known_name =
                    (i == 3 && MONTHS.contains(&bound)) || (i == 4 && DAYS.contains(&bound));
                let number_ok = bound.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n));
                if !known_name && !number_ok {
                    return Err(format!(
                        "cron({inner}): '{bound}' is out of range for {name} ({lo}-{hi})"
                    ));
                }
            }
        }
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        _ => Err(format!(
            "cron({inner}): exactly one of day-of-month and day-of-week must be '?'"
        )),
    }
}
