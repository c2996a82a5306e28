//! The declarative mapping against the shipped default file: every default row both ways,
//! the status table, value conversions, validation of crafted bad files, a user override,
//! and the echo-suppression fingerprints.

use cosell::config::ColumnNames;
use cosell::dataverse::{Account, Contact, Opportunity};
use cosell::mapping::{
    status_patch, strip_checkmark, with_checkmark, CrmRows, DealType, InboundContext, InboundPlan,
    JsonPatchOp, Mapping, MappingError, PatchOp, Side, TargetState,
};
use cosell::partner_center::{Referral, ReferralStatus, ReferralSubstatus};
use serde_json::{json, Map, Value};

fn cols() -> ColumnNames {
    ColumnNames {
        sync_flag: "cosell_syncwithpartnercenter".into(),
        referral_id: "cosell_referralidentifier".into(),
        referral_link: "cosell_referrallink".into(),
        help_needed: "cosell_howcanmicrosofthelp".into(),
        solutions: "cosell_solutions".into(),
        audit: "cosell_audit".into(),
        decision: "cosell_referraldecision".into(),
        visibility: "cosell_referralvisibility".into(),
    }
}

fn referral_json() -> Value {
    json!({
        "id": "4111fffc-f9ee-4d53-bba6-569135228642",
        "engagementId": "37ef26aa-1d15-4533-9f93-a69bd33ab1e5",
        "externalReferenceId": "b3828ac8-917a-e511-80d2-00155d2a68d2",
        "name": "Contoso supply chain",
        "createdDateTime": "2018-11-06T18:40:42.6178337Z",
        "status": "Active", "substatus": "Accepted",
        "type": "Shared", "direction": "Incoming",
        "customerProfile": {
            "name": "Contoso Customer Inc",
            "address": {"addressLine1": "One Microsoft Way", "addressLine2": "34",
                        "city": "Redmond", "state": "WA", "postalCode": "98052", "country": "us"},
            "team": [{"firstName": "Sue", "lastName": "Smith", "phoneNumber": "1234567890",
                      "email": "sue.smith@contoso.com"}]
        },
        "details": {
            "notes": "Needs supply chain apps", "dealValue": 50000.456, "currency": "usd",
            "closingDateTime": "2018-11-14T23:30:00.1234567-02:00",
            "requirements": {"solutions": [
                {"id": "Dynamics365forFieldService", "name": "Dynamics 365 for Field Service", "type": "Category"},
                {"id": "SOL-15974-MQF", "name": "Contoso-Ale_Test"}
            ]}
        },
        "inviteContext": {"notes": "hi"},
        "eTag": "\"2500ec5a\""
    })
}

fn referral() -> Referral {
    serde_json::from_value(referral_json()).unwrap()
}

fn ctx() -> InboundContext {
    InboundContext {
        referral_link: "https://partner.microsoft.com/referrals/4111".into(),
        currency_id: Some("cur-usd".into()),
    }
}

fn plan_of(r: &Referral) -> InboundPlan {
    Mapping::default_mapping().inbound(r, &cols(), &ctx())
}

/// An opportunity as the CRM would hold it after the inbound write of `referral()`.
fn synced_opp() -> Opportunity {
    let plan = plan_of(&referral());
    let mut row = plan.opportunity.clone();
    row.remove("transactioncurrencyid@odata.bind");
    row.insert(
        "opportunityid".into(),
        json!("b3828ac8-917a-e511-80d2-00155d2a68d2"),
    );
    row.insert("statecode".into(), json!(0));
    row.insert("statuscode".into(), json!(1));
    row.insert(
        "transactioncurrencyid".into(),
        json!({"transactioncurrencyid": "cur-usd", "isocurrencycode": "USD"}),
    );
    // The seller asked Microsoft for a demo: a co-sell.
    row.insert("cosell_howcanmicrosofthelp".into(), json!(100000003));
    serde_json::from_value(Value::Object(row)).unwrap()
}

fn account() -> Account {
    serde_json::from_value(Value::Object(plan_of(&referral()).account)).unwrap()
}

fn contact() -> Contact {
    serde_json::from_value(Value::Object(plan_of(&referral()).contact.unwrap())).unwrap()
}

#[test]
fn default_mapping_validates() {
    assert_eq!(Mapping::default_mapping().validate(&cols()), Ok(()));
}

#[test]
fn inbound_maps_every_default_row() {
    let plan = plan_of(&referral());
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let contact = plan.contact.clone().expect("referral names a contact");
    let rows: &[(&Map<String, Value>, &str, Value)] = &[
        (&plan.opportunity, "name", json!("Contoso supply chain")),
        (
            &plan.opportunity,
            "cosell_referralidentifier",
            json!("4111fffc-f9ee-4d53-bba6-569135228642"),
        ),
        (
            &plan.opportunity,
            "cosell_referrallink",
            json!("https://partner.microsoft.com/referrals/4111"),
        ),
        (
            &plan.opportunity,
            "cosell_syncwithpartnercenter",
            json!(true),
        ),
        (&plan.opportunity, "estimatedvalue", json!(50000.46)),
        (&plan.opportunity, "isrevenuesystemcalculated", json!(false)),
        (
            &plan.opportunity,
            "transactioncurrencyid@odata.bind",
            json!("/transactioncurrencies(cur-usd)"),
        ),
        // 23:30 at -02:00 is 01:30 UTC the next day.
        (&plan.opportunity, "estimatedclosedate", json!("2018-11-15")),
        (
            &plan.opportunity,
            "description",
            json!("Needs supply chain apps"),
        ),
        (
            &plan.opportunity,
            "cosell_solutions",
            json!("Dynamics365forFieldService;SOL-15974-MQF"),
        ),
        (&plan.account, "name", json!("Contoso Customer Inc")),
        (&plan.account, "address1_line1", json!("One Microsoft Way")),
        (&plan.account, "address1_line2", json!("34")),
        (&plan.account, "address1_city", json!("Redmond")),
        (&plan.account, "address1_stateorprovince", json!("WA")),
        (&plan.account, "address1_postalcode", json!("98052")),
        (&plan.account, "address1_country", json!("US")),
        (&contact, "firstname", json!("Sue")),
        (&contact, "lastname", json!("Smith")),
        (&contact, "emailaddress1", json!("sue.smith@contoso.com")),
        (&contact, "telephone1", json!("1234567890")),
    ];
    for (table, column, want) in rows {
        assert_eq!(table.get(*column), Some(want), "column {column}");
    }
    // Nothing else: externalReferenceId is outbound only, status is not a column.
    // Nor the help column: it picks a create's deal type, no referral field carries it.
    assert_eq!(plan.opportunity.len(), 10, "{:?}", plan.opportunity.keys());
    assert!(!plan.opportunity.contains_key("opportunityid"));
    assert!(!plan.opportunity.contains_key("statecode"));
    assert_eq!(plan.account.len(), 7);
    assert_eq!(contact.len(), 4);
    assert_eq!(plan.target_state, TargetState::Open { statuscode: 1 });
    assert_eq!(plan.currency_iso.as_deref(), Some("USD"));
}

