//! Property test (the project's fuzzer) of the webhook intake: arbitrary bytes, arbitrary
//! headers and mutated valid deliveries never panic, get a 2xx only when the delivery is
//! the signed original, and never queue anything unless answered 2xx.
//! `COSELL_PROPTEST_CASES` raises the case count.

use std::cell::RefCell;

use base64::Engine as _;
use cosell_tests::intake_fixture::IntakeFixture;
use cosell_tests::knobs;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

const NAMES: &[&str] = &[
    "authorization",
    "x-ms-certificate-url",
    "x-ms-signature-algorithm",
    "content-type",
    "x-other",
];

/// What a delivery is made of, before it is turned into headers and a body.
#[derive(Debug, Clone)]
enum Input {
    /// Random headers (from the three that matter and others) and random bytes.
    Arbitrary {
        headers: Vec<(usize, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// A validly signed body that is anything: bytes, JSON-ish text, events with random names.
    Signed { body: Vec<u8> },
    /// A freshly signed delivery for a random referral, then mutated.
    Mutated {
        referral: String,
        mutations: Vec<Mutation>,
    },
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBodyByte(usize, u8),
    TruncateBody(usize),
    AppendBody(Vec<u8>),
    DropHeader(usize),
    ReplaceHeader(usize, Vec<u8>),
    /// Changes one character of the base64 signature.
    FlipSignatureChar(usize),
    /// Re-signs the (possibly mutated) body: a valid delivery again if nothing else changed.
    Resign,
    /// Upper-cases the algorithm name, which the docs' comparison ignores.
    AlgorithmCase,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::FlipBodyByte(i, x)),
        any::<usize>().prop_map(Mutation::TruncateBody),
        vec(any::<u8>(), 1..8).prop_map(Mutation::AppendBody),
        (0..NAMES.len()).prop_map(Mutation::DropHeader),
        (0..NAMES.len(), vec(any::<u8>(), 0..40)).prop_map(|(i, v)| Mutation::ReplaceHeader(i, v)),
        any::<usize>().prop_map(Mutation::FlipSignatureChar),
        Just(Mutation::Resign),
        Just(Mutation::AlgorithmCase),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (
            vec((0..NAMES.len(), vec(any::<u8>(), 0..60)), 0..5),
            prop_oneof![
                vec(any::<u8>(), 0..600),
                "\\{.{0,200}\\}".prop_map(String::into_bytes)
            ],
        )
            .prop_map(|(headers, body)| Input::Arbitrary { headers, body }),
        prop_oneof![
            vec(any::<u8>(), 0..300),
            "\\{.{0,120}\\}".prop_map(String::into_bytes),
            (
                prop_oneof![
                    Just("referral-updated".to_string()),
                    Just("referral-created".to_string()),
                    Just("test-created".to_string()),
                    "[a-z-]{0,20}"
                ],
                ".{0,40}",
                prop_oneof![Just("2020-01-01T00:00:00Z".to_string()), ".{0,12}"],
            )
                .prop_map(|(name, uri, date)| serde_json::json!({
                    "EventName": name, "ResourceUri": uri, "ResourceChangeUtcDate": date
                })
                .to_string()
                .into_bytes()),
        ]
        .prop_map(|body| Input::Signed { body }),
        ("[0-9a-f]{8}-[0-9a-f]{4}", vec(mutation(), 0..3),).prop_map(|(referral, mutations)| {
            Input::Mutated {
                referral,
                mutations,
            }
        }),
    ]
}

