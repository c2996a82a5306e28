//! Webhook deliveries as Partner Center makes them: a signed POST per event to the registered
//! URL, retried a few times, with each outcome recorded for tests.

use std::sync::Arc;

use base64::Engine;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::state::{DeliveryRecord, State};

pub const TEST_EVENT: &str = "test-created";

#[derive(Debug, Clone)]
pub(crate) struct PendingDelivery {
    url: String,
    body: String,
    event_name: String,
    referral_id: Option<String>,
    correlation_id: Option<String>,
    copies: u32,
    /// The registration's `SignatureTokenToMsSignatureHeader`: sign in `x-ms-signature`.
    signature_in_ms_header: bool,
}

fn change_date(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]+00:00"
    );
    t.format(fmt).expect("UTC time formats")
}

/// The documented `ResourceUri` of a referral event: on the webhook API's host, not the
/// referrals API's ("{baseURL}/engagements/v1/referrals/{ReferralID}").
pub const EVENT_RESOURCE_BASE: &str =
    "https://api.partnercenter.microsoft.com/engagements/v1/referrals/";

pub(crate) fn event_resource_uri(referral_id: &str) -> String {
    format!("{EVENT_RESOURCE_BASE}{referral_id}")
}

/// Queues the event for delivery when a registration asks for it, applying delivery faults.
pub(crate) fn emit(
    state: &Arc<State>,
    event_name: &str,
    referral_id: Option<&str>,
    correlation_id: Option<String>,
) {
    let pending = {
        let mut inner = state.lock();
        let Some(reg) = &inner.registration else {
            return;
        };
        let url = reg["WebhookUrl"].as_str().unwrap_or_default().to_string();
        let signature_in_ms_header = reg["SignatureTokenToMsSignatureHeader"] == true;
        let wanted = reg["WebhookEvents"].as_array().is_some_and(|evs| {
            evs.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(event_name))
            })
        });
        if !wanted {
            return;
        }
        let resource = match referral_id {
            Some(id) => event_resource_uri(id),
            None => format!(
                "{}webhooks/v1/registration/validationEvents/{}",
                state.base_url,
                correlation_id.clone().unwrap_or_default()
            ),
        };
        let body = json!({
            "EventName": event_name,
            "ResourceUri": resource,
            "ResourceName": referral_id.map(|_| "referral").unwrap_or("test"),
            "AuditUri": Value::Null,
            "ResourceChangeUtcDate": change_date(OffsetDateTime::now_utc()),
        })
        .to_string();
        let faults = &mut inner.delivery_faults;
        if faults.suppress > 0 {
            faults.suppress -= 1;
            inner.deliveries.push(DeliveryRecord {
                event_name: event_name.to_string(),
                referral_id: referral_id.map(str::to_string),
                body,
                outcome: "suppressed".into(),
                attempts: 0,
                last_status: None,
            });
            state.deliveries_changed.notify_waiters();
            return;
        }
        let copies = if faults.duplicate > 0 {
            faults.duplicate -= 1;
            2
        } else {
            1
        };
        let pending = PendingDelivery {
            url,
            body,
            event_name: event_name.to_string(),
            referral_id: referral_id.map(str::to_string),
            correlation_id,
            copies,
            signature_in_ms_header,
        };
        if faults.hold {
            inner.held.push(pending);
            return;
        }
        pending
    };
    let state = state.clone();
    tokio::spawn(async move { deliver(&state, pending).await });
}

/// Sends the held events, newest first when `reverse` (an out-of-order delivery).
pub(crate) fn release(state: &Arc<State>, reverse: bool) -> usize {
    let mut held = {
        let mut inner = state.lock();
        inner.delivery_faults.hold = false;
        std::mem::take(&mut inner.held)
    };
    if reverse {
        held.reverse();
    }
    let n = held.len();
    let state = state.clone();
    tokio::spawn(async move {
        for p in held {
            deliver(&state, p).await;
        }
    });
    n
}

async fn deliver(state: &Arc<State>, p: PendingDelivery) {
    let signature = state.signer.sign(p.body.as_bytes()).to_bytes();
    let auth = format!(
        "Signature {}",
        base64::engine::general_purpose::STANDARD.encode(signature)
    );
    for _ in 0..p.copies {
        let mut attempts = 0;
        let mut last_status = None;
        let mut delivered = false;
        while attempts < state.config.delivery_attempts.max(1) {
            attempts += 1;
            let result = state
                .http
                .post(&p.url)
                .timeout(state.config.delivery_timeout)
                .header("Content-Type", "application/json")
                .header(
                    if p.signature_in_ms_header {
                        "x-ms-signature"
                    } else {
                        "Authorization"
                    },
                    &auth,
                )
                .header("X-MS-Certificate-Url", state.cert_url().as_str())
                .header("X-MS-Signature-Algorithm", "rsa-sha256")
                .body(p.body.clone())
                .send()
                .await;
            match result {
                Ok(resp) => {
                    last_status = Some(resp.status().as_u16());
                    if resp.status().is_success() {
                        delivered = true;
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e.without_url(), "webhook delivery attempt failed")
                }
            }
            tokio::time::sleep(state.config.delivery_backoff * attempts).await;
        }
        let mut inner = state.lock();
        if let Some(c) = &p.correlation_id {
            let status = if delivered { "completed" } else { "failed" };
            inner.validation_events.insert(c.clone(), status.into());
        }
        inner.deliveries.push(DeliveryRecord {
            event_name: p.event_name.clone(),
            referral_id: p.referral_id.clone(),
            body: p.body.clone(),
            outcome: if delivered { "delivered" } else { "failed" }.into(),
            attempts,
            last_status,
        });
        drop(inner);
        state.deliveries_changed.notify_waiters();
    }
}
