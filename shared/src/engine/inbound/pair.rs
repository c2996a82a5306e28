//! The outbound lease of a linked pair, held by the inbound sync too. Each direction leases
//! its own record (the referral, the opportunity), so without this an outbound sync of the
//! same pair could record its link between our read and our write: one of the two would
//! then lose the link's version check and leave a failed entry before its retry.

use crate::crosswalk::Link;
use crate::engine::claim::{self, Lease};
use crate::engine::{Engine, SyncError};
use crate::store::StoreError;

use super::trail::Trail;

/// The outbound lease of `opportunity_id`, or `None` while an outbound sync holds it.
pub(super) async fn outbound_lease(
    engine: &Engine,
    opportunity_id: &str,
) -> Result<Option<Lease>, StoreError> {
    claim::try_take(
        engine.store.as_ref(),
        &claim::outbound(opportunity_id),
        engine.options.sync_lease,
    )
    .await
}

/// Puts the sync off: a retry shortly, with `trail` marked deferred (nothing went wrong).
pub(super) fn put_off(trail: &mut Trail, reason: String) -> SyncError {
    trail.defer();
    SyncError::retry(Some(claim::LEASE_RETRY), reason)
}

/// Takes the outbound lease of `link`'s opportunity onto `held`. While an outbound sync of
/// the pair runs, or when one has changed the link since `link` was read, the sync is put
/// off (a retry, and `trail` marked deferred: nothing went wrong).
pub(super) async fn hold_outbound(
    engine: &Engine,
    link: &Link,
    trail: &mut Trail,
    held: &mut Vec<Lease>,
) -> Result<(), SyncError> {
    let store = engine.store.as_ref();
    let opportunity_id = link.opportunity_id.as_str();
    let why = |what: &str| format!("opportunity {opportunity_id} {what}; looking again shortly");
    let Some(lease) = outbound_lease(engine, opportunity_id).await? else {
        return Err(put_off(trail, why("is being synced to Partner Center")));
    };
    // A lease nobody held before cannot have let a link write through since our read.
    if !lease.is_fresh() {
        let now = store.get_link_by_referral(&link.referral_id).await;
        let unchanged = matches!(&now, Ok(Some(l)) if l.version == link.version);
        if !unchanged {
            lease.release(store).await;
            now?;
            return Err(put_off(
                trail,
                why("was synced to Partner Center meanwhile"),
            ));
        }
    }
    held.push(lease);
    Ok(())
}
