//! The audit entries one reconcile leaves: one for what it wrote to the opportunity, one
//! for each write to the referral, one for a conflict the rules settled, or a skip or a
//! failure. Gathered as the reconcile goes, so a failure half-way says what was attempted.
//! An echo of our own write leaves none.

use crate::audit::{AuditEntry, Direction, Outcome};
use crate::engine::SyncError;
use crate::mapping::Side;

use super::merge::Conflict;
use super::moves::Move;
use super::Origin;

#[derive(Debug, Clone)]
pub(super) struct Trail {
    origin: Origin,
    referral_id: Option<String>,
    opportunity_id: String,
    crm_steps: Vec<&'static str>,
    crm_fields: Vec<String>,
    pc_fields: Vec<String>,
    moves: Vec<Move>,
    created_referral: Option<String>,
    adopted_referral: bool,
    conflicts: Vec<Conflict>,
    status_conflict: bool,
    notes: Vec<String>,
    /// A seller's change the connector set back, and why.
    refused: Option<&'static str>,
}

impl Trail {
    pub(super) fn new(origin: Origin, opportunity_id: &str, referral_id: Option<&str>) -> Self {
        Trail {
            origin,
            referral_id: referral_id.map(str::to_string),
            opportunity_id: opportunity_id.to_string(),
            crm_steps: Vec::new(),
            crm_fields: Vec::new(),
            pc_fields: Vec::new(),
            moves: Vec::new(),
            created_referral: None,
            refused: None,
            adopted_referral: false,
            conflicts: Vec::new(),
            status_conflict: false,
            notes: Vec::new(),
        }
    }

    /// The referral the pair turned out to have.
    pub(super) fn referral(&mut self, id: &str) {
        self.referral_id = Some(id.to_string());
    }

    pub(super) fn crm_step(&mut self, step: &'static str) {
        if !self.crm_steps.contains(&step) {
            self.crm_steps.push(step);
        }
    }

    pub(super) fn crm_fields(&mut self, fields: impl IntoIterator<Item = String>) {
        extend_unique(&mut self.crm_fields, fields);
    }

    pub(super) fn pc_fields(&mut self, fields: impl IntoIterator<Item = String>) {
        extend_unique(&mut self.pc_fields, fields);
    }

    pub(super) fn moved(&mut self, mv: Move) {
        self.moves.push(mv);
    }

    pub(super) fn note_created_referral(&mut self, detail: String) {
        self.created_referral = Some(detail);
    }

    pub(super) fn created_referral(&self) -> bool {
        self.created_referral.is_some()
    }

    pub(super) fn crm_steps_include(&self, step: &str) -> bool {
        self.crm_steps.contains(&step)
    }

    pub(super) fn created_opportunity(&self) -> bool {
        self.crm_steps.contains(&"create_opportunity")
    }

    pub(super) fn adopted_referral(&mut self) {
        self.adopted_referral = true;
    }

    pub(super) fn conflicts(&mut self, conflicts: &[Conflict]) {
        for c in conflicts {
            if !self.conflicts.iter().any(|k| k.field == c.field) {
                self.conflicts.push(c.clone());
            }
        }
    }

    pub(super) fn status_conflict(&mut self) {
        self.status_conflict = true;
    }

