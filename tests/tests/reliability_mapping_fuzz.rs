//! Property test (the project's fuzzer) of the mapping of arbitrary referral JSON: random,
//! missing, wrong-typed and unknown fields. Deserializing either fails cleanly or succeeds;
//! the inbound mapping never panics and writes only columns the mapping and the configured
//! column names define; the referral's mapped values (what a reconcile compares with the
//! stored base to tell our own echo from a change) are deterministic, blind to key order and
//! only of merged fields; unknown fields survive a round trip. `COSELL_PROPTEST_CASES` raises
//! the case count.

use std::collections::BTreeSet;

use cosell::config::ColumnNames;
use cosell::mapping::{InboundContext, Mapping, Table, Transform};
use cosell::partner_center::Referral;
use cosell_tests::knobs;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
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

fn ctx() -> InboundContext {
    InboundContext {
        referral_link: "https://partner.microsoft.com/referrals/x".into(),
        currency_id: Some("cur-1".into()),
    }
}

/// The columns each table may receive, worked out from the mapping entries and the column
/// names independently of the mapping code.
fn allowed_columns(mapping: &Mapping, c: &ColumnNames) -> [BTreeSet<String>; 3] {
    let resolve = |column: &str| -> String {
        match column.strip_prefix("$col.") {
            Some("sync_flag") => c.sync_flag.clone(),
            Some("referral_id") => c.referral_id.clone(),
            Some("referral_link") => c.referral_link.clone(),
            Some("help_needed") => c.help_needed.clone(),
            Some("solutions") => c.solutions.clone(),
            Some("audit") => c.audit.clone(),
            Some("decision") => c.decision.clone(),
            Some(other) => panic!("unknown placeholder {other}"),
            None => column.to_string(),
        }
    };
    let mut out: [BTreeSet<String>; 3] = Default::default();
    out[0].extend([
        c.sync_flag.clone(),
        c.referral_id.clone(),
        c.referral_link.clone(),
    ]);
    for f in mapping.fields.iter().filter(|f| f.direction.inbound()) {
        let i = match f.table {
            Table::Opportunity => 0,
            Table::Account => 1,
            Table::Contact => 2,
            Table::Unknown(_) => continue,
        };
        let column = resolve(&f.column);
        if f.transform == Transform::Currency {
            out[i].insert(format!("{column}@odata.bind"));
        } else {
            out[i].insert(column);
        }
        out[i].extend(f.set_also.keys().cloned());
    }
    out
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly a plausible value, sometimes absent, now and then anything (a wrong type).
fn field(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        // Roughly one input in three has a wrong-typed field somewhere.
        40 => plausible.prop_map(Some),
        1 => any_json().prop_map(Some),
        10 => Just(None),
    ]
    .boxed()
}

fn text(re: &'static str) -> BoxedStrategy<Value> {
    re.prop_map(Value::String).boxed()
}

fn one_of(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(options)
        .prop_map(|s| Value::String(s.to_string()))
        .boxed()
}

fn date() -> BoxedStrategy<Value> {
    prop_oneof![
        text("20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T[01][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,7})?(Z|[+-]0[0-9]:[03]0)"),
        text(".{0,24}"),
    ]
    .boxed()
}

fn money() -> BoxedStrategy<Value> {
    prop_oneof![
        (0u32..10_000_000).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        (-1e6f64..1e9).prop_map(|n| json!(n.to_string())),
        text(".{0,10}"),
    ]
    .boxed()
}

/// Adds each present field to `obj`, then unknown `x_` keys (never a real field name).
fn object(fields: Vec<(&'static str, Option<Value>)>, extra: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            obj.insert(k.to_string(), v);
        }
    }
    obj.extend(extra);
    Value::Object(obj)
}

fn extras() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("x_[a-z]{1,6}", any_json(), 0..3).prop_map(|m| m.into_iter().collect())
}

fn member() -> BoxedStrategy<Value> {
    (
        field(text("[A-Za-zé ]{0,12}")),
        field(text("[A-Za-z]{0,12}")),
        field(prop_oneof![
            text("[a-z]{1,8}@[a-z]{1,8}\\.example"),
            text(".{0,12}")
        ]),
        field(text("[0-9+ ]{0,14}")),
        extras(),
    )
        .prop_map(|(first, last, email, phone, x)| {
            object(
                vec![
                    ("firstName", first),
                    ("lastName", last),
                    ("email", email),
                    ("phoneNumber", phone),
                ],
                x,
            )
        })
        .boxed()
}

