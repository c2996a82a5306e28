//! The local runner's metrics: the same `metrics` facade calls as the Lambda functions,
//! kept in memory by [`MemoryRecorder`] and written as a snapshot to the data directory
//! ([`SNAPSHOT_FILE`]) for `cosell status` to show.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde::{Deserialize, Serialize};

/// The snapshot's file in the data directory.
pub const SNAPSHOT_FILE: &str = "metrics.json";

/// A series: a metric name and its dimensions (label key -> value).
type SeriesKey = (String, BTreeMap<String, String>);

/// Counter value, or a distribution's count, sum and largest value.
#[derive(Debug, Default)]
struct Series {
    /// Counters: the total. Distributions: the number of values.
    count: AtomicU64,
    /// Distributions only: (sum, max).
    values: Mutex<(f64, f64)>,
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.count.fetch_max(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut v = lock(&self.values);
        v.0 += value;
        v.1 = v.1.max(value);
    }
}

/// Gauges are not used by the connector; a set keeps the last value as the sum.
impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        lock(&self.values).0 += value;
    }

    fn decrement(&self, value: f64) {
        lock(&self.values).0 -= value;
    }

    fn set(&self, value: f64) {
        lock(&self.values).0 = value;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every series recorded in this process, by name and dimensions.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    series: Mutex<BTreeMap<SeriesKey, (Kind, Arc<Series>)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Counter,
    Distribution,
}

/// One series in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub kind: Kind,
    /// A counter's total; a distribution's number of values.
    pub count: u64,
    /// A distribution's sum and largest value (0 for a counter).
    #[serde(default)]
    pub sum: f64,
    #[serde(default)]
    pub max: f64,
    /// The unit of the values (see `cosell::telemetry::names`).
    pub unit: String,
}

impl MemoryRecorder {
    fn entry(&self, key: &Key, kind: Kind) -> Arc<Series> {
        let labels = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        let mut series = lock(&self.series);
        series
            .entry((key.name().to_string(), labels))
            .or_insert_with(|| (kind, Arc::default()))
            .1
            .clone()
    }

    /// Every series, in name and dimension order.
    pub fn snapshot(&self) -> Vec<SeriesSnapshot> {
        lock(&self.series)
            .iter()
            .map(|((name, dimensions), (kind, s))| {
                let (sum, max) = *lock(&s.values);
                SeriesSnapshot {
                    name: name.clone(),
                    dimensions: dimensions.clone(),
                    kind: *kind,
                    count: s.count.load(Ordering::Relaxed),
                    sum,
                    max,
                    unit: cosell::telemetry::names::metric(name)
                        .map(|m| m.unit.cloudwatch())
                        .unwrap_or("None")
                        .to_string(),
                }
            })
            .collect()
    }

    /// Writes the snapshot to `dir`/[`SNAPSHOT_FILE`] (through a temporary file, so a
    /// reader never sees half of it).
    pub fn write_snapshot(&self, dir: &Path) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(&self.snapshot())?;
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        std::fs::write(&tmp, body)?;
        std::fs::rename(tmp, dir.join(SNAPSHOT_FILE))
    }
}

impl Recorder for MemoryRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.entry(key, Kind::Counter))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.entry(key, Kind::Distribution))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.entry(key, Kind::Distribution))
    }
}

/// A recorder that forwards to the process's one [`MemoryRecorder`].
struct Shared(&'static MemoryRecorder);

impl Recorder for Shared {
    fn describe_counter(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_counter(k, u, d)
    }
    fn describe_gauge(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_gauge(k, u, d)
    }
    fn describe_histogram(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_histogram(k, u, d)
    }
    fn register_counter(&self, key: &Key, m: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, m)
    }
    fn register_gauge(&self, key: &Key, m: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, m)
    }
    fn register_histogram(&self, key: &Key, m: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, m)
    }
}

/// The process's recorder, installed as the `metrics` facade's global recorder on the first
/// call. `None` when another recorder was installed first.
pub fn install() -> Option<&'static MemoryRecorder> {
    static RECORDER: OnceLock<Option<&'static MemoryRecorder>> = OnceLock::new();
    *RECORDER.get_or_init(|| {
        let recorder: &'static MemoryRecorder = Box::leak(Box::default());
        match metrics::set_global_recorder(Shared(recorder)) {
            Ok(()) => Some(recorder),
            Err(_) => {
                tracing::warn!(
                    "a metrics recorder is already installed; the local counters stay empty"
                );
                None
            }
        }
    })
}

/// The snapshot a local run left in `dir`, if any.
pub fn read_snapshot(dir: &Path) -> std::io::Result<Option<Vec<SeriesSnapshot>>> {
    match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
