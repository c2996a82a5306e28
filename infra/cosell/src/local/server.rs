//! The HTTP side of the local runner: the same webhook intake as the Lambda function, and a
//! health check, served with limits an internet client cannot outlast: hyper's header read
//! timeout (idle keep-alive connections included), a cap on connections held, a request
//! timeout and a cap on requests in progress (tower), and bodies read up to the intake's cap.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use cosell::config::ServerLimits;
use cosell::engine::intake::{self, MAX_BODY_BYTES};
use cosell::partner_center::webhook_verify::{Rejection, WebhookVerifier};
use cosell::queue::Queue;
use cosell::store::Store;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceBuilder;

pub const WEBHOOK_PATH: &str = "/partner-center/webhook";
pub const HEALTH_PATH: &str = "/healthz";

/// How long a stop waits for requests in progress before dropping their connections.
const DRAIN: Duration = Duration::from_secs(5);

/// What the webhook route needs.
pub struct Intake {
    pub verifier: WebhookVerifier,
    pub store: Arc<dyn Store>,
    pub inbound: Arc<dyn Queue>,
}

pub fn router(intake: Arc<Intake>, limits: &ServerLimits) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(HEALTH_PATH, get(|| async { Json(json!({"status": "ok"})) }))
        // The webhook reads its body itself, up to the intake's cap, to answer in JSON.
        .layer(DefaultBodyLimit::disable())
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(limit_answer))
                .load_shed()
                .concurrency_limit(limits.max_requests)
                .timeout(limits.request_timeout),
        )
        .with_state(intake)
}

async fn webhook(State(s): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    // One byte over the cap is enough to know it is too large; nothing more is read.
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) if b.len() <= MAX_BODY_BYTES => b,
        Ok(_) => return json_answer(intake::rejected(&Rejection::TooLarge(MAX_BODY_BYTES))),
        Err(e) if is_length_limit(&e) => {
            return json_answer(intake::rejected(&Rejection::TooLarge(MAX_BODY_BYTES)))
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                "the body could not be read",
            )
        }
    };
    let answer = intake::handle_webhook(
        &s.verifier,
        s.store.as_ref(),
        s.inbound.as_ref(),
        &headers,
        &body,
    )
    .await;
    json_answer(answer)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn json_answer(answer: intake::IntakeResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The answer when a limit stops a request: too many at once (503, Partner Center retries)
/// or not answered in time (408).
async fn limit_answer(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; retry later",
        )
    } else if err.is::<tower::timeout::error::Elapsed>() {
        error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request was not completed in time",
        )
    } else {
        tracing::error!(error = %err, "webhook server error");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request failed",
        )
    }
}

/// Serves `app` on `listener` until `stop` turns true: at most `max_connections` at once
/// (the next ones wait in the listen backlog), each closed when its request headers take
/// longer than `header_timeout` (also between requests on a kept-alive connection).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(
        super::fd_limit::fit_connections(limits.max_connections).max(1),
    ));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut stopping = std::pin::pin!(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut stopping => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopping => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: let connections finish, then go on.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stopping with requests still in progress");
    }
}
