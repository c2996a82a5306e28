//! One SQLite connection per database file per process, behind a mutex. The store and the
//! queues on the same file share it: a second connection would make writers wait on
//! SQLite's file lock, whose busy handler sleeps in whole milliseconds, where a mutex hands
//! over in microseconds. Other processes (the `cosell` CLI) still share the file through WAL
//! and the busy timeout.
//!
//! Calls run inline on the caller's thread. With WAL and `synchronous = NORMAL` a commit is a
//! `write(2)` without `fsync`, tens of microseconds: less than the round trip to the blocking
//! pool that `spawn_blocking` would cost, and short enough for an async worker thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rusqlite::{Connection, Params};

type Shared = Arc<Mutex<Connection>>;

#[derive(Clone)]
pub(crate) struct SharedConnection(Shared);

/// Open connections by canonical file path; weak, so the file closes with its last user.
fn open_files() -> &'static Mutex<HashMap<PathBuf, Weak<Mutex<Connection>>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<Connection>>>>> = OnceLock::new();
    FILES.get_or_init(Default::default)
}

impl SharedConnection {
    /// Opens (creating if needed) the file, or joins this process's open connection to it,
    /// and runs `schema` (idempotent DDL) on it.
    pub(crate) fn open(path: &Path, schema: &str) -> rusqlite::Result<Self> {
        let mut files = open_files().lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|_, c| c.strong_count() > 0);
        let existing = path
            .canonicalize()
            .ok()
            .and_then(|p| files.get(&p))
            .and_then(Weak::upgrade);
        let shared = match existing {
            Some(shared) => shared,
            None => {
                let shared = Arc::new(Mutex::new(connect(path)?));
                // Canonical again: a new file only exists once `connect` has made it.
                if let Ok(canonical) = path.canonicalize() {
                    files.insert(canonical.clone(), Arc::downgrade(&shared));
                    checkpoint_in_background(canonical, Arc::downgrade(&shared));
                }
                shared
            }
        };
        drop(files);
        let conn = SharedConnection(shared);
        conn.lock().execute_batch(schema)?;
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls back when the transaction drops, so the connection
        // is still usable after a poisoned lock.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the connection (see the module note on why inline).
    pub(crate) async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        f(&mut self.lock())
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL + NORMAL: durable across process crashes (a killed run loses nothing
    // committed); only an OS crash may lose the last transactions.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The background thread checkpoints; this only fires if it falls far behind.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// How often the background thread folds the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints from a thread of its own. SQLite's automatic checkpoint runs inside whichever
/// commit crosses its threshold and `fsync`s there, under the shared connection's lock: a
/// stall of milliseconds for every caller. A PASSIVE checkpoint on a second connection takes
/// no writer lock, so commits carry on meanwhile. The automatic one stays as a backstop at
/// 10,000 pages. The thread ends with the last user of the file.
fn checkpoint_in_background(path: PathBuf, alive: Weak<Mutex<Connection>>) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            if conn.busy_timeout(Duration::from_secs(1)).is_err() {
                return;
            }
            while alive.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                {
                    tracing::debug!(error = %e, "background checkpoint skipped");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no background checkpoint thread; SQLite checkpoints inline");
    }
}

/// `execute` through the statement cache: the hot statements are parsed once.
pub(crate) fn exec(c: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}