#[test]
fn inbound_without_currency_id_or_contact_leaves_them_out() {
    let mut v = referral_json();
    v["customerProfile"]["team"] = json!([]);
    let r: Referral = serde_json::from_value(v).unwrap();
    let plan = Mapping::default_mapping().inbound(
        &r,
        &cols(),
        &InboundContext {
            referral_link: String::new(),
            currency_id: None,
        },
    );
    assert!(plan.contact.is_none());
    assert!(!plan
        .opportunity
        .contains_key("transactioncurrencyid@odata.bind"));
    assert!(!plan.opportunity.contains_key("cosell_referrallink"));
    assert_eq!(plan.currency_iso.as_deref(), Some("USD"));
    // The contact e-mail is required: its absence is reported.
    assert!(plan.warnings.iter().any(|w| matches!(w,
        MappingError::MissingRequired { path, .. } if path == "customerProfile.team[0].email")));
}

#[test]
fn inbound_dates_take_the_utc_date() {
    let cases = [
        ("2018-11-14T00:00:00Z", "2018-11-14"),
        ("2018-11-06T18:40:42.6178337Z", "2018-11-06"),
        ("2018-11-14T23:59:59.9999999Z", "2018-11-14"),
        ("2018-11-14T23:30:00.1234567-02:00", "2018-11-15"),
        ("2018-11-15T00:30:00.5+01:00", "2018-11-14"),
        ("2018-11-15T00:00:00+00:00", "2018-11-15"),
        ("2018-12-31T22:00:00-03:00", "2019-01-01"),
        ("2018-11-14T10:00:00", "2018-11-14"),
        ("2018-11-14T10:00:00.1234567", "2018-11-14"),
        ("2018-11-14", "2018-11-14"),
    ];
    for (input, want) in cases {
        let mut v = referral_json();
        v["details"]["closingDateTime"] = json!(input);
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        assert_eq!(
            plan.opportunity["estimatedclosedate"],
            json!(want),
            "{input}"
        );
        assert!(plan.warnings.is_empty(), "{input}: {:?}", plan.warnings);
    }
    let mut v = referral_json();
    v["details"]["closingDateTime"] = json!("14/11/2018");
    let plan = plan_of(&serde_json::from_value(v).unwrap());
    assert!(!plan.opportunity.contains_key("estimatedclosedate"));
    assert!(
        matches!(&plan.warnings[..], [MappingError::BadValue { path, .. }] if path == "details.closingDateTime")
    );
}

#[test]
fn inbound_money_rounds_to_cents() {
    let cases = [
        (json!(50000), Some(50000.0)),
        (json!(10.125), Some(10.13)),
        (json!(0.004), Some(0.0)),
        (json!(-12.345), Some(-12.35)),
        (json!(99.999), Some(100.0)),
        (json!("10000"), Some(10000.0)),
        (json!(" 1234.5 "), Some(1234.5)),
        (json!("ten"), None),
    ];
    for (input, want) in cases {
        let mut v = referral_json();
        v["details"]["dealValue"] = input.clone();
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        let got = plan
            .opportunity
            .get("estimatedvalue")
            .and_then(Value::as_f64);
        assert_eq!(got, want, "{input}");
        assert_eq!(plan.warnings.is_empty(), want.is_some(), "{input}");
    }
}

#[test]
fn inbound_country_codes() {
    let cases = [
        ("US", Some("US")),
        ("de", Some("DE")),
        ("USA", Some("US")),
        ("gbr", Some("GB")),
        ("JPN", Some("JP")),
        ("XYZ", None),
        ("Germany", None),
    ];
    for (input, want) in cases {
        let mut v = referral_json();
        v["customerProfile"]["address"]["country"] = json!(input);
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        assert_eq!(
            plan.account.get("address1_country").and_then(Value::as_str),
            want,
            "{input}"
        );
        if want.is_none() {
            assert!(matches!(&plan.warnings[..],
                [MappingError::BadValue { path, .. }] if path == "customerProfile.address.country"));
        }
    }
}

/// A predicate on the error a case expects.
type Check = fn(&MappingError) -> bool;

fn op(op: PatchOp, path: &str, value: Value) -> JsonPatchOp {
    JsonPatchOp {
        op,
        path: path.into(),
        value,
    }
}

