//! The audit entry one inbound sync leaves behind, gathered as the sync goes so a failure
//! half-way still says what was attempted and on which opportunity.

use crate::audit::{AuditEntry, Direction, Outcome};
use crate::engine::SyncError;

use super::InboundOutcome;

pub(super) struct Trail {
    referral_id: String,
    opportunity_id: Option<String>,
    steps: Vec<&'static str>,
    notes: Vec<String>,
    conflict: bool,
    deferred: bool,
}

impl Trail {
    pub(super) fn new(referral_id: &str) -> Self {
        Trail {
            referral_id: referral_id.to_string(),
            opportunity_id: None,
            steps: Vec::new(),
            notes: Vec::new(),
            conflict: false,
            deferred: false,
        }
    }

    pub(super) fn opportunity(&mut self, id: &str) {
        self.opportunity_id = Some(id.to_string());
    }

    /// A write (or decision) made, in order: the audit action is the steps joined by `+`.
    pub(super) fn step(&mut self, step: &'static str) {
        self.steps.push(step);
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Both sides changed a field and the conflict rule kept one of them.
    pub(super) fn conflict(&mut self, note: impl Into<String>) {
        self.conflict = true;
        self.note(note);
    }

    /// The sync was put off for a reason that is no failure (see `origin`): it leaves no
    /// audit entry, like a sync that finds its lease taken.
    pub(super) fn defer(&mut self) {
        self.deferred = true;
    }

    pub(super) fn is_deferred(&self) -> bool {
        self.deferred
    }

    fn action(&self) -> String {
        if self.steps.is_empty() {
            "sync_referral".to_string()
        } else {
            self.steps.join("+")
        }
    }

    pub(super) fn entry(&self, result: &Result<InboundOutcome, SyncError>) -> AuditEntry {
        let outcome = match result {
            Err(_) => Outcome::Failed,
            Ok(InboundOutcome::Unchanged { .. } | InboundOutcome::Skipped { .. }) => {
                Outcome::Skipped
            }
            Ok(_) if self.conflict => Outcome::Conflict,
            Ok(_) => Outcome::Success,
        };
        let mut entry = AuditEntry::new(Direction::Inbound, self.action(), outcome)
            .referral(self.referral_id.clone());
        if let Some(id) = &self.opportunity_id {
            entry = entry.opportunity(id.clone());
        }
        let mut notes = self.notes.clone();
        if let Ok(InboundOutcome::Skipped { reason }) = result {
            notes.insert(0, reason.clone());
        }
        if !notes.is_empty() {
            entry = entry.detail(notes.join("; "));
        }
        if let Err(e) = result {
            entry = entry.error(e.to_string());
        }
        entry
    }
}
