//! A failed outbound sync: the reason goes into the audit trail, and a permanent one also
//! into the opportunity's audit column with ✘ on the name, so the seller sees what Partner
//! Center rejected without asking an operator.

use crate::audit::{AuditEntry, Outcome};
use crate::dataverse::Opportunity;
use crate::engine::{Engine, SyncError};

use super::{record, writeback};

/// Longest error text put in the audit column (a text column has a maximum length).
const AUDIT_COLUMN_MAX: usize = 2000;

/// Shows the failure on the opportunity (best effort: logged, never returned) and returns
/// the audit entry, which the caller writes with the lease release.
pub(super) async fn record(
    engine: &Engine,
    opp: &Opportunity,
    referral_id: Option<&str>,
    error: &SyncError,
) -> AuditEntry {
    let opportunity_id = opp.opportunityid.as_deref().unwrap_or_default();
    if error.is_permanent() {
        let text: String = error.reason().chars().take(AUDIT_COLUMN_MAX).collect();
        let changes = writeback::failure_columns(engine, opp, &text);
        if let Err(e) = writeback::write(engine, opp, &changes).await {
            tracing::warn!(opportunity_id, error = %e, "could not show the failure on the opportunity");
        }
    }
    let action = if referral_id.is_some() {
        "update_referral"
    } else {
        "create_referral"
    };
    let entry = record::entry(action, Outcome::Failed, opportunity_id, referral_id)
        .detail(if error.is_permanent() {
            "rejected; not retried"
        } else {
            "will retry"
        })
        .error(error.reason());
    tracing::warn!(opportunity_id, referral_id, error = %error, "outbound sync failed");
    entry
}
