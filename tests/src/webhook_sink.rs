//! A tiny local HTTP endpoint to point a Partner Center webhook registration at. It records
//! every delivery (headers and raw body) and, when given an intake target, hands each one to
//! the connector's real intake and answers with its status, as the Lambda edge does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use cosell::engine::intake::handle_webhook;
use cosell::partner_center::webhook_verify::WebhookVerifier;
use cosell::queue::Queue;
use cosell::store::Store;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct CapturedDelivery {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What the sink answered.
    pub status: u16,
}

/// Where deliveries go when the sink forwards them into the connector.
#[derive(Clone)]
pub struct IntakeTarget {
    pub verifier: Arc<WebhookVerifier>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
}

#[derive(Clone)]
struct SinkState {
    captured: Arc<Mutex<Vec<CapturedDelivery>>>,
    target: Option<IntakeTarget>,
}

pub struct WebhookSink {
    pub url: url::Url,
    captured: Arc<Mutex<Vec<CapturedDelivery>>>,
    task: JoinHandle<()>,
}

async fn receive(State(s): State<SinkState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = match &s.target {
        Some(t) => {
            handle_webhook(&t.verifier, &*t.store, &*t.queue, &headers, &body)
                .await
                .status
        }
        None => 200,
    };
    s.captured
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(CapturedDelivery {
            headers,
            body: body.to_vec(),
            status,
        });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl WebhookSink {
    /// Serves `POST /webhook` on a free loopback port.
    pub async fn start(target: Option<IntakeTarget>) -> WebhookSink {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let state = SinkState {
            captured: captured.clone(),
            target,
        };
        let app = Router::new()
            .route("/webhook", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookSink {
            url: url::Url::parse(&format!("http://{addr}/webhook")).expect("valid URL"),
            captured,
            task,
        }
    }

    pub fn captured(&self) -> Vec<CapturedDelivery> {
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
