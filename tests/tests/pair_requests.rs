//! Requests per reconcile on each side, counted by both stand-ins (token requests left out),
//! for the cases docs/performance.md reports (the scenario is `cosell_tests::request_cases`,
//! which `cosell-bench` prints too). Each case is held to its figure: a new referral 1
//! Partner Center + 2 Dataverse requests, an echo one read, an update one read of the sender
//! and one read and one write on the side that changes. `--nocapture` prints the table.

use cosell_tests::harness::Harness;
use cosell_tests::request_cases::run_all;

#[tokio::test]
async fn requests_per_reconcile_by_case() {
    let h = Harness::start().await;
    let cases = run_all(&h).await;
    for c in &cases {
        println!(
            "requests: {:<42} partner_center={} dataverse={}  {}",
            c.name, c.pc, c.dv, c.routes
        );
    }
    let expected = [
        ("new referral, new customer and contact", 1, 2),
        ("new referral, existing customer", 1, 2),
        ("our own echo (CRM side)", 0, 1),
        ("our own echo (Partner Center side)", 1, 0),
        ("Microsoft update", 1, 2),
        ("CRM edit", 2, 1),
        ("referral created from the CRM (private)", 2, 4),
        ("accept", 2, 1),
        ("decline", 2, 3),
        ("close as won", 2, 1),
        ("close as lost", 2, 1),
    ];
    assert_eq!(cases.len(), expected.len());
    for (c, (name, pc, dv)) in cases.iter().zip(expected) {
        assert_eq!(c.name, name);
        assert_eq!((c.pc, c.dv), (pc, dv), "{name}: {}", c.routes);
        assert!(
            c.pc >= c.minimum.0 && c.dv >= c.minimum.1,
            "{name} under its minimum"
        );
    }
    // The customer looked up in one batch of two reads, its rows made in one change set.
    assert!(
        cases[0].routes.contains("POST $batch x2"),
        "{}",
        cases[0].routes
    );
}
