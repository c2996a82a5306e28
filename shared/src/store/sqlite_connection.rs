//! One SQLite connection behind a mutex, used from async code through `spawn_blocking`.
//! The store and each queue open their own connection to the same file; WAL mode lets them
//! share it, and the busy timeout makes writers wait for each other instead of failing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// The blocking task died (panicked or was cancelled); reported as a backend error.
#[derive(Debug)]
pub(crate) struct BlockingFailed(pub String);

#[derive(Clone)]
pub(crate) struct SharedConnection(Arc<Mutex<Connection>>);

impl SharedConnection {
    /// Opens (creating if needed) the file and runs `schema` (idempotent DDL) on it.
    pub(crate) fn open(path: &Path, schema: &str) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL + NORMAL: durable across process crashes (a killed run loses nothing
        // committed); only an OS crash may lose the last transactions.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(schema)?;
        Ok(SharedConnection(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<BlockingFailed> + Send + 'static,
    {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || {
            // A panic mid-transaction rolls back when the transaction drops, so the
            // connection is still usable after a poisoned lock.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(BlockingFailed(e.to_string())))?
    }
}
