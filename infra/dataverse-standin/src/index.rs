//! Equality indexes for `$filter`. The connector looks rows up by one column (an account by
//! name, an opportunity by its referral id); scanning 100,000 rows per lookup made the
//! stand-in, not the connector, the bottleneck of the benchmarks. A column's index is built
//! on its first `eq` lookup and kept up to date by every write. It only narrows the
//! candidates: the filter still decides, so it cannot change an answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::filter::{Expr, Literal, Op};
use crate::state::Row;

type Column = HashMap<String, BTreeSet<String>>;

#[derive(Debug, Default)]
pub struct ColumnIndexes(Mutex<HashMap<String, Column>>);

/// The bucket of a stored value: string comparisons ignore case (GUIDs are ASCII).
fn key(value: &Value) -> Option<String> {
    value.as_str().map(str::to_lowercase)
}

/// A column and bucket every row matching `filter` must be in, when the filter has an `eq`
/// on a string or GUID literal at its top level (alone or under `and`).
pub fn equality(filter: &Expr) -> Option<(&str, String)> {
    match filter {
        Expr::Cmp(column, Op::Eq, Literal::Str(s)) => Some((column, s.to_lowercase())),
        Expr::Cmp(column, Op::Eq, Literal::Guid(g)) => Some((column, g.to_lowercase())),
        Expr::And(a, b) => equality(a).or_else(|| equality(b)),
        _ => None,
    }
}

impl ColumnIndexes {
    /// The ids of the rows whose `column` falls in `bucket`, in key order.
    pub fn candidates(
        &self,
        rows: &BTreeMap<String, Row>,
        column: &str,
        bucket: &str,
    ) -> Vec<String> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let index = all.entry(column.to_string()).or_insert_with(|| {
            let mut index = Column::new();
            for (id, row) in rows {
                if let Some(k) = row.data.get(column).and_then(key) {
                    index.entry(k).or_default().insert(id.clone());
                }
            }
            index
        });
        index
            .get(bucket)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn add(&mut self, id: &str, data: &Map<String, Value>) {
        let all = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for (column, index) in all.iter_mut() {
            if let Some(k) = data.get(column).and_then(key) {
                index.entry(k).or_default().insert(id.to_string());
            }
        }
    }

    pub fn remove(&mut self, id: &str, data: &Map<String, Value>) {
        let all = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for (column, index) in all.iter_mut() {
            if let Some(k) = data.get(column).and_then(key) {
                if let Some(ids) = index.get_mut(&k) {
                    ids.remove(id);
                    if ids.is_empty() {
                        index.remove(&k);
                    }
                }
            }
        }
    }
}