#[test]
fn the_help_column_picks_the_deal_type_and_names_the_help() {
    let m = Mapping::default_mapping();
    let entries = &m.value_maps["help_needed"].entries;
    assert_eq!(entries.len(), 6);
    for e in entries {
        let mut opp = synced_opp();
        opp.extra
            .insert("cosell_howcanmicrosofthelp".into(), e.crm.clone());
        let choice = m.deal_type(&opp, &cols());
        assert_eq!(choice.deal, DealType::CoSell);
        assert_eq!(choice.help.as_deref(), Some(e.referral.as_str()));
        // The help is no referral field: a changed choice sends nothing on a PATCH.
        assert!(m.outbound_patch(&opp, &referral(), &cols()).is_empty());
    }
    let mut opp = synced_opp();
    opp.extra.remove("cosell_howcanmicrosofthelp");
    let choice = m.deal_type(&opp, &cols());
    assert_eq!((choice.deal, choice.help), (DealType::Private, None));
    // A file gives one value its own deal type, or shares empty ones with Microsoft.
    let m = Mapping::from_toml_str(
        r#"extends = "default"
[deal_type]
when_empty = "partner_led"
values = [{ crm = 100000005, deal = "private" }]
help_value_map = "help_needed"
"#,
    )
    .unwrap();
    m.validate(&cols()).unwrap();
    assert_eq!(m.deal_type(&opp, &cols()).deal, DealType::PartnerLed);
    opp.extra
        .insert("cosell_howcanmicrosofthelp".into(), json!(100000005));
    assert_eq!(m.deal_type(&opp, &cols()).deal, DealType::Private);
    let bad = Mapping::from_toml_str(
        "extends = \"default\"\n[deal_type]\ncolumn = \"nosuchcolumn\"\nhelp_value_map = \"nope\"\n",
    )
    .unwrap();
    assert_eq!(bad.validate(&cols()).unwrap_err().len(), 2);
}

#[test]
fn outbound_patch_unchanged_opportunity_sends_nothing() {
    let m = Mapping::default_mapping();
    // Checkmark, a time-of-day-free date and a rounded amount are all the same values.
    let mut opp = synced_opp();
    opp.name = Some(with_checkmark("Contoso supply chain", true));
    assert_eq!(m.outbound_patch(&opp, &referral(), &cols()), vec![]);
    let rows = CrmRows {
        opportunity: &opp,
        account: Some(&account()),
        contact: Some(&contact()),
    };
    assert_eq!(m.outbound_patch_rows(rows, &referral(), &cols()), vec![]);
}

#[test]
fn outbound_patch_every_outbound_row() {
    type Edit = fn(&mut Opportunity);
    let cases: Vec<(&str, Edit, Vec<JsonPatchOp>)> = vec![
        (
            "name",
            |o| o.name = Some("Contoso renamed ✘".into()),
            vec![op(PatchOp::Replace, "/name", json!("Contoso renamed"))],
        ),
        (
            "deal value",
            |o| o.estimatedvalue = Some(75000.126),
            vec![op(PatchOp::Replace, "/details/dealValue", json!(75000.13))],
        ),
        (
            "currency",
            |o| {
                o.extra.insert(
                    "transactioncurrencyid".into(),
                    json!({"isocurrencycode": "EUR"}),
                );
            },
            vec![op(PatchOp::Replace, "/details/currency", json!("EUR"))],
        ),
        (
            "close date",
            |o| o.estimatedclosedate = Some("2019-01-31".into()),
            vec![op(
                PatchOp::Replace,
                "/details/closingDateTime",
                json!("2019-01-31T00:00:00Z"),
            )],
        ),
        (
            "notes",
            |o| o.description = Some("new notes".into()),
            vec![op(PatchOp::Replace, "/details/notes", json!("new notes"))],
        ),
        // Kept solutions keep their details; a new id arrives bare.
        (
            "solutions",
            |o| {
                o.extra
                    .insert("cosell_solutions".into(), json!("SOL-15974-MQF; NewSol;"));
            },
            vec![op(
                PatchOp::Replace,
                "/details/requirements/solutions",
                json!([{"id": "SOL-15974-MQF", "name": "Contoso-Ale_Test"}, {"id": "NewSol"}]),
            )],
        ),
        (
            "help needed",
            |o| {
                o.extra
                    .insert("cosell_howcanmicrosofthelp".into(), json!(100000000));
            },
            // It picks the deal type of a create; no referral field carries it.
            vec![],
        ),
        (
            "opportunity id",
            |o| o.opportunityid = Some("0000aaaa-0000-0000-0000-000000000001".into()),
            vec![op(
                PatchOp::Replace,
                "/externalReferenceId",
                json!("0000aaaa-0000-0000-0000-000000000001"),
            )],
        ),
        // Inbound-only and unmapped columns never go out.
        (
            "inbound only",
            |o| {
                o.extra
                    .insert("cosell_referralidentifier".into(), json!("other"));
            },
            vec![],
        ),
        (
            "unmapped",
            |o| {
                o.extra.insert("closeprobability".into(), json!(80));
                o.modifiedon = Some("2030-01-01T00:00:00Z".into());
            },
            vec![],
        ),
        // An emptied column does not clear Partner Center's value.
        ("emptied", |o| o.description = None, vec![]),
    ];
    let m = Mapping::default_mapping();
    for (name, edit, want) in cases {
        let mut opp = synced_opp();
        edit(&mut opp);
        assert_eq!(m.outbound_patch(&opp, &referral(), &cols()), want, "{name}");
    }
}

#[test]
fn outbound_patch_adds_missing_parents_once() {
    let mut v = referral_json();
    v.as_object_mut().unwrap().remove("details");
    v.as_object_mut().unwrap().remove("inviteContext");
    let current: Referral = serde_json::from_value(v).unwrap();
    let ops = Mapping::default_mapping().outbound_patch(&synced_opp(), &current, &cols());
    let paths: Vec<(&str, PatchOp)> = ops.iter().map(|o| (o.path.as_str(), o.op)).collect();
    assert_eq!(
        paths,
        vec![
            ("/details", PatchOp::Add),
            ("/details/currency", PatchOp::Add),
            ("/details/closingDateTime", PatchOp::Add),
            ("/details/notes", PatchOp::Add),
            ("/details/requirements", PatchOp::Add),
        ]
    );
    assert_eq!(ops[0].value, json!({"dealValue": 50000.46}));
    // The wire shape the Partner Center client sends.
    assert_eq!(
        serde_json::to_value(&ops[1]).unwrap(),
        json!({"op": "add", "path": "/details/currency", "value": "USD"})
    );
}

