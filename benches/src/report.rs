//! The result table: one row per figure, with its target and a verdict.

use std::fmt::Write as _;

pub enum Verdict {
    Pass,
    Miss,
    /// A figure without a target (context for the others).
    Info,
}

pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    pub ratio: String,
    pub verdict: Verdict,
}

#[derive(Default)]
pub struct Table(pub Vec<Row>);

impl Table {
    pub fn info(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.0.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            ratio: String::new(),
            verdict: Verdict::Info,
        });
    }

    /// A figure against a target; `ratio` is how far it is from the target, as text.
    pub fn check(
        &mut self,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        ratio: impl Into<String>,
        pass: bool,
    ) {
        self.0.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            ratio: ratio.into(),
            verdict: if pass { Verdict::Pass } else { Verdict::Miss },
        });
    }

    fn cells(r: &Row) -> [&str; 5] {
        let v = match r.verdict {
            Verdict::Pass => "ok",
            Verdict::Miss => "MISS",
            Verdict::Info => "",
        };
        [&r.metric, &r.value, &r.target, &r.ratio, v]
    }

    const HEAD: [&'static str; 5] = ["metric", "value", "target", "ratio", "verdict"];

    pub fn text(&self) -> String {
        let mut w = Self::HEAD.map(str::len);
        for r in &self.0 {
            for (i, c) in Self::cells(r).iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let _ = write!(s, "{c:<width$}  ", width = w[i]);
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(Self::HEAD);
        out += &line(w.map(|n| "-".repeat(n)).each_ref().map(String::as_str));
        for r in &self.0 {
            out += &line(Self::cells(r));
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|---|---|---|---|---|\n", Self::HEAD.join(" | "));
        for r in &self.0 {
            let _ = writeln!(out, "| {} |", Self::cells(r).join(" | "));
        }
        out
    }
}

/// `a / b` to two decimals.
pub fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        return "-".into();
    }
    format!("{:.2}x", a / b)
}
