//! A linked opportunity: patch its referral with the mapped fields that differ, settle
//! conflicts per the mapping's rules, then make the status move the opportunity asks for.

use serde_json::{Map, Value};

use crate::audit::{AuditEntry, Outcome};
use crate::crosswalk::{Link, NOT_SYNCED};
use crate::dataverse::Opportunity;
use crate::engine::error::CONFLICT_RETRY;
use crate::engine::inbound;
use crate::engine::referral_context::referral_hash;
use crate::engine::{Engine, InboundMessage, InboundTrigger, SyncError};
use crate::mapping::{CrmRows, JsonPatchOp, PatchOp as MappingOp, Side};
use crate::partner_center::{PartnerCenterError, PatchOp, Referral};

use crate::engine::claim::Lease;

use super::customer::{self, Customer};
use super::record::{self, Synced};
use super::status::{self, Move};
use super::{writeback, OutboundOutcome};

/// Reads of the referral after a 412 before handing the message back for a later retry.
const PATCH_ATTEMPTS: usize = 3;

/// What this sync did to the referral, across re-reads after a 412.
#[derive(Default)]
struct Progress {
    /// Referral paths sent.
    sent: Vec<String>,
    /// Referral paths the CRM changed but Partner Center won.
    kept_by_pc: Vec<String>,
    moves: Vec<Move>,
    /// Partner Center held changes this sync did not make (or someone wrote concurrently).
    foreign_change: bool,
}

enum PushError {
    /// 412: the referral changed after it was read.
    Raced,
    Sync(SyncError),
}

impl From<SyncError> for PushError {
    fn from(e: SyncError) -> Self {
        PushError::Sync(e)
    }
}

fn pc(e: PartnerCenterError) -> PushError {
    match e {
        PartnerCenterError::Conflict { .. } => PushError::Raced,
        other => PushError::Sync(other.into()),
    }
}

/// Syncs `opp` into its linked referral. `extra` columns are written on the opportunity
/// with the success decoration (the referral id and link when adopting).
pub(super) async fn sync_linked(
    engine: &Engine,
    opp: &Opportunity,
    link: Link,
    lease: &Lease,
) -> Result<OutboundOutcome, SyncError> {
    sync_with(engine, opp, link, Map::new(), Some(lease)).await
}