#[test]
fn outbound_patch_account_rows() {
    type Edit = fn(&mut Account);
    let cases: Vec<(Edit, Vec<JsonPatchOp>)> = vec![
        (
            |a| a.address1_city = Some("Seattle".into()),
            vec![op(
                PatchOp::Replace,
                "/customerProfile/address/city",
                json!("Seattle"),
            )],
        ),
        (|a| a.address1_country = Some("usa".into()), vec![]),
        (
            |a| a.address1_country = Some("DEU".into()),
            vec![op(
                PatchOp::Replace,
                "/customerProfile/address/country",
                json!("DE"),
            )],
        ),
        (|a| a.address1_country = Some("Narnia".into()), vec![]),
        // The customer name is Partner Center's after creation.
        (|a| a.name = Some("Renamed Inc".into()), vec![]),
    ];
    let m = Mapping::default_mapping();
    let opp = synced_opp();
    for (edit, want) in cases {
        let mut acc = account();
        edit(&mut acc);
        let rows = CrmRows {
            opportunity: &opp,
            account: Some(&acc),
            contact: None,
        };
        assert_eq!(
            m.outbound_patch_rows(rows, &referral(), &cols()),
            want,
            "{acc:?}"
        );
    }
}

#[test]
fn outbound_create_builds_a_co_sell_referral() {
    let m = Mapping::default_mapping();
    let mut opp = synced_opp();
    opp.name = Some("New deal ✔".into());
    let plan = m
        .outbound_create(
            &opp,
            Some(&account()),
            Some(&contact()),
            &cols(),
            Some("USD"),
        )
        .unwrap();
    assert_eq!(plan.deal.deal, DealType::CoSell);
    assert_eq!(plan.deal.help.as_deref(), Some("Demo or proof of concept"));
    assert!(plan.shared_with_microsoft());
    let r = plan.own;
    let v = serde_json::to_value(&r).unwrap();
    let want = [
        ("/name", json!("New deal")),
        ("/type", json!("Shared")),
        (
            "/externalReferenceId",
            json!("b3828ac8-917a-e511-80d2-00155d2a68d2"),
        ),
        ("/consent/consentToToShareInfoWithOthers", json!(true)),
        ("/consent/consentToContact", json!(true)),
        (
            "/consent/consentToShareReferralWithMicrosoftSellers",
            json!(true),
        ),
        // The first shared-referral step: the target Microsoft is the second step's.
        ("/target", json!([])),
        ("/details/dealValue", json!(50000.46)),
        ("/details/currency", json!("USD")),
        ("/details/closingDateTime", json!("2018-11-15T00:00:00Z")),
        ("/details/notes", json!("Needs supply chain apps")),
        (
            "/details/requirements/solutions",
            json!([{"id": "Dynamics365forFieldService"}, {"id": "SOL-15974-MQF"}]),
        ),
        ("/customerProfile/name", json!("Contoso Customer Inc")),
        (
            "/customerProfile/address/addressLine1",
            json!("One Microsoft Way"),
        ),
        ("/customerProfile/address/country", json!("US")),
        ("/customerProfile/address/postalCode", json!("98052")),
        ("/customerProfile/team/0/firstName", json!("Sue")),
        ("/customerProfile/team/0/lastName", json!("Smith")),
        (
            "/customerProfile/team/0/email",
            json!("sue.smith@contoso.com"),
        ),
        ("/customerProfile/team/0/phoneNumber", json!("1234567890")),
    ];
    for (ptr, value) in want {
        assert_eq!(v.pointer(ptr), Some(&value), "{ptr}");
    }
    // Read-only and inbound-only fields are not sent.
    for absent in ["/id", "/createdDateTime", "/status", "/inviteContext"] {
        assert_eq!(v.pointer(absent), None, "{absent}");
    }
    assert!(r.is_co_sell());
}

#[test]
fn outbound_create_builds_a_private_deal_when_no_help_is_asked() {
    let m = Mapping::default_mapping();
    let mut opp = synced_opp();
    opp.extra.remove("cosell_howcanmicrosofthelp");
    let plan = m
        .outbound_create(
            &opp,
            Some(&account()),
            Some(&contact()),
            &cols(),
            Some("EUR"),
        )
        .unwrap();
    assert_eq!(plan.deal.deal, DealType::Private);
    assert!(!plan.shared_with_microsoft());
    let v = serde_json::to_value(&plan.own).unwrap();
    assert_eq!(v["type"], "Independent");
    assert_eq!(
        v["consent"]["consentToShareReferralWithMicrosoftSellers"],
        false
    );
    assert_eq!(v["target"], json!([]));
    assert_eq!(v["details"]["currency"], "EUR");
    // A deal value without a currency is not sent.
    let err = m
        .outbound_create(&opp, Some(&account()), Some(&contact()), &cols(), None)
        .unwrap_err();
    assert_eq!(err, MappingError::NoCurrency);
}

#[test]
fn outbound_create_errors() {
    let m = Mapping::default_mapping();
    let opp = synced_opp();
    let no_email = Contact {
        emailaddress1: None,
        ..contact()
    };
    let mut no_solution = synced_opp();
    no_solution
        .extra
        .insert("cosell_solutions".into(), json!(" ; "));
    let mut no_name = synced_opp();
    no_name.name = None;
    let mut bad_date = synced_opp();
    bad_date.estimatedclosedate = Some("soon".into());
    let acc = account();
    let c = contact();
    let cases: Vec<(&Opportunity, Option<&Contact>, Check)> = vec![
        (&opp, None, |e| *e == MappingError::CoSellNeedsContact),
        (
            &opp,
            Some(&no_email),
            |e| matches!(e, MappingError::MissingRequired { path, .. } if path == "customerProfile.team[0].email"),
        ),
        (&no_solution, Some(&c), |e| {
            *e == MappingError::CoSellNeedsSolution
        }),
        (
            &no_name,
            Some(&c),
            |e| matches!(e, MappingError::MissingRequired { index: 1, path } if path == "name"),
        ),
        (
            &bad_date,
            Some(&c),
            |e| matches!(e, MappingError::BadValue { path, .. } if path == "details.closingDateTime"),
        ),
    ];
    for (opp, contact, check) in cases {
        let err = m
            .outbound_create(opp, Some(&acc), contact, &cols(), Some("USD"))
            .unwrap_err();
        assert!(check(&err), "{err}");
    }
}

