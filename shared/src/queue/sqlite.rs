//! [`Queue`] on an embedded SQLite file, for local runs and tests. Every state change is a
//! committed transaction (WAL), so a killed process loses nothing: a message received but
//! not acked is visible again once its visibility timeout has passed, also after a restart.
//! Several queues (by name) and the [`SqliteStore`](crate::store::sqlite::SqliteStore) can
//! share one file.
//!
//! A FIFO queue hands out only the oldest message of each group, and only while it is
//! visible: so a group's messages come in send order, and nothing else of a group is handed
//! out while one is in flight. That is one message per group per receive, stricter than SQS
//! (which may batch a run of one group). De-duplication ids are kept for [`DEDUP_WINDOW`]
//! from their first send, also after that message is acked, as SQS does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::message_rules;
use super::{
    DeadLetter, OutMessage, Queue, QueueDepth, QueueError, QueueKind, Received, DEDUP_WINDOW,
    MAX_RECEIVES_REASON,
};
use crate::store::sqlite_connection::{exec, SharedConnection};
use crate::store::time_key::{millis, now_millis};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    attributes    TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE,
    group_id      TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at_ms, seq);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    attributes    TEXT NOT NULL,
    reason        TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    failed_at     TEXT NOT NULL,
    group_id      TEXT
);
CREATE INDEX IF NOT EXISTS queue_dead_letters_by_queue ON queue_dead_letters (queue, seq);
CREATE TABLE IF NOT EXISTS queue_kinds (
    queue TEXT PRIMARY KEY,
    fifo  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue         TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
CREATE INDEX IF NOT EXISTS queue_dedup_expiry ON queue_dedup (queue, expires_at_ms);
";

/// Files made before FIFO queues lack `group_id`; the group index needs it.
const GROUP_COLUMN_TABLES: [&str; 2] = ["queue_messages", "queue_dead_letters"];
const GROUP_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS queue_messages_group ON queue_messages (queue, group_id, seq)";

/// How often an empty long-poll looks again (for messages sent by another process).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct SqliteQueue {
    conn: SharedConnection,
    name: String,
    kind: QueueKind,
    max_receive_count: u32,
    /// Wakes this process's waiting receivers on a send, instead of their next poll.
    arrived: std::sync::Arc<tokio::sync::Notify>,
}

impl SqliteQueue {
    /// Opens standard queue `name` in the database file (creating file and tables if
    /// needed). A message received `max_receive_count` times goes to the DLQ on its next
    /// receive (as with an SQS RedrivePolicy); 0 disables that. Blocking: call it at start-up.
    pub fn open(
        path: impl AsRef<Path>,
        name: impl Into<String>,
        max_receive_count: u32,
    ) -> Result<Self, QueueError> {
        Self::open_kind(path, name, max_receive_count, QueueKind::Standard)
    }

    /// [`open`](Self::open) for a FIFO queue (its dead letters are kept in order too).
    pub fn open_fifo(
        path: impl AsRef<Path>,
        name: impl Into<String>,
        max_receive_count: u32,
    ) -> Result<Self, QueueError> {
        Self::open_kind(path, name, max_receive_count, QueueKind::Fifo)
    }

