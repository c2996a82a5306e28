//! Reads the CloudWatch Embedded Metric Format documents among a function's stdout lines.

use std::collections::BTreeMap;

use serde_json::Value;

/// One metric of one EMF document.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub namespace: String,
    pub name: String,
    pub unit: Option<String>,
    /// Every dimension the document declares for it, with the document's value.
    pub dimensions: BTreeMap<String, String>,
    /// A counter's value, or a distribution's values.
    pub values: Vec<f64>,
    /// The document's other top-level members (properties such as `RequestId`).
    pub properties: BTreeMap<String, Value>,
}

/// The metrics of every line that is an EMF document; panics on a malformed one.
pub fn points(lines: &[String]) -> Vec<Point> {
    let mut out = Vec::new();
    for line in lines {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(aws) = doc.get("_aws") else {
            continue;
        };
        assert!(aws["Timestamp"].is_u64(), "EMF without a timestamp: {line}");
        for directive in aws["CloudWatchMetrics"].as_array().expect("directives") {
            let sets = directive["Dimensions"].as_array().expect("dimension sets");
            assert_eq!(sets.len(), 1, "one dimension set a document: {line}");
            let dimensions: BTreeMap<String, String> = sets[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let key = d.as_str().unwrap().to_string();
                    let value = doc[&key]
                        .as_str()
                        .unwrap_or_else(|| panic!("dimension {key} has no string value: {line}"));
                    (key, value.to_string())
                })
                .collect();
            let metrics = directive["Metrics"].as_array().expect("metrics");
            let names: Vec<&str> = metrics.iter().filter_map(|m| m["Name"].as_str()).collect();
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap().to_string();
                let values = match &doc[&name] {
                    Value::Array(vs) => vs.iter().map(|v| v.as_f64().unwrap()).collect(),
                    v => vec![v
                        .as_f64()
                        .unwrap_or_else(|| panic!("{name} has no value: {line}"))],
                };
                let properties = doc
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| {
                        *k != "_aws"
                            && !names.contains(&k.as_str())
                            && !dimensions.contains_key(k.as_str())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                out.push(Point {
                    namespace: directive["Namespace"].as_str().unwrap().to_string(),
                    unit: metric["Unit"].as_str().map(str::to_string),
                    name,
                    dimensions: dimensions.clone(),
                    values,
                    properties,
                });
            }
        }
    }
    out
}

/// The values of metric `name` with exactly these dimensions besides `Stack`.
pub fn values<'a>(points: &'a [Point], name: &str, dims: &[(&str, &str)]) -> Vec<&'a Point> {
    points
        .iter()
        .filter(|p| p.name == name)
        .filter(|p| {
            p.dimensions.len() == dims.len() + 1
                && dims
                    .iter()
                    .all(|(k, v)| p.dimensions.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}
