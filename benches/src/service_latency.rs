//! Both directions with the services' own latency: the stand-ins answer every API request
//! after a set delay (Partner Center 150 ms, Dataverse 60 ms by default), and the figure that
//! matters is how close a sync comes to its critical path, the sequential requests it needs
//! times their latency. The connector's own work (queue, store, mapping) should add little.
//!
//! CRM -> Partner Center: pairs are landed first (no latency), then each round edits
//! `in_flight` opportunities at once, polls once (as the scheduled poller does, its interval
//! left out) and lets the local worker reconcile them, `in_flight` at a time; the latency of
//! a change is from its edit to its referral written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cosell::engine::poller::poll_opportunities;
use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use serde_json::{json, Map};
use tokio::sync::{watch, Notify};

use crate::env::{self, Connector};
use crate::stats::Latencies;

/// Service latency per request.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLatency {
    pub partner_center: Duration,
    pub dataverse: Duration,
}

impl ServiceLatency {
    /// The critical path of a sync making `pc` and `dv` requests one after another.
    pub fn critical_path(&self, pc: f64, dv: f64) -> Duration {
        self.partner_center.mul_f64(pc) + self.dataverse.mul_f64(dv)
    }
}

pub struct OutboundLatency {
    pub latency: Latencies,
    /// Each reconcile's own time (the handler), and each round's poll.
    pub sync: Latencies,
    pub poll: Latencies,
    /// Store and queue calls of the measured rounds.
    pub ports: std::collections::BTreeMap<&'static str, u64>,
    /// Requests per change, the poll's share included.
    pub pc_per_sync: f64,
    pub dv_per_sync: f64,
    pub syncs: usize,
}

/// Opportunities whose referral was written, and when.
#[derive(Default)]
struct Written {
    at: Mutex<HashMap<String, Instant>>,
    took: Mutex<Vec<Duration>>,
    changed: Notify,
}

pub async fn crm_to_referral(
    service: ServiceLatency,
    in_flight: usize,
    rounds: usize,
) -> anyhow::Result<OutboundLatency> {
    let (pc, dv) = (env::start_pc().await?, env::start_dv().await?);
    let dir = tempfile::tempdir()?;
    let c = Connector::open(&pc, &dv, dir.path())?;
    let pairs = in_flight * rounds;
    let ids = env::create_referrals(&pc, pairs);
    let mut opps = Vec::with_capacity(pairs);
    for rid in &ids {
        let m = SyncMessage::for_referral(c.store.as_ref(), rid, Origin::Referral, None).await?;
        match reconcile_pair(&c.engine, &m).await? {
            PairOutcome::OpportunityCreated { opportunity_id, .. } => opps.push(opportunity_id),
            other => bail!("landing {rid}: {other:?}"),
        }
    }
    // The first poll reads the table and keeps its delta link; changes come after it.
    poll_opportunities(
        &c.engine.dv,
        c.store.as_ref(),
        c.queue.as_ref(),
        &c.config.columns,
    )
    .await?;
    // It queued every pair (all flagged); they are not part of the measurement.
    loop {
        let got = c
            .queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await?;
        if got.is_empty() {
            break;
        }
        for m in got {
            c.queue.ack(&m.receipt).await?;
        }
    }

    let written = Arc::new(Written::default());
    let (stop, stopped) = watch::channel(false);
    let w = written.clone();
    let worker_task = env::spawn_worker(
        &c,
        "outbound latency",
        in_flight,
        stopped,
        move |m, started| {
            w.took.lock().expect("took").push(started.elapsed());
            w.at.lock()
                .expect("written")
                .insert(m.key.clone(), Instant::now());
            w.changed.notify_waiters();
        },
    );

    pc.set_latency(service.partner_center);
    dv.set_latency(service.dataverse);
    pc.reset_request_counts();
    dv.reset_request_counts();
    c.ports.take();
    written.took.lock().expect("took").clear();
    let mut samples = Vec::with_capacity(pairs);
    let mut polls = Vec::new();
    for round in opps.chunks(in_flight) {
        let edited = Instant::now();
        for (i, id) in round.iter().enumerate() {
            let mut change = Map::new();
            change.insert("estimatedvalue".into(), json!(10_000.0 + i as f64));
            dv.user_update("opportunities", id, change)
                .context("seller edit")?;
        }
        let polled = Instant::now();
        let report = poll_opportunities(
            &c.engine.dv,
            c.store.as_ref(),
            c.queue.as_ref(),
            &c.config.columns,
        )
        .await?;
        polls.push(polled.elapsed());
        if report.enqueued != round.len() {
            bail!("{} edits, {} queued", round.len(), report.enqueued);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let notified = written.changed.notified();
            let done: Vec<Instant> = {
                let at = written.at.lock().expect("written");
                round.iter().filter_map(|id| at.get(id).copied()).collect()
            };
            if done.len() == round.len() {
                samples.extend(done.into_iter().map(|t| t - edited));
                break;
            }
            if Instant::now() > deadline {
                bail!("a round did not finish within 60 s");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        written.at.lock().expect("written").clear();
    }
    let count = |counts: std::collections::BTreeMap<String, u64>| {
        counts
            .iter()
            .filter(|(r, _)| !r.contains("token"))
            .map(|(_, n)| *n)
            .sum::<u64>() as f64
    };
    let syncs = samples.len();
    let took = std::mem::take(&mut *written.took.lock().expect("took"));
    let out = OutboundLatency {
        sync: Latencies::new(took),
        poll: Latencies::new(polls),
        ports: c.ports.take(),
        pc_per_sync: count(pc.request_counts()) / syncs.max(1) as f64,
        dv_per_sync: count(dv.request_counts()) / syncs.max(1) as f64,
        latency: Latencies::new(samples),
        syncs,
    };
    let _ = stop.send(true);
    let _ = worker_task.await;
    dv.shutdown().await;
    pc.shutdown().await;
    Ok(out)
}
