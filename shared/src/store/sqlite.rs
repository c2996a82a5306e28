//! [`Store`] on an embedded SQLite file, for local runs and tests. Durable (WAL); the same
//! file can also hold the [`SqliteQueue`](crate::queue::sqlite::SqliteQueue)s.
//!
//! Tables: `links` (referral id primary key, opportunity id unique: the two 1:1 rules),
//! `audit` (indexed by referral, opportunity and time; rows past `expires_at` are deleted
//! on every query and by [`SqliteStore::sweep_expired`]), `state`, `deliveries`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use time::OffsetDateTime;

use super::sqlite_connection::{exec, SharedConnection};
use super::time_key::{epoch_millis, epoch_seconds, millis, now_millis, sortable};
use super::{Store, StoreError, SyncRecord, DEFAULT_AUDIT_RETENTION};
use crate::audit::{AuditEntry, AuditQuery, Outcome};
use crate::crosswalk::Link;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS links (
    referral_id    TEXT PRIMARY KEY,
    opportunity_id TEXT NOT NULL UNIQUE,
    version        INTEGER NOT NULL,
    body           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id             TEXT PRIMARY KEY,
    at_key         TEXT NOT NULL,
    referral_id    TEXT,
    opportunity_id TEXT,
    outcome        TEXT NOT NULL,
    expires_at     INTEGER,
    body           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_key);
CREATE INDEX IF NOT EXISTS audit_by_referral ON audit (referral_id, at_key);
CREATE INDEX IF NOT EXISTS audit_by_opportunity ON audit (opportunity_id, at_key);
CREATE TABLE IF NOT EXISTS state (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    key           TEXT PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL
);
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: SharedConnection,
    audit_retention: Option<Duration>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its tables. Blocking: call it at
    /// start-up, before serving.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = SharedConnection::open(path.as_ref(), SCHEMA).map_err(backend)?;
        Ok(SqliteStore {
            conn,
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
        })
    }

    /// How long audit entries are kept (counted from their `at`); `None` keeps them forever.
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    fn audit_expiry(&self, entry: &AuditEntry) -> Option<i64> {
        self.audit_retention
            .map(|r| epoch_seconds(entry.at) + millis(r) / 1000)
    }

    /// Deletes expired audit rows and delivery keys; returns how many rows went.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        self.conn
            .run(|c| {
                let audit = delete_expired_audit(c)?;
                let deliveries = exec(
                    c,
                    "DELETE FROM deliveries WHERE expires_at_ms <= ?1",
                    [now_millis()],
                )
                .map_err(backend)?;
                Ok(audit + deliveries)
            })
            .await
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn delete_expired_audit(c: &Connection) -> Result<usize, StoreError> {
    exec(
        c,
        "DELETE FROM audit WHERE expires_at IS NOT NULL AND expires_at <= ?1",
        [epoch_seconds(OffsetDateTime::now_utc())],
    )
    .map_err(backend)
}

fn link_where(c: &Connection, column: &str, id: &str) -> Result<Option<Link>, StoreError> {
    let sql = format!("SELECT body FROM links WHERE {column} = ?1");
    let body: Option<String> = c
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(backend)?;
    body.map(|b| decode(&b)).transpose()
}

fn put_link_tx(c: &mut Connection, link: Link, expected: Option<u64>) -> Result<Link, StoreError> {
    let tx = c.transaction().map_err(backend)?;
    let stored = write_link(&tx, link, expected)?;
    tx.commit().map_err(backend)?;
    Ok(stored)
}

/// The conditional link write, inside the caller's transaction.
fn write_link(tx: &Connection, link: Link, expected: Option<u64>) -> Result<Link, StoreError> {
    let mut stored = link;
    stored.version = expected.unwrap_or(0) + 1;
    stored.updated_at = OffsetDateTime::now_utc();
    let body = encode(&stored)?;
    let result = match expected {
        None => exec(tx,
            "INSERT INTO links (referral_id, opportunity_id, version, body) VALUES (?1, ?2, ?3, ?4)",
            params![stored.referral_id, stored.opportunity_id, stored.version, body],
        ),
        Some(v) => exec(tx,
            "UPDATE links SET opportunity_id = ?2, version = ?3, body = ?4
             WHERE referral_id = ?1 AND version = ?5",
            params![stored.referral_id, stored.opportunity_id, stored.version, body, v],
        ),
    };
    match result {
        Ok(1) => {}
        Ok(_) => {
            return Err(StoreError::conflict(format!(
                "link for referral {} is not at version {}",
                stored.referral_id,
                expected.unwrap_or(0)
            )))
        }
        Err(e) if is_constraint(&e) => {
            let referral_taken =
                expected.is_none() && link_where(tx, "referral_id", &stored.referral_id)?.is_some();
            return Err(StoreError::conflict(if referral_taken {
                format!("referral {} is already linked", stored.referral_id)
            } else {
                format!(
                    "opportunity {} is already linked to another referral",
                    stored.opportunity_id
                )
            }));
        }
        Err(e) => return Err(backend(e)),
    }
    Ok(stored)
}