fn customer_profile() -> BoxedStrategy<Value> {
    let address = (
        field(text(".{0,20}")),
        field(text("[0-9]{0,6}")),
        field(one_of(&["US", "us", "USA", "DEU", "gb", "Narnia", ""])),
        field(text("[A-Z]{0,2}")),
        extras(),
    )
        .prop_map(|(line1, postal, country, state, x)| {
            object(
                vec![
                    ("addressLine1", line1),
                    ("postalCode", postal),
                    ("country", country),
                    ("state", state),
                ],
                x,
            )
        });
    (
        field(text(".{0,30}")),
        field(address),
        field(vec(member(), 0..3).prop_map(Value::Array)),
        extras(),
    )
        .prop_map(|(name, address, team, x)| {
            object(
                vec![("name", name), ("address", address), ("team", team)],
                x,
            )
        })
        .boxed()
}

fn details() -> BoxedStrategy<Value> {
    let solution = (
        field(text("[A-Za-z0-9-]{0,12}")),
        field(text(".{0,12}")),
        extras(),
    )
        .prop_map(|(id, name, x)| object(vec![("id", id), ("name", name)], x));
    let requirements = field(vec(solution, 0..3).prop_map(Value::Array))
        .prop_map(|s| object(vec![("solutions", s)], Map::new()));
    (
        field(text(".{0,30}")),
        field(money()),
        field(one_of(&["USD", "usd", "EUR", "XYZ", ""])),
        field(date()),
        field(requirements),
        extras(),
    )
        .prop_map(|(notes, value, currency, closing, req, x)| {
            object(
                vec![
                    ("notes", notes),
                    ("dealValue", value),
                    ("currency", currency),
                    ("closingDateTime", closing),
                    ("requirements", req),
                ],
                x,
            )
        })
        .boxed()
}

fn referral_json() -> impl Strategy<Value = Value> {
    let ids = (
        field(text("[0-9a-f-]{0,36}")),
        field(text("[0-9a-f-]{0,36}")),
        field(text(".{0,40}")),
        field(date()),
        field(date()),
    );
    let status = (
        field(one_of(&["New", "Active", "Closed", "Bogus", ""])),
        field(one_of(&[
            "Pending", "Received", "Accepted", "Engaged", "Won", "Lost", "Declined", "Expired",
            "Zzz",
        ])),
        field(one_of(&["Independent", "Shared", "Bogus"])),
        field(one_of(&["Incoming", "Outgoing", "Sideways"])),
        field(one_of(&[
            "SalesQualified",
            "MarketingQualified",
            "Direct",
            "?",
        ])),
    );
    let nested = (
        field(customer_profile()),
        field(details()),
        field(
            field(one_of(&[
                "Demo or proof of concept",
                "Cost, pricing and licensing",
                "Something else",
            ]))
            .prop_map(|r| object(vec![("reason", r)], Map::new())),
        ),
        field(vec(member(), 0..2).prop_map(Value::Array)),
        field(any_json()),
    );
    (ids, status, nested, extras()).prop_map(
        |(
            (id, external, name, created, updated),
            (status, substatus, kind, direction, qualification),
            (customer, details, invite, team, links),
            x,
        )| {
            object(
                vec![
                    ("id", id),
                    ("externalReferenceId", external),
                    ("name", name),
                    ("createdDateTime", created),
                    ("updatedDateTime", updated),
                    ("status", status),
                    ("substatus", substatus),
                    ("type", kind),
                    ("direction", direction),
                    ("qualification", qualification),
                    ("customerProfile", customer),
                    ("details", details),
                    ("inviteContext", invite),
                    ("team", team),
                    ("links", links),
                ],
                x,
            )
        },
    )
}

/// The same value with every object's keys in reverse order.
fn reversed_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reversed_keys).collect()),
        other => other.clone(),
    }
}

#[derive(Default, Debug)]
struct Tally {
    parsed: u32,
    rejected: u32,
    with_warnings: u32,
    with_values: u32,
}

