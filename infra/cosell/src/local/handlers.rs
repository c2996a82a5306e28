//! One message body in, one reconcile out: the same engine call as the Lambda function.

use cosell::engine::{reconcile_pair, Engine, PairOutcome, SyncMessage};

use super::worker::Handled;

pub async fn sync(engine: &Engine, body: &str) -> Handled {
    let message = SyncMessage::parse(body)?;
    let result = reconcile_pair(engine, &message).await;
    match &result {
        Ok(PairOutcome::OpportunityCreated {
            referral_id,
            opportunity_id,
        }) => {
            tracing::info!(referral = %referral_id, opportunity = %opportunity_id, "opportunity created")
        }
        Ok(PairOutcome::LeadCreated {
            referral_id,
            lead_id,
        }) => {
            tracing::info!(referral = %referral_id, lead = %lead_id, "lead created")
        }
        Ok(PairOutcome::ReferralCreated {
            referral_id,
            opportunity_id,
        }) => {
            tracing::info!(opportunity = %opportunity_id, referral = %referral_id, "referral created")
        }
        Ok(PairOutcome::Updated {
            referral_id,
            opportunity_id,
        }) => {
            tracing::info!(referral = %referral_id, opportunity = %opportunity_id, "pair updated")
        }
        Ok(PairOutcome::Skipped { reason }) => {
            tracing::debug!(key = %message.key, %reason, "pair skipped")
        }
        Ok(PairOutcome::Forwarded { to }) => {
            tracing::debug!(key = %message.key, to = %to.key, "forwarded to its pair's key")
        }
        Ok(PairOutcome::Unchanged { .. }) | Err(_) => {}
    }
    Ok(result)
}
