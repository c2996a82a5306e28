//! Keeps Partner Center's webhook registration pointing at our intake URL.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use crate::engine::SyncError;
use crate::partner_center::{Cleared, PartnerCenterClient, Registration};
use crate::store::{Store, StoreError};

/// Sync-state key of the registration last made.
pub const REGISTRATION_STATE_KEY: &str = "webhook/registration";

/// Lost races on an unconditional-in-spirit state write before giving up.
const OVERWRITE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationChange {
    Registered,
    Updated,
    AlreadyCurrent,
}

/// What is stored under [`REGISTRATION_STATE_KEY`]. After [`remove_webhook`] the URL is
/// `None` and the events are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub webhook_url: Option<String>,
    pub webhook_events: Vec<String>,
    /// When this was recorded (RFC 3339, UTC).
    pub recorded_at: String,
}

pub async fn ensure_webhook(
    pc: &PartnerCenterClient,
    store: &dyn Store,
    url: &Url,
    events: &[String],
) -> Result<RegistrationChange, SyncError> {
    if events.is_empty() {
        return Err(SyncError::permanent(
            "no webhook events to register: give at least one event name",
        ));
    }
    let wanted: Vec<&str> = events.iter().map(String::as_str).collect();
    let change = match pc.get_registration().await? {
        None => {
            pc.register(url.as_str(), &wanted).await?;
            RegistrationChange::Registered
        }
        Some(current) if is_current(&current, url, events) => RegistrationChange::AlreadyCurrent,
        Some(_) => {
            pc.update_registration(url.as_str(), &wanted).await?;
            RegistrationChange::Updated
        }
    };
    tracing::info!(url = %url, ?change, "webhook registration ensured");
    record(store, Some(url.as_str()), events).await?;
    Ok(change)
}

/// Retires the registration: the API has no DELETE, so it is updated to no events (or left
/// in place when the service refuses that, which the answer says). The recorded state is
/// cleared either way.
pub async fn remove_webhook(
    pc: &PartnerCenterClient,
    store: &dyn Store,
) -> Result<Cleared, SyncError> {
    let cleared = pc.clear_registration().await?;
    record(store, None, &[]).await?;
    tracing::info!(?cleared, "webhook registration retired");
    Ok(cleared)
}

/// The registration this connector last recorded, `None` when none is (or after removal).
pub async fn recorded_registration(
    store: &dyn Store,
) -> Result<Option<RegistrationRecord>, StoreError> {
    let Some((value, _)) = store.get_state(REGISTRATION_STATE_KEY).await? else {
        return Ok(None);
    };
    let record: RegistrationRecord = serde_json::from_str(&value)
        .map_err(|e| StoreError::Corrupt(format!("{REGISTRATION_STATE_KEY}: {e}")))?;
    Ok(record.webhook_url.is_some().then_some(record))
}

/// Same URL and the same set of events (names compare case-insensitively, order ignored).
fn is_current(current: &Registration, url: &Url, events: &[String]) -> bool {
    let set = |names: &[String]| -> BTreeSet<String> {
        names
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect()
    };
    let same_url = Url::parse(&current.webhook_url).is_ok_and(|u| &u == url);
    same_url && set(&current.webhook_events) == set(events)
}

async fn record(store: &dyn Store, url: Option<&str>, events: &[String]) -> Result<(), StoreError> {
    let record = RegistrationRecord {
        webhook_url: url.map(str::to_string),
        webhook_events: events.to_vec(),
        recorded_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
    };
    let value = serde_json::to_string(&record).expect("plain struct serializes");
    overwrite_state(store, REGISTRATION_STATE_KEY, &value).await
}

/// Sets a state value whatever its current version (re-reading after a lost race): for
/// records where the latest writer is simply right.
pub(crate) async fn overwrite_state(
    store: &dyn Store,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    let mut last = None;
    for _ in 0..OVERWRITE_ATTEMPTS {
        let version = store.get_state(key).await?.map(|(_, v)| v);
        match store.put_state(key, value, version).await {
            Ok(_) => return Ok(()),
            Err(e @ StoreError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::conflict(format!("state {key}"))))
}