#[test]
fn status_inbound_covers_every_documented_pair() {
    use ReferralStatus as S;
    use ReferralSubstatus as SS;
    let cases = [
        (S::New, SS::Pending, TargetState::Open { statuscode: 1 }),
        (S::New, SS::Received, TargetState::Open { statuscode: 1 }),
        (S::Active, SS::Accepted, TargetState::Open { statuscode: 1 }),
        (S::Closed, SS::Won, TargetState::Won { statuscode: 3 }),
        (S::Closed, SS::Lost, TargetState::Lost { statuscode: 5 }),
        (S::Closed, SS::Declined, TargetState::Lost { statuscode: 4 }),
        (S::Closed, SS::Expired, TargetState::Lost { statuscode: 4 }),
    ];
    let documented: usize = S::KNOWN.iter().map(|s| s.allowed_substatus().len()).sum();
    assert_eq!(cases.len(), documented);
    for (s, ss, want) in cases {
        let mut v = referral_json();
        v["status"] = json!(s.as_str());
        v["substatus"] = json!(ss.as_str());
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        assert_eq!(plan.target_state, want, "{s}/{ss}");
        assert!(plan.warnings.is_empty());
    }
    let mut v = referral_json();
    v["substatus"] = json!("Frozen");
    let plan = plan_of(&serde_json::from_value(v).unwrap());
    assert_eq!(plan.target_state, TargetState::Open { statuscode: 1 });
    assert!(
        matches!(&plan.warnings[..], [MappingError::UnmappedStatus { substatus, .. }] if substatus == "Frozen")
    );
}

#[test]
fn status_outbound_rules() {
    use ReferralStatus as S;
    use ReferralSubstatus as SS;
    type Want<'a> = Option<(S, SS, Option<&'a str>)>;
    let cases: [(i32, i32, Option<i64>, Want); 8] = [
        (1, 3, None, Some((S::Closed, SS::Won, None))),
        (1, 3, Some(100000001), Some((S::Closed, SS::Won, None))),
        (2, 5, None, Some((S::Closed, SS::Lost, Some("Out-sold")))),
        (2, 4, None, Some((S::Closed, SS::Lost, Some("Canceled")))),
        (0, 1, Some(100000000), Some((S::Active, SS::Accepted, None))),
        (0, 1, Some(100000001), Some((S::Closed, SS::Declined, None))),
        (0, 1, None, None),
        (0, 2, Some(7), None),
    ];
    let m = Mapping::default_mapping();
    for (statecode, statuscode, decision, want) in cases {
        let mut opp = synced_opp();
        opp.statecode = Some(statecode);
        opp.statuscode = Some(statuscode);
        if let Some(d) = decision {
            opp.extra.insert("cosell_referraldecision".into(), json!(d));
        }
        let got = m.outbound_status(&opp, &cols());
        let want = want.map(|(s, ss, r)| (s, ss, r.map(str::to_string)));
        assert_eq!(got, want, "{statecode}/{statuscode}/{decision:?}");
    }
}

#[test]
fn status_patch_follows_the_state_machine() {
    use ReferralStatus as S;
    use ReferralSubstatus as SS;
    let with = |s: &str, ss: &str| -> Referral {
        let mut v = referral_json();
        v["status"] = json!(s);
        v["substatus"] = json!(ss);
        serde_json::from_value(v).unwrap()
    };
    let accept = status_patch(&with("New", "Received"), &S::Active, &SS::Accepted, None);
    assert_eq!(
        accept,
        vec![
            op(PatchOp::Replace, "/status", json!("Active")),
            op(PatchOp::Replace, "/substatus", json!("Accepted")),
        ]
    );
    let lost = status_patch(
        &with("Active", "Accepted"),
        &S::Closed,
        &SS::Lost,
        Some("Out-sold"),
    );
    assert_eq!(lost.len(), 3);
    assert_eq!(
        lost[2],
        op(PatchOp::Add, "/statusReason", json!("Out-sold"))
    );
    assert!(status_patch(&with("Active", "Accepted"), &S::Active, &SS::Accepted, None).is_empty());
    assert!(status_patch(&with("Closed", "Won"), &S::Active, &SS::Accepted, None).is_empty());
    assert!(status_patch(&with("New", "Received"), &S::Active, &SS::Won, None).is_empty());
}

#[test]
fn checkmark_is_not_a_change() {
    assert_eq!(strip_checkmark("Deal ✔"), "Deal");
    assert_eq!(with_checkmark("Deal ✔", false), "Deal ✘");
    let m = Mapping::default_mapping();
    let mut a = synced_opp();
    let mut b = synced_opp();
    a.name = Some(with_checkmark("Contoso supply chain", true));
    b.name = Some(with_checkmark("Contoso supply chain", false));
    assert_eq!(m.outbound_hash(&a, &cols()), m.outbound_hash(&b, &cols()));
    assert!(m.outbound_patch(&b, &referral(), &cols()).is_empty());
}

