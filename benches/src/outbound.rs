//! Outbound detection: a table of opportunities, a first (full) poll to get the delta link,
//! then `changed` rows flagged for sync and one poll, with the stand-in counting requests.
//! The lag measured is from the last change to its message being queued, polling at once;
//! a deployment adds up to one poll interval on top.

use std::time::{Duration, Instant};

use anyhow::ensure;
use cosell::engine::poller::poll_opportunities;
use serde_json::{json, Map, Value};

use crate::env::{self, Connector};

pub struct PollFigure {
    pub changed: usize,
    pub requests: u64,
    pub lag: Duration,
}

pub struct OutboundRun {
    pub table: usize,
    pub full_read_requests: u64,
    pub full_read: Duration,
    pub polls: Vec<PollFigure>,
    pub poll_interval: Duration,
}

pub async fn run(table: usize, changes: &[usize]) -> anyhow::Result<OutboundRun> {
    let (pc, dv) = (env::start_pc().await?, env::start_dv().await?);
    let dir = tempfile::tempdir()?;
    let c = Connector::open(&pc, &dv, dir.path())?;
    let flag = c.config.columns.sync_flag.clone();
    let ids: Vec<String> = (0..table)
        .filter_map(|i| {
            let mut row = Map::new();
            row.insert("name".into(), json!(format!("Pipeline deal {i}")));
            row.insert(flag.clone(), json!(false));
            dv.user_insert("opportunities", row)
        })
        .collect();
    let poll = || {
        poll_opportunities(
            &c.engine.dv,
            c.store.as_ref(),
            c.queue.as_ref(),
            &c.config.columns,
        )
    };

    // Warm the token up, so every poll below counts API requests only.
    c.engine.dv.who_am_i().await?;
    dv.reset_request_counts();
    let t0 = Instant::now();
    let first = poll().await?;
    let full_read = t0.elapsed();
    ensure!(
        first.full_resync,
        "the first poll was expected to read everything"
    );
    let full_read_requests = dv.total_requests();

    let mut polls = Vec::new();
    let mut next = 0;
    for &k in changes {
        for id in &ids[next..next + k] {
            let mut change = Map::new();
            change.insert(flag.clone(), Value::Bool(true));
            dv.user_update("opportunities", id, change);
        }
        next += k;
        dv.reset_request_counts();
        let t0 = Instant::now();
        let report = poll().await?;
        let lag = t0.elapsed();
        ensure!(
            report.enqueued == k,
            "{k} changed rows, but the poll queued {}",
            report.enqueued
        );
        polls.push(PollFigure {
            changed: k,
            requests: dv.total_requests(),
            lag,
        });
    }
    let poll_interval = c.config.poll_interval;
    dv.shutdown().await;
    pc.shutdown().await;
    Ok(OutboundRun {
        table,
        full_read_requests,
        full_read,
        polls,
        poll_interval,
    })
}
