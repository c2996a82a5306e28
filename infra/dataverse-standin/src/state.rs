//! The stand-in's in-memory organization: tables of rows, a global row version (etags and
//! `versionnumber` come from it), deletion tombstones for change tracking, access tokens,
//! fault rules and request counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use crate::faults::Fault;

pub const API_PREFIX: &str = "/api/data/v9.2/";

/// Who the stand-in is and which credentials it accepts.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// The application user's id (`WhoAmI`).
    pub user_id: String,
    pub token_lifetime_secs: u64,
    /// The connector's custom columns exist at start (false: as in a new org, until
    /// `cosell setup dataverse` creates them).
    pub connector_columns: bool,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            tenant: "dataverse-standin-tenant".into(),
            client_id: "dataverse-standin-client".into(),
            client_secret: "dataverse-standin-secret".into(),
            user_id: "11111111-2222-3333-4444-555555555555".into(),
            token_lifetime_secs: 3599,
            connector_columns: true,
        }
    }
}

/// A table's names as the Web API exposes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    pub set: &'static str,
    pub logical: &'static str,
    pub key: &'static str,
}

pub const TABLES: [TableDef; 6] = [
    TableDef {
        set: "opportunities",
        logical: "opportunity",
        key: "opportunityid",
    },
    TableDef {
        set: "accounts",
        logical: "account",
        key: "accountid",
    },
    TableDef {
        set: "contacts",
        logical: "contact",
        key: "contactid",
    },
    TableDef {
        set: "transactioncurrencies",
        logical: "transactioncurrency",
        key: "transactioncurrencyid",
    },
    TableDef {
        set: "opportunitycloses",
        logical: "opportunityclose",
        key: "activityid",
    },
    TableDef {
        set: "leads",
        logical: "lead",
        key: "leadid",
    },
];

pub fn table_def(set: &str) -> Option<TableDef> {
    TABLES
        .iter()
        .chain(&crate::solution_tables::TABLES)
        .copied()
        .find(|t| t.set == set)
}

#[derive(Debug, Clone)]
pub struct Row {
    pub data: Map<String, Value>,
    pub version: u64,
}

#[derive(Debug, Default)]
pub struct Table {
    pub rows: BTreeMap<String, Row>,
    /// `(version, id)` of each delete, for change tracking.
    pub tombstones: Vec<(u64, String)>,
    pub change_tracking: bool,
    /// Kept in step with `rows` by `insert_row`, `update_row` and `delete_row`.
    pub index: crate::index::ColumnIndexes,
}

pub struct Inner {
    pub tables: HashMap<&'static str, Table>,
    pub version: u64,
    /// Bumped to expire every delta token handed out so far.
    pub delta_epoch: u64,
    pub access_tokens: HashMap<String, Instant>,
    pub faults: Vec<Fault>,
    pub requests: BTreeMap<String, u64>,
    pub rejections: Vec<crate::validation::WriteRejection>,
    /// The opportunity's custom columns, keys and the user's privileges.
    pub schema: crate::schema::Schema,
}

pub struct State {
    pub config: StandinConfig,
    pub base_url: Url,
    inner: Mutex<Inner>,
}

pub fn now_text() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid");
    now.format(&Rfc3339).expect("UTC time formats")
}

