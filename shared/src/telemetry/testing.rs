//! What a test recorded: a debugging recorder installed for the current thread.

use std::collections::BTreeMap;
use std::sync::Mutex;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A series: the metric's name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// Install with `metrics::set_default_local_recorder(&r.recorder)`.
#[derive(Default)]
pub struct Recorded {
    pub recorder: DebuggingRecorder,
    /// Everything read so far (a snapshot drains the recorder): counter totals and values.
    seen: Mutex<BTreeMap<Series, (u64, Vec<f64>)>>,
}

impl Recorded {
    fn read(&self, name: &str, labels: &[(&str, &str)]) -> (u64, Vec<f64>) {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, value) in self.recorder.snapshotter().snapshot().into_vec() {
            let key = key.key();
            let mut ls: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            ls.sort();
            let entry = seen.entry((key.name().to_string(), ls)).or_default();
            match value {
                DebugValue::Counter(c) => entry.0 += c,
                DebugValue::Histogram(vs) => entry.1.extend(vs.into_iter().map(|v| v.into_inner())),
                DebugValue::Gauge(g) => entry.1.push(g.into_inner()),
            }
        }
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        seen.get(&(name.to_string(), want))
            .cloned()
            .unwrap_or_default()
    }

    /// A counter's total (0 when never incremented).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.read(name, labels).0
    }

    /// A distribution's values.
    pub fn values(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.read(name, labels).1
    }
}