fn insert_audit(
    c: &Connection,
    entry: &AuditEntry,
    expires_at: Option<i64>,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO audit (id, at_key, referral_id, opportunity_id, outcome, expires_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.id,
            sortable(entry.at),
            entry.referral_id,
            entry.opportunity_id,
            entry.outcome.as_str(),
            expires_at,
            encode(entry)?
        ],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::conflict(format!("audit entry {} already exists", entry.id))
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

fn query_audit_rows(c: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    delete_expired_audit(c)?;
    let mut sql = String::from("SELECT body FROM audit WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: String| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(r) = &q.referral_id {
        bind(&mut sql, " AND referral_id = ?", r.clone());
    }
    if let Some(o) = &q.opportunity_id {
        bind(&mut sql, " AND opportunity_id = ?", o.clone());
    }
    if let Some(since) = q.since {
        bind(&mut sql, " AND at_key >= ?", sortable(since));
    }
    if q.failed_only {
        bind(
            &mut sql,
            " AND outcome = ?",
            Outcome::Failed.as_str().into(),
        );
    }
    let limit = i64::try_from(q.effective_limit()).unwrap_or(i64::MAX);
    sql.push_str(&format!(" ORDER BY at_key DESC, id DESC LIMIT {limit}"));
    let mut stmt = c.prepare(&sql).map_err(backend)?;
    let bodies = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            r.get::<_, String>(0)
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    bodies.iter().map(|b| decode(b)).collect()
}

fn put_state_tx(
    c: &mut Connection,
    key: &str,
    value: &str,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    let version = expected.unwrap_or(0) + 1;
    let result = match expected {
        None => exec(
            c,
            "INSERT INTO state (key, value, version) VALUES (?1, ?2, ?3)",
            params![key, value, version],
        ),
        Some(v) => exec(
            c,
            "UPDATE state SET value = ?2, version = ?3 WHERE key = ?1 AND version = ?4",
            params![key, value, version, v],
        ),
    };
    match result {
        Ok(1) => Ok(version),
        Ok(_) => Err(StoreError::conflict(format!(
            "state {key} is not at version {}",
            expected.unwrap_or(0)
        ))),
        Err(e) if is_constraint(&e) => {
            Err(StoreError::conflict(format!("state {key} already exists")))
        }
        Err(e) => Err(backend(e)),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_link_by_referral(&self, referral_id: &str) -> Result<Option<Link>, StoreError> {
        let id = referral_id.to_owned();
        self.conn
            .run(move |c| link_where(c, "referral_id", &id))
            .await
    }

    async fn get_link_by_opportunity(
        &self,
        opportunity_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let id = opportunity_id.to_owned();
        self.conn
            .run(move |c| link_where(c, "opportunity_id", &id))
            .await
    }

    async fn put_link(
        &self,
        link: &Link,
        expected_version: Option<u64>,
    ) -> Result<Link, StoreError> {
        let link = link.clone();
        self.conn
            .run(move |c| put_link_tx(c, link, expected_version))
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        let expires_at = self.audit_expiry(&entry);
        self.conn
            .run(move |c| insert_audit(c, &entry, expires_at))
            .await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let query = query.clone();
        self.conn.run(move |c| query_audit_rows(c, &query)).await
    }

    async fn get_state(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |c| {
                c.prepare_cached("SELECT value, version FROM state WHERE key = ?1")
                    .and_then(|mut s| {
                        s.query_row([&key], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
                        })
                        .optional()
                    })
                    .map_err(backend)
            })
            .await
    }

    async fn put_state(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.conn
            .run(move |c| put_state_tx(c, &key, &value, expected_version))
            .await
    }

    async fn remember_delivery(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |c| {
                let now = epoch_millis(OffsetDateTime::now_utc());
                // One statement, so the check and the claim are atomic: a live key is left
                // alone (0 rows changed), an absent or expired one is (re)claimed.
                let changed = exec(
                    c,
                    "INSERT INTO deliveries (key, expires_at_ms) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
                         WHERE deliveries.expires_at_ms <= ?3",
                    params![key, now.saturating_add(millis(ttl)), now],
                )
                .map_err(backend)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn forget_delivery(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |c| {
                exec(c, "DELETE FROM deliveries WHERE key = ?1", params![key]).map_err(backend)?;
                Ok(())
            })
            .await
    }

    /// One transaction: the link and the audit entries commit together.
    async fn finish_sync(&self, record: SyncRecord<'_>) -> Result<Option<Link>, StoreError> {
        if record.is_empty() {
            return Ok(None);
        }
        let link = record.link.map(|w| (w.link.clone(), w.expected_version()));
        let audit: Vec<(AuditEntry, Option<i64>)> = record
            .audit
            .iter()
            .map(|e| (e.clone(), self.audit_expiry(e)))
            .collect();
        self.conn
            .run(move |c| {
                let tx = c.transaction().map_err(backend)?;
                let stored = match link {
                    Some((link, expected)) => Some(write_link(&tx, link, expected)?),
                    None => None,
                };
                for (entry, expires_at) in &audit {
                    insert_audit(&tx, entry, *expires_at)?;
                }
                tx.commit().map_err(backend)?;
                Ok(stored)
            })
            .await
    }
}