#[test]
fn outbound_hash_sees_exactly_the_mapped_values() {
    let m = Mapping::default_mapping();
    let base = m.outbound_hash(&synced_opp(), &cols());
    assert_eq!(base.len(), 64);
    assert_eq!(base, m.outbound_hash(&synced_opp(), &cols()));
    type Edit = fn(&mut Opportunity);
    let changes: Vec<(&str, Edit)> = vec![
        ("name", |o| o.name = Some("x".into())),
        ("value", |o| o.estimatedvalue = Some(1.0)),
        ("date", |o| o.estimatedclosedate = Some("2020-01-01".into())),
        ("notes", |o| o.description = Some("x".into())),
        ("currency", |o| {
            o.extra.insert(
                "transactioncurrencyid".into(),
                json!({"isocurrencycode": "EUR"}),
            );
        }),
        ("solutions", |o| {
            o.extra.insert("cosell_solutions".into(), json!("x"));
        }),
        ("help", |o| {
            o.extra
                .insert("cosell_howcanmicrosofthelp".into(), json!(100000000));
        }),
        ("id", |o| o.opportunityid = Some("x".into())),
        ("state", |o| o.statecode = Some(1)),
        ("reason", |o| o.statuscode = Some(2)),
        ("decision", |o| {
            o.extra
                .insert("cosell_referraldecision".into(), json!(100000000));
        }),
        ("sync flag", |o| {
            o.extra
                .insert("cosell_syncwithpartnercenter".into(), json!(false));
        }),
    ];
    for (name, edit) in changes {
        let mut o = synced_opp();
        edit(&mut o);
        assert_ne!(m.outbound_hash(&o, &cols()), base, "{name}");
    }
    let same: Vec<(&str, Edit)> = vec![
        ("etag", |o| o.etag = Some("W/\"9\"".into())),
        ("modifiedon", |o| {
            o.modifiedon = Some("2030-01-01T00:00:00Z".into())
        }),
        ("unmapped column", |o| {
            o.extra.insert("closeprobability".into(), json!(10));
        }),
        ("audit", |o| {
            o.extra.insert("cosell_audit".into(), json!("ok"));
        }),
        ("value spelling", |o| o.estimatedvalue = Some(50000.4600001)),
        ("solutions spacing", |o| {
            o.extra.insert(
                "cosell_solutions".into(),
                json!("Dynamics365forFieldService ; SOL-15974-MQF;"),
            );
        }),
    ];
    for (name, edit) in same {
        let mut o = synced_opp();
        edit(&mut o);
        assert_eq!(m.outbound_hash(&o, &cols()), base, "{name}");
    }
}

#[test]
fn inbound_hash_sees_exactly_the_mapped_values() {
    let m = Mapping::default_mapping();
    let base = m.inbound_hash(&plan_of(&referral()));
    assert_eq!(base, m.inbound_hash(&plan_of(&referral())));
    let changes: Vec<(&str, &str, Value)> = vec![
        ("/name", "name", json!("x")),
        ("/details/dealValue", "value", json!(1)),
        ("/details/notes", "notes", json!("x")),
        (
            "/details/closingDateTime",
            "date",
            json!("2020-01-01T00:00:00Z"),
        ),
        ("/customerProfile/address/city", "city", json!("x")),
        ("/customerProfile/team/0/email", "email", json!("x@y.z")),
    ];
    for (ptr, name, value) in changes {
        let mut v = referral_json();
        *v.pointer_mut(ptr).unwrap() = value;
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        let changed = m.inbound_hash(&plan);
        assert_ne!(changed, base, "{name}");
    }
    let same: Vec<(&str, Value)> = vec![
        ("/eTag", json!("\"other\"")),
        ("/createdDateTime", json!("2020-01-01T00:00:00Z")),
        ("/inviteContext/notes", json!("other")),
        ("/details/dealValue", json!("50000.46")),
        (
            "/details/closingDateTime",
            json!("2018-11-15T01:30:00.1234567Z"),
        ),
        ("/customerProfile/address/country", json!("USA")),
    ];
    for (ptr, value) in same {
        let mut v = referral_json();
        *v.pointer_mut(ptr).unwrap() = value;
        let plan = plan_of(&serde_json::from_value(v).unwrap());
        assert_eq!(m.inbound_hash(&plan), base, "{ptr}");
    }
}

#[test]
fn conflict_winners() {
    let m = Mapping::default_mapping();
    let cases = [
        ("status", Side::PartnerCenter),
        ("customerProfile.name", Side::PartnerCenter),
        ("customerProfile.address.city", Side::PartnerCenter),
        ("details.dealValue", Side::Crm),
        ("details.closingDateTime", Side::Crm),
        ("details.notes", Side::Crm),
        ("details.requirements.solutions", Side::Crm),
        ("name", Side::PartnerCenter),
        ("details.notesX", Side::PartnerCenter),
    ];
    for (field, want) in cases {
        assert_eq!(m.conflict_winner(field), want, "{field}");
    }
}

