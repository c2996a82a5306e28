//! Cost on paper: what a month of syncs costs in AWS, from what the latency section
//! measured per sync (invocations, time, queue requests, store calls) and a price table.
//! Free tiers are left out (they would make small volumes free).

use std::collections::BTreeMap;

use crate::counting::{dynamodb_units, sqs_requests};

/// List prices, US East (N. Virginia), as read on [`PRICES_READ`] (sources in
/// docs/performance.md).
pub struct Prices {
    pub lambda_request: f64,
    /// Arm (Graviton), first pricing tier.
    pub lambda_gb_second: f64,
    /// FIFO queue, per request (a 64 KB chunk).
    pub sqs_fifo_request: f64,
    /// On-demand capacity.
    pub dynamodb_write_unit: f64,
    pub dynamodb_read_unit: f64,
}

pub const PRICES_READ: &str = "2026-12-01";

pub const US_EAST_1: Prices = Prices {
    lambda_request: 0.20 / 1e6,
    lambda_gb_second: 0.000_013_333_4,
    sqs_fifo_request: 0.50 / 1e6,
    dynamodb_write_unit: 0.625 / 1e6,
    dynamodb_read_unit: 0.125 / 1e6,
};

/// The functions' memory: the template's `Globals` `MemorySize`.
pub fn template_memory_gb() -> f64 {
    let template = include_str!("../../template.yaml");
    template
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.25, |mb| mb / 1024.0)
}

/// What one sync used, on average.
#[derive(Debug, Clone, Default)]
pub struct PerSync {
    pub invocations: f64,
    /// Billed function time, summed over the invocations.
    pub lambda_seconds: f64,
    pub sqs_requests: f64,
    pub read_units: f64,
    pub write_units: f64,
}

impl PerSync {
    /// From the port calls of `syncs` syncs, plus the invocations and time measured.
    pub fn from_ports(
        ports: &BTreeMap<&'static str, u64>,
        syncs: usize,
        invocations: f64,
        lambda_seconds: f64,
    ) -> PerSync {
        let n = syncs.max(1) as f64;
        let (reads, writes) = dynamodb_units(ports);
        PerSync {
            invocations,
            lambda_seconds,
            sqs_requests: sqs_requests(ports) as f64 / n,
            read_units: reads as f64 / n,
            write_units: writes as f64 / n,
        }
    }

    pub fn dollars(&self, p: &Prices, memory_gb: f64) -> f64 {
        self.invocations * p.lambda_request
            + self.lambda_seconds * memory_gb * p.lambda_gb_second
            + self.sqs_requests * p.sqs_fifo_request
            + self.write_units * p.dynamodb_write_unit
            + self.read_units * p.dynamodb_read_unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_costs_its_parts() {
        let one = PerSync {
            invocations: 2.0,
            lambda_seconds: 0.5,
            sqs_requests: 3.0,
            read_units: 2.0,
            write_units: 4.0,
        };
        let d = one.dollars(&US_EAST_1, 0.25);
        let by_hand =
            2.0 * 0.2e-6 + 0.125 * 0.000_013_333_4 + 3.0 * 0.5e-6 + 4.0 * 0.625e-6 + 2.0 * 0.125e-6;
        assert!((d - by_hand).abs() < 1e-12, "{d} vs {by_hand}");
        // Lambda's range: 128 MB to 10,240 MB.
        let gb = template_memory_gb();
        assert!((0.125..=10.0).contains(&gb), "{gb}");
    }
}
