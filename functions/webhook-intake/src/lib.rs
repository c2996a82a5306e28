//! The webhook intake's handler: an HTTP API (payload v2) request in, the engine's intake
//! answer out as JSON. Lambda-free apart from the request and response types, so it can be
//! called directly in tests.

use cosell::engine::intake::{handle_webhook, IntakeResponse};
use cosell::partner_center::webhook_verify::WebhookVerifier;
use cosell::queue::Queue;
use cosell::store::Store;
use lambda_http::{Body, Request, Response};

/// What the intake holds across invocations: no Partner Center or Dataverse credentials.
pub struct Intake {
    pub verifier: WebhookVerifier,
    pub store: Box<dyn Store>,
    pub inbound: Box<dyn Queue>,
}

/// The HTTP response for the engine's answer.
pub fn to_http(answer: &IntakeResponse) -> Response<Body> {
    let status = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(answer.body.to_string()))
        .expect("a status and one valid header make a valid response")
}

impl Intake {
    /// Handles one delivery. lambda_http has already decoded a base64 body.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let answer = handle_webhook(
            &self.verifier,
            self.store.as_ref(),
            self.inbound.as_ref(),
            request.headers(),
            request.body().as_ref(),
        )
        .await;
        tracing::info!(status = answer.status, "webhook delivery answered");
        to_http(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_answer_becomes_a_json_response() {
        let r = to_http(&IntakeResponse {
            status: 401,
            body: json!({"error": {"code": "bad-signature", "message": "signature does not verify"}}),
        });
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = match r.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("expected text, got {other:?}"),
        };
        assert_eq!(body["error"]["code"], "bad-signature");
    }

    #[test]
    fn an_impossible_status_is_a_500_not_a_panic() {
        let r = to_http(&IntakeResponse {
            status: 42,
            body: json!({}),
        });
        assert_eq!(r.status(), 500);
    }
}