/// The delivery to post and whether it is, by construction, validly signed and fresh.
fn build(f: &IntakeFixture, input: &Input) -> (HeaderMap, Vec<u8>, bool) {
    match input {
        Input::Arbitrary { headers, body } => {
            let mut h = HeaderMap::new();
            for (i, v) in headers {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.insert(HeaderName::from_static(NAMES[*i]), v);
                }
            }
            (h, body.clone(), false)
        }
        Input::Signed { body } => (f.signer.headers(body), body.clone(), false),
        Input::Mutated {
            referral,
            mutations,
        } => {
            let (mut h, mut body) = f.signer.referral_updated(referral);
            let original = body.clone();
            for m in mutations {
                match m {
                    Mutation::FlipBodyByte(i, x) => {
                        let i = i % body.len().max(1);
                        if let Some(b) = body.get_mut(i) {
                            *b ^= x;
                        }
                    }
                    Mutation::TruncateBody(n) => body.truncate(n % body.len().max(1)),
                    Mutation::AppendBody(tail) => body.extend_from_slice(tail),
                    Mutation::DropHeader(i) => {
                        h.remove(NAMES[*i]);
                    }
                    Mutation::ReplaceHeader(i, v) => {
                        if let Ok(v) = HeaderValue::from_bytes(v) {
                            h.insert(HeaderName::from_static(NAMES[*i]), v);
                        }
                    }
                    Mutation::FlipSignatureChar(i) => {
                        if let Some(auth) = h.get("authorization").and_then(|v| v.to_str().ok()) {
                            let mut chars: Vec<char> = auth.chars().collect();
                            // An earlier mutation may have left a header shorter than the
                            // scheme name (even empty).
                            let room = chars.len().saturating_sub("Signature ".len());
                            let at = "Signature ".len() + i % room.max(1);
                            if let Some(c) = chars.get_mut(at) {
                                *c = if *c == 'A' { 'B' } else { 'A' };
                            }
                            let flipped: String = chars.into_iter().collect();
                            h.insert("authorization", HeaderValue::from_str(&flipped).unwrap());
                        }
                    }
                    Mutation::Resign => {
                        if h.contains_key("authorization") {
                            let auth = f.signer.authorization(&body);
                            h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
                        }
                    }
                    Mutation::AlgorithmCase => {
                        if h.contains_key("x-ms-signature-algorithm") {
                            h.insert(
                                "x-ms-signature-algorithm",
                                HeaderValue::from_static("RSA-SHA256"),
                            );
                        }
                    }
                }
            }
            // Valid exactly when the body is still the signed event and the headers that
            // matter still say what the original said (judged on the final headers, since
            // one mutation can undo another).
            let text = |name: &str| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string()
            };
            let signature = |auth: &str| {
                auth.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Signature"))
                    .and_then(|(_, v)| {
                        base64::engine::general_purpose::STANDARD
                            .decode(v.trim())
                            .ok()
                    })
            };
            let valid = body == original
                && text("x-ms-certificate-url") == f.signer.cert_url()
                && text("x-ms-signature-algorithm").eq_ignore_ascii_case("rsa-sha256")
                && signature(&text("authorization")).is_some()
                && signature(&text("authorization")) == signature(&f.signer.authorization(&body));
            (h, body, valid)
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    accepted: u32,
    rejected: u32,
    statuses: std::collections::BTreeMap<u16, u32>,
}

#[test]
fn arbitrary_and_mutated_deliveries_never_get_in() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let f = rt.block_on(IntakeFixture::start());
    let cases = knobs::proptest_cases(256);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let tally = RefCell::new(Tally::default());
    let result = runner.run(&input(), |input| {
        let (headers, body, valid) = build(&f, &input);
        let before = rt.block_on(f.queued());
        let resp = rt.block_on(f.post(&headers, &body));
        let after = rt.block_on(f.queued());
        let mut t = tally.borrow_mut();
        *t.statuses.entry(resp.status).or_default() += 1;
        let ok = (200..300).contains(&resp.status);
        if ok {
            t.accepted += 1;
        } else {
            t.rejected += 1;
        }
        // A re-signed but otherwise changed body is a valid delivery of a different event;
        // everything else must be the untouched original to get in.
        let resigned = matches!(&input, Input::Mutated { mutations, .. } if mutations.iter().any(|m| matches!(m, Mutation::Resign)));
        if ok && matches!(input, Input::Signed { .. }) {
            // Signed by the trusted key: in only if it is a fresh event we handle.
            let event: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| TestCaseError::fail(format!("accepted non-JSON: {e}")))?;
            let name = event["EventName"].as_str().unwrap_or_default();
            prop_assert!(
                ["referral-updated", "referral-created", "test-created"].contains(&name),
                "accepted event {}",
                name
            );
        }
        let signed = matches!(input, Input::Signed { .. });
        prop_assert!(
            !ok || valid || resigned || signed,
            "accepted a delivery that is not validly signed: {:?}",
            resp
        );
        if valid {
            prop_assert_eq!(resp.status, 200, "valid delivery refused: {:?}", resp.body);
        }
        if !ok {
            prop_assert_eq!(after, before, "a {} queued a message", resp.status);
            prop_assert!(resp.body["error"]["code"].is_string());
        }
        prop_assert!(after <= before + 1);
        Ok(())
    });
    let tally = tally.into_inner();
    println!(
        "intake fuzz: cases={cases} accepted={} rejected={} statuses={:?}",
        tally.accepted, tally.rejected, tally.statuses
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(tally.accepted > 0 && tally.rejected > 0, "{tally:?}");
}
