//! A throttled backfill: every referral queued for an inbound sync (as `cosell backfill`
//! queues them; its page reads are left out) and drained by the local worker against
//! stand-ins that enforce a request rate (a token bucket answering 429 + `Retry-After`).
//! Both limits are set for the same syncs per second (1 Partner Center read and 5 Dataverse
//! requests per sync), so either can be the one that binds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell::engine::disposition::queued;
use cosell::engine::{Origin, SyncMessage};
use cosell::queue::OutMessage;
use cosell_cli::local::{handlers, worker};
use tokio::sync::{watch, Notify};

use crate::env::{self, Connector};

pub struct BackfillRun {
    pub referrals: usize,
    pub synced: usize,
    pub elapsed: Duration,
    /// Allowed requests per second: Partner Center, Dataverse.
    pub allowed: (f64, f64),
    /// Requests answered (not throttled) per second: Partner Center, Dataverse.
    pub achieved: (f64, f64),
    /// Requests answered over the requests the limit allowed in that time (rate x time +
    /// the initial burst): Partner Center, Dataverse.
    pub fraction: (f64, f64),
    pub throttled: (u64, u64),
    pub dead_letters: u64,
    /// Referrals without exactly one opportunity at the end.
    pub lost: usize,
}

pub const DV_PER_SYNC: f64 = 5.0;

pub async fn run(n: usize, syncs_per_second: f64, workers: usize) -> anyhow::Result<BackfillRun> {
    let (pc, dv) = (env::start_pc().await?, env::start_dv().await?);
    let ids = env::create_referrals(&pc, n);
    let dir = tempfile::tempdir()?;
    let c = Connector::open(&pc, &dv, dir.path())?;
    // Tokens first (the token endpoints are not limited, but keep the count clean).
    c.engine.dv.who_am_i().await?;

    let mut messages: Vec<OutMessage> = Vec::with_capacity(ids.len());
    for id in &ids {
        let m = SyncMessage::for_referral(c.store.as_ref(), id, Origin::Operator, None).await?;
        messages.push(queued(&m));
    }
    for chunk in messages.chunks(500) {
        c.queue.send_batch(chunk).await?;
    }

    let allowed = (syncs_per_second, syncs_per_second * DV_PER_SYNC);
    // One second's worth of burst: `Retry-After` is in whole seconds, so a smaller bucket
    // would refill long before the wait it asks for is over.
    let burst = |r: f64| (r.ceil() as u32).max(1);
    pc.set_rate_limit(Some(partner_center_standin::ratelimit::RateLimit {
        per_second: allowed.0,
        burst: burst(allowed.0),
    }));
    dv.set_rate_limit(Some(dataverse_standin::ratelimit::RateLimit {
        per_second: allowed.1,
        burst: burst(allowed.1),
    }));
    let pc_before = pc.requests().len() as u64;
    dv.reset_request_counts();

    let done = Arc::new((AtomicUsize::new(0), Notify::new()));
    let (stop, stopped) = watch::channel(false);
    let settings = worker::WorkerSettings {
        name: "inbound",
        concurrency: workers,
        visibility: Duration::from_secs(300),
        receive_wait: Duration::from_millis(500),
        fail_delay: Duration::from_secs(1),
        max_attempts: 8,
    };
    let (engine, d) = (c.engine.clone(), done.clone());
    let started = Instant::now();
    let worker_task = tokio::spawn(worker::run(
        c.queue.clone(),
        settings,
        stopped,
        move |body: String| {
            let (engine, d) = (engine.clone(), d.clone());
            async move {
                let handled = handlers::sync(&engine, &body).await;
                if matches!(handled, Ok(Ok(_))) {
                    d.0.fetch_add(1, Ordering::Relaxed);
                    d.1.notify_one();
                }
                handled
            }
        },
    ));
    // Generous: twice the time the allowed rate needs, plus a minute.
    let deadline = started + Duration::from_secs_f64(2.0 * n as f64 / syncs_per_second + 60.0);
    loop {
        if done.0.load(Ordering::Relaxed) >= n {
            break;
        }
        let depth = c.queue.depth().await?;
        if depth.visible + depth.in_flight + depth.delayed == 0 || Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), done.1.notified()).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let _ = worker_task.await;

    let pc_total = pc.requests().len() as u64 - pc_before;
    let dv_total = dv.total_requests();
    let throttled = (pc.rate_limited(), dv.rate_limited());
    let secs = elapsed.as_secs_f64();
    let served = (
        (pc_total - throttled.0) as f64,
        (dv_total - throttled.1) as f64,
    );
    let achieved = (served.0 / secs, served.1 / secs);
    let fraction = (
        served.0 / (allowed.0 * secs + f64::from(burst(allowed.0))),
        served.1 / (allowed.1 * secs + f64::from(burst(allowed.1))),
    );
    let col = c.config.columns.referral_id.clone();
    let mut per_referral: HashMap<String, usize> = HashMap::new();
    for row in dv.rows("opportunities") {
        if let Some(id) = row[col.as_str()].as_str() {
            *per_referral.entry(id.to_string()).or_default() += 1;
        }
    }
    let lost = ids
        .iter()
        .filter(|id| per_referral.get(id.as_str()) != Some(&1))
        .count();
    let dead_letters = c.queue.depth().await?.dead;
    let synced = done.0.load(Ordering::Relaxed);
    dv.shutdown().await;
    pc.shutdown().await;
    Ok(BackfillRun {
        referrals: n,
        synced,
        elapsed,
        allowed,
        achieved,
        fraction,
        throttled,
        dead_letters,
        lost,
    })
}
