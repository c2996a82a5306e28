//! Webhook intake end to end: the Partner Center stand-in delivers signed events to a small
//! local server that answers with `handle_webhook`; the captured deliveries are then replayed,
//! tampered with and stripped to check every refusal, and nothing but valid, new deliveries
//! ever reaches the sync queue, each keyed by its pair (the linked opportunity, else the id
//! the referral's opportunity gets).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cosell::audit::{AuditEntry, AuditQuery};
use cosell::crosswalk::Link;
use cosell::engine::intake::{delivery_key, handle_webhook, last_test_event, IntakeResponse};
use cosell::engine::pair::key::opportunity_id_for;
use cosell::engine::wiring;
use cosell::engine::{Origin, SyncMessage};
use cosell::partner_center::WebhookVerifier;
use cosell::queue::Queue;
use cosell::store::{Store, StoreError};
use cosell_tests::harness::Harness;
use cosell_tests::webhook_signing::DeliverySigner;
use support::drain::drain;
use support::failing_queue::FailingQueue;

const WAIT: Duration = Duration::from_secs(10);

struct Receiver {
    verifier: WebhookVerifier,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    /// Each delivery as it arrived, with our answer.
    seen: Mutex<Vec<(HeaderMap, Vec<u8>, IntakeResponse)>>,
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let answer = handle_webhook(
        &rx.verifier,
        rx.store.as_ref(),
        rx.queue.as_ref(),
        &headers,
        &body,
    )
    .await;
    let status = StatusCode::from_u16(answer.status).expect("valid status");
    let json = answer.body.clone();
    rx.seen
        .lock()
        .unwrap()
        .push((headers, body.to_vec(), answer));
    (status, Json(json))
}

/// Serves intake on a free port and registers it at the stand-in.
async fn start_intake(h: &Harness) -> Arc<Receiver> {
    let rx = Arc::new(Receiver {
        verifier: wiring::webhook_verifier(&h.config).expect("webhook verifier"),
        store: h.store.clone(),
        queue: h.queue.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    h.engine
        .pc
        .register(
            &url,
            &["referral-created", "referral-updated", "test-created"],
        )
        .await
        .expect("register the intake URL");
    rx
}

async fn call(h: &Harness, rx: &Receiver, headers: &HeaderMap, body: &[u8]) -> IntakeResponse {
    handle_webhook(
        &rx.verifier,
        h.store.as_ref(),
        h.queue.as_ref(),
        headers,
        body,
    )
    .await
}

fn error_code(r: &IntakeResponse) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_signed_delivery_is_queued_once_and_every_bad_one_is_refused() {
    let h = Harness::start().await;
    let rx = start_intake(&h).await;

    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let id = created["id"].as_str().unwrap().to_string();
    let deliveries = h.pc.wait_for_deliveries(1, WAIT).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].outcome, "delivered");
    assert_eq!(deliveries[0].last_status, Some(200));
    let (headers, body, answer) = rx.seen.lock().unwrap()[0].clone();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "queued");
    assert_eq!(answer.body["referral_id"], id.as_str());

    let queued = drain(h.queue.as_ref()).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let msg = SyncMessage::parse(&queued[0]).unwrap();
    assert_eq!(msg.referral_id.as_deref(), Some(id.as_str()));
    assert_eq!(msg.origin, Origin::Referral);
    // Not linked yet: keyed by the id its opportunity will get.
    assert_eq!(msg.key, opportunity_id_for(&id));
    assert!(
        msg.changed_at.is_some(),
        "the event's change date travels along"
    );

    // The same delivery again (Partner Center retries): accepted, not queued twice.
    let again = call(&h, &rx, &headers, &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["status"], "duplicate");

    // One byte changed: the signature no longer matches.
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'C').unwrap_or(0);
    tampered[pos] = b'D';
    let r = call(&h, &rx, &headers, &tampered).await;
    assert_eq!((r.status, error_code(&r)), (401, "bad_signature"));

    let mut unsigned = headers.clone();
    unsigned.remove("authorization");
    let r = call(&h, &rx, &unsigned, &body).await;
    assert_eq!((r.status, error_code(&r)), (401, "missing_header"));
    let auth = headers["authorization"].to_str().unwrap().to_string();
    let signature = auth.trim_start_matches("Signature ");

    let mut elsewhere = headers.clone();
    elsewhere.insert(
        "x-ms-certificate-url",
        HeaderValue::from_static("https://certs.evil.example/pc.cer"),
    );
    let r = call(&h, &rx, &elsewhere, &body).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "untrusted_certificate_host")
    );

    let huge = vec![b' '; 70 * 1024];
    let r = call(&h, &rx, &headers, &huge).await;
    assert_eq!((r.status, error_code(&r)), (413, "too_large"));

    // Signed with the stand-in's key, so only the JSON check can refuse it.
    let signer = DeliverySigner::for_standin(&h.pc.base_url());
    let garbage = b"{\"EventName\": \"referral-created\", ".to_vec();
    let r = call(&h, &rx, &signer.headers(&garbage), &garbage).await;
    assert_eq!((r.status, error_code(&r)), (400, "malformed_body"));

    let body_text = serde_json::json!({
        "EventName": "invoice-paid",
        "ResourceUri": format!("{}v1.0/invoices/1", h.pc.base_url()),
    })
    .to_string();
    let r = call(
        &h,
        &rx,
        &signer.headers(body_text.as_bytes()),
        body_text.as_bytes(),
    )
    .await;
    assert!(r.status >= 400 && r.status < 500, "{r:?}");
    assert_eq!(error_code(&r), "unknown_event");

    for answer in rx.seen.lock().unwrap().iter().map(|s| &s.2) {
        assert!(!answer.body.to_string().contains(signature));
    }
    assert!(
        drain(h.queue.as_ref()).await.is_empty(),
        "nothing more was queued"
    );
}

