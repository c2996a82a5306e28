//! The three-way merge of one pair, as plain functions of what was read: each mapped field
//! against the stored base, and the status by its own rules. The reconcile performs what
//! these decide; tests call them directly.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::mapping::{FieldValues, Mapping, Side, Table, TargetState};

/// A field both sides changed to different values since the base.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub field: String,
    pub winner: Side,
}

/// What to write where, field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldPlan {
    /// Values for the opportunity (canonical CRM form).
    pub to_crm: FieldValues,
    /// Values for the referral.
    pub to_pc: FieldValues,
    pub conflicts: Vec<Conflict>,
}

impl FieldPlan {
    pub fn is_empty(&self) -> bool {
        self.to_crm.is_empty() && self.to_pc.is_empty()
    }

    /// For an opportunity that is closed and stays closed: nothing can be written to it
    /// (Dataverse keeps won and lost rows read-only), so what would have gone to it stays
    /// pending, in Partner Center, rather than being overwritten by the CRM's older value.
    pub fn keep_closed_crm(&mut self) {
        self.to_crm.clear();
    }

    /// Drops the Partner Center write when it would carry only deferred fields: they wait
    /// for the next write that happens anyway (the base keeps them pending).
    pub fn defer_lone(&mut self, mapping: &Mapping) {
        let deferred = deferred_paths(mapping);
        if self.to_pc.keys().all(|k| deferred.contains(k.as_str())) {
            self.to_pc.clear();
        }
    }
}

/// The referral paths of the opportunity fields the mapping defers (one pass over the
/// fields: the echo check runs for every message).
fn deferred_paths(mapping: &Mapping) -> BTreeSet<&str> {
    mapping
        .fields
        .iter()
        .filter(|f| f.defer && f.table == Table::Opportunity)
        .map(|f| f.referral.as_str())
        .collect()
}

/// [`same_values`] over the fields that are not deferred: a deferred field alone is no
/// change to the pair (an echo check uses it).
pub fn same_undeferred(mapping: &Mapping, a: &FieldValues, b: &FieldValues) -> bool {
    let deferred = deferred_paths(mapping);
    let keep = |v: &FieldValues| -> FieldValues {
        v.iter()
            .filter(|(k, _)| !deferred.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    same_values(&keep(a), &keep(b))
}

/// Merges the mapped fields. `base` is `None` for a link from before pair sync: where the
/// sides differ, the conflict rule decides (not recorded as a conflict: without a base
/// nothing says which side changed).
///
/// A field changed on one side only is copied to the other, where the mapping lets it flow
/// that way; a field that may flow only one way is kept equal to its source side. A value
/// cleared on one side is not copied (neither API clears a value we did not write).
pub fn merge_fields(
    mapping: &Mapping,
    base: Option<&FieldValues>,
    pc: &FieldValues,
    dv: &FieldValues,
) -> FieldPlan {
    let mut plan = FieldPlan::default();
    for (field, flow) in mapping.pair_fields() {
        let path = field.referral.as_str();
        let (p, d) = (pc.get(path), dv.get(path));
        if same(p, d) {
            continue;
        }
        let b = base.map(|b| b.get(path));
        let (winner, conflict) = match b {
            Some(b) => match (!same(p, b), !same(d, b)) {
                (true, false) => (Side::PartnerCenter, false),
                (false, true) => (Side::Crm, false),
                _ => (mapping.conflict_winner(path), true),
            },
            None => (mapping.conflict_winner(path), true),
        };
        // A one-way field follows its source whichever side changed it.
        let winner = match winner {
            Side::PartnerCenter if !flow.inbound => Side::Crm,
            Side::Crm if !flow.outbound => Side::PartnerCenter,
            w => w,
        };
        let (value, target) = match winner {
            Side::PartnerCenter => (p, &mut plan.to_crm),
            Side::Crm => (d, &mut plan.to_pc),
        };
        let Some(value) = value else {
            continue;
        };
        let allowed = match winner {
            Side::PartnerCenter => flow.inbound,
            Side::Crm => flow.outbound,
        };
        if !allowed {
            continue;
        }
        target.insert(path.to_string(), value.clone());
        if conflict && base.is_some() {
            plan.conflicts.push(Conflict {
                field: path.to_string(),
                winner,
            });
        }
    }
    plan
}

/// The base after a reconcile: a field both sides now hold equally takes that value; one
/// they still differ on (a value that could not be copied) keeps its old base, so the
/// difference stays pending instead of looking agreed.
pub fn next_base(old: Option<&FieldValues>, pc: &FieldValues, dv: &FieldValues) -> FieldValues {
    let keys: BTreeSet<&String> = pc.keys().chain(dv.keys()).collect();
    let mut base = FieldValues::new();
    for key in keys {
        let (p, d) = (pc.get(key), dv.get(key));
        let value = if same(p, d) {
            p.cloned()
        } else {
            old.and_then(|o| o.get(key)).cloned()
        };
        if let Some(v) = value {
            base.insert(key.clone(), v);
        }
    }
    base
}

/// Equal for sync purposes: numbers by value (25000 and 25000.0 are one amount).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() < 0.005,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// Whether two value sets hold the same values (by [`same`]).
pub fn same_values(a: &FieldValues, b: &FieldValues) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| same(Some(v), b.get(k)))
}

