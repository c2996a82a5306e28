//! The referral enums, with every documented value. Unknown values stay as `Other`.

use crate::open_enum;

open_enum! {
    /// `ReferralStatus`.
    ReferralStatus { New => "New", Active => "Active", Closed => "Closed" }
}

open_enum! {
    /// `ReferralSubstatus`.
    ReferralSubstatus {
        Pending => "Pending",
        Received => "Received",
        Accepted => "Accepted",
        Engaged => "Engaged",
        Declined => "Declined",
        Lost => "Lost",
        Won => "Won",
        Expired => "Expired",
        Error => "Error",
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
        ExpressedInterest => "ExpressedInterest",
        IntentToBuy => "IntentToBuy",
        SalesAccepted => "SalesAccepted",
        SalesMarketingQualified => "SalesMarketingQualified",
        TelesalesQualified => "TelesalesQualified",
    }
}

open_enum! {
    /// `ReferralDirection`: `Incoming` from Microsoft or another partner, `Outgoing` ours.
    ReferralDirection { Incoming => "Incoming", Outgoing => "Outgoing" }
}

open_enum! {
    /// `ReferralTargetType`.
    ReferralTargetType {
        None => "None",
        Solution => "Solution",
        BusinessProfileLocation => "BusinessProfileLocation",
        Organization => "Organization",
        Msft => "Msft",
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
            ReferralStatus::Active => &[S::Accepted, S::Engaged],
            ReferralStatus::Closed => &[S::Won, S::Lost, S::Declined, S::Expired],
            ReferralStatus::Other(_) => &[],
        }
    }
}