    /// A seller's change of the opportunity that cannot be made and was set back.
    pub(super) fn refused_change(&mut self, why: &'static str) {
        self.refused = Some(why);
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// True when the reconcile wrote anything to either side.
    pub(super) fn wrote(&self) -> bool {
        !self.crm_steps.is_empty()
            || !self.pc_fields.is_empty()
            || !self.moves.is_empty()
            || self.created_referral.is_some()
    }

    fn entry(&self, direction: Direction, action: &str, outcome: Outcome) -> AuditEntry {
        let e = AuditEntry::new(direction, action, outcome).opportunity(&self.opportunity_id);
        match &self.referral_id {
            Some(r) => e.referral(r),
            None => e,
        }
    }

    fn notes(&self) -> Option<String> {
        (!self.notes.is_empty()).then(|| self.notes.join("; "))
    }

    /// The entries of a reconcile that ended well.
    pub(super) fn done(&self) -> Vec<AuditEntry> {
        let mut out = Vec::new();
        if !self.conflicts.is_empty() || self.status_conflict {
            let side = |w: Side| {
                self.conflicts
                    .iter()
                    .filter(|c| c.winner == w)
                    .map(|c| c.field.as_str())
                    .collect::<Vec<_>>()
            };
            let (pc, crm) = (side(Side::PartnerCenter), side(Side::Crm));
            let mut detail = format!(
                "both sides changed; Partner Center wins: {}; CRM wins: {}",
                list(&pc),
                list(&crm)
            );
            if self.status_conflict {
                detail.push_str("; both closed differently: the status rule decided");
            }
            let direction = if crm.is_empty() {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            out.push(
                self.entry(direction, "merge", Outcome::Conflict)
                    .detail(detail),
            );
        }
        if !self.crm_steps.is_empty() {
            let mut e = self.entry(
                Direction::Inbound,
                &self.crm_steps.join("+"),
                Outcome::Success,
            );
            let mut detail = Vec::new();
            if !self.crm_fields.is_empty() {
                detail.push(format!("fields changed: {}", self.crm_fields.join(", ")));
            }
            detail.extend(self.notes());
            if !detail.is_empty() {
                e = e.detail(detail.join("; "));
            }
            out.push(e);
        }
        if let Some(created) = &self.created_referral {
            out.push(
                self.entry(Direction::Outbound, "create_referral", Outcome::Success)
                    .detail(created.clone()),
            );
        }
        if self.adopted_referral {
            out.push(
                self.entry(Direction::Outbound, "adopt_referral", Outcome::Success)
                    .detail("linked to the referral the opportunity already had"),
            );
        }
        if !self.pc_fields.is_empty() {
            out.push(
                self.entry(Direction::Outbound, "update_referral", Outcome::Success)
                    .detail(format!("fields changed: {}", self.pc_fields.join(", "))),
            );
        }
        if let Some(why) = self.refused {
            out.push(
                self.entry(Direction::Outbound, "refuse_change", Outcome::Skipped)
                    .detail(why),
            );
        }
        for mv in &self.moves {
            let mut e = self.entry(Direction::Outbound, mv.action(), Outcome::Success);
            if let Move::Decline { reason } | Move::Close { reason, .. } = mv {
                e = e.detail(format!("reason: {reason}"));
            }
            out.push(e);
        }
        out
    }

    fn direction(&self) -> Direction {
        match self.origin {
            Origin::Opportunity => Direction::Outbound,
            Origin::Referral | Origin::Operator | Origin::Related => Direction::Inbound,
        }
    }

    /// The entry of a pair deliberately not synced.
    pub(super) fn skipped(&self, reason: &str) -> AuditEntry {
        let mut detail = vec![reason.to_string()];
        detail.extend(self.notes());
        self.entry(self.direction(), "skip", Outcome::Skipped)
            .detail(detail.join("; "))
    }

    /// The entry of a failed reconcile, with what it had written before it failed.
    pub(super) fn failed(&self, error: &SyncError) -> AuditEntry {
        let action = if self.referral_id.is_none() && self.origin == Origin::Opportunity {
            "create_referral"
        } else {
            "reconcile"
        };
        let mut detail = vec![if error.is_permanent() {
            "rejected; not retried".to_string()
        } else {
            "will retry".to_string()
        }];
        if self.wrote() {
            detail.push(format!("written before the failure: {}", self.written()));
        }
        detail.extend(self.notes());
        self.entry(self.direction(), action, Outcome::Failed)
            .detail(detail.join("; "))
            .error(error.reason())
    }

    fn written(&self) -> String {
        let mut parts: Vec<String> = self.crm_steps.iter().map(|s| s.to_string()).collect();
        if !self.pc_fields.is_empty() {
            parts.push("update_referral".into());
        }
        parts.extend(self.moves.iter().map(|m| m.action().to_string()));
        parts.join("+")
    }
}

fn extend_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
