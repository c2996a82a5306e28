//! The referral status the opportunity asks for: the seller's accept/decline of a received
//! referral, or closing it as won/lost. Each move is made only from a status it can come
//! from, so a repeated message finds nothing left to do.

use crate::dataverse::Opportunity;
use crate::engine::Engine;
use crate::partner_center::{Referral, ReferralDirection, ReferralStatus, ReferralSubstatus};

const DECLINE_REASON: &str = "Declined by the partner";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    Accept,
    Decline { reason: String },
    Close { won: bool, reason: String },
}

impl Move {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Move::Accept => "accept",
            Move::Decline { .. } => "decline",
            Move::Close { won: true, .. } => "close_won",
            Move::Close { won: false, .. } => "close_lost",
        }
    }
}

impl Move {
    /// The referral's status and substatus once the move is made.
    pub fn outcome(&self) -> (ReferralStatus, ReferralSubstatus) {
        match self {
            Move::Accept => (ReferralStatus::Active, ReferralSubstatus::Accepted),
            Move::Decline { .. } => (ReferralStatus::Closed, ReferralSubstatus::Declined),
            Move::Close { won: true, .. } => (ReferralStatus::Closed, ReferralSubstatus::Won),
            Move::Close { won: false, .. } => (ReferralStatus::Closed, ReferralSubstatus::Lost),
        }
    }
}

/// The move still to make on `referral`, if any.
pub(super) fn wanted(engine: &Engine, opp: &Opportunity, referral: &Referral) -> Option<Move> {
    let (status, substatus, reason) = engine.mapping.outbound_status(opp, &engine.columns)?;
    let current = referral.status.as_ref();
    let is_new = current == Some(&ReferralStatus::New);
    // Only a referral someone sent us waits for our answer; our own is Microsoft's to take.
    let ours = referral.direction.as_ref() == Some(&ReferralDirection::Outgoing);
    match (status, substatus) {
        (ReferralStatus::Active, ReferralSubstatus::Accepted) if is_new && !ours => {
            Some(Move::Accept)
        }
        (ReferralStatus::Closed, ReferralSubstatus::Declined) if is_new && !ours => {
            Some(Move::Decline {
                reason: reason.unwrap_or_else(|| DECLINE_REASON.to_string()),
            })
        }
        (ReferralStatus::Closed, sub @ (ReferralSubstatus::Won | ReferralSubstatus::Lost))
            if current != Some(&ReferralStatus::Closed) =>
        {
            let won = sub == ReferralSubstatus::Won;
            let reason = reason.unwrap_or_else(|| if won { "Won" } else { "Lost" }.to_string());
            Some(Move::Close { won, reason })
        }
        _ => None,
    }
}

/// The patch operations of the move (they can go in one PATCH with field changes).
pub(super) fn ops(mv: &Move) -> Vec<crate::partner_center::PatchOp> {
    let (status, substatus) = mv.outcome();
    let reason = match mv {
        Move::Accept => None,
        Move::Decline { reason } | Move::Close { reason, .. } => Some(reason.as_str()),
    };
    crate::partner_center::client::status_ops(status, substatus, reason)
}
