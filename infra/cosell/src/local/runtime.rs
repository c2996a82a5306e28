//! The whole connector in one process: webhook endpoint, the pair worker on an embedded
//! durable FIFO queue (one message per pair at a time), the opportunity poller and the
//! referral sweep, all sharing one SQLite file under the data dir. The same engine
//! functions as the Lambda functions.

use super::metrics_memory::{self, MemoryRecorder};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use cosell::config::Config;
use cosell::engine::{poller, reconcile, registration, wiring, Engine, SyncError};
use cosell::entra::RefreshTokenStore;
use cosell::partner_center::event::registered_events;
use cosell::queue::sqlite::SqliteQueue;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use super::refresh_file::FileRefreshTokenStore;
use super::server::{self, Intake, WEBHOOK_PATH};
use super::worker::{self, WorkerSettings};
use super::{data_dir, handlers, schedule};

/// The database file in the data dir that holds the store and the sync queue.
pub const DATABASE_FILE: &str = "cosell.db";
/// The FIFO queue every change of a pair goes to, from either side.
pub const SYNC_QUEUE: &str = "sync";

/// How the runner runs, beyond the settings.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Reconciles running at once (of different pairs).
    pub concurrency: usize,
    /// How long a received message stays hidden; after a crash, in-flight messages come back
    /// once it has passed.
    pub visibility: Duration,
    pub receive_wait: Duration,
    /// Retry delay of a transient failure that gave no wait of its own.
    pub fail_delay: Duration,
    /// Failed attempts before a message goes to the dead-letter queue with its reason.
    pub max_attempts: u32,
    /// How far back each sweep looks before its watermark.
    pub sweep_overlap: Duration,
    /// With no `COSELL_WEBHOOK_URL`, register this runner's own address (sandbox and demo).
    pub register_own_url: bool,
    /// Run the opportunity poll and the referral sweep (off only where a test needs the
    /// queues alone).
    pub schedules: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            concurrency: 8,
            visibility: Duration::from_secs(120),
            receive_wait: Duration::from_millis(500),
            fail_delay: Duration::from_secs(5),
            max_attempts: cosell::engine::disposition::DEFAULT_MAX_ATTEMPTS,
            sweep_overlap: Duration::from_secs(300),
            register_own_url: false,
            schedules: true,
        }
    }
}

/// A running connector. Call [`Runtime::shutdown`] to stop it cleanly.
pub struct Runtime {
    addr: SocketAddr,
    engine: Engine,
    store: Arc<SqliteStore>,
    queue: Arc<SqliteQueue>,
    data_dir: PathBuf,
    webhook_url: Option<Url>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    /// This process's metrics, written to the data directory for `cosell status`.
    metrics: Option<&'static MemoryRecorder>,
}

/// How often the metrics snapshot in the data directory is renewed.
const METRICS_SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

impl Runtime {
    pub async fn start(config: &Config, options: RuntimeOptions) -> anyhow::Result<Runtime> {
        let metrics = metrics_memory::install();
        data_dir::create(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let db = data_dir::private_file(&config.data_dir, DATABASE_FILE).with_context(|| {
            format!(
                "cannot create {DATABASE_FILE} in {}",
                config.data_dir.display()
            )
        })?;
        let store = Arc::new(
            SqliteStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?,
        );
        let queue = Arc::new(open_sync_queue(&db, options.max_attempts)?);

        let (config, refresh_store) = with_stored_refresh_token(config)?;
        let http = wiring::http_client(&config)?;
        let engine = Engine::from_config(
            &config,
            &http,
            store.clone() as Arc<dyn Store>,
            refresh_store,
        )?;

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (COSELL_LISTEN)", config.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let intake = Arc::new(Intake {
            verifier: wiring::webhook_verifier(&config)?,
            store: store.clone(),
            inbound: queue.clone(),
        });
        let app = server::router(intake, &config.server);
        let server = tokio::spawn(server::serve(
            listener,
            app,
            config.server.clone(),
            stopped.clone(),
        ));
        tracing::info!(url = %format!("http://{addr}{WEBHOOK_PATH}"), "webhook endpoint listening");

