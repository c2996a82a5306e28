//! One reconcile per referral/opportunity pair, both directions in one place (see
//! `docs/reliability.md` and the design in the repository's docs). A message names its
//! pair by the key (the opportunity id); the queues hand out one message per key at a
//! time, and every write is conditional besides, so a duplicate delivery or an expired
//! visibility costs a retry, never a wrong write.
//!
//! - [`key`]: the pair key and the ids derived from it.
//! - [`merge`]: the three-way merge against the stored base (pure).
//! - `linked`: a linked pair; `create`: a pair that has no link yet.

mod create;
mod create_base;
mod crm;
mod customer;
mod decoration;
pub mod key;
mod lead;
mod linked;
pub mod merge;
mod moves;
mod parties;
mod referral;
mod related;
mod sides;
mod trail;

use crate::crosswalk::Base;
use crate::engine::{Engine, SyncError};

pub use crate::engine::messages::{Origin, SyncMessage};
pub use create::REFUSED_STATE_PREFIX;
pub use sides::Currencies;

use tracing::Instrument;
use trail::Trail;

/// Tries of one reconcile after a 412 or a lost link race before the queue retries it.
const ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// The referral arrived and its opportunity was created.
    OpportunityCreated {
        referral_id: String,
        opportunity_id: String,
    },
    /// The referral, a new lead, landed as a Dynamics 365 lead (its id is the pair key).
    LeadCreated {
        referral_id: String,
        lead_id: String,
    },
    /// The flagged opportunity got its co-sell referral.
    ReferralCreated {
        referral_id: String,
        opportunity_id: String,
    },
    /// One side or both were written.
    Updated {
        referral_id: String,
        opportunity_id: String,
    },
    /// Nothing to write: our own echo, or a change to nothing mapped.
    Unchanged {
        referral_id: Option<String>,
        opportunity_id: String,
    },
    /// Deliberately not synced (sync flag off, not co-sell, deleted, ...).
    Skipped { reason: String },
    /// The message was under the wrong key: this is the message for the right one, and
    /// nothing else was done. Or the pair moved there (its lead was qualified): the rest of
    /// the reconcile is that key's.
    Forwarded { to: SyncMessage },
}

/// How one attempt ended short of an outcome.
#[derive(Debug)]
enum Step {
    /// A conditional write lost (412, or the link moved): read again and plan again.
    Raced(String),
    Failed(SyncError),
}

impl From<SyncError> for Step {
    fn from(e: SyncError) -> Self {
        Step::Failed(e)
    }
}

/// What one attempt learned that the next one must keep: the base after the writes it
/// made before it lost a race (both sides then held those values).
#[derive(Default)]
struct Carried {
    base: Option<Base>,
}

/// Reconciles the pair `message` names. A failure leaves an audit entry saying what was
/// attempted; a permanent one is also shown on the opportunity where Partner Center
/// refused it.
pub async fn reconcile(engine: &Engine, message: &SyncMessage) -> Result<PairOutcome, SyncError> {
    let key = message.key.trim();
    // Every line of the sync names the pair, both ids (the referral's once known) and the
    // MS-CorrelationId of the latest Partner Center request (recorded by the client).
    let span = tracing::info_span!(
        "sync",
        pair_key = key,
        opportunity_id = key,
        referral_id = tracing::field::Empty,
        origin = ?message.origin,
        correlation_id = tracing::field::Empty
    );
    if let Some(referral_id) = message.referral_id.as_deref().map(str::trim) {
        span.record("referral_id", referral_id);
    }
    let result = reconcile_in_span(engine, message)
        .instrument(span.clone())
        .await;
    if let Ok(
        PairOutcome::ReferralCreated { referral_id, .. }
        | PairOutcome::OpportunityCreated { referral_id, .. }
        | PairOutcome::LeadCreated { referral_id, .. }
        | PairOutcome::Updated { referral_id, .. },
    ) = &result
    {
        span.record("referral_id", referral_id.as_str());
        let _in_span = span.enter();
        tracing::debug!("pair reconciled");
    }
    result
}

/// The body of [`reconcile`], inside the sync's span.
async fn reconcile_in_span(
    engine: &Engine,
    message: &SyncMessage,
) -> Result<PairOutcome, SyncError> {
    let key = message.key.trim();
    let mut trail = Trail::new(message.origin, key, message.referral_id.as_deref());
    let mut carried = Carried::default();
    let mut attempt = 1;
    let result = loop {
        match once(engine, message, &mut trail, &mut carried).await {
            Ok(outcome) => break Ok(outcome),
            Err(Step::Raced(why)) if attempt < ATTEMPTS => {
                tracing::info!(key, attempt, reason = %why, "lost a race; reading both sides again");
                attempt += 1;
            }
            Err(Step::Raced(why)) => {
                break Err(SyncError::conflict(format!(
                    "the pair kept changing while it was reconciled: {why}"
                )))
            }
            Err(Step::Failed(e)) => break Err(e),
        }
    };
    if let Err(e) = &result {
        tracing::warn!(key, error = %e, "reconcile failed");
        if let Err(store) = engine.store.append_audit(&trail.failed(e)).await {
            tracing::warn!(key, error = %store, "audit entry of a failed reconcile not written");
        }
    }
    result
}

async fn once(
    engine: &Engine,
    message: &SyncMessage,
    trail: &mut Trail,
    carried: &mut Carried,
) -> Result<PairOutcome, Step> {
    let key = message.key.trim();
    let store = engine.store.as_ref();
    if let Some(link) = store
        .get_link_by_opportunity(key)
        .await
        .map_err(SyncError::from)?
    {
        tracing::Span::current().record("referral_id", link.referral_id.as_str());
        if lead::is_lead_pair(&link) {
            return Box::pin(lead::reconcile(engine, message, link, None, None, trail)).await;
        }
        let known = linked::Known::default();
        return linked::reconcile(engine, message, link, known, trail, carried).await;
    }
    // A related referral's webhook, not yet under its engagement's pair.
    if message.origin == Origin::Related {
        return related::route(engine, message).await;
    }
    match message.referral_id.as_deref().map(str::trim) {
        Some(referral_id) if !referral_id.is_empty() => {
            // Linked to another opportunity: that key's message, not ours.
            if let Some(link) = store
                .get_link_by_referral(referral_id)
                .await
                .map_err(SyncError::from)?
            {
                return Ok(PairOutcome::Forwarded {
                    to: message.forwarded_to(&link.opportunity_id),
                });
            }
            create::from_referral(engine, message, referral_id, trail, carried).await
        }
        _ => create::from_opportunity(engine, message, trail, carried).await,
    }
}
