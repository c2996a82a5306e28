//! Percentiles of a set of latencies.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one run of syncs measured, ours or bare.
pub struct SyncRun {
    pub syncs: usize,
    pub elapsed: Duration,
    pub latency: Latencies,
    pub pc_requests_per_sync: f64,
    pub dv_requests_per_sync: f64,
    pub dv_routes: BTreeMap<String, u64>,
}

impl SyncRun {
    /// From each sync's latency and the requests the stand-ins counted during the run.
    pub fn new(
        latencies: Vec<Duration>,
        elapsed: Duration,
        pc_requests: usize,
        dv_routes: BTreeMap<String, u64>,
    ) -> SyncRun {
        let syncs = latencies.len();
        let per_sync = |n: f64| n / syncs.max(1) as f64;
        SyncRun {
            syncs,
            elapsed,
            latency: Latencies::new(latencies),
            pc_requests_per_sync: per_sync(pc_requests as f64),
            dv_requests_per_sync: per_sync(dv_routes.values().sum::<u64>() as f64),
            dv_routes,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.syncs as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Latencies(all)
    }

    /// The `p`-th percentile (nearest rank), zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    /// The mean, zero when empty.
    pub fn mean(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(l.p50(), Duration::from_millis(50));
        assert_eq!(l.p99(), Duration::from_millis(99));
        assert_eq!(Latencies::default().p99(), Duration::ZERO);
    }

    #[test]
    fn sync_run_counts_requests_per_sync() {
        let routes = BTreeMap::from([
            ("GET accounts".to_string(), 4),
            ("POST accounts".to_string(), 6),
        ]);
        let r = SyncRun::new(
            vec![Duration::from_millis(1); 4],
            Duration::from_secs(2),
            8,
            routes,
        );
        assert_eq!(r.syncs, 4);
        assert_eq!(r.pc_requests_per_sync, 2.0);
        assert_eq!(r.dv_requests_per_sync, 2.5);
        assert_eq!(r.per_second(), 2.0);
        // No syncs: no division by zero.
        let empty = SyncRun::new(Vec::new(), Duration::from_secs(1), 3, BTreeMap::new());
        assert_eq!(empty.pc_requests_per_sync, 3.0);
    }
}
