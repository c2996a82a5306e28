//! Writing the referral: the field patch, then the status move, each with `If-Match` on the
//! latest eTag. A 412 sends the reconcile back to fresh reads.

use crate::engine::Engine;
use crate::mapping::{FieldValues, JsonPatchOp, PatchOp as MappingOp};
use crate::partner_center::{PartnerCenterError, PatchOp, Referral};

use super::moves::{self, Move};
use super::trail::Trail;
use super::Step;

pub(super) fn step(e: PartnerCenterError) -> Step {
    match e {
        PartnerCenterError::Conflict { .. } => {
            Step::Raced(format!("the referral changed while it was written: {e}"))
        }
        other => Step::Failed(other.into()),
    }
}

/// Writes `values` and makes `mv` on `referral` (just read); the referral afterwards.
pub(super) async fn write(
    engine: &Engine,
    referral: Referral,
    values: &FieldValues,
    mv: Option<Move>,
    trail: &mut Trail,
) -> Result<Referral, Step> {
    let id = referral.id.clone().unwrap_or_default();
    let ops = engine.mapping.referral_patch(&referral, values);
    let mut current = referral;
    if !ops.is_empty() {
        let etag = current.e_tag.clone().unwrap_or_default();
        let client_ops: Vec<PatchOp> = ops.iter().map(client_op).collect();
        current = engine
            .pc
            .update_referral(&id, &etag, &client_ops)
            .await
            .map_err(step)?;
        trail.pc_fields(values.keys().cloned());
    }
    if let Some(mv) = mv {
        let etag = current.e_tag.clone().unwrap_or_default();
        current = moves::apply(engine, &id, &etag, &mv).await.map_err(step)?;
        trail.moved(mv);
    }
    Ok(current)
}

fn client_op(op: &JsonPatchOp) -> PatchOp {
    match op.op {
        MappingOp::Replace => PatchOp::replace(op.path.clone(), op.value.clone()),
        MappingOp::Add => PatchOp::add(op.path.clone(), op.value.clone()),
    }
}
