//! A pair whose CRM side is a Dynamics 365 lead (`[lead] handling = "lead"`): a new lead
//! from Partner Center lands as a lead whose id is the pair key, Partner Center's later
//! changes update its mapped columns, and the seller answers from the lead: the decision
//! column accepts or declines, disqualifying declines (or, once accepted, loses) it, and
//! qualifying it accepts the referral and moves the pair to the opportunity the
//! qualification made. From then on that opportunity is the pair (its key), the lead is not.

use serde_json::{Map, Value};

use crate::crosswalk::{Base, CrmTable, Link};
use crate::dataverse::leads::{lead_state, lead_status};
use crate::dataverse::{DataverseError, Lead, Opportunity};
use crate::engine::referral_context::referral_link;
use crate::engine::{Engine, SyncError};
use crate::mapping::lead::LeadHandling;
use crate::mapping::{FieldValues, Transform};
use crate::partner_center::{Referral, ReferralDirection, ReferralStatus};

use super::merge::{self, CrmState};
use super::moves::{self, Move};
use super::sides::{self, closed_as, opportunity_side, referral_side, referral_status};
use super::trail::Trail;
use super::{crm, decoration, linked, referral, Origin, PairOutcome, Step, SyncMessage};

const DISQUALIFIED_REASON: &str = "Lead disqualified in the CRM";
/// The mapped path that points Partner Center at the CRM row.
const EXTERNAL_REFERENCE: &str = "externalReferenceId";

/// A referral with no link that lands as a lead: a lead, still new, with leads landed as
/// leads. One already accepted lands as an opportunity.
pub(super) fn lands_as_lead(engine: &Engine, referral: &Referral) -> bool {
    engine.mapping.lead.handling == LeadHandling::Lead
        && referral.kind().is_lead()
        && referral.status == Some(ReferralStatus::New)
}

/// True for a link whose CRM side is a lead.
pub(super) fn is_lead_pair(link: &Link) -> bool {
    link.base
        .as_ref()
        .is_some_and(|b| b.crm_table == CrmTable::Lead)
}

fn select(engine: &Engine) -> Vec<String> {
    engine.mapping.lead_select(&engine.columns)
}

fn step(e: DataverseError) -> Step {
    match e {
        DataverseError::Conflict { .. } => Step::Raced(format!("the lead changed meanwhile: {e}")),
        other => Step::Failed(other.into()),
    }
}

/// The values the lead's mapped columns show, keyed by referral path.
fn shown(engine: &Engine, lead: &Lead) -> FieldValues {
    let mut out = FieldValues::new();
    for f in &engine.mapping.lead.fields {
        let Ok(column) = crate::mapping::resolve_column(&f.column, &engine.columns) else {
            continue;
        };
        if let Some(v) = lead.column(column).filter(|v| v.as_str() != Some("")) {
            out.insert(f.referral.clone(), v.clone());
        }
    }
    out
}

/// Lands `referral` as the lead `key` (the id derived from the referral, so a retry finds
/// the lead it made), then reconciles the pair.
pub(super) async fn create(
    engine: &Engine,
    message: &SyncMessage,
    referral: Referral,
    referral_id: &str,
    trail: &mut Trail,
) -> Result<PairOutcome, Step> {
    let key = message.key.trim();
    let cols = &engine.columns;
    let wanted = engine.mapping.lead_values(&referral);
    let mut body = engine.mapping.lead_body(&FieldValues::new(), &wanted, cols);
    body.insert(cols.sync_flag.clone(), Value::Bool(true));
    body.insert(cols.referral_id.clone(), Value::String(referral_id.into()));
    body.insert(
        cols.referral_link.clone(),
        Value::String(referral_link(referral_id)),
    );
    let lead = match engine
        .dv
        .create_lead_with_id(key, &body, &select(engine))
        .await
    {
        Ok(lead) => {
            trail.crm_step("create_lead");
            lead
        }
        // An earlier try made it (its answer was lost) or a crash came before the link.
        Err(DataverseError::Conflict { .. }) => {
            trail.crm_step("adopt_lead");
            read_lead(engine, key)
                .await?
                .ok_or_else(|| Step::Raced(format!("lead {key} exists and then did not")))?
        }
        Err(e) => return Err(Step::Failed(e.into())),
    };
    // What the lead shows is the base: the difference to the referral is written next.
    let base = Base {
        fields: shown(engine, &lead),
        crm_table: CrmTable::Lead,
        ..Base::default()
    };
    let mut link = Link::new(referral_id, key);
    link.base = Some(base);
    reconcile(engine, message, link, Some(referral), Some(lead), trail).await
}

