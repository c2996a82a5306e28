//! A webhook delivery in; an inbound message (or a clear 4xx) out.
//!
//! Order of checks: size, signature (through the verifier), de-duplication by a hash of the
//! raw body, then routing. Partner Center retries anything that is not a 2xx, so every
//! failure on our side (store or queue down) is a 503 that leaves nothing half-done: a
//! delivery that was marked as seen but not queued is un-marked again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::engine::disposition;
use crate::engine::messages::{Origin, SyncMessage};
use crate::engine::registration::overwrite_state;
use crate::partner_center::event::{
    REFERRAL_CREATED, REFERRAL_UPDATED, RELATED_REFERRAL_CREATED, RELATED_REFERRAL_UPDATED,
    TEST_CREATED,
};
use crate::partner_center::webhook_verify::{Rejection, VerifiedEvent, WebhookVerifier};
use crate::queue::Queue;
use crate::store::{Store, StoreError};

/// How long a delivery is remembered for de-duplication.
pub const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Events are a few hundred bytes; refuse anything far larger before hashing or parsing it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sync-state key of the last validation (test) event that arrived and verified.
pub const TEST_EVENT_STATE_KEY: &str = "webhook/last-test-event";

/// Prefix of the de-duplication key; the rest is the hex SHA-256 of the raw body.
pub const DELIVERY_KEY_PREFIX: &str = "delivery/";

#[derive(Debug, Clone, PartialEq)]
pub struct IntakeResponse {
    pub status: u16,
    /// JSON body: `{"status":"queued",...}` or `{"error":{"code":..,"message":..}}`.
    pub body: serde_json::Value,
}

impl IntakeResponse {
    fn ok(body: serde_json::Value) -> Self {
        IntakeResponse { status: 200, body }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        IntakeResponse {
            status,
            body: json!({"error": {"code": code, "message": message.into()}}),
        }
    }
}

/// What is stored under [`TEST_EVENT_STATE_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestEventRecord {
    /// The event as Partner Center sent it.
    pub event: serde_json::Value,
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
}

/// The de-duplication key of a delivery body.
pub fn delivery_key(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut key = String::with_capacity(DELIVERY_KEY_PREFIX.len() + 64);
    key.push_str(DELIVERY_KEY_PREFIX);
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

pub async fn handle_webhook(
    verifier: &WebhookVerifier,
    store: &dyn Store,
    inbound: &dyn Queue,
    headers: &http::HeaderMap,
    body: &[u8],
) -> IntakeResponse {
    let answer = answer_webhook(verifier, store, inbound, headers, body).await;
    crate::telemetry::record::webhook_answered(answer.status);
    answer
}

/// [`handle_webhook`] before the answer is counted.
async fn answer_webhook(
    verifier: &WebhookVerifier,
    store: &dyn Store,
    inbound: &dyn Queue,
    headers: &http::HeaderMap,
    body: &[u8],
) -> IntakeResponse {
    if body.len() > MAX_BODY_BYTES {
        return rejected(&Rejection::TooLarge(MAX_BODY_BYTES));
    }
    let verified = match verifier.verify(headers, body).await {
        Ok(v) => v,
        Err(rejection) => return rejected(&rejection),
    };
    let name = verified.event.event_name.to_ascii_lowercase();
    if name == TEST_CREATED {
        return record_test_event(store, &verified).await;
    }
    let Some(event) = referral_event(&name, &verified) else {
        return IntakeResponse::error(
            400,
            "unknown_event",
            "the event is not one this connector handles",
        );
    };

    let key = delivery_key(body);
    match store.remember_delivery(&key, DEDUPE_TTL).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(referral_id = %event.referral_id, "duplicate webhook delivery");
            return IntakeResponse::ok(
                json!({"status": "duplicate", "referral_id": event.referral_id}),
            );
        }
        Err(e) => return store_unavailable(&e),
    }
    // Keyed by the pair: the linked opportunity, else the id the referral's opportunity gets.
    // A related referral's pair is found by the reconcile (its engagement's referral).
    let message = match event.related {
        true => Ok(SyncMessage::for_related(
            &event.referral_id,
            event.changed_at.clone(),
        )),
        false => {
            SyncMessage::for_referral(
                store,
                &event.referral_id,
                Origin::Referral,
                event.changed_at.clone(),
            )
            .await
        }
    };
    let queued = match message {
        Ok(message) => inbound
            .send(&disposition::queued(&message))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = queued {
        tracing::error!(error = %e, referral_id = %event.referral_id, "could not enqueue webhook event");
        // Un-mark it, or Partner Center's retry of this very delivery would be a "duplicate".
        if let Err(forget) = store.forget_delivery(&key).await {
            tracing::error!(error = %forget, "could not forget the delivery; the sweep will pick the referral up");
        }
        return IntakeResponse::error(
            503,
            "queue_unavailable",
            "the event could not be queued; retry later",
        );
    }
    tracing::info!(referral_id = %event.referral_id, event = name, "webhook event queued");
    IntakeResponse::ok(json!({"status": "queued", "referral_id": event.referral_id}))
}

