//! One message body in, one sync out: the same engine calls as the Lambda workers.

use cosell::engine::inbound::{self, InboundOutcome};
use cosell::engine::outbound::{self, OutboundOutcome};
use cosell::engine::{Engine, InboundMessage, OutboundMessage};

use super::worker::Handled;

pub async fn inbound(engine: &Engine, body: &str) -> Handled {
    let message = InboundMessage::parse(body)?;
    let result = inbound::sync_referral(engine, &message).await;
    match &result {
        Ok(InboundOutcome::Created { opportunity_id }) => {
            tracing::info!(referral = %message.referral_id, opportunity = %opportunity_id, "opportunity created")
        }
        Ok(InboundOutcome::Updated { opportunity_id }) => {
            tracing::info!(referral = %message.referral_id, opportunity = %opportunity_id, "opportunity updated")
        }
        Ok(InboundOutcome::Skipped { reason }) => {
            tracing::info!(referral = %message.referral_id, %reason, "referral skipped")
        }
        Ok(InboundOutcome::Unchanged { .. }) | Err(_) => {}
    }
    Ok(result.map(|_| ()))
}

pub async fn outbound(engine: &Engine, body: &str) -> Handled {
    let message = OutboundMessage::parse(body)?;
    let result = outbound::sync_opportunity(engine, &message).await;
    match &result {
        Ok(OutboundOutcome::Created { referral_id }) => {
            tracing::info!(opportunity = %message.opportunity_id, referral = %referral_id, "referral created")
        }
        Ok(OutboundOutcome::Updated { referral_id }) => {
            tracing::info!(opportunity = %message.opportunity_id, referral = %referral_id, "referral updated")
        }
        Ok(OutboundOutcome::Skipped { reason }) => {
            tracing::debug!(opportunity = %message.opportunity_id, %reason, "opportunity skipped")
        }
        Ok(OutboundOutcome::Unchanged { .. }) | Err(_) => {}
    }
    Ok(result.map(|_| ()))
}

/// The referral an inbound body is about (unreadable bodies have none).
pub fn inbound_key(body: &str) -> Option<String> {
    InboundMessage::parse(body)
        .ok()
        .map(|m| m.referral_id.to_ascii_lowercase())
}

/// The opportunity an outbound body is about.
pub fn outbound_key(body: &str) -> Option<String> {
    OutboundMessage::parse(body)
        .ok()
        .map(|m| m.opportunity_id.to_ascii_lowercase())
}