#[tokio::test]
async fn a_test_event_is_answered_and_recorded_but_not_queued() {
    let h = Harness::start().await;
    start_intake(&h).await;
    assert!(last_test_event(h.store.as_ref()).await.unwrap().is_none());

    let correlation = h.engine.pc.send_test_event().await.expect("test event");
    let deliveries = h.pc.wait_for_deliveries(1, WAIT).await;
    assert_eq!(deliveries[0].event_name, "test-created");
    assert_eq!(deliveries[0].last_status, Some(200));
    let status = h.engine.pc.test_event_status(&correlation).await.unwrap();
    assert_eq!(status.status, "completed");

    let record = last_test_event(h.store.as_ref())
        .await
        .unwrap()
        .expect("the test event is recorded");
    assert_eq!(record.event["EventName"], "test-created");
    assert!(!record.received_at.is_empty());
    assert!(drain(h.queue.as_ref()).await.is_empty());
}

#[tokio::test]
async fn a_queue_failure_is_a_503_and_the_retry_is_accepted() {
    let h = Harness::start().await;
    let verifier = wiring::webhook_verifier(&h.config).expect("webhook verifier");
    let signer = DeliverySigner::for_standin(&h.pc.base_url());
    let (headers, body) = signer.referral_updated("ref-queue-down");
    let down = FailingQueue::after(h.queue.clone(), 0);

    let r = handle_webhook(&verifier, h.store.as_ref(), &down, &headers, &body).await;
    assert_eq!((r.status, error_code(&r)), (503, "queue_unavailable"));
    assert!(drain(h.queue.as_ref()).await.is_empty());
    assert!(
        h.store
            .remember_delivery(&delivery_key(&body), Duration::from_secs(1))
            .await
            .unwrap(),
        "the dedupe mark was undone"
    );
    h.store.forget_delivery(&delivery_key(&body)).await.unwrap();

    // Partner Center's retry of the very same delivery now goes through, once.
    let r = handle_webhook(
        &verifier,
        h.store.as_ref(),
        h.queue.as_ref(),
        &headers,
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "queued");
    let r = handle_webhook(
        &verifier,
        h.store.as_ref(),
        h.queue.as_ref(),
        &headers,
        &body,
    )
    .await;
    assert_eq!(r.body["status"], "duplicate");
    let queued = drain(h.queue.as_ref()).await;
    assert_eq!(queued.len(), 1);
    let msg = SyncMessage::parse(&queued[0]).unwrap();
    assert_eq!(msg.referral_id.as_deref(), Some("ref-queue-down"));
    assert_eq!(msg.origin, Origin::Referral);
}

/// A linked referral's delivery goes to its pair's group: the opportunity it is linked to,
/// whatever id a new opportunity would get.
#[tokio::test]
async fn a_linked_referral_is_queued_under_its_opportunity() {
    let h = Harness::start().await;
    let verifier = wiring::webhook_verifier(&h.config).expect("webhook verifier");
    let signer = DeliverySigner::for_standin(&h.pc.base_url());
    let opportunity = "0f8fad5b-d9cb-469f-a165-70867728950e";
    h.store
        .put_link(&Link::new("ref-linked", opportunity), None)
        .await
        .unwrap();
    let (headers, body) = signer.referral_updated("ref-linked");
    let r = handle_webhook(
        &verifier,
        h.store.as_ref(),
        h.queue.as_ref(),
        &headers,
        &body,
    )
    .await;
    assert_eq!(r.body["status"], "queued", "{r:?}");
    let got = h
        .queue
        .receive(10, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].group.as_deref(), Some(opportunity));
    let msg = SyncMessage::parse(&got[0].body).unwrap();
    assert_eq!(msg.key, opportunity);
    assert_ne!(msg.key, opportunity_id_for("ref-linked"));
    assert_eq!(msg.referral_id.as_deref(), Some("ref-linked"));
}

#[tokio::test]
async fn a_store_outage_is_a_503_and_nothing_is_queued() {
    let h = Harness::start().await;
    let verifier = wiring::webhook_verifier(&h.config).expect("webhook verifier");
    let signer = DeliverySigner::for_standin(&h.pc.base_url());
    let (headers, body) = signer.referral_updated("ref-store-down");
    let r = handle_webhook(&verifier, &DownStore, h.queue.as_ref(), &headers, &body).await;
    assert_eq!((r.status, error_code(&r)), (503, "store_unavailable"));
    assert!(drain(h.queue.as_ref()).await.is_empty());
}

/// A store whose backend is unreachable.
struct DownStore;

fn down() -> StoreError {
    StoreError::Backend("injected: store unreachable".into())
}

#[async_trait]
impl Store for DownStore {
    async fn get_link_by_referral(&self, _: &str) -> Result<Option<Link>, StoreError> {
        Err(down())
    }
    async fn get_link_by_opportunity(&self, _: &str) -> Result<Option<Link>, StoreError> {
        Err(down())
    }
    async fn put_link(&self, _: &Link, _: Option<u64>) -> Result<Link, StoreError> {
        Err(down())
    }
    async fn append_audit(&self, _: &AuditEntry) -> Result<(), StoreError> {
        Err(down())
    }
    async fn query_audit(&self, _: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        Err(down())
    }
    async fn get_state(&self, _: &str) -> Result<Option<(String, u64)>, StoreError> {
        Err(down())
    }
    async fn put_state(&self, _: &str, _: &str, _: Option<u64>) -> Result<u64, StoreError> {
        Err(down())
    }
    async fn remember_delivery(&self, _: &str, _: Duration) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn forget_delivery(&self, _: &str) -> Result<(), StoreError> {
        Err(down())
    }
}