async fn read_lead(engine: &Engine, id: &str) -> Result<Option<Lead>, Step> {
    engine
        .dv
        .get_lead(id, &select(engine))
        .await
        .map_err(|e| Step::Failed(e.into()))
}

/// The reconcile of a linked lead pair.
pub(super) async fn reconcile(
    engine: &Engine,
    message: &SyncMessage,
    link: Link,
    referral: Option<Referral>,
    lead: Option<Lead>,
    trail: &mut Trail,
) -> Result<PairOutcome, Step> {
    let key = link.opportunity_id.clone();
    trail.referral(&link.referral_id);
    let lead = match lead {
        Some(l) => l,
        None => match read_lead(engine, &key).await? {
            Some(l) => l,
            None => {
                return linked::skip(engine, trail, "the linked lead was deleted in the CRM").await
            }
        },
    };
    // A poll of our own write: the lead is as the link left it.
    if message.origin == Origin::Opportunity && link.version > 0 && lead.etag == link.dv_etag {
        return Ok(PairOutcome::Unchanged {
            referral_id: Some(link.referral_id.clone()),
            opportunity_id: key,
        });
    }
    let referral = match referral {
        Some(r) => r,
        None => sides::read_referral(engine, &link.referral_id)
            .await?
            .ok_or_else(|| {
                Step::Failed(SyncError::permanent(format!(
                    "the linked referral {} no longer exists in Partner Center",
                    link.referral_id
                )))
            })?,
    };
    if lead.state() == lead_state::QUALIFIED {
        return qualified(engine, message, link, referral, trail).await;
    }
    if !flag_on(engine, &lead) {
        return linked::skip(engine, trail, "sync flag is off").await;
    }
    let base = link.base.clone().unwrap_or_default();

    // The seller's answer first (one PATCH of the referral).
    let mv = answer(engine, &lead, &referral);
    let referral = match mv {
        Some(mv) => referral::write(engine, referral, &FieldValues::new(), Some(mv), trail).await?,
        None => referral,
    };

    // Partner Center's changes to the lead's columns, while the lead is open; a referral
    // Microsoft closed disqualifies an open lead.
    let wanted = engine.mapping.lead_values(&referral);
    let mut body = engine
        .mapping
        .lead_body(&base.fields, &wanted, &engine.columns);
    let open = lead.state() == lead_state::OPEN;
    if open && referral.status == Some(ReferralStatus::Closed) {
        body.insert("statecode".into(), Value::from(lead_state::DISQUALIFIED));
        body.insert("statuscode".into(), Value::from(lead_status::CANCELED));
    }
    let (lead, fields) = if open && !body.is_empty() {
        let etag = lead.etag.clone().unwrap_or_else(|| "*".into());
        let changed: Vec<String> = engine
            .mapping
            .lead
            .fields
            .iter()
            .filter(|f| wanted.get(&f.referral) != base.fields.get(&f.referral))
            .map(|f| f.referral.clone())
            .collect();
        let after = engine
            .dv
            .update_lead(&key, &etag, &body, &select(engine))
            .await
            .map_err(step)?;
        trail.crm_step("update_lead");
        trail.crm_fields(changed);
        (after, wanted)
    } else {
        // A closed lead is read-only: Partner Center's changes stay pending on it.
        (lead, base.fields.clone())
    };
    finish(engine, link, &referral, &lead, fields, trail).await
}