        let webhook_url = match (&config.webhook_url, options.register_own_url) {
            (Some(u), _) => Some(u.clone()),
            (None, true) => Some(local_webhook_url(addr)),
            (None, false) => None,
        };
        let mut runtime = Runtime {
            addr,
            engine,
            store,
            queue,
            data_dir: config.data_dir.clone(),
            webhook_url,
            stop,
            server,
            loops: Vec::new(),
            metrics,
        };
        if let Err(e) = runtime.register_webhook().await {
            runtime.shutdown().await;
            return Err(e);
        }
        runtime.spawn_snapshots(stopped.clone());
        runtime.spawn_loops(&config, &options, stopped);
        Ok(runtime)
    }

    async fn register_webhook(&self) -> anyhow::Result<()> {
        let Some(url) = &self.webhook_url else {
            tracing::info!("COSELL_WEBHOOK_URL is not set: not registering a webhook (the sweep still finds referral changes)");
            return Ok(());
        };
        let events = registered_events();
        match registration::ensure_webhook(&self.engine.pc, self.store.as_ref(), url, &events).await
        {
            Ok(change) => {
                tracing::info!(%url, ?change, "webhook registration");
                Ok(())
            }
            // Partner Center having a bad moment should not stop the runner.
            Err(e @ SyncError::Retry { .. }) => {
                tracing::warn!(%url, error = %e, "could not register the webhook now; the sweep covers until a restart");
                Ok(())
            }
            Err(e) => Err(anyhow!("cannot register the webhook {url}: {e}")),
        }
    }

    /// Renews the metrics snapshot until the runtime stops ([`Runtime::shutdown`] writes
    /// the last one).
    fn spawn_snapshots(&mut self, mut stopped: watch::Receiver<bool>) {
        let Some(metrics) = self.metrics else { return };
        let dir = self.data_dir.clone();
        self.loops.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(METRICS_SNAPSHOT_EVERY) => {}
                    _ = stopped.changed() => break,
                }
                if let Err(e) = metrics.write_snapshot(&dir) {
                    tracing::warn!(error = %e, "could not write the metrics snapshot");
                }
            }
        }));
    }

    fn spawn_loops(
        &mut self,
        config: &Config,
        options: &RuntimeOptions,
        stopped: watch::Receiver<bool>,
    ) {
        let settings = WorkerSettings {
            name: SYNC_QUEUE,
            concurrency: options.concurrency,
            visibility: options.visibility,
            receive_wait: options.receive_wait,
            fail_delay: options.fail_delay,
            max_attempts: options.max_attempts,
        };
        let engine = self.engine.clone();
        self.loops.push(tokio::spawn(worker::run(
            self.queue.clone(),
            settings,
            stopped.clone(),
            move |body: String| {
                let engine = engine.clone();
                async move { handlers::sync(&engine, &body).await }
            },
        )));
        if !options.schedules {
            return;
        }

        let (engine, store, outbound) =
            (self.engine.clone(), self.store.clone(), self.queue.clone());
        self.loops.push(tokio::spawn(schedule::every(
            "poll",
            config.poll_interval,
            stopped.clone(),
            move || {
                let (engine, store, outbound) = (engine.clone(), store.clone(), outbound.clone());
                async move {
                    let report = poller::poll_opportunities(
                        &engine.dv,
                        store.as_ref(),
                        outbound.as_ref(),
                        &engine.columns,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let leads = cosell::engine::lead_poller::poll_leads(&engine, outbound.as_ref())
                        .await
                        .map_err(|e| e.to_string())?;
                    let rows = cosell::engine::solution_poller::poll_solution_rows(
                        &engine.dv,
                        store.as_ref(),
                        outbound.as_ref(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    // What the lead and row polls queued, after the opportunity poll's line.
                    let mut others = if leads > 0 {
                        format!("; queued {leads} changed leads")
                    } else {
                        String::new()
                    };
                    if rows.enqueued > 0 {
                        others.push_str(&format!(
                            "; queued {} opportunities whose solution rows changed",
                            rows.enqueued
                        ));
                    }
                    Ok(
                        if report.enqueued + report.deleted > 0 || report.full_resync {
                            format!(
                                "queued {} changed and {} deleted opportunities{}",
                                report.enqueued,
                                report.deleted,
                                if report.full_resync {
                                    " (full read)"
                                } else {
                                    ""
                                }
                            ) + &others
                        } else {
                            others
                        },
                    )
                }
            },
        )));

        let (engine, store, inbound) =
            (self.engine.clone(), self.store.clone(), self.queue.clone());
        let overlap = options.sweep_overlap;
        self.loops.push(tokio::spawn(schedule::every(
            "sweep",
            config.sweep_interval,
            stopped,
            move || {
                let (engine, store, inbound) = (engine.clone(), store.clone(), inbound.clone());
                async move {
                    let report = reconcile::sweep_referrals(
                        &engine.pc,
                        store.as_ref(),
                        inbound.as_ref(),
                        overlap,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    Ok(if report.enqueued > 0 {
                        format!(
                            "queued {} referrals changed since the last sweep",
                            report.enqueued
                        )
                    } else {
                        String::new()
                    })
                }
            },
        )));
    }

    /// The address the webhook endpoint listens on (the real port when configured as 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}/partner-center/webhook`.
    pub fn intake_url(&self) -> Url {
        local_webhook_url(self.addr)
    }

    /// The URL registered with Partner Center, if any.
    pub fn webhook_url(&self) -> Option<&Url> {
        self.webhook_url.as_ref()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    /// The sync queue (FIFO, grouped by pair).
    pub fn queue(&self) -> Arc<SqliteQueue> {
        self.queue.clone()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Stops taking webhooks and messages, lets the syncs in flight finish, and returns when
    /// everything has stopped. Messages not yet received stay on the durable queues.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut server = self.server;
        // Keep-alive connections can hold a graceful stop open; don't wait on them forever.
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        for task in self.loops {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a runner task ended abnormally");
            }
        }
        if let Some(metrics) = self.metrics {
            if let Err(e) = metrics.write_snapshot(&self.data_dir) {
                tracing::warn!(error = %e, "could not write the metrics snapshot");
            }
        }
        tracing::info!("stopped");
    }
}

/// The local runner's FIFO sync queue in `db`. Its own receive limit is a backstop above
/// the attempts the worker allows: the worker dead-letters with the last reason first.
pub fn open_sync_queue(db: &std::path::Path, max_attempts: u32) -> anyhow::Result<SqliteQueue> {
    Ok(SqliteQueue::open_fifo(db, SYNC_QUEUE, max_attempts + 2)?)
}

fn local_webhook_url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}{WEBHOOK_PATH}")).expect("a socket address forms a URL")
}

/// The config to run with, and where a rotated refresh token goes: a token saved in the
/// data dir (by an earlier run, or `cosell login`) wins over the configured one, which Entra
/// may have retired; with neither, the app-only grant is used.
pub(crate) fn with_stored_refresh_token(
    config: &Config,
) -> anyhow::Result<(Config, Option<Arc<dyn RefreshTokenStore>>)> {
    let mut config = config.clone();
    let file = FileRefreshTokenStore::new(&config.data_dir);
    let stored = file
        .load()
        .with_context(|| format!("cannot read {}", file.path().display()))?;
    match stored {
        // Saved by an earlier run or by `cosell login partner-center`.
        Some(token) => {
            tracing::info!(file = %file.path().display(), "using the refresh token saved in the data dir");
            config.pc_refresh_token = Some(token);
        }
        None if config.pc_refresh_token.is_none() => return Ok((config, None)),
        None => {}
    }
    Ok((config, Some(Arc::new(file))))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