/// What the status merge decided for the opportunity's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmState {
    /// Leave the opportunity's state as it is.
    Keep,
    /// Bring it to this state (reopening or closing as needed).
    Move(TargetState),
}

/// The opportunity's state after the referral's status settled: it follows the referral,
/// except that a close in the CRM wins over a referral still open, and when both are closed
/// differently the mapping's `status` rule decides (`conflict` then says so).
pub fn crm_state(
    mapping: &Mapping,
    crm_closed_as: Option<TargetState>,
    referral_target: Option<TargetState>,
) -> (CrmState, bool) {
    let Some(target) = referral_target else {
        return (CrmState::Keep, false);
    };
    match (crm_closed_as, target) {
        (None, TargetState::Open { .. }) => (CrmState::Keep, false),
        (None, closed) => (CrmState::Move(closed), false),
        (Some(_), TargetState::Open { .. }) => (CrmState::Keep, false),
        (Some(now), closed) if same_close(now, closed) => (CrmState::Keep, false),
        (Some(_), closed) => match mapping.conflict_winner("status") {
            Side::PartnerCenter => (CrmState::Move(closed), true),
            Side::Crm => (CrmState::Keep, true),
        },
    }
}

fn same_close(a: TargetState, b: TargetState) -> bool {
    a.statecode() == b.statecode() && a.statuscode() == b.statuscode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(pairs: &[(&str, Value)]) -> FieldValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_field_changed_on_one_side_goes_to_the_other() {
        let m = Mapping::default_mapping();
        let base = values(&[
            ("details.notes", json!("a")),
            ("details.dealValue", json!(1.0)),
        ]);
        let pc = values(&[
            ("details.notes", json!("b")),
            ("details.dealValue", json!(1.0)),
        ]);
        let dv = values(&[
            ("details.notes", json!("a")),
            ("details.dealValue", json!(2.0)),
        ]);
        let plan = merge_fields(&m, Some(&base), &pc, &dv);
        assert_eq!(plan.to_crm, values(&[("details.notes", json!("b"))]));
        assert_eq!(plan.to_pc, values(&[("details.dealValue", json!(2.0))]));
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn both_changed_the_rule_decides_and_says_so() {
        let m = Mapping::default_mapping();
        let base = values(&[("details.dealValue", json!(1.0)), ("name", json!("A"))]);
        let pc = values(&[("details.dealValue", json!(2.0)), ("name", json!("B"))]);
        let dv = values(&[("details.dealValue", json!(3.0)), ("name", json!("C"))]);
        let plan = merge_fields(&m, Some(&base), &pc, &dv);
        // The default mapping: the seller's deal value, Microsoft's name.
        assert_eq!(plan.to_pc, values(&[("details.dealValue", json!(3.0))]));
        assert_eq!(plan.to_crm, values(&[("name", json!("B"))]));
        assert_eq!(plan.conflicts.len(), 2);
    }

    #[test]
    fn equal_spellings_cleared_values_and_one_way_fields() {
        let m = Mapping::default_mapping();
        let base = values(&[
            ("details.dealValue", json!(5)),
            ("details.notes", json!("x")),
        ]);
        // Same amount spelled differently, notes cleared in Partner Center: nothing to do.
        let pc = values(&[("details.dealValue", json!(5.0))]);
        let dv = values(&[
            ("details.dealValue", json!(5)),
            ("details.notes", json!("x")),
        ]);
        assert!(merge_fields(&m, Some(&base), &pc, &dv).is_empty());
        // The external reference flows only outbound: a Partner Center edit is undone.
        let base = values(&[("externalReferenceId", json!("o1"))]);
        let pc = values(&[("externalReferenceId", json!("other"))]);
        let dv = values(&[("externalReferenceId", json!("o1"))]);
        let plan = merge_fields(&m, Some(&base), &pc, &dv);
        assert_eq!(plan.to_pc, values(&[("externalReferenceId", json!("o1"))]));
        assert!(plan.to_crm.is_empty());
    }

    #[test]
    fn a_deferred_field_waits_for_another_write_to_the_referral() {
        let m = Mapping::default_mapping();
        let base = values(&[("details.notes", json!("a"))]);
        let pc = values(&[("details.notes", json!("a"))]);
        let dv = values(&[
            ("details.notes", json!("a")),
            ("externalReferenceId", json!("o1")),
        ]);
        // Alone, the external reference is no write, and no change: an echo stays an echo.
        let mut plan = merge_fields(&m, Some(&base), &pc, &dv);
        assert_eq!(plan.to_pc, values(&[("externalReferenceId", json!("o1"))]));
        plan.defer_lone(&m);
        assert!(plan.is_empty());
        assert!(same_undeferred(&m, &base, &dv));
        assert!(!same_values(&base, &dv));
        // It stays pending in the base ...
        assert_eq!(next_base(Some(&base), &pc, &dv), base);
        // ... and goes with the next write to the referral.
        let dv = values(&[
            ("details.notes", json!("b")),
            ("externalReferenceId", json!("o1")),
        ]);
        let mut plan = merge_fields(&m, Some(&base), &pc, &dv);
        plan.defer_lone(&m);
        assert_eq!(
            plan.to_pc,
            values(&[
                ("details.notes", json!("b")),
                ("externalReferenceId", json!("o1"))
            ])
        );
        assert!(!same_undeferred(&m, &base, &dv));
    }

    #[test]
    fn a_link_without_a_base_agrees_where_the_sides_agree() {
        let m = Mapping::default_mapping();
        let pc = values(&[
            ("details.notes", json!("a")),
            ("details.dealValue", json!(1.0)),
        ]);
        let dv = values(&[
            ("details.notes", json!("a")),
            ("details.dealValue", json!(2.0)),
        ]);
        let plan = merge_fields(&m, None, &pc, &dv);
        assert_eq!(plan.to_pc, values(&[("details.dealValue", json!(2.0))]));
        assert!(plan.to_crm.is_empty());
        let base = next_base(None, &pc, &dv);
        assert_eq!(base, values(&[("details.notes", json!("a"))]));
    }

    #[test]
    fn the_next_base_keeps_what_is_still_pending() {
        let old = values(&[("details.notes", json!("x"))]);
        let pc = values(&[("details.dealValue", json!(1.0))]);
        let dv = values(&[
            ("details.dealValue", json!(1.0)),
            ("details.notes", json!("x")),
        ]);
        assert_eq!(
            next_base(Some(&old), &pc, &dv),
            values(&[
                ("details.dealValue", json!(1.0)),
                ("details.notes", json!("x"))
            ])
        );
    }

    #[test]
    fn a_close_wins_over_open_and_two_closes_follow_the_rule() {
        let m = Mapping::default_mapping();
        let won = TargetState::Won { statuscode: 3 };
        let lost = TargetState::Lost { statuscode: 4 };
        let open = TargetState::Open { statuscode: 1 };
        assert_eq!(
            crm_state(&m, Some(won), Some(open)),
            (CrmState::Keep, false)
        );
        assert_eq!(
            crm_state(&m, None, Some(lost)),
            (CrmState::Move(lost), false)
        );
        assert_eq!(crm_state(&m, Some(won), Some(won)), (CrmState::Keep, false));
        // The default: Partner Center's status wins when both closed differently.
        assert_eq!(
            crm_state(&m, Some(won), Some(lost)),
            (CrmState::Move(lost), true)
        );
        assert_eq!(crm_state(&m, None, None), (CrmState::Keep, false));
    }
}
