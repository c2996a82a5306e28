//! Stand-ins and connector pieces wired the way the local runner wires them, per scenario.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cosell::config::{Config, Source};
use cosell::engine::{wiring, Engine};
use cosell::queue::sqlite::SqliteQueue;
use cosell::queue::Queue;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;

use crate::counting::{CountingQueue, CountingStore, Counts};
use cosell_tests::harness::standin_settings;

pub type Pc = partner_center_standin::StandinHandle;
pub type Dv = dataverse_standin::StandinHandle;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start_pc() -> anyhow::Result<Pc> {
    Ok(Pc::start(loopback()).await?.0)
}

pub async fn start_dv() -> anyhow::Result<Dv> {
    Ok(Dv::start(loopback()).await?.0)
}

/// The connector's store, queues and engine in `dir`, pointed at the stand-ins, with the
/// production retry policy.
pub struct Connector {
    pub config: Config,
    /// The SQLite store, its calls counted in `ports`.
    pub store: Arc<dyn Store>,
    /// The sync queue (SQLite), its calls counted in `ports`.
    pub queue: Arc<dyn Queue>,
    pub ports: Arc<Counts>,
    pub engine: Engine,
}

impl Connector {
    pub fn open(pc: &Pc, dv: &Dv, dir: &Path) -> anyhow::Result<Connector> {
        let settings = standin_settings(pc, dv, dir);
        let config = Config::load(&Source::from_pairs(settings))?;
        let db = dir.join("cosell.db");
        let ports = Arc::new(Counts::default());
        let sqlite: Arc<SqliteStore> = Arc::new(SqliteStore::open(&db).context("open store")?);
        let store: Arc<dyn Store> = Arc::new(CountingStore {
            inner: sqlite,
            counts: ports.clone(),
        });
        let sqlite_queue: Arc<SqliteQueue> =
            Arc::new(cosell_cli::local::runtime::open_sync_queue(&db, 8)?);
        let queue: Arc<dyn Queue> = Arc::new(CountingQueue {
            inner: sqlite_queue,
            counts: ports.clone(),
        });
        let http = wiring::http_client(&config)?;
        let engine = Engine::from_config(&config, &http, store.clone(), None)?;
        Ok(Connector {
            config,
            store,
            queue,
            ports,
            engine,
        })
    }
}

/// Creates `n` incoming referrals (no webhook registration, so nothing is delivered) and
/// returns their ids.
pub fn create_referrals(pc: &Pc, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = pc.create_incoming_referral(
                &format!("Bench deal {i}"),
                &format!("Bench Customer {i}"),
            );
            r["id"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// The local queue worker on `c`'s sync queue, `concurrency` syncs at a time, until `stop`;
/// `done(message, started)` is called when a sync succeeded (started: when its handler did).
pub fn spawn_worker<D>(
    c: &Connector,
    name: &'static str,
    concurrency: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    done: D,
) -> tokio::task::JoinHandle<()>
where
    D: Fn(&cosell::engine::SyncMessage, std::time::Instant) + Clone + Send + Sync + 'static,
{
    use cosell_cli::local::{handlers, worker};
    let settings = worker::WorkerSettings {
        name,
        concurrency,
        visibility: std::time::Duration::from_secs(120),
        receive_wait: std::time::Duration::from_millis(500),
        fail_delay: std::time::Duration::from_secs(1),
        max_attempts: 8,
    };
    let engine = c.engine.clone();
    tokio::spawn(worker::run(
        c.queue.clone(),
        settings,
        stop,
        move |body: String| {
            let (engine, done) = (engine.clone(), done.clone());
            async move {
                let started = std::time::Instant::now();
                let handled = handlers::sync(&engine, &body).await;
                if let (Ok(Ok(_)), Ok(m)) = (&handled, cosell::engine::SyncMessage::parse(&body)) {
                    done(&m, started);
                }
                handled
            }
        },
    ))
}
