//! Inbound through the local pipeline: signed webhook POST -> intake server (verify, de-dupe,
//! enqueue on SQLite) -> queue worker -> `sync_referral` -> opportunity written. The intake
//! router, worker loop and handler are the local runner's own (`cosell_cli::local`); only a
//! wrapper around the handler is added, to note when each referral's sync finished.
//!
//! Closed loop: `workers` clients each post one webhook and wait for its opportunity before
//! posting the next, so the queue never backs up and latency is the pipeline's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cosell::partner_center::webhook_verify::WebhookVerifier;
use cosell_cli::local::server::{self, Intake, WEBHOOK_PATH};
use cosell_tests::webhook_signing::DeliverySigner;
use http::HeaderMap;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};

use crate::env::{self, Connector, Pc};
use crate::service_latency::ServiceLatency;
use crate::stats::{Latencies, SyncRun};

/// One signed delivery, ready to post.
pub struct Delivery {
    pub referral_id: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Signs a `referral-created` delivery per referral, as the stand-in would (RSA signing is
/// slow, so both cores share the work).
pub async fn sign_all(pc: &Pc, ids: &[String]) -> Vec<Delivery> {
    let base = pc.base_url();
    let half = ids.len().div_ceil(2).max(1);
    let jobs: Vec<_> = ids
        .chunks(half)
        .map(|chunk| {
            let (chunk, base) = (chunk.to_vec(), base.clone());
            tokio::task::spawn_blocking(move || {
                let signer = DeliverySigner::for_standin(&base);
                chunk
                    .into_iter()
                    .map(|id| {
                        let body = signer
                            .event_body("referral-created", &id, OffsetDateTime::now_utc())
                            .into_bytes();
                        Delivery {
                            headers: signer.headers(&body),
                            referral_id: id,
                            body,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for j in jobs {
        out.extend(j.await.expect("signing task"));
    }
    out
}

pub struct InboundRun {
    /// Latency from the POST to the opportunity written.
    pub run: SyncRun,
    pub failed: usize,
    /// Where the time goes: the intake's answer to the POST, the wait from that answer to
    /// the worker starting the sync, and the sync itself.
    pub intake: Latencies,
    pub queued: Latencies,
    pub sync: Latencies,
    /// Store and queue calls of the measured syncs (the warm-up's left out).
    pub ports: std::collections::BTreeMap<&'static str, u64>,
}

/// When a referral's sync started and ended.
type Span = (Instant, Instant);

/// Who waits for which referral's sync.
#[derive(Default)]
struct Waiters(Mutex<HashMap<String, oneshot::Sender<Span>>>);

impl Waiters {
    fn expect(&self, id: &str) -> oneshot::Receiver<Span> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().expect("waiters").insert(id.to_string(), tx);
        rx
    }

    fn done(&self, id: &str, started: Instant) {
        if let Some(tx) = self.0.lock().expect("waiters").remove(id) {
            let _ = tx.send((started, Instant::now()));
        }
    }
}

/// One measured sync: POST -> intake answered -> worker started -> opportunity written.
struct Sample {
    posted: Instant,
    answered: Instant,
    started: Instant,
    written: Instant,
}

/// Runs `deliveries[0]` as a warm-up (tokens, certificate), then the rest, measured.
/// With `latency`, both stand-ins answer each measured request after it (the warm-up runs
/// without).
pub async fn run(
    pc: &Pc,
    deliveries: Arc<Vec<Delivery>>,
    workers: usize,
    latency: Option<ServiceLatency>,
) -> anyhow::Result<InboundRun> {
    let dv = env::start_dv().await?;
    let dir = tempfile::tempdir()?;
    let c = Connector::open(pc, &dv, dir.path())?;
    let verifier: WebhookVerifier =
        cosell::engine::wiring::webhook_verifier(&c.config).expect("webhook verifier");
    let intake = Arc::new(Intake {
        verifier,
        store: c.store.clone(),
        inbound: c.queue.clone(),
    });
    let listener = tokio::net::TcpListener::bind(env::loopback()).await?;
    let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
    let app = server::router(intake, &c.config.server);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let waiters = Arc::new(Waiters::default());
    let (stop, stopped) = watch::channel(false);
    let w = waiters.clone();
    let worker_task = env::spawn_worker(&c, "inbound", workers, stopped, move |m, started| {
        if let Some(referral_id) = &m.referral_id {
            w.done(referral_id, started);
        }
    });

    let sender = reqwest::Client::new();
    let Some(warm) = deliveries.first() else {
        bail!("no deliveries to run");
    };
    let measured_len = deliveries.len() - 1;
    post_and_wait(&sender, &url, &waiters, warm)
        .await
        .context("warm-up sync")?;

    c.ports.take();
    if let Some(l) = latency {
        pc.set_latency(l.partner_center);
        dv.set_latency(l.dataverse);
    }
    dv.reset_request_counts();
    let pc_before = pc.requests().len();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..workers)
        .map(|_| {
            let (next, sender, url, waiters) =
                (next.clone(), sender.clone(), url.clone(), waiters.clone());
            let deliveries = deliveries.clone();
            async move {
                let mut lat = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = deliveries.get(1 + i) else {
                        break;
                    };
                    match post_and_wait(&sender, &url, &waiters, d).await {
                        Ok(l) => lat.push(l),
                        Err(_) => failed += 1,
                    }
                }
                (lat, failed)
            }
        })
        .collect();
    let mut all: Vec<Sample> = Vec::with_capacity(measured_len);
    let mut failed = 0;
    for (lat, f) in futures_join(clients).await {
        all.extend(lat);
        failed += f;
    }
    let spans = |f: fn(&Sample) -> Duration| all.iter().map(f).collect::<Vec<_>>();
    let run = SyncRun::new(
        spans(|s| s.written - s.posted),
        started.elapsed(),
        pc.requests().len() - pc_before,
        dv.request_counts(),
    );

    let ports = c.ports.take();
    pc.set_latency(Duration::ZERO);
    let _ = stop.send(true);
    let _ = worker_task.await;
    server.abort();
    dv.shutdown().await;
    Ok(InboundRun {
        run,
        intake: Latencies::new(spans(|s| s.answered - s.posted)),
        // The worker may start before the client has read the answer.
        queued: Latencies::new(spans(|s| s.started.saturating_duration_since(s.answered))),
        sync: Latencies::new(spans(|s| s.written - s.started)),
        failed,
        ports,
    })
}

/// Posts one delivery and waits for its opportunity; the time from the POST to the write.
async fn post_and_wait(
    http: &reqwest::Client,
    url: &str,
    waiters: &Waiters,
    d: &Delivery,
) -> anyhow::Result<Sample> {
    let done = waiters.expect(&d.referral_id);
    let posted = Instant::now();
    let resp = http
        .post(url)
        .headers(d.headers.clone())
        .body(d.body.clone())
        .send()
        .await?;
    let answered = Instant::now();
    if !resp.status().is_success() {
        bail!("intake answered {}", resp.status());
    }
    let (started, written) = tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .context("no sync within 60 s")??;
    Ok(Sample {
        posted,
        answered,
        started,
        written,
    })
}

/// Runs the futures as tasks and returns their outputs in order.
pub async fn futures_join<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("client task"));
    }
    out
}
