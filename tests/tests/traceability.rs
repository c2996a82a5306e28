//! Issue 22's traceability: the lines a sync logs, in the functions' JSON format, name the
//! pair key, the referral id, the opportunity id and the `MS-CorrelationId` of the Partner
//! Center request, so one Logs Insights query finds a pair's lines.

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell_tests::harness::Harness;
use cosell_tests::log_capture::LogCapture;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

/// The `sync` span of a log line, if it has one.
fn sync_span(line: &Value) -> Option<&Value> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "sync")
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_of_a_sync_names_the_pair_both_ids_and_the_correlation_id() {
    let h = Harness::start().await;
    let referral = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let message =
        SyncMessage::for_referral(h.engine.store.as_ref(), &referral, Origin::Referral, None)
            .await
            .unwrap();

    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::registry()
        .with(cosell_edge::logging::json_layer(capture.clone(), "debug"));
    let outcome = {
        let _guard = tracing::subscriber::set_default(subscriber);
        reconcile_pair(&h.engine, &message)
            .await
            .expect("reconciled")
    };
    assert!(
        matches!(outcome, PairOutcome::OpportunityCreated { .. }),
        "{outcome:?}"
    );

    let lines: Vec<Value> = capture
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let in_sync: Vec<&Value> = lines.iter().filter(|l| sync_span(l).is_some()).collect();
    assert!(in_sync.len() >= 2, "{lines:#?}");
    let mut correlation_ids = Vec::new();
    for line in &in_sync {
        let span = sync_span(line).unwrap();
        assert_eq!(span["pair_key"], message.key.as_str(), "{line}");
        assert_eq!(span["opportunity_id"], message.key.as_str(), "{line}");
        assert_eq!(span["referral_id"], referral.as_str(), "{line}");
        if let Some(id) = span["correlation_id"].as_str() {
            correlation_ids.push(id.to_string());
        }
        // A Partner Center call's own lines carry its request's correlation id.
        if let Some(call) = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "partner_center")
        {
            let id = call["correlation_id"].as_str().expect("correlation id");
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{line}");
        }
    }
    // The lines after the first Partner Center request name the latest one sent.
    let last = in_sync.last().unwrap();
    let sent = sync_span(last).unwrap()["correlation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the last line has no correlation id: {last}"));
    assert!(uuid::Uuid::parse_str(sent).is_ok(), "{sent}");
    assert!(!correlation_ids.is_empty());
}
