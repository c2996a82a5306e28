//! The status table: Partner Center status/substatus ↔ Dataverse state/status reason, and
//! the outbound rule for a seller's accept/decline and for closing the opportunity.

use serde_json::Value;

use crate::config::ColumnNames;
use crate::dataverse::model::{state, status_reason};
use crate::dataverse::Opportunity;
use crate::partner_center::{Referral, ReferralStatus, ReferralSubstatus};

use super::outbound::{JsonPatchOp, PatchOp};
use super::schema::resolve_column;
use super::Mapping;

/// Where the opportunity should end up. Closing goes through `WinOpportunity` /
/// `LoseOpportunity` with this status reason; opening is a PATCH of statecode+statuscode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetState {
    Open { statuscode: i32 },
    Won { statuscode: i32 },
    Lost { statuscode: i32 },
}

impl TargetState {
    pub fn statecode(&self) -> i32 {
        match self {
            TargetState::Open { .. } => state::OPEN,
            TargetState::Won { .. } => state::WON,
            TargetState::Lost { .. } => state::LOST,
        }
    }

    pub fn statuscode(&self) -> i32 {
        match self {
            TargetState::Open { statuscode }
            | TargetState::Won { statuscode }
            | TargetState::Lost { statuscode } => *statuscode,
        }
    }

    /// From the file's `state` word; `None` for an unknown word.
    pub(crate) fn from_word(word: &str, statuscode: i32) -> Option<TargetState> {
        match word.trim().to_ascii_lowercase().as_str() {
            "open" => Some(TargetState::Open { statuscode }),
            "won" => Some(TargetState::Won { statuscode }),
            "lost" => Some(TargetState::Lost { statuscode }),
            _ => None,
        }
    }
}

/// The state an out-of-the-box status reason belongs to; `None` for a custom reason.
pub(crate) fn builtin_reason_state(statuscode: i32) -> Option<i32> {
    match statuscode {
        status_reason::IN_PROGRESS | status_reason::ON_HOLD => Some(state::OPEN),
        status_reason::WON => Some(state::WON),
        status_reason::CANCELED | status_reason::OUT_SOLD => Some(state::LOST),
        _ => None,
    }
}

/// Every documented status/substatus pair.
pub(crate) fn documented_pairs() -> Vec<(ReferralStatus, ReferralSubstatus)> {
    ReferralStatus::KNOWN
        .iter()
        .flat_map(|s| {
            s.allowed_substatus()
                .iter()
                .map(|ss| (s.clone(), ss.clone()))
        })
        .collect()
}

pub(crate) fn is_documented(status: &ReferralStatus, substatus: &ReferralSubstatus) -> bool {
    status.allowed_substatus().contains(substatus)
}

impl Mapping {
    /// The opportunity state for a referral status pair, per the `[status]` inbound rules.
    pub fn target_state(
        &self,
        status: &ReferralStatus,
        substatus: &ReferralSubstatus,
    ) -> Option<TargetState> {
        self.status
            .inbound
            .iter()
            .find(|r| {
                ReferralStatus::parse(&r.status) == *status
                    && ReferralSubstatus::parse(&r.substatus) == *substatus
            })
            .and_then(|r| TargetState::from_word(&r.state, r.statuscode))
    }

    /// The referral status the opportunity asks for: closing it as won or lost, or the
    /// seller's accept/decline in the decision column while it is open. `None` when no rule
    /// matches (an open opportunity with no decision).
    pub fn outbound_status(
        &self,
        opp: &Opportunity,
        columns: &ColumnNames,
    ) -> Option<(ReferralStatus, ReferralSubstatus, Option<String>)> {
        let statecode = opp.statecode.unwrap_or(state::OPEN);
        let decision = resolve_column("$col.decision", columns)
            .ok()
            .and_then(|c| opp.column(c))
            .and_then(choice_number);
        self.status
            .outbound
            .iter()
            .find(|r| {
                r.statecode.is_none_or(|s| s == statecode)
                    && r.statuscode.is_none_or(|s| Some(s) == opp.statuscode)
                    && r.decision.is_none_or(|d| Some(d) == decision)
            })
            .map(|r| {
                (
                    ReferralStatus::parse(&r.status),
                    ReferralSubstatus::parse(&r.substatus),
                    r.reason.clone(),
                )
            })
    }
}

fn choice_number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The PATCH that moves `current` to the given status, or nothing when it is already there
/// or the documented state machine does not allow the move (e.g. reopening a closed one).
pub fn status_patch(
    current: &Referral,
    status: &ReferralStatus,
    substatus: &ReferralSubstatus,
    reason: Option<&str>,
) -> Vec<JsonPatchOp> {
    let same =
        current.status.as_ref() == Some(status) && current.substatus.as_ref() == Some(substatus);
    let allowed = current
        .status
        .as_ref()
        .is_none_or(|from| from.may_move_to(status));
    if same || !allowed || !is_documented(status, substatus) {
        return Vec::new();
    }
    let op = |present: bool, path: &str, value: &str| JsonPatchOp {
        op: if present {
            PatchOp::Replace
        } else {
            PatchOp::Add
        },
        path: path.to_string(),
        value: Value::String(value.to_string()),
    };
    let mut ops = vec![
        op(current.status.is_some(), "/status", status.as_str()),
        op(
            current.substatus.is_some(),
            "/substatus",
            substatus.as_str(),
        ),
    ];
    if let Some(r) = reason {
        ops.push(op(current.status_reason.is_some(), "/statusReason", r));
    }
    ops
}