/// The fixed answer for a refusal: a code and a message that echo nothing of the request.
/// The log line holds the code, and for an untrusted URL its host (sanitised and bounded).
pub fn rejected(rejection: &Rejection) -> IntakeResponse {
    match rejection {
        Rejection::UntrustedCertHost(host) => {
            tracing::warn!(code = rejection.code(), %host, "webhook delivery rejected")
        }
        _ => tracing::warn!(code = rejection.code(), "webhook delivery rejected"),
    }
    IntakeResponse::error(
        rejection.http_status(),
        rejection.code(),
        rejection.message(),
    )
}

/// What a referral event points at.
struct ReferralEvent {
    referral_id: String,
    changed_at: Option<String>,
    /// Another organization's referral in one of our engagements.
    related: bool,
}

/// The referral an event names; `None` for an event name we do not route.
fn referral_event(name: &str, verified: &VerifiedEvent) -> Option<ReferralEvent> {
    // A related referral's event points at that referral: "look at it" is all it says.
    let related = name == RELATED_REFERRAL_CREATED || name == RELATED_REFERRAL_UPDATED;
    if !(name == REFERRAL_CREATED || name == REFERRAL_UPDATED || related) {
        return None;
    }
    Some(ReferralEvent {
        referral_id: verified.referral_id.clone()?,
        changed_at: verified.event.resource_change_utc_date.clone(),
        related,
    })
}

async fn record_test_event(store: &dyn Store, verified: &VerifiedEvent) -> IntakeResponse {
    let record = TestEventRecord {
        event: serde_json::to_value(&verified.event).unwrap_or_default(),
        received_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
    };
    let value = serde_json::to_string(&record).expect("plain struct serializes");
    match overwrite_state(store, TEST_EVENT_STATE_KEY, &value).await {
        Ok(()) => {
            tracing::info!("webhook test event received and verified");
            IntakeResponse::ok(json!({"status": "test-event-received"}))
        }
        Err(e) => store_unavailable(&e),
    }
}

fn store_unavailable(e: &StoreError) -> IntakeResponse {
    tracing::error!(error = %e, "state store unavailable during webhook intake");
    IntakeResponse::error(
        503,
        "store_unavailable",
        "the connector's state store is unavailable; retry later",
    )
}

/// The last validation event that arrived and verified, for an operator's check.
pub async fn last_test_event(store: &dyn Store) -> Result<Option<TestEventRecord>, StoreError> {
    match store.get_state(TEST_EVENT_STATE_KEY).await? {
        Some((value, _)) => serde_json::from_str(&value)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{TEST_EVENT_STATE_KEY}: {e}"))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_key_is_the_hex_sha256_of_the_body() {
        let key = delivery_key(b"abc");
        assert_eq!(
            key,
            "delivery/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(delivery_key(b"abd"), key);
    }
}