/// One crafted bad file per validation error, each on top of the default.
#[test]
fn validation_errors_name_the_problem() {
    let cases: Vec<(&str, &str, Check, &str)> = vec![
        (
            "unknown path",
            r#"[[field]]
referral = "details.dealVallue"
column = "closeprobability"
"#,
            |e| matches!(e, MappingError::UnknownReferralPath { index: 20, path } if path == "details.dealVallue"),
            "field #20 (details.dealVallue): unknown referral field path",
        ),
        (
            "malformed path",
            r#"[[field]]
referral = "details..notes"
column = "closeprobability"
"#,
            |e| matches!(e, MappingError::UnknownReferralPath { .. }),
            "unknown referral field path",
        ),
        (
            "unknown column",
            r#"[[field]]
referral = "details.notes"
column = "descriptionn"
"#,
            |e| matches!(e, MappingError::UnknownColumn { index: 7, column, .. } if column == "descriptionn"),
            "field #7 (details.notes): unknown column 'descriptionn' on opportunity",
        ),
        (
            "unknown table",
            r#"[[field]]
referral = "details.notes"
table = "lead"
column = "description"
"#,
            |e| matches!(e, MappingError::UnknownTable { table, .. } if table == "lead"),
            "unknown table 'lead'",
        ),
        (
            "unknown placeholder",
            r#"[[field]]
referral = "details.notes"
column = "$col.notes"
"#,
            |e| matches!(e, MappingError::UnknownPlaceholder { placeholder, .. } if placeholder == "notes"),
            "placeholder 'notes'",
        ),
        (
            "unknown transform",
            r#"[[field]]
referral = "details.notes"
column = "description"
transform = "uppercase"
"#,
            |e| matches!(e, MappingError::UnknownTransform { transform, .. } if transform == "uppercase"),
            "unknown transform 'uppercase'",
        ),
        (
            "unknown direction",
            r#"[[field]]
referral = "details.notes"
column = "description"
direction = "sideways"
"#,
            |e| matches!(e, MappingError::UnknownDirection { .. }),
            "unknown direction 'sideways'",
        ),
        (
            "missing value map",
            r#"[[field]]
referral = "inviteContext.notes"
column = "$col.help_needed"
transform = "value_map"
value_map = "helpp"
"#,
            |e| matches!(e, MappingError::MissingValueMap { map, .. } if map == "helpp"),
            "'helpp' is not defined",
        ),
        (
            "duplicate column",
            r#"[[field]]
referral = "inviteContext.notes"
column = "description"
"#,
            |e| {
                matches!(
                    e,
                    MappingError::DuplicateColumn {
                        index: 20,
                        first_index: 7,
                        ..
                    }
                )
            },
            "column opportunity.description is already the target of field #7",
        ),
        (
            "read-only outbound",
            r#"[[field]]
referral = "createdDateTime"
column = "overriddencreatedon"
direction = "both"
"#,
            |e| matches!(e, MappingError::ReadOnlyOutbound { path, .. } if path == "createdDateTime"),
            "read-only",
        ),
        (
            "read-only id sent on create",
            r#"[[field]]
referral = "id"
column = "$col.referral_id"
direction = "inbound"
create = true
"#,
            |e| matches!(e, MappingError::ReadOnlyOutbound { index: 2, .. }),
            "field #2 (id)",
        ),
        (
            "read-only column",
            r#"[[field]]
referral = "details.notes"
column = "modifiedon"
"#,
            |e| matches!(e, MappingError::ReadOnlyColumn { column, .. } if column == "modifiedon"),
            "read-only in Dataverse",
        ),
        (
            "value map not total",
            r#"[value_maps.qualification]
covers = "ReferralQualification"
entries = [{ referral = "SalesQualified", crm = 1 }, { referral = "Direct", crm = 2 }]
"#,
            |e| matches!(e, MappingError::ValueMapNotTotal { missing, .. } if missing.len() == 2 && missing.contains(&"MarketingQualified".to_string())),
            "value map 'qualification' is not total: no entry for None, MarketingQualified",
        ),
        (
            "unknown enum",
            r#"[value_maps.x]
covers = "ReferralColour"
entries = []
"#,
            |e| matches!(e, MappingError::UnknownEnum { .. }),
            "unknown enum 'ReferralColour'",
        ),
        (
            "duplicate map entry",
            r#"[value_maps.x]
entries = [{ referral = "A", crm = 1 }, { referral = "a", crm = 2 }]
"#,
            |e| matches!(e, MappingError::ValueMapDuplicate { .. }),
            "two entries",
        ),
        (
            "status not total",
            r#"[status]
inbound = [{ status = "New", substatus = "Pending", state = "open", statuscode = 1 }]
"#,
            |e| matches!(e, MappingError::StatusNotTotal { missing } if missing.len() == 6 && missing[0] == "New/Received"),
            "status table is not total: no inbound rule for New/Received, Active/Accepted",
        ),
        (
            "undocumented pair",
            r#"[status]
outbound = [{ statecode = 1, status = "New", substatus = "Won" }]
"#,
            |e| matches!(e, MappingError::StatusUndocumentedPair { rule, .. } if rule == "outbound #1"),
            "New/Won is not a documented",
        ),
        (
            "state mismatch",
            r#"[[status.inbound]]
status = "Closed"
substatus = "Won"
state = "won"
statuscode = 4
"#,
            |e| matches!(e, MappingError::StatusStateMismatch { statuscode: 4, .. }),
            "status reason 4",
        ),
        (
            "unknown state",
            r#"[[status.inbound]]
status = "Closed"
substatus = "Won"
state = "finished"
statuscode = 3
"#,
            |e| matches!(e, MappingError::UnknownState { .. }),
            "unknown Dataverse state 'finished'",
        ),
        (
            "unknown conflict field",
            r#"[conflict.fields]
"details.dealValu" = "crm"
"#,
            |e| matches!(e, MappingError::UnknownConflictField { .. }),
            "'details.dealValu'",
        ),
    ];
    for (name, file, check, text) in cases {
        let toml = format!("extends = \"default\"\n{file}");
        let mapping = Mapping::from_toml_str(&toml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors = mapping.validate(&cols()).expect_err(name);
        let hit = errors.iter().find(|e| check(e));
        let hit = hit.unwrap_or_else(|| panic!("{name}: got {errors:?}"));
        assert!(
            hit.to_string().contains(text),
            "{name}: '{hit}' lacks '{text}'"
        );
    }
}

#[test]
fn parse_errors() {
    let cases = [
        ("extends = \"other\"", "only \"default\""),
        ("[[field]]\nreferral = 1", "not valid TOML for a mapping"),
        (
            "[[field]]\nreferral = \"name\"\ncolumn = \"name\"\ncolour = \"red\"",
            "colour",
        ),
    ];
    for (toml, text) in cases {
        let err = Mapping::from_toml_str(toml).unwrap_err();
        assert!(err.to_string().contains(text), "{toml}: {err}");
    }
    let err = Mapping::from_file(std::path::Path::new("no/such/mapping.toml")).unwrap_err();
    assert!(matches!(err, MappingError::Io { .. }));
}

#[test]
fn user_override_file_is_applied() {
    let text = r#"
extends = "default"

[schema]
opportunity_columns = ["contoso_partnernotes"]

# Notes go to our own column instead of description.
[[field]]
referral = "details.notes"
table = "opportunity"
column = "contoso_partnernotes"

# We do not sync the phone number.
[[field]]
referral = "customerProfile.team[0].phoneNumber"
column = "telephone1"
table = "contact"
enabled = false

[value_maps.help_needed]
entries = [
  { referral = "Demo or proof of concept", crm = 7 },
  { referral = "General sales assistance", crm = 8 },
]
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mapping.toml");
    std::fs::write(&path, text).unwrap();
    let m = Mapping::load(Some(&path), &cols()).expect("override validates");
    assert_eq!(m.fields.len(), Mapping::default_mapping().fields.len() - 1);

    let plan = m.inbound(&referral(), &cols(), &ctx());
    assert_eq!(
        plan.opportunity.get("contoso_partnernotes"),
        Some(&json!("Needs supply chain apps"))
    );
    assert!(!plan.opportunity.contains_key("description"));
    assert!(!plan.opportunity.contains_key("cosell_howcanmicrosofthelp"));
    assert!(!plan.contact.unwrap().contains_key("telephone1"));
    // Untouched rows still come from the default.
    assert_eq!(plan.opportunity["estimatedvalue"], json!(50000.46));

    let mut opp = synced_opp();
    opp.extra
        .insert("contoso_partnernotes".into(), json!("from our column"));
    opp.extra
        .insert("cosell_howcanmicrosofthelp".into(), json!(8));
    opp.description = Some("ignored now".into());
    let ops = m.outbound_patch(&opp, &referral(), &cols());
    assert_eq!(
        ops,
        vec![op(
            PatchOp::Replace,
            "/details/notes",
            json!("from our column")
        ),]
    );
    // The overridden help map names the help of a co-sell.
    assert_eq!(
        m.deal_type(&opp, &cols()).help.as_deref(),
        Some("General sales assistance")
    );
}

#[test]
fn standalone_file_replaces_the_default() {
    let text = r#"
[[field]]
referral = "name"
column = "name"

[status]
inbound = [
  { status = "New", substatus = "Pending", state = "open", statuscode = 1 },
  { status = "New", substatus = "Received", state = "open", statuscode = 1 },
  { status = "Active", substatus = "Accepted", state = "open", statuscode = 2 },
  { status = "Closed", substatus = "Won", state = "won", statuscode = 3 },
  { status = "Closed", substatus = "Lost", state = "lost", statuscode = 4 },
  { status = "Closed", substatus = "Declined", state = "lost", statuscode = 4 },
  { status = "Closed", substatus = "Expired", state = "lost", statuscode = 4 },
]
"#;
    let m = Mapping::from_toml_str(text).unwrap();
    assert_eq!(m.validate(&cols()), Ok(()));
    // It names no lead columns: leads are synced as opportunities.
    assert_eq!(
        m.lead.handling,
        cosell::mapping::lead::LeadHandling::Opportunity
    );
    let plan = m.inbound(&referral(), &cols(), &ctx());
    let keys: Vec<&String> = plan.opportunity.keys().collect();
    assert_eq!(
        keys,
        [
            "cosell_syncwithpartnercenter",
            "cosell_referralidentifier",
            "cosell_referrallink",
            "name"
        ]
    );
    assert_eq!(plan.target_state, TargetState::Open { statuscode: 2 });
    assert!(plan.account.is_empty());
    // No outbound status rules: nothing asked.
    let mut opp = synced_opp();
    opp.statecode = Some(1);
    assert_eq!(m.outbound_status(&opp, &cols()), None);
}

#[test]
fn connector_columns_follow_configuration() {
    let mut c = cols();
    c.solutions = "abc_solutions".into();
    c.referral_id = "abc_refid".into();
    let m = Mapping::default_mapping();
    assert_eq!(m.validate(&c), Ok(()));
    let plan = m.inbound(&referral(), &c, &ctx());
    assert!(plan.opportunity.contains_key("abc_solutions"));
    assert!(plan.opportunity.contains_key("abc_refid"));
    assert!(!plan.opportunity.contains_key("cosell_solutions"));
}

/// Services co-sell fields go into the create when the mapping names their columns, and
/// not otherwise (the default maps none).
#[test]
fn services_co_sell_fields_are_sent_when_mapped() {
    let m = Mapping::from_toml_str(
        r#"
extends = "default"
[[field]]
referral = "partnerRole"
table = "opportunity"
column = "new_partnerrole"
direction = "outbound"
[[field]]
referral = "solutionArea"
table = "opportunity"
column = "new_solutionarea"
direction = "outbound"
[[field]]
referral = "solutionPlay"
table = "opportunity"
column = "new_solutionplay"
direction = "outbound"
"#,
    )
    .expect("mapping parses");
    let mut opp = synced_opp();
    for (column, value) in [
        ("new_partnerrole", "SolutionProvider"),
        ("new_solutionarea", "AI Business Solutions"),
        ("new_solutionplay", "Copilot and Agents at Work"),
    ] {
        opp.extra.insert(column.into(), json!(value));
    }
    let plan = m
        .outbound_create(
            &opp,
            Some(&account()),
            Some(&contact()),
            &cols(),
            Some("USD"),
        )
        .unwrap();
    let v = serde_json::to_value(&plan.own).unwrap();
    assert_eq!(v["partnerRole"], "SolutionProvider");
    assert_eq!(v["solutionArea"], "AI Business Solutions");
    assert_eq!(v["solutionPlay"], "Copilot and Agents at Work");

    let plan = Mapping::default_mapping()
        .outbound_create(
            &opp,
            Some(&account()),
            Some(&contact()),
            &cols(),
            Some("USD"),
        )
        .unwrap();
    let v = serde_json::to_value(&plan.own).unwrap();
    assert!(v.get("solutionArea").is_none(), "{v}");
}
