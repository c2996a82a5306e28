//! What a pair adopted after a lost answer or a crash takes for its base. Neither side's
//! current values can stand for it (either may have been edited between the create and the
//! retry), so a first create records the values it is planned with beforehand, and the
//! adoption takes them; without that record, the fields both sides agree on.

use crate::dataverse::Opportunity;
use crate::engine::{Engine, SyncError};
use crate::mapping::FieldValues;
use crate::partner_center::Referral;

use super::sides::{self, opportunity_side};
use super::Step;

/// Sync-state key prefix of the values a pair's first create was planned with (what both
/// sides held then), written before the create: a pair adopted after that create's answer
/// was lost takes them for its base, so an edit made on either side since is seen as one.
pub const CREATE_BASE_PREFIX: &str = "create-base/";

fn state_key(key: &str) -> String {
    format!("{CREATE_BASE_PREFIX}{key}")
}

/// Whether an earlier try of a create recorded the base it was planned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// An earlier try did: its create may be the one that went through.
    Earlier,
    /// This try did (or could not): a record found later is not the base of a record that
    /// already existed.
    Now,
}

/// Records the base a create is planned with, unless an earlier try of it did. Best effort:
/// without it an adoption falls back to the fields both sides agree on.
pub(super) async fn remember_create_base(
    engine: &Engine,
    key: &str,
    fields: &FieldValues,
) -> Recorded {
    let value = serde_json::to_string(fields).unwrap_or_default();
    match engine.store.put_state(&state_key(key), &value, None).await {
        Ok(_) => Recorded::Now,
        Err(crate::store::StoreError::Conflict { .. }) => Recorded::Earlier,
        Err(e) => {
            tracing::warn!(key, error = %e, "the planned base of a create was not recorded");
            Recorded::Now
        }
    }
}

/// The base of a pair adopted after a lost answer or a crash: the values its first create
/// was planned with when an earlier try recorded them, else the fields both sides agree on
/// (a record made by an earlier version, or by hand, has none).
pub(super) async fn adopted_base(
    engine: &Engine,
    key: &str,
    recorded: Recorded,
    opp: &Opportunity,
    referral: &Referral,
) -> Result<FieldValues, Step> {
    if recorded == Recorded::Earlier {
        let planned = engine
            .store
            .get_state(&state_key(key))
            .await
            .map_err(SyncError::from)?
            .and_then(|(v, _)| serde_json::from_str(&v).ok());
        if let Some(fields) = planned {
            return Ok(fields);
        }
    }
    agreed_base(engine, opp, referral).await
}

/// The base of a pair adopted after a lost answer or a crash: the fields both sides hold
/// equally. Neither side's values can stand for the base, since either may have been
/// edited since the create (a row's `modifiedon` has whole seconds: it cannot tell).
async fn agreed_base(
    engine: &Engine,
    opp: &Opportunity,
    referral: &Referral,
) -> Result<FieldValues, Step> {
    let (dv, _) = opportunity_side(engine, opp).await?;
    let (pc, _) = sides::referral_side(engine, referral);
    Ok(super::merge::next_base(None, &pc, &dv))
}
