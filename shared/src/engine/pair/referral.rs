//! Writing the referral: the field changes and the status move in one PATCH, with `If-Match`
//! on the eTag read. A 412 sends the reconcile back to fresh reads.

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

/// Writes `values` and makes `mv` on `referral` (just read), in one PATCH; the referral
/// afterwards.
pub(super) async fn write(
    engine: &Engine,
    referral: Referral,
    values: &FieldValues,
    mv: Option<Move>,
    trail: &mut Trail,
) -> Result<Referral, Step> {
    let id = referral.id.clone().unwrap_or_default();
    let fields = engine.mapping.referral_patch(&referral, values);
    let mut ops: Vec<PatchOp> = fields.iter().map(client_op).collect();
    if let Some(mv) = &mv {
        ops.extend(moves::ops(mv));
    }
    if ops.is_empty() {
        return Ok(referral);
    }
    let etag = referral.e_tag.clone().unwrap_or_default();
    let after = engine
        .pc
        .update_referral(&id, &etag, &ops)
        .await
        .map_err(step)?;
    if !fields.is_empty() {
        trail.pc_fields(values.keys().cloned());
    }
    if let Some(mv) = mv {
        trail.moved(mv);
    }
    Ok(after)
}

fn client_op(op: &JsonPatchOp) -> PatchOp {
    match op.op {
        MappingOp::Replace => PatchOp::replace(op.path.clone(), op.value.clone()),
        MappingOp::Add => PatchOp::add(op.path.clone(), op.value.clone()),
    }
}
