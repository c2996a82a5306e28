//! The referral enums, with the values "referral resources" documents (see the reference's
//! "Enums and sub-objects"). Anything else the service sends stays as `Other`; the stand-in
//! refuses it on a write.

use crate::open_enum;

open_enum! {
    /// `ReferralStatus`.
    ReferralStatus { None => "None", New => "New", Active => "Active", Closed => "Closed" }
}

open_enum! {
    /// `ReferralSubstatus`.
    ReferralSubstatus {
        None => "None",
        Pending => "Pending",
        Received => "Received",
        Accepted => "Accepted",
        Won => "Won",
        Lost => "Lost",
        Declined => "Declined",
        Expired => "Expired",
    }
}

open_enum! {
    /// `ReferralType`: visible to one partner, or shared with another party (co-sell).
    ReferralType { Independent => "Independent", Shared => "Shared" }
}

open_enum! {
    /// `ReferralQualification`.
    ReferralQualification {
        None => "None",
        MarketingQualified => "MarketingQualified",
        SalesQualified => "SalesQualified",
        Direct => "Direct",
    }
}

open_enum! {
    /// `ReferralDirection`: `Incoming` from Microsoft or another partner, `Outgoing` ours
    /// (`Outgoing` is not in the docs' samples: UNVERIFIED).
    ReferralDirection { Incoming => "Incoming", Outgoing => "Outgoing" }
}

open_enum! {
    /// `ReferralTargetType`: a location of the partner business profile, or a solution
    /// profile. `msft` is an id (`BusinessProfileLocation`/`msft`), never a type.
    ReferralTargetType {
        None => "None",
        BusinessProfileLocation => "BusinessProfileLocation",
        SolutionProfile => "SolutionProfile",
    }
}

impl ReferralStatus {
    /// The statuses a referral may move to from this one (the documented state machine).
    pub fn may_move_to(&self, next: &ReferralStatus) -> bool {
        use ReferralStatus::*;
        matches!(
            (self, next),
            (New, New | Active | Closed)
                | (Active, Active | Closed)
                | (Closed, Closed)
                | (Other(_), _)
                | (_, Other(_))
        )
    }

    /// The substatuses documented for this status.
    pub fn allowed_substatus(&self) -> &'static [ReferralSubstatus] {
        use ReferralSubstatus as S;
        match self {
            ReferralStatus::New => &[S::Pending, S::Received],
            ReferralStatus::Active => &[S::Accepted],
            ReferralStatus::Closed => &[S::Won, S::Lost, S::Declined, S::Expired],
            ReferralStatus::None | ReferralStatus::Other(_) => &[],
        }
    }
}