    /// Opens queue `name` as `kind`. A queue keeps the kind it was first opened with:
    /// opening it as the other kind is [`QueueError::KindMismatch`].
    pub fn open_kind(
        path: impl AsRef<Path>,
        name: impl Into<String>,
        max_receive_count: u32,
        kind: QueueKind,
    ) -> Result<Self, QueueError> {
        let name = name.into();
        let conn = SharedConnection::open(path.as_ref(), SCHEMA).map_err(backend)?;
        prepare(path.as_ref(), &name, kind)?;
        Ok(SqliteQueue {
            conn,
            name,
            kind,
            max_receive_count,
            arrived: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Adds what older files lack and records the queue's kind, in one transaction on a
/// connection of its own (the shared one only offers async calls; this runs at start-up).
fn prepare(path: &Path, queue: &str, kind: QueueKind) -> Result<(), QueueError> {
    let mut c = Connection::open(path).map_err(backend)?;
    c.busy_timeout(Duration::from_secs(10)).map_err(backend)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    for table in GROUP_COLUMN_TABLES {
        let has: bool = tx
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = 'group_id'",
                [table],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !has {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN group_id TEXT"))
                .map_err(backend)?;
        }
    }
    tx.execute_batch(GROUP_INDEX).map_err(backend)?;
    let fifo = kind == QueueKind::Fifo;
    tx.execute(
        "INSERT OR IGNORE INTO queue_kinds (queue, fifo) VALUES (?1, ?2)",
        params![queue, fifo],
    )
    .map_err(backend)?;
    let stored: bool = tx
        .query_row(
            "SELECT fifo FROM queue_kinds WHERE queue = ?1",
            [queue],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if stored != fifo {
        let existing = if stored {
            QueueKind::Fifo
        } else {
            QueueKind::Standard
        };
        return Err(QueueError::KindMismatch {
            queue: queue.to_owned(),
            existing,
        });
    }
    tx.commit().map_err(backend)
}

fn backend(e: rusqlite::Error) -> QueueError {
    QueueError::Backend(format!("sqlite: {e}"))
}

fn encode_attributes(a: &BTreeMap<String, String>) -> Result<String, QueueError> {
    serde_json::to_string(a).map_err(|e| QueueError::Invalid(e.to_string()))
}

fn decode_attributes(text: &str) -> Result<BTreeMap<String, String>, QueueError> {
    serde_json::from_str(text).map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats as RFC 3339")
}

/// Moves one message row (by `seq`) to the dead letters of its queue.
fn move_to_dead_letters(c: &Connection, seq: i64, reason: &str) -> Result<(), QueueError> {
    exec(c,
        "INSERT INTO queue_dead_letters (id, queue, body, attributes, reason, receive_count, failed_at, group_id)
         SELECT id, queue, body, attributes, ?2, receive_count, ?3, group_id FROM queue_messages WHERE seq = ?1",
        params![seq, reason, now_rfc3339()],
    )
    .map_err(backend)?;
    exec(c, "DELETE FROM queue_messages WHERE seq = ?1", [seq]).map_err(backend)?;
    Ok(())
}

struct Ready {
    seq: i64,
    id: String,
    body: String,
    attributes: String,
    receive_count: u32,
    group: Option<String>,
}

fn ready_row(r: &Row<'_>) -> rusqlite::Result<Ready> {
    Ok(Ready {
        seq: r.get(0)?,
        id: r.get(1)?,
        body: r.get(2)?,
        attributes: r.get(3)?,
        receive_count: r.get(4)?,
        group: r.get(5)?,
    })
}

const READY_STANDARD: &str = "SELECT seq, id, body, attributes, receive_count, group_id
     FROM queue_messages
     WHERE queue = ?1 AND visible_at_ms <= ?2
     ORDER BY visible_at_ms, seq LIMIT ?3";

/// The oldest message of each group, if it is visible: an older one of the same group is
/// either in flight (the group is blocked) or visible itself (and goes first).
const READY_FIFO: &str = "SELECT m.seq, m.id, m.body, m.attributes, m.receive_count, m.group_id
     FROM queue_messages m
     WHERE m.queue = ?1 AND m.visible_at_ms <= ?2
       AND NOT EXISTS (SELECT 1 FROM queue_messages older
                       WHERE older.queue = m.queue AND older.group_id = m.group_id
                         AND older.seq < m.seq)
     ORDER BY m.seq LIMIT ?3";

/// One non-blocking receive attempt, in one write transaction so two receivers never get
/// the same message.
fn receive_now(
    c: &mut Connection,
    queue: &str,
    kind: QueueKind,
    max: usize,
    max_receive_count: u32,
    visibility: Duration,
) -> Result<Vec<Received>, QueueError> {
    let ready = match kind {
        QueueKind::Standard => READY_STANDARD,
        QueueKind::Fifo => READY_FIFO,
    };
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let now = now_millis();
    let mut out = Vec::new();
    // Dead-lettered rows free their slot, so look again until full or nothing is ready.
    while out.len() < max {
        let rows = {
            let mut stmt = tx.prepare_cached(ready).map_err(backend)?;
            let limit = i64::try_from(max - out.len()).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![queue, now, limit], ready_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows
        };
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if max_receive_count > 0 && row.receive_count >= max_receive_count {
                move_to_dead_letters(&tx, row.seq, MAX_RECEIVES_REASON)?;
                continue;
            }
            let receipt = Uuid::new_v4().to_string();
            exec(
                &tx,
                "UPDATE queue_messages SET receive_count = receive_count + 1, receipt = ?2,
                 visible_at_ms = ?3 WHERE seq = ?1",
                params![row.seq, receipt, now.saturating_add(millis(visibility))],
            )
            .map_err(backend)?;
            out.push(Received {
                id: row.id,
                receipt,
                body: row.body,
                receive_count: row.receive_count + 1,
                attributes: decode_attributes(&row.attributes)?,
                group: row.group,
            });
        }
    }
    tx.commit().map_err(backend)?;
    Ok(out)
}

struct NewMessage {
    id: String,
    body: String,
    attributes: String,
    delay: Duration,
    group: Option<String>,
}

fn insert_message(c: &Connection, queue: &str, m: &NewMessage) -> Result<(), QueueError> {
    exec(
        c,
        "INSERT INTO queue_messages (id, queue, body, attributes, visible_at_ms, group_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            m.id,
            queue,
            m.body,
            m.attributes,
            now_millis().saturating_add(millis(m.delay)),
            m.group
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Within the window: the id of the message first sent with `dedup_id`. Otherwise records
/// `message_id` as that message and returns `None`.
fn first_sent_with(
    c: &Connection,
    queue: &str,
    dedup_id: &str,
    message_id: &str,
    now: i64,
) -> Result<Option<String>, QueueError> {
    let first: Option<String> = c
        .prepare_cached(
            "SELECT message_id FROM queue_dedup
             WHERE queue = ?1 AND dedup_id = ?2 AND expires_at_ms > ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![queue, dedup_id, now], |r| r.get(0))
                .optional()
        })
        .map_err(backend)?;
    if first.is_none() {
        exec(
            c,
            "INSERT OR REPLACE INTO queue_dedup (queue, dedup_id, message_id, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                queue,
                dedup_id,
                message_id,
                now.saturating_add(millis(DEDUP_WINDOW))
            ],
        )
        .map_err(backend)?;
    }
    Ok(first)
}

fn count(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<u64, QueueError> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get::<_, u64>(0)))
        .map_err(backend)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, message: &OutMessage) -> Result<String, QueueError> {
        Ok(self
            .send_batch(std::slice::from_ref(message))
            .await?
            .remove(0))
    }