fn flag_on(engine: &Engine, lead: &Lead) -> bool {
    let view = Opportunity {
        extra: lead.extra.clone(),
        ..Opportunity::default()
    };
    sides::sync_flag_on(engine, &view)
}

/// The move the lead asks of the referral: the decision column's accept or decline while
/// the lead is open (the mapping's outbound rules, as on an opportunity), and on a
/// disqualified lead a decline (still new) or a loss (accepted).
fn answer(engine: &Engine, lead: &Lead, referral: &Referral) -> Option<Move> {
    let incoming = referral.direction.as_ref() != Some(&ReferralDirection::Outgoing);
    match lead.state() {
        lead_state::OPEN => {
            // The lead as the status rules see an open opportunity: its decision column.
            let view = Opportunity {
                statecode: Some(crate::dataverse::model::state::OPEN),
                extra: lead.extra.clone(),
                ..Opportunity::default()
            };
            moves::wanted(engine, &view, referral)
        }
        lead_state::DISQUALIFIED => match referral.status {
            Some(ReferralStatus::New) if incoming => Some(Move::Decline {
                reason: DISQUALIFIED_REASON.into(),
            }),
            Some(ReferralStatus::Active) => Some(Move::Close {
                won: false,
                reason: DISQUALIFIED_REASON.into(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The base of the pair once it holds the opportunity qualification made: where the
/// referral has a value, the opportunity's (so the referral's value is Partner Center's
/// change, and fills the opportunity); where it has none, the referral's absence (so the
/// seller's value from the lead goes to Partner Center).
pub(super) fn moved_base(pc: &FieldValues, dv: &FieldValues) -> FieldValues {
    pc.keys()
        .filter_map(|k| dv.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// The lead is qualified: accept the referral and point it at the opportunity the
/// qualification made, flag that opportunity with the referral's columns, and move the
/// link to it. Each step finds the last one done when repeated, so a crash anywhere
/// leaves a retry that finishes it. The message then goes on to the opportunity's key.
async fn qualified(
    engine: &Engine,
    message: &SyncMessage,
    link: Link,
    referral: Referral,
    trail: &mut Trail,
) -> Result<PairOutcome, Step> {
    let key = link.opportunity_id.clone();
    let Some(opp) = engine
        .dv
        .opportunity_from_lead(&key)
        .await
        .map_err(|e| Step::Failed(e.into()))?
    else {
        let reason = "the lead was qualified without an opportunity: the pair stays on the lead";
        return linked::skip(engine, trail, reason).await;
    };
    let opp_id = opp.opportunityid.clone().unwrap_or_default();
    let referral_id = link.referral_id.clone();

    let incoming = referral.direction.as_ref() != Some(&ReferralDirection::Outgoing);
    let mv = (referral.status == Some(ReferralStatus::New) && incoming).then_some(Move::Accept);
    let mut to_pc = FieldValues::new();
    let points_at = referral.external_reference_id.as_deref().map(str::trim);
    let mapped = engine
        .mapping
        .pair_fields()
        .any(|(f, _)| f.referral == EXTERNAL_REFERENCE);
    if mapped && points_at != Some(opp_id.as_str()) {
        to_pc.insert(EXTERNAL_REFERENCE.into(), Value::String(opp_id.clone()));
    }
    let referral = referral::write(engine, referral, &to_pc, mv, trail).await?;

    let shared = referral.shared_with_microsoft_sellers();
    let mut body: Map<String, Value> = Map::new();
    if !sides::sync_flag_on(engine, &opp) {
        body.insert(engine.columns.sync_flag.clone(), Value::Bool(true));
    }
    body.extend(decoration::in_sync(engine, &opp, &referral_id, shared));
    // The referral's values go with the flag: once flagged the opportunity is the pair's,
    // and a fill left to the forwarded reconcile stays pending for good when the seller
    // closes the row (read-only) in between.
    body.extend(fill(engine, &referral, &opp).await?);
    let opp = if body.is_empty() {
        opp
    } else {
        // A row the seller won or lost before the move is reopened for the write and
        // closed again as the seller closed it.
        let state = closed_as(&opp).map_or(CrmState::Keep, CrmState::Move);
        let after = crm::apply(engine, &opp, body, state, &referral, trail).await?;
        trail.crm_step("flag_opportunity");
        after
    };

    let (pc_values, _) = referral_side(engine, &referral);
    let (dv_values, _) = opportunity_side(engine, &opp).await?;
    let mut moved = link.clone();
    moved.opportunity_id = opp_id.clone();
    moved.base = Some(Base {
        fields: moved_base(&pc_values, &dv_values),
        referral_shared: Some(shared),
        ..Base::default()
    });
    moved.pc_etag = referral.e_tag.clone();
    moved.dv_etag = opp.etag.clone();
    moved.dv_modified = opp.modifiedon.clone();
    trail.crm_step("move_pair");
    trail.note(format!(
        "lead {key} qualified: the pair moved to opportunity {opp_id}"
    ));
    linked::write_record(engine, &moved, Some(&link), &trail.done()).await?;
    tracing::info!(lead_id = %key, opportunity_id = %opp_id, "lead qualified; pair moved");
    Ok(PairOutcome::Forwarded {
        to: message.forwarded_to(&opp_id),
    })
}

/// The opportunity columns the referral's values fill: what the forwarded reconcile would
/// write from the moved base. Currency and solutions, which need rows looked up or written
/// beside the row, are left to it.
async fn fill(
    engine: &Engine,
    referral: &Referral,
    opp: &Opportunity,
) -> Result<Map<String, Value>, Step> {
    let (pc_values, _) = referral_side(engine, referral);
    let (dv_values, _) = opportunity_side(engine, opp).await?;
    let base = moved_base(&pc_values, &dv_values);
    let plan = merge::merge_fields(&engine.mapping, Some(&base), &pc_values, &dv_values);
    let plain: FieldValues = plan
        .to_crm
        .into_iter()
        .filter(|(path, _)| {
            engine.mapping.pair_fields().any(|(f, _)| {
                f.referral == *path
                    && !matches!(f.transform, Transform::Currency | Transform::Solutions)
            })
        })
        .collect();
    Ok(engine.mapping.opportunity_body(
        &plain,
        &engine.columns,
        &|_| None,
        engine.options.checkmark,
    ))
}

/// Stores the lead pair's link: the lead showing `fields`, the referral as read.
async fn finish(
    engine: &Engine,
    link: Link,
    referral: &Referral,
    lead: &Lead,
    fields: FieldValues,
    trail: &Trail,
) -> Result<PairOutcome, Step> {
    let base = Base {
        fields,
        referral_status: Some(referral_status(referral)),
        crm_table: CrmTable::Lead,
        ..Base::default()
    };
    let seen = linked::Seen {
        pc_etag: referral.e_tag.clone(),
        pc_updated: referral.updated_date_time.as_ref().map(|t| t.0.clone()),
        dv_etag: lead.etag.clone(),
        dv_modified: lead.modifiedon.clone(),
    };
    linked::store(engine, link, base, seen, trail).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_moved_base_lets_the_referral_fill_the_opportunity_and_the_seller_fill_the_gaps() {
        let pc: FieldValues = [
            ("name".into(), json!("Lead A")),
            ("details.dealValue".into(), json!(5000.0)),
        ]
        .into_iter()
        .collect();
        let dv: FieldValues = [
            ("name".into(), json!("Lead A (qualified)")),
            ("details.notes".into(), json!("seller")),
        ]
        .into_iter()
        .collect();
        let base = moved_base(&pc, &dv);
        // name: both have one -> base is the opportunity's, the referral's reads as the change.
        assert_eq!(base.get("name"), Some(&json!("Lead A (qualified)")));
        // deal value: only the referral -> absent in base, so it is Partner Center's change.
        assert_eq!(base.get("details.dealValue"), None);
        // notes: only the opportunity -> absent in base, so it is the seller's change.
        assert_eq!(base.get("details.notes"), None);
    }
}