fn check(input: &Value, tally: &mut Tally) -> Result<(), TestCaseError> {
    let mapping = Mapping::default_mapping();
    let columns = cols();
    let referral: Referral = match serde_json::from_value(input.clone()) {
        Ok(r) => r,
        Err(e) => {
            // A clean error that says what was wrong.
            prop_assert!(!e.to_string().is_empty());
            tally.rejected += 1;
            return Ok(());
        }
    };
    tally.parsed += 1;
    let plan = mapping.inbound(&referral, &columns, &ctx());
    if !plan.warnings.is_empty() {
        tally.with_warnings += 1;
    }
    let [opp, account, contact] = allowed_columns(&mapping, &columns);
    for (k, _) in &plan.opportunity {
        prop_assert!(opp.contains(k), "opportunity column {k} is not mapped");
    }
    for (k, _) in &plan.account {
        prop_assert!(account.contains(k), "account column {k} is not mapped");
    }
    for (k, _) in plan.contact.iter().flatten() {
        prop_assert!(contact.contains(k), "contact column {k} is not mapped");
    }
    // Connector columns are always written; the referral id exactly when the referral has one.
    prop_assert_eq!(
        plan.opportunity.get(&columns.sync_flag),
        Some(&Value::Bool(true))
    );
    prop_assert_eq!(
        plan.opportunity
            .get(&columns.referral_id)
            .and_then(Value::as_str),
        referral.id.as_deref()
    );

    // The values a reconcile compares with the base: the same every time, whatever the key
    // order, and only of the fields the merge knows.
    let values = mapping.referral_values(&referral);
    prop_assert_eq!(
        &values,
        &mapping.referral_values(&referral),
        "values are not deterministic"
    );
    let shuffled: Referral = serde_json::from_value(reversed_keys(input))
        .map_err(|e| TestCaseError::fail(format!("reordered keys no longer parse: {e}")))?;
    prop_assert_eq!(
        &values,
        &mapping.referral_values(&shuffled),
        "values depend on key order"
    );
    let merged: BTreeSet<&str> = mapping
        .pair_fields()
        .map(|(f, _)| f.referral.as_str())
        .collect();
    for path in values.keys() {
        prop_assert!(
            merged.contains(path.as_str()),
            "{} is not a merged field",
            path
        );
    }
    if !values.is_empty() {
        tally.with_values += 1;
    }

    // Unknown fields survive a round trip, at the top level and inside nested objects.
    let back = serde_json::to_value(&referral).expect("a parsed referral serializes");
    for (k, v) in input.as_object().into_iter().flatten() {
        if k.starts_with("x_") {
            prop_assert_eq!(back.get(k), Some(v), "unknown field {} lost", k);
        }
    }
    for nested in ["customerProfile", "details"] {
        if let (Some(Value::Object(before)), Some(Value::Object(after))) =
            (input.get(nested), back.get(nested))
        {
            for (k, v) in before.iter().filter(|(k, _)| k.starts_with("x_")) {
                prop_assert_eq!(after.get(k), Some(v), "unknown {}.{} lost", nested, k);
            }
        }
    }
    let reparsed: Referral = serde_json::from_value(back)
        .map_err(|e| TestCaseError::fail(format!("round trip does not parse: {e}")))?;
    prop_assert_eq!(&reparsed, &referral, "round trip changed the referral");
    Ok(())
}

#[test]
fn arbitrary_referral_json_maps_safely() {
    let cases = knobs::proptest_cases(512);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    let result = runner.run(&referral_json(), |input| {
        check(&input, &mut tally.borrow_mut())
    });
    let tally = tally.into_inner();
    println!(
        "mapping fuzz: cases={cases} parsed={} rejected={} with_warnings={} with_values={}",
        tally.parsed, tally.rejected, tally.with_warnings, tally.with_values
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must exercise both outcomes, or the property says little.
    assert!(tally.parsed > 0 && tally.rejected > 0, "{tally:?}");
    assert!(tally.parsed > cases / 10, "too few inputs parse: {tally:?}");
    assert!(
        tally.with_values > 0,
        "no input had a mapped value: {tally:?}"
    );
}