pub fn today_text() -> String {
    let d = OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

impl State {
    pub fn new(config: StandinConfig, base_url: Url) -> Arc<State> {
        let mut tables = HashMap::new();
        for t in TABLES.iter().chain(&crate::solution_tables::TABLES) {
            tables.insert(
                t.set,
                Table {
                    change_tracking: t.set != "opportunitycloses",
                    ..Table::default()
                },
            );
        }
        let mut inner = Inner {
            tables,
            version: 1000,
            delta_epoch: 1,
            access_tokens: HashMap::new(),
            faults: Vec::new(),
            requests: BTreeMap::new(),
            rejections: Vec::new(),
            schema: crate::schema::Schema::new(config.connector_columns),
        };
        for (id, iso, name, symbol, rate) in [
            (USD_ID, "USD", "US Dollar", "$", 1.0),
            (EUR_ID, "EUR", "Euro", "€", 0.92),
        ] {
            let mut data = Map::new();
            for (k, v) in [
                ("transactioncurrencyid", json!(id)),
                ("isocurrencycode", json!(iso)),
                ("currencyname", json!(name)),
                ("currencysymbol", json!(symbol)),
                ("exchangerate", json!(rate)),
            ] {
                data.insert(k.to_string(), v);
            }
            inner.insert_row("transactioncurrencies", id.to_string(), data);
        }
        Arc::new(State {
            config,
            base_url,
            inner: Mutex::new(inner),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (an injected drop) leaves the data consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `{base}api/data/v9.2/{path}`.
    pub fn api_url(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.base_url.as_str().trim_end_matches('/'),
            API_PREFIX,
            path
        )
    }
}

/// The seeded base currency (US Dollar) and the Euro.
pub const USD_ID: &str = "00000000-0000-0000-0001-000000000840";
pub const EUR_ID: &str = "00000000-0000-0000-0001-000000000978";

impl Inner {
    pub fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    pub fn table(&self, set: &str) -> &Table {
        self.tables.get(set).expect("known entity set")
    }

    pub fn table_mut(&mut self, set: &str) -> &mut Table {
        self.tables.get_mut(set).expect("known entity set")
    }

    pub fn exists(&self, set: &str, id: &str) -> bool {
        self.tables
            .get(set)
            .is_some_and(|t| t.rows.contains_key(id))
    }

    /// Stores a new row, stamping key, dates and version.
    pub fn insert_row(&mut self, set: &str, id: String, mut data: Map<String, Value>) -> u64 {
        let def = table_def(set).expect("known entity set");
        let version = self.next_version();
        let now = now_text();
        data.insert(def.key.to_string(), json!(id));
        data.insert("createdon".into(), json!(now));
        data.insert("modifiedon".into(), json!(now));
        data.insert("versionnumber".into(), json!(version));
        let table = self.table_mut(set);
        table.index.add(&id, &data);
        table.rows.insert(id, Row { data, version });
        version
    }

    /// Merges `changes` into a row, bumping its version and `modifiedon`.
    pub fn update_row(&mut self, set: &str, id: &str, changes: Map<String, Value>) -> Option<u64> {
        let version = self.next_version();
        let table = self.table_mut(set);
        let row = table.rows.get_mut(id)?;
        table.index.remove(id, &row.data);
        for (k, v) in changes {
            if v.is_null() {
                row.data.remove(&k);
            } else {
                row.data.insert(k, v);
            }
        }
        row.version = version;
        row.data.insert("modifiedon".into(), json!(now_text()));
        row.data.insert("versionnumber".into(), json!(version));
        table.index.add(id, &row.data);
        Some(version)
    }

    /// Deletes a row (an opportunity with its solution rows, each with a tombstone).
    pub fn delete_row(&mut self, set: &str, id: &str) -> bool {
        if set == "opportunities" && self.table(set).rows.contains_key(id) {
            for (child, row) in crate::solution_tables::children_of(self, id) {
                self.delete_row(child, &row);
            }
        }
        let version = self.next_version();
        let table = self.table_mut(set);
        let Some(row) = table.rows.remove(id) else {
            return false;
        };
        table.index.remove(id, &row.data);
        table.tombstones.push((version, id.to_string()));
        true
    }
}

/// A row as the API returns it: `@odata.etag` first, then the columns.
pub fn representation(row: &Row, select: Option<&[String]>, key: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("@odata.etag".into(), json!(etag(row.version)));
    for (k, v) in &row.data {
        let wanted = match select {
            None => true,
            Some(cols) => k == key || cols.iter().any(|c| c == k),
        };
        if wanted {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}