    fn kind(&self) -> QueueKind {
        self.kind
    }

    async fn send_batch(&self, messages: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        let queue = self.name.clone();
        let rows = messages
            .iter()
            .map(|m| {
                message_rules::check(self.kind, m)?;
                let row = NewMessage {
                    id: Uuid::new_v4().to_string(),
                    body: m.body.clone(),
                    attributes: encode_attributes(&m.attributes)?,
                    delay: m.delay,
                    group: m.group.clone(),
                };
                Ok((row, m.dedup_id.clone()))
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        let (ids, inserted) = self
            .conn
            .run(move |c| -> Result<(Vec<String>, usize), QueueError> {
                let tx = c.transaction().map_err(backend)?;
                let now = now_millis();
                exec(
                    &tx,
                    "DELETE FROM queue_dedup WHERE queue = ?1 AND expires_at_ms <= ?2",
                    params![queue, now],
                )
                .map_err(backend)?;
                let mut ids = Vec::with_capacity(rows.len());
                let mut inserted = 0;
                for (row, dedup_id) in &rows {
                    if let Some(d) = dedup_id {
                        if let Some(first) = first_sent_with(&tx, &queue, d, &row.id, now)? {
                            ids.push(first);
                            continue;
                        }
                    }
                    insert_message(&tx, &queue, row)?;
                    ids.push(row.id.clone());
                    inserted += 1;
                }
                tx.commit().map_err(backend)?;
                Ok((ids, inserted))
            })
            .await?;
        // One wake-up per message, not all waiters: a herd of receivers would each take the
        // write lock to find nothing.
        for _ in 0..inserted {
            self.arrived.notify_one();
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let started = Instant::now();
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (queue, kind, max_rc) = (self.name.clone(), self.kind, self.max_receive_count);
            let got = self
                .conn
                .run(move |c| receive_now(c, &queue, kind, max, max_rc, visibility))
                .await?;
            let waited = started.elapsed();
            if !got.is_empty() || max == 0 || waited >= wait {
                return Ok(got);
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep(POLL_INTERVAL.min(wait - waited)) => {}
            }
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let (queue, receipt) = (self.name.clone(), receipt.to_owned());
        self.conn
            .run(move |c| {
                exec(
                    c,
                    "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2",
                    params![queue, receipt],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let (queue, receipt) = (self.name.clone(), receipt.to_owned());
        self.conn
            .run(move |c| {
                let changed = exec(c,
                        "UPDATE queue_messages SET visible_at_ms = ?3 WHERE queue = ?1 AND receipt = ?2",
                        params![queue, receipt, now_millis().saturating_add(millis(delay))],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(QueueError::InvalidReceipt);
                }
                Ok(())
            })
            .await
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let (queue, receipt, reason) = (
            self.name.clone(),
            message.receipt.clone(),
            reason.to_owned(),
        );
        self.conn
            .run(move |c| {
                let tx = c.transaction().map_err(backend)?;
                let seq: Option<i64> = tx
                    .query_row(
                        "SELECT seq FROM queue_messages WHERE queue = ?1 AND receipt = ?2",
                        params![queue, receipt],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                let seq = seq.ok_or(QueueError::InvalidReceipt)?;
                move_to_dead_letters(&tx, seq, &reason)?;
                tx.commit().map_err(backend)
            })
            .await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let queue = self.name.clone();
        self.conn
            .run(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT id, body, attributes, reason, receive_count, failed_at, group_id
                         FROM queue_dead_letters WHERE queue = ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(backend)?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows = stmt
                    .query_map(params![queue, limit], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, u32>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, Option<String>>(6)?,
                        ))
                    })
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                rows.into_iter()
                    .map(
                        |(id, body, attributes, reason, receive_count, failed_at, group)| {
                            Ok(DeadLetter {
                                id,
                                body,
                                reason,
                                receive_count,
                                failed_at: Some(
                                    OffsetDateTime::parse(&failed_at, &Rfc3339)
                                        .map_err(|e| QueueError::Corrupt(e.to_string()))?,
                                ),
                                attributes: decode_attributes(&attributes)?,
                                group,
                            })
                        },
                    )
                    .collect()
            })
            .await
    }

    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        let queue = self.name.clone();
        let ids = ids.map(<[String]>::to_vec);
        self.conn
            .run(move |c| {
                let tx = c.transaction().map_err(backend)?;
                let selected: Vec<String> = match ids {
                    Some(ids) => ids,
                    None => {
                        let mut stmt = tx
                            .prepare(
                                "SELECT id FROM queue_dead_letters WHERE queue = ?1 ORDER BY seq",
                            )
                            .map_err(backend)?;
                        let all = stmt
                            .query_map([&queue], |r| r.get(0))
                            .map_err(backend)?
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(backend)?;
                        all
                    }
                };
                let mut moved = 0;
                for id in selected {
                    let row = tx
                        .query_row(
                            "SELECT body, attributes, group_id FROM queue_dead_letters
                             WHERE queue = ?1 AND id = ?2",
                            params![queue, id],
                            |r| {
                                Ok(NewMessage {
                                    id: id.clone(),
                                    body: r.get(0)?,
                                    attributes: r.get(1)?,
                                    delay: Duration::ZERO,
                                    group: r.get(2)?,
                                })
                            },
                        )
                        .optional()
                        .map_err(backend)?;
                    let Some(row) = row else { continue };
                    exec(&tx, "DELETE FROM queue_dead_letters WHERE id = ?1", [&id])
                        .map_err(backend)?;
                    insert_message(&tx, &queue, &row)?;
                    moved += 1;
                }
                tx.commit().map_err(backend)?;
                Ok(moved)
            })
            .await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let queue = self.name.clone();
        self.conn
            .run(move |c| {
                let now = now_millis();
                Ok(QueueDepth {
                    visible: count(
                        c,
                        "SELECT COUNT(*) FROM queue_messages WHERE queue = ?1 AND visible_at_ms <= ?2",
                        params![queue, now],
                    )?,
                    in_flight: count(
                        c,
                        "SELECT COUNT(*) FROM queue_messages
                         WHERE queue = ?1 AND visible_at_ms > ?2 AND receive_count > 0",
                        params![queue, now],
                    )?,
                    delayed: count(
                        c,
                        "SELECT COUNT(*) FROM queue_messages
                         WHERE queue = ?1 AND visible_at_ms > ?2 AND receive_count = 0",
                        params![queue, now],
                    )?,
                    dead: count(
                        c,
                        "SELECT COUNT(*) FROM queue_dead_letters WHERE queue = ?1 AND ?2 = ?2",
                        params![queue, now],
                    )?,
                })
            })
            .await
    }
}
