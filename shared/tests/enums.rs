//! Every documented enum value parses to its variant and prints back as the wire spelling;
//! an undocumented value is kept, not rejected.

use cosell::partner_center::status::*;

fn check<T>(known: &[T], parse: fn(&str) -> T, as_str: fn(&T) -> String, is_known: fn(&T) -> bool)
where
    T: PartialEq + std::fmt::Debug,
{
    assert!(!known.is_empty());
    for v in known {
        let wire = as_str(v);
        assert_eq!(&parse(&wire), v, "{wire}");
        assert_eq!(
            &parse(&wire.to_ascii_lowercase()),
            v,
            "case-insensitive {wire}"
        );
        assert!(is_known(v));
        let json = serde_json::to_string(&wire).unwrap();
        assert_eq!(json, format!("\"{wire}\""));
    }
}

macro_rules! check_enum {
    ($t:ty) => {
        check::<$t>(
            <$t>::KNOWN,
            <$t>::parse,
            |v| v.as_str().to_string(),
            <$t>::is_known,
        )
    };
}

#[test]
fn every_documented_value_parses() {
    check_enum!(ReferralStatus);
    check_enum!(ReferralSubstatus);
    check_enum!(ReferralType);
    check_enum!(ReferralQualification);
    check_enum!(ReferralDirection);
    check_enum!(ReferralTargetType);
}

#[test]
fn documented_status_values_are_all_present() {
    let names: Vec<&str> = ReferralStatus::KNOWN.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["None", "New", "Active", "Closed"]);
    let names = |v: &[ReferralSubstatus]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(ReferralSubstatus::KNOWN),
        ["None", "Pending", "Received", "Accepted", "Won", "Lost", "Declined", "Expired"]
    );
    // Not documented values: kept when read, never known.
    for undocumented in ["Engaged", "Error"] {
        assert!(!ReferralSubstatus::parse(undocumented).is_known());
    }
    let q: Vec<String> = ReferralQualification::KNOWN
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        q,
        ["None", "MarketingQualified", "SalesQualified", "Direct"]
    );
    let t: Vec<String> = ReferralTargetType::KNOWN
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(t, ["None", "BusinessProfileLocation", "SolutionProfile"]);
    assert!(!ReferralTargetType::parse("Msft").is_known());
    assert_eq!(ReferralType::parse("Shared"), ReferralType::Shared);
    assert_eq!(
        ReferralDirection::parse("Incoming"),
        ReferralDirection::Incoming
    );
}

#[test]
fn unknown_values_are_kept_verbatim() {
    let v: ReferralSubstatus = serde_json::from_str("\"Paused\"").unwrap();
    assert_eq!(v, ReferralSubstatus::Other("Paused".into()));
    assert!(!v.is_known());
    assert_eq!(serde_json::to_string(&v).unwrap(), "\"Paused\"");
}

#[test]
fn status_state_machine_follows_the_docs() {
    use ReferralStatus::*;
    assert!(New.may_move_to(&Active));
    assert!(New.may_move_to(&Closed));
    assert!(Active.may_move_to(&Closed));
    assert!(!Active.may_move_to(&New));
    assert!(!Closed.may_move_to(&Active));
    assert!(!Closed.may_move_to(&New));
    assert!(New
        .allowed_substatus()
        .contains(&ReferralSubstatus::Received));
    assert!(Active
        .allowed_substatus()
        .contains(&ReferralSubstatus::Accepted));
    assert!(!Active.allowed_substatus().contains(&ReferralSubstatus::Won));
    for s in [
        ReferralSubstatus::Won,
        ReferralSubstatus::Lost,
        ReferralSubstatus::Declined,
        ReferralSubstatus::Expired,
    ] {
        assert!(Closed.allowed_substatus().contains(&s));
    }
}