/// `lease` is released with the link when nothing follows it.
pub(super) async fn sync_with(
    engine: &Engine,
    opp: &Opportunity,
    mut link: Link,
    extra: Map<String, Value>,
    lease: Option<&Lease>,
) -> Result<OutboundOutcome, SyncError> {
    let opportunity_id = opp.opportunityid.clone().unwrap_or_default();
    let customer = customer::read(engine, opp).await?;
    let mut progress = Progress::default();
    let mut attempt = 1;
    let referral = loop {
        let referral = match engine.pc.get_referral(&link.referral_id).await {
            Ok(r) => r,
            Err(PartnerCenterError::NotFound { id }) => {
                return Err(SyncError::permanent(format!(
                    "the linked referral {id} no longer exists in Partner Center"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        match push(engine, opp, &customer, &link, referral, &mut progress).await {
            Ok(r) => break r,
            Err(PushError::Raced) if attempt < PATCH_ATTEMPTS => {
                tracing::info!(referral_id = %link.referral_id, attempt, "referral changed meanwhile (412); reading it again");
                // Before any write of ours the re-read shows whether someone else changed
                // it; after one, the two cannot be told apart: assume someone did.
                if !progress.sent.is_empty() || !progress.moves.is_empty() {
                    progress.foreign_change = true;
                }
                attempt += 1;
            }
            Err(PushError::Raced) => {
                return Err(SyncError::retry(
                    Some(CONFLICT_RETRY),
                    format!(
                        "referral {} kept changing while being updated (412)",
                        link.referral_id
                    ),
                ))
            }
            Err(PushError::Sync(e)) => return Err(e),
        }
    };

    // Partner Center changes not made here still have to reach the CRM: keep the referral
    // as last synced so the inbound direction sees them as new.
    let declined = progress
        .moves
        .iter()
        .any(|m| matches!(m, Move::Decline { .. }));
    // A decline also changes what the CRM should show (see below): leave the referral
    // unsynced so the inbound pass applies it.
    let after_hash = referral_hash(engine, &referral).await?;
    let pc_synced = if progress.foreign_change || declined {
        // Our patch can bring the referral back to the fingerprint last synced (Partner
        // Center changed only fields the CRM wins, and kept a field it wins): the old
        // fingerprint would then make Partner Center's kept values look synced.
        if link.pc_hash.as_deref() == Some(after_hash.as_str()) {
            link.pc_hash = Some(NOT_SYNCED.to_string());
        }
        None
    } else {
        Some((&referral, after_hash))
    };
    let mut columns = extra;
    columns.extend(writeback::success_columns(engine, opp));
    let written = writeback::write(engine, opp, &columns).await?;
    let referral_id = link.referral_id.clone();
    let entries = audit(&opportunity_id, &referral_id, &progress);
    record::put_link(
        engine,
        link,
        Synced {
            referral: pc_synced,
            sent: opp,
            written: &written,
        },
        &entries,
        // A decline is applied by the inbound direction next, which needs the lease held.
        lease.filter(|_| !declined),
    )
    .await?;
    if declined {
        // Closed/Declined maps to a lost (canceled) opportunity: apply that now through the
        // inbound direction, which knows the order (update, then LoseOpportunity).
        let message = InboundMessage {
            referral_id: referral_id.clone(),
            trigger: InboundTrigger::Manual,
            changed_at: None,
        };
        inbound::sync_referral_within(engine, &message, Some(&opportunity_id)).await?;
    }
    Ok(if progress.sent.is_empty() && progress.moves.is_empty() {
        OutboundOutcome::Unchanged {
            referral_id: Some(referral_id),
        }
    } else {
        OutboundOutcome::Updated { referral_id }
    })
}

/// One pass: the field patch, then the status move, each with If-Match on the latest eTag.
async fn push(
    engine: &Engine,
    opp: &Opportunity,
    customer: &Customer,
    link: &Link,
    referral: Referral,
    progress: &mut Progress,
) -> Result<Referral, PushError> {
    let id = link.referral_id.as_str();
    let pc_changed =
        link.pc_hash.as_deref() != Some(referral_hash(engine, &referral).await?.as_str());
    if pc_changed && progress.sent.is_empty() && progress.moves.is_empty() {
        progress.foreign_change = true;
    }
    let rows = CrmRows {
        opportunity: opp,
        account: customer.account.as_ref(),
        contact: customer.contact.as_ref(),
    };
    let mut ops = engine
        .mapping
        .outbound_patch_rows(rows, &referral, &engine.columns);
    // A closed opportunity is read-only and stays as it is when the inbound pass finds the
    // referral closed the same way: Partner Center's values could never reach it, so the
    // deal as closed in the CRM is what Partner Center gets.
    if pc_changed && !opp.is_closed() {
        ops.retain(|op| {
            let field = field_of(engine, &op.path);
            let crm_wins = engine.mapping.conflict_winner(&field) == Side::Crm;
            if !crm_wins && !progress.kept_by_pc.contains(&field) {
                progress.kept_by_pc.push(field);
            }
            crm_wins
        });
    }
    let mut current = referral;
    if !ops.is_empty() {
        let etag = current.e_tag.clone().unwrap_or_default();
        let client_ops: Vec<PatchOp> = ops.iter().map(client_op).collect();
        current = engine
            .pc
            .update_referral(id, &etag, &client_ops)
            .await
            .map_err(pc)?;
        progress
            .sent
            .extend(ops.iter().map(|op| field_of(engine, &op.path)));
    }
    if let Some(mv) = status::wanted(engine, opp, &current) {
        let etag = current.e_tag.clone().unwrap_or_default();
        current = status::apply(engine, id, &etag, &mv).await.map_err(pc)?;
        progress.moves.push(mv);
    }
    Ok(current)
}

/// The audit entries of this sync: the conflict settled, the fields sent, the status moves.
fn audit(opportunity_id: &str, referral_id: &str, progress: &Progress) -> Vec<AuditEntry> {
    let rid = Some(referral_id);
    let mut entries = Vec::new();
    if !progress.kept_by_pc.is_empty() {
        let detail = format!(
            "both sides changed; Partner Center wins: {}; CRM wins: {}",
            progress.kept_by_pc.join(", "),
            if progress.sent.is_empty() {
                "(none)".to_string()
            } else {
                progress.sent.join(", ")
            }
        );
        let e =
            record::entry("update_referral", Outcome::Conflict, opportunity_id, rid).detail(detail);
        entries.push(e);
    }
    if !progress.sent.is_empty() {
        let e = record::entry("update_referral", Outcome::Success, opportunity_id, rid)
            .detail(format!("fields changed: {}", progress.sent.join(", ")));
        entries.push(e);
    }
    for mv in &progress.moves {
        let mut e = record::entry(mv.action(), Outcome::Success, opportunity_id, rid);
        if let Move::Decline { reason } | Move::Close { reason, .. } = mv {
            e = e.detail(format!("reason: {reason}"));
        }
        entries.push(e);
    }
    entries
}

fn client_op(op: &JsonPatchOp) -> PatchOp {
    match op.op {
        MappingOp::Replace => PatchOp::replace(op.path.clone(), op.value.clone()),
        MappingOp::Add => PatchOp::add(op.path.clone(), op.value.clone()),
    }
}

/// The mapped referral path a patch pointer writes (`/details/dealValue` ->
/// `details.dealValue`). A pointer that adds a missing parent names the field under it.
fn field_of(engine: &Engine, pointer: &str) -> String {
    engine
        .mapping
        .fields
        .iter()
        .map(|f| f.referral.as_str())
        .find(|path| {
            let p = to_pointer(path);
            p == pointer || p.starts_with(&format!("{pointer}/"))
        })
        .map(str::to_string)
        .unwrap_or_else(|| pointer.trim_start_matches('/').replace('/', "."))
}

/// `customerProfile.team[0].email` -> `/customerProfile/team/0/email`.
fn to_pointer(path: &str) -> String {
    let mut out = String::new();
    for seg in path.replace('[', ".").replace(']', "").split('.') {
        if !seg.is_empty() {
            out.push('/');
            out.push_str(seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_pointer;

    #[test]
    fn dotted_paths_become_pointers() {
        assert_eq!(to_pointer("details.dealValue"), "/details/dealValue");
        assert_eq!(
            to_pointer("customerProfile.team[0].email"),
            "/customerProfile/team/0/email"
        );
        assert_eq!(to_pointer("name"), "/name");
    }
}
